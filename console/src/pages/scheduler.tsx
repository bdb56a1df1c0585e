/**
 * The LLM scheduler's pools (GET /v1/scheduler, a page of pools by name, read every 2 s): per pool, the queue length and
 * slices in flight over the time this page has been open, and the waits from queueing to grant by
 * priority class (p95 behind p50) as charts, with the numbers in a table beside them.
 */
import { useEffect, useState } from 'preact/hooks';
import type uPlot from 'uplot';
import { Chart } from '../chart.tsx';
import { qs } from '../api.ts';
import { useGet } from '../hooks.ts';
import type { PoolStats } from '../types.ts';
import { ErrorNote, Pager, Section, fmt, usePages } from '../ui.tsx';

const CLASSES = ['high', 'normal', 'low'] as const;
/** Samples kept per pool: ten minutes at one every 2 s. */
const HISTORY = 300;
/** Pools per page: each is a section with two charts. */
const PAGE = 20;

type Sample = { at: number; queue: number; inFlight: number };

function Pool({ p, history }: { p: PoolStats; history: Sample[] }) {
  const waits: uPlot.AlignedData = [CLASSES.map((_, i) => i), CLASSES.map((c) => p.waits[c]?.p95_ms ?? 0), CLASSES.map((c) => p.waits[c]?.p50_ms ?? 0)];
  const queue: uPlot.AlignedData = [history.map((s) => s.at / 1000), history.map((s) => s.queue), history.map((s) => s.inFlight)];
  const last = history.at(-1);
  return (
    <Section title={p.pool} id={`pool-${p.pool.replace(/[^a-z0-9]/gi, '-')}`}>
      <p class="stats">
        <span>
          queue <strong data-testid="queue-length">{p.queue_length}</strong>
        </span>
        <span>in flight {p.in_flight}</span>
        <span>{fmt(p.tokens_per_min)} tokens/min</span>
        <span>{fmt(p.requests_per_min)} requests/min</span>
        <span>
          {p.granted} granted, {p.denied} denied, {p.rate_limited} rate-limited
        </span>
        {p.paused_until && p.paused_until > Date.now() ? <span class="error">paused until {new Date(p.paused_until).toLocaleTimeString()}</span> : null}
        {p.rate_factor < 1 ? <span>rate slowed to {Math.round(p.rate_factor * 100)}%</span> : null}
      </p>
      <div class="columns">
        <div>
          <h3>Queue length</h3>
          <Chart
            summary={`Queue length of ${p.pool} over the last ${history.length} samples; now ${last?.queue ?? 0} queued and ${last?.inFlight ?? 0} in flight.`}
            series={[
              { label: 'queued', color: '#3566c8' },
              { label: 'in flight', color: '#2a9d5c' },
            ]}
            data={queue}
            yLabel="calls"
            height={180}
            minSpanSeconds={600}
          />
        </div>
        <div>
          <h3>Waits by priority</h3>
          <Chart
            summary={`Wait from queueing to grant in ${p.pool}: ${CLASSES.map((c) => `${c} p50 ${p.waits[c]?.p50_ms ?? 0} ms, p95 ${p.waits[c]?.p95_ms ?? 0} ms`).join('; ')}.`}
            series={[
              { label: 'p95 ms', color: '#d9822b' },
              { label: 'p50 ms', color: '#3566c8' },
            ]}
            data={waits}
            bars
            categories={CLASSES}
            yLabel="ms"
            height={180}
          />
        </div>
      </div>
      <div class="scroll">
        <table>
          <caption class="visually-hidden">Waits by priority class</caption>
          <thead>
            <tr>
              <th scope="col">Priority</th>
              <th scope="col">Granted</th>
              <th scope="col">Mean ms</th>
              <th scope="col">p50 ms</th>
              <th scope="col">p95 ms</th>
              <th scope="col">Max ms</th>
            </tr>
          </thead>
          <tbody>
            {CLASSES.map((c) => {
              const w = p.waits[c];
              return (
                <tr key={c}>
                  <th scope="row">{c}</th>
                  <td>{w?.granted ?? 0}</td>
                  <td>{w?.mean_ms ?? '—'}</td>
                  <td>{w?.p50_ms ?? '—'}</td>
                  <td>{w?.p95_ms ?? '—'}</td>
                  <td>{w?.max_ms ?? 0}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
    </Section>
  );
}

export function SchedulerPage() {
  const pages = usePages();
  const stats = useGet<{ pools: PoolStats[]; next_cursor: string | null }>(`/v1/scheduler${qs({ cursor: pages.cursor, limit: PAGE })}`, { pollMs: 2000 });
  const [history, setHistory] = useState<Map<string, Sample[]>>(new Map());
  useEffect(() => {
    const pools = stats.data?.pools;
    if (!pools) return;
    const at = Date.now();
    setHistory((prev) => {
      const next = new Map(prev);
      for (const p of pools) next.set(p.pool, [...(prev.get(p.pool) ?? []), { at, queue: p.queue_length, inFlight: p.in_flight }].slice(-HISTORY));
      return next;
    });
  }, [stats.data]);
  return (
    <>
      <h1>Scheduler</h1>
      <p class="hint">LLM pools (docs/scheduler.md). Queue charts cover the time this page has been open.</p>
      <ErrorNote error={stats.error} />
      {stats.data && stats.data.pools.length === 0 ? <p>No scheduled pools yet: a pool appears once a process calls a model that SCHEDULER_POOLS schedules.</p> : null}
      {stats.data?.pools.map((p) => (
        <Pool key={p.pool} p={p} history={history.get(p.pool) ?? []} />
      ))}
      <Pager pages={pages} next={stats.data?.next_cursor ?? null} size={PAGE} label="Pages of pools" />
    </>
  );
}
