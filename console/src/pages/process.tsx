/**
 * One process: its PCB and usage against the quotas, the signals an operator may send, the live event
 * log (SSE, resumed with Last-Event-ID), tokens per minute, the context's pages against the token
 * budget, its files, mailbox, children and exit status. Panels re-read when the live log says
 * something moved, at most twice a second.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { useGet, useStream } from '../hooks.ts';
import type { Pcb, ProcessEvent } from '../types.ts';
import { ErrorNote } from '../ui.tsx';
import { Actions, PcbPanel } from './process/control.tsx';
import { EventLog, TokensChart } from './process/events.tsx';
import { ChildrenPanel, ContextPanel, FilesPanel, MailboxPanel } from './process/resources.tsx';

/** Bumps a counter at most every `ms` while `fire()` is called: the panels' cue to re-read. */
function useThrottledRev(ms: number): [number, () => void] {
  const [rev, setRev] = useState(0);
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);
  useEffect(() => () => {
    if (timer.current) clearTimeout(timer.current);
  }, []);
  const fire = () => {
    if (timer.current) return;
    timer.current = setTimeout(() => {
      timer.current = null;
      setRev((r) => r + 1);
    }, ms);
  };
  return [rev, fire];
}

export function ProcessPage({ pid }: { pid: string }) {
  const [rev, bump] = useThrottledRev(500);
  const pcb = useGet<Pcb>(`/v1/processes/${pid}`, { rev });
  const [events, setEvents] = useState<ProcessEvent[]>([]);
  const { status, error } = useStream(
    `/v1/processes/${pid}/events`,
    (m) => {
      const e = JSON.parse(m.data) as ProcessEvent;
      setEvents((prev) => (prev.length && prev[prev.length - 1]!.seq >= e.seq ? prev : [...prev, e]));
      bump();
    },
    true,
  );
  const p = pcb.data;
  return (
    <>
      <p class="crumbs">
        <a href="#/">Processes</a> /
      </p>
      <h1>{p ? p.name : pid}</h1>
      <ErrorNote error={pcb.error} />
      {p ? (
        <div class="columns">
          <div>
            <PcbPanel pcb={p} />
            <Actions pcb={p} onDone={pcb.reload} />
            <TokensChart events={events} />
            <ChildrenPanel pid={pid} rev={rev} />
            <MailboxPanel pid={pid} rev={rev} />
          </div>
          <div>
            <EventLog events={events} status={status} error={error} />
            <ContextPanel pid={pid} rev={rev} />
            <FilesPanel pid={pid} rev={rev} />
          </div>
        </div>
      ) : null}
    </>
  );
}
