/** Data hooks over the API: a GET that can be reloaded or polled, and a live SSE stream. */
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { call, describe } from './api.ts';
import { useSession } from './session.ts';
import { type StreamMessage, openStream } from './sse.ts';

export interface Loaded<T> {
  readonly data: T | null;
  readonly error: string | null;
  readonly reload: () => void;
}

/**
 * GET `path` (null: nothing yet); again on reload(), whenever `rev` changes (a page bumps it when a
 * live event says the data moved), and every `pollMs` while the tab is visible.
 */
export function useGet<T>(path: string | null, opts: { pollMs?: number; rev?: number } = {}): Loaded<T> {
  const { pollMs, rev = 0 } = opts;
  const { token } = useSession();
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [tick, setTick] = useState(0);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  useEffect(() => setData(null), [path]);
  useEffect(() => {
    if (path === null) return;
    const abort = new AbortController();
    call<T>(token, 'GET', path, undefined, abort.signal).then(
      (d) => {
        setData(d);
        setError(null);
      },
      (e: unknown) => {
        if (!abort.signal.aborted) setError(describe(e));
      },
    );
    return () => abort.abort();
  }, [path, token, tick, rev]);
  useEffect(() => {
    if (!pollMs) return;
    const t = setInterval(() => {
      if (document.visibilityState === 'visible') reload();
    }, pollMs);
    return () => clearInterval(t);
  }, [pollMs, reload]);
  return { data, error, reload };
}

export type StreamStatus = 'connecting' | 'live' | 'reconnecting' | 'ended' | 'error';

/**
 * Follow the SSE stream at `path`; `onMessage` sees every message (kept in a ref, so it may change
 * on every render). `endIsFinal`: a stream the server closes is over (a terminated process's log).
 */
export function useStream(path: string | null, onMessage: (m: StreamMessage) => void, endIsFinal = false): { status: StreamStatus; error: string | null } {
  const { token } = useSession();
  const handler = useRef(onMessage);
  handler.current = onMessage;
  const [status, setStatus] = useState<StreamStatus>('connecting');
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    if (path === null) return;
    setStatus('connecting');
    setError(null);
    return openStream(token, path, {
      onMessage: (m) => handler.current(m),
      onStatus: (live) => setStatus(live ? 'live' : 'reconnecting'),
      onError: (e) => {
        setError(describe(e));
        if (e.status < 500) setStatus('error');
      },
      onEnd: () => {
        if (!endIsFinal) return 'reconnect';
        setStatus('ended');
        return 'stop';
      },
    });
  }, [path, token, endIsFinal]);
  return { status, error };
}
