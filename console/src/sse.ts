/**
 * Server-sent events over fetch, because EventSource cannot send an Authorization header and the
 * token must not go in the URL. The body is parsed by eventsource-parser; when the stream drops, it
 * reconnects with Last-Event-ID (the process event log resumes where it stopped) after a backoff.
 * A 4xx answer is final (bad token, unknown pid): reported once, no retry.
 */
import { EventSourceParserStream } from 'eventsource-parser/stream';
import { ApiError } from './api.ts';

export interface StreamMessage {
  readonly event: string;
  readonly id: string | undefined;
  readonly data: string;
}

export interface StreamHandlers {
  onMessage(m: StreamMessage): void;
  /** Connected (true) or waiting to reconnect (false). */
  onStatus?(live: boolean): void;
  onError?(e: ApiError): void;
  /** The server closed the stream normally (a terminated process's log has ended). */
  onEnd?(): 'reconnect' | 'stop';
}

/** Open a live stream of `path` as `token`; returns a function that closes it. */
export function openStream(token: string, path: string, h: StreamHandlers): () => void {
  const abort = new AbortController();
  let lastId: string | undefined;
  let backoff = 500;
  const run = async () => {
    while (!abort.signal.aborted) {
      try {
        const headers: Record<string, string> = { authorization: `Bearer ${token}`, accept: 'text/event-stream' };
        if (lastId !== undefined) headers['last-event-id'] = lastId;
        const res = await fetch(path, { headers, signal: abort.signal });
        if (!res.ok || !res.body) {
          const body = (await res.json().catch(() => null)) as { error?: { code?: string; message?: string } } | null;
          const err = new ApiError(res.status, body?.error?.code ?? `HTTP${res.status}`, body?.error?.message ?? `HTTP ${res.status}`);
          if (res.status >= 400 && res.status < 500 && res.status !== 429) {
            h.onError?.(err);
            return;
          }
          throw err;
        }
        h.onStatus?.(true);
        backoff = 500;
        const reader = res.body.pipeThrough(new TextDecoderStream()).pipeThrough(new EventSourceParserStream()).getReader();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          if (value.id !== undefined) lastId = value.id;
          h.onMessage({ event: value.event ?? 'message', id: value.id, data: value.data });
        }
        h.onStatus?.(false);
        if ((h.onEnd?.() ?? 'reconnect') === 'stop') return;
      } catch (e) {
        if (abort.signal.aborted) return;
        h.onStatus?.(false);
        if (e instanceof ApiError) h.onError?.(e);
      }
      await new Promise((r) => setTimeout(r, backoff));
      backoff = Math.min(backoff * 2, 10_000);
    }
  };
  void run();
  return () => abort.abort();
}
