/**
 * A process's live event log (newest first, each event's data unfolded on demand) and its tokens per
 * minute, both read from the events the page follows over SSE.
 */
import { useMemo } from 'preact/hooks';
import { Chart } from '../../chart.tsx';
import type { ProcessEvent } from '../../types.ts';
import { ErrorNote, Json, Section, Time, fmt } from '../../ui.tsx';
import { usageOf } from '../tokens.tsx';

const MAX_SHOWN_EVENTS = 500;

function summarize(e: ProcessEvent): string {
  const d = e.data as Record<string, unknown> | null;
  if (!d || typeof d !== 'object') return '';
  switch (e.type) {
    case 'state':
      return `${String(d.from)} → ${String(d.to)} (${String(d.event)})`;
    case 'syscall':
      return `${String(d.name)} ${d.ok ? 'ok' : `failed: ${JSON.stringify((d.error as { code?: string } | undefined)?.code ?? '')}`}`;
    case 'llm_call': {
      const u = d.usage as { prompt_tokens?: number; completion_tokens?: number } | undefined;
      return `${String(d.model)}: ${u?.prompt_tokens ?? 0} + ${u?.completion_tokens ?? 0} tokens, ${String(d.latency_ms)} ms${Array.isArray(d.calls) && d.calls.length ? `, calls ${d.calls.join(', ')}` : ''}`;
    }
    case 'approval_requested':
      return `${String(d.name)} needs ${JSON.stringify(d.needed)}`;
    case 'exit':
      return `code ${String(d.code)}: ${String(d.reason)}`;
    case 'spawned':
      return `${String(d.name)} from image ${String(d.image)}${d.ppid ? `, child of ${String(d.ppid)}` : ''}`;
    default:
      return JSON.stringify(d).slice(0, 160);
  }
}

export function EventLog({ events, status, error }: { events: ProcessEvent[]; status: string; error: string | null }) {
  const shown = events.slice(-MAX_SHOWN_EVENTS).reverse();
  return (
    <Section title="Events" id="events">
      <p>
        <span class={`live live-${status}`} role="status" data-testid="events-live">
          {status}
        </span>{' '}
        {events.length} events, newest first.
      </p>
      <ErrorNote error={error} />
      <div role="log" aria-label="Event log">
      <ol class="events" data-testid="events">
        {shown.map((e) => (
          <li key={e.seq} data-type={e.type}>
            <details>
              <summary>
                <span class="seq">#{e.seq}</span> <Time at={e.at} /> <strong>{e.type}</strong> <span class="sum">{summarize(e)}</span>
              </summary>
              <Json value={e.data} label={`event ${e.seq}`} />
            </details>
          </li>
        ))}
      </ol>
      </div>
    </Section>
  );
}

/** Tokens per minute from the log's llm_call events: prompt and completion, one bar per minute. */
export function TokensChart({ events }: { events: ProcessEvent[] }) {
  const data = useMemo(() => {
    const buckets = new Map<number, [number, number]>();
    for (const e of events) {
      const u = usageOf(e);
      if (!u) continue;
      const minute = Math.floor(e.at / 60_000) * 60;
      const b = buckets.get(minute) ?? [0, 0];
      b[0] += u.prompt;
      b[1] += u.completion;
      buckets.set(minute, b);
    }
    // Every minute from the first call to the last (quiet minutes are zero), one either side, at
    // most the last three hours: a continuous axis, also when all calls fell in one minute.
    const keys = [...buckets.keys()];
    if (keys.length === 0) return [[], [], []] as [number[], number[], number[]];
    const last = Math.max(...keys) + 60;
    const first = Math.max(Math.min(...keys) - 60, last - 180 * 60);
    const xs: number[] = [];
    for (let m = first; m <= last; m += 60) xs.push(m);
    return [xs, xs.map((x) => (buckets.get(x)?.[0] ?? 0) + (buckets.get(x)?.[1] ?? 0)), xs.map((x) => buckets.get(x)?.[1] ?? 0)] as [number[], number[], number[]];
  }, [events]);
  const total = data[1].reduce((a, b) => a + b, 0);
  const minutes = data[1].filter((t) => t > 0).length;
  return (
    <Section title="Tokens per minute" id="tpm">
      {data[0].length === 0 ? (
        <p>No LLM calls yet.</p>
      ) : (
        <Chart
          summary={`Tokens per minute: ${fmt(total)} tokens in ${minutes} minute(s) with LLM calls tokens ; the most in one minute: ${fmt(Math.max(...data[1]))}.`}
          series={[
            { label: 'all tokens', color: '#3566c8' },
            { label: 'completion', color: '#d9822b' },
          ]}
          data={data}
          bars
          yLabel="tokens/min"
        />
      )}
    </Section>
  );
}
