/**
 * Fault injection for the crash battery (test/crash-battery.test.ts), from outside the kernel.
 *
 * The tests, the Worker and every Durable Object of a test file run in one isolate, so the battery
 * reaches the kernel through seams it already has, without a test hook in kernel code:
 *  - an object's SQLite (`state.storage.sql.exec`, wrapped through `runInDurableObject`): the N-th
 *    statement from now resets the object (`ctx.abort()`, a crash at a random point of whatever it
 *    runs next: a step, a syscall, a commit, an outbox delivery, an RPC it serves) or throws;
 *  - the D1 binding's methods: D1 refuses every call (an outage), or holds one in flight;
 *  - the classes the Worker exports (`AgentProcess`, `AuditChain`) and the scripted LLM provider:
 *    the tenant's audit anchor refuses appends, or crashes after its D1 write and before it saves
 *    its head; an RPC is applied and then its answer is lost (the caller retries: a duplicate
 *    delivery); an RPC or an LLM call is held on the loopback test server so that
 *    `abortAllDurableObjects()` lands while it is in flight;
 *  - `AgentProcess.clock` (the clock the kernel is injected with; the class says tests override it):
 *    shifted a day ahead, so no alarm fires by itself during the battery and every run is one the
 *    battery drives (`runDurableObjectAlarm` is a time jump for the kernel).
 * Everything is undone by `uninstall()`.
 */
import { env } from 'cloudflare:test';
import { AgentProcess } from '../../durable/agent-process.ts';
import { AuditChain } from '../../durable/audit-chain.ts';
import { ScriptedProvider } from '../../src/llm/scripted.ts';

/** Where an injected crash or error shows in messages and events. */
export const INJECTED = 'injected fault';

/** Statements a thrown error must not land on: the IPC and spawn handlers' own commits (see the battery's notes). */
const THROW_SPARED = /\b(ipc_out|ipc_in|ipc_held|ipc_skipped|mailbox|children)\b|INSERT INTO outbox/;

export type StatementFault = 'abort' | 'throw';
export type GateTarget = 'llm' | 'spawn' | 'deliverMessages' | 'childExited' | 'd1';
export type AckLossTarget = 'spawn' | 'deliverMessages' | 'childExited';
const RPC_METHODS = ['spawn', 'deliverMessages', 'childExited', 'reap'] as const;

type Armed = { kind: StatementFault; remaining: number };
type Gate = { target: GateTarget; key: string; reached: boolean };

const HOOKED = Symbol('crash-battery-hooked');

export class Faults {
  /** Counts of faults that actually fired, by kind. */
  readonly fired = new Map<string, number>();
  /** A fault armed in an object: it fires at the `remaining`-th statement from now. */
  readonly #armed = new Map<string, Armed>();
  d1Down = false;
  anchorDown = false;
  anchorCrash = false;
  gate: Gate | null = null;
  ackLoss: AckLossTarget | null = null;
  #undo: (() => void)[] = [];

  count(kind: string, n = 1): void {
    this.fired.set(kind, (this.fired.get(kind) ?? 0) + n);
  }

  total(): number {
    let n = 0;
    for (const v of this.fired.values()) n += v;
    return n;
  }

  /** Arm a crash or an error at the `at`-th statement `pid`'s object executes from now. */
  arm(pid: string, kind: StatementFault, at: number): void {
    this.#armed.set(pid, { kind, remaining: at });
  }

  /** Disarm; returns whether the fault was still armed (had not fired). */
  disarm(pid: string): boolean {
    return this.#armed.delete(pid);
  }

  /** Wrap an object's SQLite so armed faults fire at a statement. Idempotent per instance. */
  hook(pid: string, state: DurableObjectState): void {
    const sql = state.storage.sql as SqlStorage & { [HOOKED]?: true };
    if (sql[HOOKED]) return;
    const exec = sql.exec.bind(sql);
    Object.defineProperty(sql, 'exec', {
      configurable: true,
      value: (query: string, ...params: SqlStorageValue[]) => {
        const armed = this.#armed.get(pid);
        if (armed && --armed.remaining <= 0) {
          if (armed.kind === 'abort') {
            this.#armed.delete(pid);
            this.count('abort_at_statement');
            state.abort(`${INJECTED}: crash at a statement`);
          } else if (THROW_SPARED.test(query)) {
            armed.remaining = 1;
          } else {
            this.#armed.delete(pid);
            this.count('throw_at_statement');
            throw new Error(`${INJECTED}: a statement threw`);
          }
        }
        return exec(query, ...params);
      },
    });
    sql[HOOKED] = true;
  }

