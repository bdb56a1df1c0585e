/**
 * `agentos logs PID [-f]`: a process's event log, one readable line per event. With -f it follows
 * the live stream (server-sent events, parsed by eventsource-parser) until the process terminates,
 * reconnecting with Last-Event-ID when the connection drops, so no event is lost or shown twice.
 */
import type { Command } from 'commander';
import { type EventSourceMessage, createParser } from 'eventsource-parser';
import type { paths } from '../api-types.ts';
import { CliError, EXIT, apiError, call, unreachable } from '../client.ts';
import { type Ctx, collect, ctxOf, int, pid } from '../context.ts';
import { clock, colours, print, short, state } from '../output.ts';

export type Event = paths['/v1/processes/{pid}/events']['get']['responses'][200]['content']['application/json']['events'][number];
type Data = Record<string, unknown>;

/** One line for an event: time, seq, type, and what happened in words. */
export function formatEvent(e: Event): string {
  const d = (e.data ?? {}) as Data;
  const head = `${colours.dim(clock(e.at))} ${colours.dim(`#${e.seq}`.padStart(5))} ${colours.bold(e.type.padEnd(13))}`;
  return `${head} ${describe(e.type, d)}`;
}

function describe(type: string, d: Data): string {
  const err = (x: unknown): string => {
    const v = x as { code?: string; message?: string } | undefined;
    return colours.red(v?.code ? `${v.code}: ${short(v.message ?? '', 100)}` : short(x));
  };
  switch (type) {
    case 'state':
      return `${state(String(d.from))} → ${state(String(d.to))} (${String(d.event)})`;
    case 'spawned': {
      const m = d.model as { provider?: string; model?: string } | undefined;
      return `${String(d.name)} (image ${String(d.image)}, ${m?.provider}/${m?.model}, priority ${String(d.priority)}${d.ppid ? `, parent ${String(d.ppid)}` : ''})`;
    }
    case 'llm_call': {
      const u = d.usage as { prompt_tokens?: number; completion_tokens?: number } | undefined;
      const calls = Array.isArray(d.calls) && d.calls.length ? ` → ${d.calls.join(', ')}` : '';
      const text = typeof d.text === 'string' && d.text.trim() ? ` ${short(d.text, 60)}` : '';
      return `step ${String(d.step)} ${String(d.provider)}/${String(d.model)} ${u?.prompt_tokens ?? 0}+${u?.completion_tokens ?? 0} tok ${String(d.latency_ms)}ms${text}${calls}`;
    }
    case 'syscall':
      return `${String(d.name)} ${short(d.args, 60)} → ${d.ok ? colours.green(short(d.result, 60)) : err(d.error)}`;
    case 'syscall_start':
      return `${String(d.name)} (attempt ${String(d.attempt)})`;
    case 'exit':
      return `code ${String(d.code)} (${String(d.reason)})${d.result !== undefined ? `: ${short(d.result, 80)}` : ''}`;
    default:
      return short(d, 120);
  }
}

async function backlog(ctx: Ctx, target: string, since: number, max: number): Promise<Event[]> {
  return collect(async (cursor) => {
    const page = await call(ctx.target, ctx.api.GET('/v1/processes/{pid}/events', { params: { path: { pid: target }, query: { limit: 1000, cursor: cursor ?? String(since) } } }));
    return { rows: page.events, next_cursor: page.next_cursor };
  }, max);
}

const isEnd = (e: Event): boolean => e.type === 'state' && (e.data as Data).to === 'terminated';
const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Follow the live stream from after `since`, calling `onEvent` for each event in order, until the
 * process terminates. A dropped connection is resumed from the last event seen (Last-Event-ID); a
 * kernel that stays unreachable ends the follow with an error after about a minute.
 */
export async function follow(ctx: Ctx, target: string, since: number, onEvent: (e: Event) => void): Promise<void> {
  let last = since;
  let failures = 0;
  for (;;) {
    let ended = false;
    let r: { data?: ReadableStream<Uint8Array> | null; error?: unknown; response: Response };
    try {
      r = await ctx.api.GET('/v1/processes/{pid}/events', {
        params: { path: { pid: target } },
        headers: { accept: 'text/event-stream', 'last-event-id': String(last) },
        parseAs: 'stream',
      });
    } catch (e) {
      if (++failures > 12) throw unreachable(ctx.target, e);
      await wait(Math.min(5000, 250 * 2 ** failures));
      continue;
    }
    if (!r.response.ok) {
      if (r.response.status >= 500 && ++failures <= 12) {
        await wait(Math.min(5000, 250 * 2 ** failures));
        continue;
      }
      throw apiError(ctx.target, r.response.status, r.error ?? (await r.response.json().catch(() => undefined)));
    }
    const parser = createParser({
      onEvent: (m: EventSourceMessage) => {
        const e = JSON.parse(m.data) as Event;
        if (e.seq <= last) return;
        last = e.seq;
        failures = 0;
        onEvent(e);
        if (isEnd(e)) ended = true;
      },
    });
    const decoder = new TextDecoder();
    try {
      for await (const chunk of r.data ?? []) parser.feed(decoder.decode(chunk, { stream: true }));
    } catch {
      // the connection dropped: resume below
    }
    if (ended) return;
    // The stream closed without the end: the kernel restarted, or the process had already ended
    // (then its stream is only the backlog). Ask which.
    const pcb = await call(ctx.target, ctx.api.GET('/v1/processes/{pid}', { params: { path: { pid: target } } }));
    if (pcb.state === 'terminated') return;
    await wait(Math.min(5000, 250 * 2 ** ++failures));
  }
}

export function registerLogs(program: Command): void {
  program
    .command('logs')
    .description('the event log of a process, one line per event; -f follows it live until the process ends')
    .argument('<pid>', 'the process', pid)
    .option('-f, --follow', 'follow the live stream (server-sent events) until the process terminates')
    .option('--since <seq>', 'only events after this seq', int('--since'), 0)
    .option('-n, --limit <n>', 'without -f: at most this many events', int('--limit'), 10_000)
    .action(async (target: string, o: { follow?: boolean; since: number; limit: number }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const show = (e: Event) => (ctx.json ? process.stdout.write(`${JSON.stringify(e)}\n`) : print(formatEvent(e)));
      if (!o.follow) {
        const events = await backlog(ctx, target, o.since, o.limit);
        if (ctx.json) return void process.stdout.write(`${JSON.stringify(events, null, 2)}\n`);
        for (const e of events) show(e);
        return;
      }
      if (o.limit !== 10_000) throw new CliError('--limit does not apply with -f', EXIT.usage);
      await follow(ctx, target, o.since, show);
    });
}
