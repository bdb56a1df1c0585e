/**
 * IPC bench Worker (scripts/bench/ipc/wrangler.toml; driven by run.mjs). Not part of the product.
 *
 * Recipients are real AgentProcess objects (spawned through the kernel, parked asleep). Senders are
 * IpcSender objects that run the kernel's own send path on a real ProcessRuntime: Mailbox.prepare
 * (the pair's seq + an outbox row, committed in one transaction, as the send syscall commits with
 * its journal entry), then the outbox drain through the real transport (direct RPC into the
 * recipient's deliverMessages, which applies the message to its mailbox in one commit), so one
 * measured send = sender commit + RPC + recipient dedupe/order/apply commit. The baseline is a
 * plain Durable Object RPC from the same sender object to the same recipient object (`ping`, which
 * touches nothing), measured in the same run; and the fair floor for a durable message, `floor`: the
 * sender commits one row (its own SQLite, one transaction), then RPCs the same recipient object,
 * which commits one row (a primary key on sender and seq, so a redelivery is ignored, as the
 * mailbox's dedupe record does) before it answers. Under the output gate each commit is durable
 * before the RPC leaves the sender and before the answer leaves the recipient: the unavoidable part
 * of a message that survives a crash at either end.
 */
import { DurableObject } from 'cloudflare:workers';
import { AgentProcess } from '../../../durable/agent-process.ts';
import { auditChain, processStub } from '../../../src/rpc/stubs.ts';
import type { WireMessage } from '../../../src/kernel/ipc.ts';
import { randomPid, resolveSpawn } from '../../../src/kernel/spawn.ts';
import { consumeIpcBatch } from '../../../src/ipc/consumer.ts';
import { createTransport, type TransportMode } from '../../../src/ipc/transport.ts';
import { ProcessRuntime } from '../../../src/process/runtime.ts';
import { applySchema } from '../schema.ts';

export { AuditChain } from '../../../durable/audit-chain.ts';

/** The real process class plus a no-op RPC (the floor a message between these objects cannot beat) and a one-row durable receive. */
export class BenchAgentProcess extends AgentProcess {
  #floorTable = false;

  ping(): number {
    return 1;
  }

  /** The durable floor's receiving end: one row committed, idempotent on (sender, seq). */
  floorReceive(sender: string, seq: number, body: string): number {
    const sql = this.ctx.storage.sql;
    if (!this.#floorTable) sql.exec('CREATE TABLE IF NOT EXISTS bench_floor_in (sender TEXT NOT NULL, seq INTEGER NOT NULL, body TEXT NOT NULL, at INTEGER NOT NULL, PRIMARY KEY (sender, seq))');
    this.#floorTable = true;
    this.ctx.storage.transactionSync(() => {
      sql.exec('INSERT OR IGNORE INTO bench_floor_in (sender, seq, body, at) VALUES (?, ?, ?, ?)', sender, seq, body, Date.now());
    });
    return 1;
  }
}
export { BenchAgentProcess as AgentProcess };

interface BenchEnv extends Env {
  readonly IPC_SENDER: DurableObjectNamespace<IpcSender>;
}

const TENANT = 'bench';
type PingStub = { ping(): Promise<number>; floorReceive(sender: string, seq: number, body: string): Promise<number> };

export class IpcSender extends DurableObject<BenchEnv> {
  #rt: ProcessRuntime | null = null;
  #mode: TransportMode = 'direct';

  #runtime(): ProcessRuntime {
    if (this.#rt) return this.#rt;
    const env = this.env;
    this.#rt = new ProcessRuntime({
      storage: this.ctx.storage,
      db: env.DB,
      process: (pid) => processStub(env, pid),
      auditChain: (tenant) => auditChain(env, tenant),
      now: () => Date.now(),
      random: Math.random,
      onEvent: () => {},
      ipc: {
        deliver: (messages) =>
          createTransport({ mode: this.#mode, rpc: (to, m) => processStub(env, to).deliverMessages(m), queue: env.IPC_QUEUE as Queue<WireMessage>, db: env.DB, now: () => Date.now() }).deliver(messages),
      },
    });
    return this.#rt;
  }

  /** Become a process (PCB, tenant) so the kernel's send path has a sender. Its alarm never runs steps. */
  async setup(pid: string): Promise<void> {
    const rt = this.#runtime();
    if (rt.pcb()) return;
    const spec = resolveSpawn({ name: 'sender', task: 'bench', image: 'idle' }, { pid, tenant: TENANT, ppid: null, spawn_key: `bench/${pid}`, default_model: { provider: 'scripted', model: 'scripted' } });
    if (!spec.ok) throw new Error(spec.error.message);
    await rt.spawn(spec.value);
    rt.store.clearTimer('run');
    await rt.rearm();
  }

  override async alarm(): Promise<void> {
    // Deliver the outbox if a retry is due; never run LLM steps.
    await this.#runtime().flush();
  }

