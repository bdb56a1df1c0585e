/**
 * `agentos top`: live processes (state, steps/min, tokens/min) and the LLM scheduler's pools (queue,
 * in flight, rates, waits by priority class), redrawn in place every --interval seconds on a
 * terminal. Rates are differences between two samples, so the first frame shows none yet.
 *
 * On a terminal it draws like top(1): on the alternate screen, each frame from the top-left corner
 * over the last one (every line erased to its end, the rest of the screen below), cut to the
 * terminal's height so nothing scrolls; q, Ctrl-C or SIGINT/SIGTERM restore the screen and exit 0.
 * Anywhere else (a pipe, a file, --json) it prints frames one after another with no cursor codes.
 */
import type { Command } from 'commander';
import type { paths } from '../api-types.ts';
import { CliError, EXIT, call } from '../client.ts';
import { type Ctx, collect, ctxOf, int } from '../context.ts';
import { ago, colours, print, state, table } from '../output.ts';
import { type Pcb, listProcesses } from './processes.ts';

type Pool = paths['/v1/scheduler']['get']['responses'][200]['content']['application/json']['pools'][number];
const LIVE = new Set(['ready', 'running', 'sleeping', 'waiting', 'stopped']);

export interface Snapshot {
  readonly at: number;
  readonly processes: { pid: string; name: string; state: string; priority: number; steps: number; tokens: number; steps_per_min: number | null; tokens_per_min: number | null; created_at: number }[];
  readonly pools: Pool[];
}

const tokensOf = (p: Pcb): number => p.usage.prompt_tokens + p.usage.completion_tokens;

async function sample(ctx: Ctx, max: number, previous: Snapshot | null): Promise<Snapshot> {
  const rows = (await listProcesses(ctx, {}, 500)).filter((r) => LIVE.has(r.state)).slice(0, max);
  const [pcbs, pools] = await Promise.all([
    Promise.all(rows.map((r) => call(ctx.target, ctx.api.GET('/v1/processes/{pid}', { params: { path: { pid: r.pid } } })).catch(() => null))),
    collect(async (cursor) => {
      const page = await call(ctx.target, ctx.api.GET('/v1/scheduler', { params: { query: { limit: 500, ...(cursor ? { cursor } : {}) } } }));
      return { rows: page.pools, next_cursor: page.next_cursor };
    }, 10_000),
  ]);
  const at = Date.now();
  const before = new Map(previous?.processes.map((p) => [p.pid, p]) ?? []);
  const minutes = previous ? (at - previous.at) / 60_000 : 0;
  const rate = (now: number, then: number | undefined) => (then === undefined || minutes <= 0 ? null : Math.round(((now - then) / minutes) * 10) / 10);
  return {
    at,
    processes: pcbs
      .filter((p): p is Pcb => p !== null)
      .map((p) => ({
        pid: p.pid,
        name: p.name,
        state: p.state,
        priority: p.priority,
        steps: p.usage.steps,
        tokens: tokensOf(p),
        steps_per_min: rate(p.usage.steps, before.get(p.pid)?.steps),
        tokens_per_min: rate(tokensOf(p), before.get(p.pid)?.tokens),
        created_at: p.created_at,
      })),
    pools,
  };
}

/** Terminal control (ECMA-48 / xterm): only ever written when standard output is a terminal. */
const TTY = { altScreen: '\x1b[?1049h', mainScreen: '\x1b[?1049l', hideCursor: '\x1b[?25l', showCursor: '\x1b[?25h', home: '\x1b[H', eraseLine: '\x1b[K', eraseBelow: '\x1b[J' } as const;

/** A frame drawn over the previous one: at most `rows` lines, so the terminal never scrolls. */
export function inPlace(frame: string, rows: number | undefined): string {
  let lines = frame.split('\n');
  if (rows && rows > 1 && lines.length > rows - 1) lines = [...lines.slice(0, rows - 2), colours.dim(`… ${lines.length - (rows - 2)} more lines (a taller terminal, or --max)`)];
  return `${TTY.home}${lines.map((l) => l + TTY.eraseLine).join('\n')}\n${TTY.eraseBelow}`;
}

