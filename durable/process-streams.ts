/**
 * A process's live event streams (server-sent events, `GET /v1/processes/:pid/events`): the backlog
 * from the event log first, then every event as it is emitted, until the client goes or the process
 * terminates. Held in the object's memory: a stream ends with the instance, and the client
 * reconnects with `Last-Event-ID` to resume where it was.
 */
import type { ProcessRuntime } from '../src/process/runtime.ts';
import type { EventRow } from '../src/process/store.ts';
import { TENANT_HEADER } from '../src/rpc/contracts.ts';

const encoder = new TextEncoder();

function sse(event: EventRow): Uint8Array {
  return encoder.encode(`id: ${event.seq}\nevent: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`);
}

const SSE_HEADERS = { 'content-type': 'text/event-stream', 'cache-control': 'no-store' };

export class EventStreams {
  readonly #writers = new Set<WritableStreamDefaultWriter<Uint8Array>>();

  /** Open a stream for `request` (the caller's tenant in TENANT_HEADER; another tenant's process does not exist for it). */
  open(request: Request, rt: ProcessRuntime): Response {
    const pcb = rt.pcb();
    if (!pcb || pcb.tenant !== (request.headers.get(TENANT_HEADER) ?? '')) return Response.json({ error: { code: 'ENOENT', message: 'no such process' } }, { status: 404 });
    const url = new URL(request.url);
    const lastId = Number(request.headers.get('last-event-id') ?? url.searchParams.get('after') ?? 0);
    const after = Number.isFinite(lastId) && lastId >= 0 ? Math.floor(lastId) : 0;
    const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
    const writer = writable.getWriter();
    // Backlog first, then live events. Writes are not awaited: nothing reads until the response is returned.
    for (const e of rt.store.events(after, 10_000)) void writer.write(sse(e)).catch(() => this.#writers.delete(writer));
    // A terminated process has nothing more to say: send the backlog and end the stream.
    if (pcb.state === 'terminated') {
      void writer.close().catch(() => {});
      return new Response(readable, { headers: SSE_HEADERS });
    }
    this.#writers.add(writer);
    request.signal?.addEventListener('abort', () => {
      this.#writers.delete(writer);
      void writer.close().catch(() => {});
    });
    return new Response(readable, { headers: SSE_HEADERS });
  }

  /** An event was emitted: to every open stream; the process's termination ends them. */
  broadcast(event: EventRow): void {
    const last = event.type === 'state' && (event.data as { to?: string }).to === 'terminated';
    for (const writer of this.#writers) {
      writer.write(sse(event)).catch(() => this.#writers.delete(writer));
      if (last) void writer.close().catch(() => {});
    }
    if (last) this.#writers.clear();
  }

  /** The process was removed: end every stream. */
  closeAll(): void {
    for (const w of this.#writers) void w.close().catch(() => {});
    this.#writers.clear();
  }
}