  /** `n` sends to `to`, one at a time; `batch` messages per commit (1 = a step that sends one message). Returns per-commit latencies (ms). */
  async send(to: string, n: number, batch: number, mode: TransportMode): Promise<number[]> {
    this.#mode = mode;
    const rt = this.#runtime();
    const pcb = rt.mustPcb();
    const out: number[] = [];
    for (let i = 0; i < n; i += batch) {
      const t0 = performance.now();
      rt.store.transaction(() => {
        for (let j = 0; j < Math.min(batch, n - i); j++) rt.mailbox.prepare(pcb, to, { i: i + j, pad: 'x'.repeat(64) }, {}).commit();
      });
      await rt.flush();
      out.push(performance.now() - t0);
    }
    return out;
  }

  /**
   * The durable floor: `n` times, commit one row here, then RPC the recipient, which commits one row
   * before it answers. The body is the size of the kernel arm's message payload.
   */
  async floor(to: string, n: number): Promise<number[]> {
    const stub = processStub(this.env, to) as unknown as PingStub;
    const sql = this.ctx.storage.sql;
    sql.exec('CREATE TABLE IF NOT EXISTS bench_floor_out (seq INTEGER PRIMARY KEY, peer TEXT NOT NULL, body TEXT NOT NULL, at INTEGER NOT NULL)');
    const me = this.#runtime().mustPcb().pid;
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      const body = JSON.stringify({ i, pad: 'x'.repeat(64) });
      const seq = this.ctx.storage.transactionSync(() => sql.exec<{ seq: number }>('INSERT INTO bench_floor_out (peer, body, at) VALUES (?, ?, ?) RETURNING seq', to, body, Date.now()).one().seq);
      await stub.floorReceive(me, seq, body);
      out.push(performance.now() - t0);
    }
    return out;
  }

  /** The floor: `n` plain RPCs to the same recipient object. */
  async ping(to: string, n: number): Promise<number[]> {
    const stub = processStub(this.env, to) as unknown as PingStub;
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      await stub.ping();
      out.push(performance.now() - t0);
    }
    return out;
  }
}

const int = (v: string | null, def: number): number => (v !== null && /^\d+$/.test(v) ? Number(v) : def);

export default {
  async fetch(request: Request, env: BenchEnv): Promise<Response> {
    const url = new URL(request.url);
    const q = url.searchParams;
    switch (url.pathname) {
      case '/setup': {
        return applySchema(env.DB, request);
      }
      case '/pairs': {
        // Spawn `n` recipients (parked asleep) and `n` senders.
        const n = int(q.get('n'), 8);
        const pairs: { sender: string; recipient: string }[] = [];
        for (let i = 0; i < n; i++) {
          const recipient = randomPid();
          const spec = resolveSpawn(
            { name: `r${i}`, task: 'bench', model: { provider: 'scripted', model: 'scripted' }, script: [{ tool_calls: [{ name: 'sleep', args: { seconds: 86_400 } }] }] },
            { pid: recipient, tenant: TENANT, ppid: null, spawn_key: `bench/${recipient}`, default_model: { provider: 'scripted', model: 'scripted' } },
          );
          if (!spec.ok) throw new Error(spec.error.message);
          await processStub(env, recipient).spawn(spec.value);
          const sender = randomPid();
          await env.IPC_SENDER.get(env.IPC_SENDER.idFromName(sender)).setup(sender);
          pairs.push({ sender, recipient });
        }
        return Response.json({ pairs });
      }
      case '/run': {
        // All pairs at once; kind: send (the kernel path), ping (the no-op floor) or floor (RPC + one committed row at each end).
        const body = (await request.json()) as { pairs: { sender: string; recipient: string }[]; kind: 'send' | 'ping' | 'floor'; n: number; batch?: number; mode?: TransportMode };
        const t0 = Date.now();
        const lat = await Promise.all(
          body.pairs.map((p) => {
            const s = env.IPC_SENDER.get(env.IPC_SENDER.idFromName(p.sender));
            if (body.kind === 'ping') return s.ping(p.recipient, body.n);
            if (body.kind === 'floor') return s.floor(p.recipient, body.n);
            return s.send(p.recipient, body.n, body.batch ?? 1, body.mode ?? 'direct');
          }),
        );
        return Response.json({ wall_ms: Date.now() - t0, latencies: lat.flat() });
      }
      case '/mailbox': {
        // Arrival stats of a recipient: count and (arrived_at - sent_at) per message.
        const r = await processStub(env, q.get('pid') ?? '').mailbox(TENANT, 'all', 500, null);
        if (!r.ok) return Response.json(r.error, { status: 404 });
        return Response.json({ count: r.value.queued, delays: r.value.messages.map((m) => m.arrived_at - m.sent_at) });
      }
      default:
        return new Response('not found', { status: 404 });
    }
  },
  queue: (batch: MessageBatch<unknown>, env: BenchEnv) => consumeIpcBatch(batch, { rpc: (to, messages) => processStub(env, to).deliverMessages(messages), db: env.DB, now: () => Date.now() }),
} satisfies ExportedHandler<BenchEnv>;