function render(s: Snapshot, url: string): string {
  const counts = new Map<string, number>();
  for (const p of s.processes) counts.set(p.state, (counts.get(p.state) ?? 0) + 1);
  const summary = [...counts].map(([k, n]) => `${n} ${state(k)}`).join(', ') || 'none';
  const n = (v: number | null) => (v === null ? colours.dim('-') : String(v));
  const lines = [
    `${colours.bold('agentos top')}  ${url}  ${new Date(s.at).toISOString().slice(11, 19)}   live processes: ${summary}`,
    '',
    s.processes.length
      ? table(
          ['PID', 'NAME', 'STATE', 'PRI', 'STEPS', 'STEPS/MIN', 'TOKENS', 'TOKENS/MIN', 'AGE'],
          [...s.processes].sort((a, b) => (b.tokens_per_min ?? 0) - (a.tokens_per_min ?? 0) || a.priority - b.priority).map((p) => [p.pid, p.name, state(p.state), p.priority, p.steps, n(p.steps_per_min), p.tokens, n(p.tokens_per_min), ago(p.created_at, s.at)]),
        )
      : colours.dim('no live processes'),
    '',
    colours.bold('LLM scheduler'),
    s.pools.length
      ? table(
          ['POOL', 'QUEUE', 'IN FLIGHT', 'TOK/MIN', 'REQ/MIN', '429s', 'WAIT p50/p95 ms: high', 'normal', 'low'],
          s.pools.map((p) => {
            const w = (c: string) => {
              const x = p.waits[c];
              return x && x.granted ? `${x.p50_ms ?? '-'}/${x.p95_ms ?? '-'} (${x.granted})` : colours.dim('-');
            };
            return [p.pool, p.queue_length, p.in_flight, p.tokens_per_min, p.requests_per_min, p.rate_limited, w('high'), w('normal'), w('low')];
          }),
        )
      : colours.dim('no scheduled pools (SCHEDULER_POOLS)'),
  ];
  return lines.join('\n');
}

export function registerTop(program: Command): void {
  program
    .command('top')
    .description('live processes and scheduler queues, refreshed in place (q or Ctrl-C to quit)')
    .option('-d, --interval <seconds>', 'seconds between refreshes', (v) => {
      const n = Number(v);
      if (!(n >= 0.1 && n <= 3600)) throw new CliError(`--interval must be between 0.1 and 3600 seconds, not "${v}"`, EXIT.usage);
      return n;
    }, 2)
    .option('-n, --iterations <n>', 'stop after this many refreshes (default: until quit; 1 without a terminal)', int('--iterations'))
    .option('--max <n>', 'at most this many processes', int('--max'), 50)
    .action(async (o: { interval: number; iterations?: number; max: number }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const live = process.stdout.isTTY && !ctx.json;
      const iterations = o.iterations ?? (live ? Number.POSITIVE_INFINITY : 1);
      let quit = false;
      const stop = () => {
        quit = true;
      };
      const keys = (b: Buffer) => {
        // Raw mode: Ctrl-C arrives as a byte, not as SIGINT.
        if (b.includes(0x71) || b.includes(0x03)) stop();
      };
      const raw = live && process.stdin.isTTY;
      if (live) {
        process.on('SIGINT', stop).on('SIGTERM', stop);
        if (raw) process.stdin.setRawMode(true).resume().on('data', keys);
        process.stdout.write(TTY.altScreen + TTY.hideCursor);
      }
      let previous: Snapshot | null = null;
      try {
        for (let i = 0; i < iterations && !quit; i++) {
          if (i > 0) for (let waited = 0; waited < o.interval * 1000 && !quit; waited += 100) await new Promise((r) => setTimeout(r, 100));
          if (quit) break;
          const s = await sample(ctx, o.max, previous);
          previous = s;
          if (ctx.json) process.stdout.write(`${JSON.stringify(s)}\n`);
          else if (live) process.stdout.write(inPlace(render(s, ctx.target.url), process.stdout.rows));
          else print(render(s, ctx.target.url));
        }
      } finally {
        if (live) {
          process.off('SIGINT', stop).off('SIGTERM', stop);
          if (raw) process.stdin.off('data', keys).setRawMode(false).pause();
          process.stdout.write(TTY.showCursor + TTY.mainScreen);
        }
      }
    });
}