  /** Wrap the tenant's audit chain object's storage so that `anchorCrash` resets it after its D1 write. */
  hookChain(state: DurableObjectState): void {
    const storage = state.storage as DurableObjectStorage & { [HOOKED]?: true };
    if (storage[HOOKED]) return;
    const put = storage.put.bind(storage) as (key: string, value: unknown) => Promise<void>;
    Object.defineProperty(storage, 'put', {
      configurable: true,
      value: (key: string, value: unknown) => {
        if (this.anchorCrash && key === 'anchor') {
          this.anchorCrash = false;
          this.count('anchor_crash');
          state.abort(`${INJECTED}: the audit anchor crashed after its D1 write`);
        }
        return put(key, value);
      },
    });
    storage[HOOKED] = true;
  }

  async #atGate(target: GateTarget): Promise<void> {
    const gate = this.gate;
    if (!gate || gate.reached || gate.target !== target) return;
    gate.reached = true;
    // Held on the loopback server until every object is aborted.
    await fetch(`${env.TEST_SERVER}/hang/${gate.key}`);
  }

  /** Calls refused while D1 or the anchor was down (each outage is counted once, in `fired`). */
  refusedD1 = 0;
  refusedAnchor = 0;

  #d1(): void {
    if (this.d1Down) {
      this.refusedD1++;
      throw new Error(`D1_ERROR: ${INJECTED}: D1 is unavailable`);
    }
  }

  /** Patch the shared classes and bindings. */
  install(clockShiftMs: number): void {
    const patch = <T extends object, K extends keyof T>(obj: T, key: K, value: T[K]) => {
      const before = Object.getOwnPropertyDescriptor(obj, key);
      Object.defineProperty(obj, key, { configurable: true, writable: true, value });
      this.#undo.push(() => (before ? Object.defineProperty(obj, key, before) : delete (obj as Record<PropertyKey, unknown>)[key as PropertyKey]));
    };
    const faults = this;
    // The kernel's injected clock, a day ahead: alarms are set for tomorrow and fire only when driven.
    const proto = AgentProcess.prototype as unknown as { clock(): number };
    patch(proto, 'clock', () => Date.now() + clockShiftMs);
    // D1: refuse every call while down; hold one in flight for a gate.
    const dbProto = Object.getPrototypeOf(env.DB) as { batch: (...a: unknown[]) => Promise<unknown> };
    const batch = dbProto.batch;
    patch(dbProto, 'batch', async function (this: unknown, ...a: unknown[]) {
      faults.#d1();
      await faults.#atGate('d1');
      return batch.apply(this, a);
    });
    const stmtProto = Object.getPrototypeOf(env.DB.prepare('SELECT 1')) as Record<'run' | 'all' | 'first' | 'raw', (...a: unknown[]) => Promise<unknown>>;
    for (const m of ['run', 'all', 'first', 'raw'] as const) {
      const orig = stmtProto[m];
      patch(stmtProto, m, async function (this: unknown, ...a: unknown[]) {
        faults.#d1();
        await faults.#atGate('d1');
        return orig.apply(this, a);
      });
    }
    // The tenant's audit anchor.
    const chainProto = AuditChain.prototype as unknown as { append: (...a: unknown[]) => Promise<unknown> };
    const append = chainProto.append;
    patch(chainProto, 'append', async function (this: unknown, ...a: unknown[]) {
      if (faults.anchorDown) {
        faults.refusedAnchor++;
        throw new Error(`${INJECTED}: the audit anchor is unavailable`);
      }
      return append.apply(this, a);
    });
    // RPCs between processes: held for a gate, or applied and their answer lost.
    const rpc = AgentProcess.prototype as unknown as Record<(typeof RPC_METHODS)[number], (...a: unknown[]) => Promise<unknown>>;
    for (const m of RPC_METHODS) {
      const orig = rpc[m];
      patch(rpc, m, async function (this: unknown, ...a: unknown[]) {
        if (m !== 'reap') await faults.#atGate(m);
        const r = await orig.apply(this, a);
        if (faults.ackLoss === m) {
          faults.ackLoss = null;
          faults.count(`ack_lost_${m}`);
          throw new Error(`${INJECTED}: the answer to ${m} was lost`);
        }
        return r;
      });
    }
    // The LLM: a call held in flight for a gate.
    const llm = ScriptedProvider.prototype as unknown as { complete: (...a: unknown[]) => Promise<unknown> };
    const complete = llm.complete;
    patch(llm, 'complete', async function (this: unknown, ...a: unknown[]) {
      await faults.#atGate('llm');
      return complete.apply(this, a);
    });
  }

  uninstall(): void {
    while (this.#undo.length > 0) this.#undo.pop()!();
  }
}
