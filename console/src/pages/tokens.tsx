/**
 * Tokens per minute, by process: the processes of the table that changed in the last WINDOW_MIN
 * minutes (at most MAX_PROCESSES, newest activity first), one line each. Each one's event log is
 * read incrementally (after the last seq seen) every POLL_MS while the page is visible, and its
 * llm_call events are counted by the minute, so a process costs one small read per poll.
 */
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import type uPlot from 'uplot';
import { call, qs } from '../api.ts';
import { Chart } from '../chart.tsx';
import { useSession } from '../session.ts';
import type { ProcessEvent, ProcessRow } from '../types.ts';
import { Section, fmt } from '../ui.tsx';

const WINDOW_MIN = 15;
const MAX_PROCESSES = 6;
const POLL_MS = 5000;
const COLORS = ['#3566c8', '#d9822b', '#2a9d5c', '#b42318', '#7b4fc9', '#0f8b8d'];

type Tally = { after: number; perMinute: Map<number, number> };

/** The tokens an llm_call event used; null for any other event. */
export function usageOf(e: ProcessEvent): { prompt: number; completion: number } | null {
  if (e.type !== 'llm_call') return null;
  const u = (e.data as { usage?: { prompt_tokens?: number; completion_tokens?: number } } | null)?.usage;
  return { prompt: u?.prompt_tokens ?? 0, completion: u?.completion_tokens ?? 0 };
}

export function TokensByProcess({ rows }: { rows: ProcessRow[] }) {
  const { token } = useSession();
  const since = Date.now() - WINDOW_MIN * 60_000;
  const watched = rows
    .filter((r) => r.updated_at >= since)
    .sort((a, b) => b.updated_at - a.updated_at)
    .slice(0, MAX_PROCESSES);
  const key = watched.map((r) => r.pid).join(',');
  const tallies = useRef(new Map<string, Tally>());
  const [tick, setTick] = useState(0);
  useEffect(() => {
    const pids = key ? key.split(',') : [];
    let stopped = false;
    const read = async () => {
      if (document.visibilityState !== 'visible') return;
      for (const pid of pids) {
        const t = tallies.current.get(pid) ?? { after: 0, perMinute: new Map() };
        tallies.current.set(pid, t);
        try {
          for (;;) {
            const page = await call<{ events: ProcessEvent[]; next_cursor: string | null }>(token, 'GET', `/v1/processes/${pid}/events${qs({ cursor: t.after || undefined, limit: 1000 })}`);
            for (const e of page.events) {
              const u = usageOf(e);
              const minute = Math.floor(e.at / 60_000);
              if (u) t.perMinute.set(minute, (t.perMinute.get(minute) ?? 0) + u.prompt + u.completion);
            }
            // A log's cursor is a seq: the last one read is where the next poll goes on from.
            t.after = page.events.at(-1)?.seq ?? t.after;
            if (page.next_cursor === null || stopped) break;
          }
        } catch {
          // A removed process, or the network: its line keeps what it had; the next poll tries again.
        }
      }
      if (!stopped) setTick((n) => n + 1);
    };
    void read();
    const timer = setInterval(() => void read(), POLL_MS);
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  }, [key, token]);
  const data = useMemo((): uPlot.AlignedData => {
    const now = Math.floor(Date.now() / 60_000);
    const minutes = Array.from({ length: WINDOW_MIN }, (_, i) => now - WINDOW_MIN + 1 + i);
    return [minutes.map((m) => m * 60), ...watched.map((r) => minutes.map((m) => tallies.current.get(r.pid)?.perMinute.get(m) ?? 0))];
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [key, tick]);
  if (watched.length === 0) return null;
  const totals = watched.map((r) => `${r.name} ${fmt([...(tallies.current.get(r.pid)?.perMinute.values() ?? [])].reduce((a, b) => a + b, 0))}`);
  return (
    <Section title={`Tokens per minute, by process (last ${WINDOW_MIN} minutes)`} id="tpm-all">
      <Chart
        summary={`Tokens per minute over the last ${WINDOW_MIN} minutes for the ${watched.length} most recently active processes; totals: ${totals.join(', ')}.`}
        series={watched.map((r, i) => ({ label: r.name, color: COLORS[i % COLORS.length]! }))}
        data={data}
        yLabel="tokens/min"
        height={180}
      />
    </Section>
  );
}
