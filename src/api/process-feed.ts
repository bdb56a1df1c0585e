/**
 * `GET /v1/processes` with `Accept: text/event-stream`: ps, live. The stream opens with the page the
 * query names (`event: snapshot`, the same body as the JSON answer), then says only what changed on
 * that page: `event: changed` (a row that is new or has a newer version) and `event: removed` (a pid
 * that left the page: removed, or pushed off it by newer processes, or no longer matching a filter).
 *
 * The process table is D1's mirror of every PCB (src/process/table.ts), written by each process's
 * outbox, so the stream re-reads that one page on a fixed interval while a client listens and sends
 * the difference: one indexed read of at most `limit` rows per interval per open stream, and nothing
 * when no one is watching (a push from every process would cost a subrequest on every step, watched
 * or not). A stream ends after FEED_MAX_MS; clients reconnect and get a fresh snapshot.
 */
import { toErrorValue } from '../kernel/errors.ts';
import type { ProcessRow, PsQuery } from '../process/table.ts';
import { listProcesses } from '../process/table.ts';

export const FEED_INTERVAL_MS = 1000;
export const FEED_MAX_MS = 5 * 60_000;
/** A comment line this often keeps idle connections open through proxies. */
const HEARTBEAT_MS = 15_000;

export interface PageDiff {
  readonly changed: ProcessRow[];
  readonly removed: string[];
}

/** What changed between the page a client has (pid → version) and the page as it is now. Pure. */
export function diffPage(seen: ReadonlyMap<string, number>, now: readonly ProcessRow[]): PageDiff {
  const changed = now.filter((r) => seen.get(r.pid) !== r.version);
  const present = new Set(now.map((r) => r.pid));
  const removed = [...seen.keys()].filter((pid) => !present.has(pid));
  return { changed, removed };
}

const encoder = new TextEncoder();
const frame = (event: string, data: unknown): Uint8Array => encoder.encode(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);

/** The live stream for one client. `signal` is the request's: the loop stops when the client goes. */
export function processTableStream(db: D1Database, query: PsQuery, signal: AbortSignal | undefined): Response {
  const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
  const writer = writable.getWriter();
  const run = async () => {
    const started = Date.now();
    let seen = new Map<string, number>();
    let lastWrite = started;
    const send = async (bytes: Uint8Array) => {
      await writer.write(bytes);
      lastWrite = Date.now();
    };
    const first = await listProcesses(db, query);
    await send(frame('snapshot', first));
    seen = new Map(first.processes.map((r) => [r.pid, r.version]));
    while (!signal?.aborted && Date.now() - started < FEED_MAX_MS) {
      await new Promise((resolve) => setTimeout(resolve, FEED_INTERVAL_MS));
      if (signal?.aborted) break;
      const page = await listProcesses(db, query);
      const diff = diffPage(seen, page.processes);
      for (const row of diff.changed) await send(frame('changed', row));
      for (const pid of diff.removed) await send(frame('removed', { pid }));
      if (diff.changed.length || diff.removed.length) seen = new Map(page.processes.map((r) => [r.pid, r.version]));
      else if (Date.now() - lastWrite >= HEARTBEAT_MS) await send(encoder.encode(': heartbeat\n\n'));
    }
  };
  // A write to a stream whose reader has gone rejects: that ends the loop, which is what we want.
  // Any other failure (D1 unreachable) is told to the client as an error event before the end.
  void run()
    .catch((e: unknown) => writer.write(frame('error', toErrorValue(e))).catch(() => {}))
    .finally(() => writer.close().catch(() => {}));
  return new Response(readable, { headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-store' } });
}
