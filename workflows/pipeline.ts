/**
 * PipelineWorkflow: one Workflow instance per pipeline run. It walks the spec's DAG, each stage
 * starting once the stages it needs have ended, and turns every effect into a named step:
 *
 *   stage:<s>:begin                    when, for_each → the items (or skip)
 *   spawn:<s>:<i>:<a>                  spawn attempt a of item i (pid derived from instance, s, i, a)
 *   exit:<s>:<i>:<a>:<r>               waitForEvent `exit-<pid>`: the process's outbox sends it on exit
 *   check:<s>:<i>:<a>:<r>              the wait gave up: re-read the process (a lost event), kill it past its timeout
 *   collect:<s>:<i>:<a>                its exit → the item's result, or why it failed (a clean exit with a
 *                                      small result came with its event: the stage goes on, this records it)
 *   backoff:<s>:<i>:<a>                sleep before attempt a+1
 *   gate:<s>:open / gate:<s>:<r> / gate:<s>:check:<r>   a human gate through /v1/approvals
 *   stage:<s>:end, pipeline:start / pipeline:end
 *
 * Step names depend only on the spec and on step results, so a replay (after a restart, an
 * eviction, a deploy) walks the same names, finds their cached results and spawns nothing twice.
 * A fan-out runs `concurrency` lanes that take items in order; every item runs (its lane does not
 * stop at another item's failure), which keeps the set of steps the same on every replay. Its
 * result is the items' results in item order.
 */
import { WorkflowEntrypoint, type WorkflowEvent, type WorkflowStep } from 'cloudflare:workers';
import { type ErrorValue, KernelError, toErrorValue } from '../src/kernel/errors.ts';
import { type ApprovalStage, MAX_FAN_OUT, type ProcessStage, type Stage, conditionHolds, retryDelaySeconds, topologicalOrder } from './spec.ts';
import { setPipelineStatus, upsertStage } from './store.ts';
import { stopLiveTasks } from './control.ts';
import { type Collected, type PipelineParams, type Spawned, audit, checkGate, checkTask, collectTask, collectedFromEvent, derefFor, exitEvent, gateEvent, openGate, spawnTask } from './tasks.ts';
import { type Scope, parsePath, resolvePath } from './template.ts';

/** Steps that only talk to D1 and process objects: retried quickly, then the run fails. */
const IO = { retries: { limit: 5, delay: '1 second', backoff: 'exponential' }, timeout: '2 minutes' } as const;

type StageOutcome = { readonly status: 'complete'; readonly result: unknown } | { readonly status: 'skipped' | 'failed' | 'denied' | 'cancelled'; readonly error: ErrorValue | null };

/**
 * `step.do` for values that are JSON by construction (process results, error values). Their types
 * say `unknown` where JSON goes, which the engine's Serializable type cannot check; the engine
 * stores them as structured clones, which JSON always is.
 */
function durably<T>(step: WorkflowStep, name: string, fn: () => Promise<T>): Promise<T> {
  return step.do(name, IO, fn as () => Promise<null>) as Promise<T>;
}

/**
 * How long the r-th wait for an event lasts before the process or the gate is re-read (a lost
 * event): PIPELINE_RECHECK_SECONDS, doubling per wait up to 12 times that, so a stage that runs
 * for days costs a few dozen steps a day, not hundreds (10,000 steps per instance).
 */
function recheckMs(env: Env, r: number): number {
  const base = Math.max(1, Number(env.PIPELINE_RECHECK_SECONDS) || 300) * 1000;
  return Math.min(base * 2 ** Math.min(r, 4), base * 12);
}

export class PipelineWorkflow extends WorkflowEntrypoint<Env, PipelineParams> {
  override async run(event: Readonly<WorkflowEvent<PipelineParams>>, step: WorkflowStep): Promise<{ status: string; error: ErrorValue | null }> {
    const p = event.payload;
    const id = event.instanceId;
    const order = topologicalOrder(p.spec.stages);
    if (!order.ok) {
      await durably(step, 'pipeline:end', () => setPipelineStatus(this.env.DB, id, 'failed', Date.now(), order.error));
      return { status: 'failed', error: order.error };
    }
    // The run's `running` status is written alongside its first stages, not before them.
    const later = new Later();
    later.add(
      durably(step, 'pipeline:start', async () => {
        await setPipelineStatus(this.env.DB, id, 'running', Date.now());
        return null;
      }),
    );
    try {
      return await this.#stages(p, id, order.value, later, step);
    } catch (e) {
      // A step failed past its own retries (D1 or an object unreachable for minutes): the run ends
      // failed, and what it started is stopped rather than left running unwatched. Then the engine
      // records the instance as errored.
      const error: ErrorValue = { code: 'EFAULT', message: `the run failed: ${toErrorValue(e).message}` };
      await durably(step, 'pipeline:abort', async () => {
        await setPipelineStatus(this.env.DB, id, 'failed', Date.now(), error);
        const stopped = await stopLiveTasks(this.env, p.tenant, id);
        await audit(this.env, p.tenant, id, 'end', 'error', 'EFAULT', { status: 'failed', error, ...stopped }, 'end');
        return null;
      });
      throw e;
    }
  }

  async #stages(p: PipelineParams, id: string, stages: readonly Stage[], later: Later, step: WorkflowStep): Promise<{ status: string; error: ErrorValue | null }> {
    const results = new Map<string, unknown>();
    const outcomes = new Map<string, Promise<StageOutcome>>();
    for (const stage of stages) {
      outcomes.set(
        stage.name,
        (async () => {
          const needs = await Promise.all(stage.needs.map((n) => outcomes.get(n) as Promise<StageOutcome>));
          const blocked = stage.needs.find((_, i) => needs[i]?.status !== 'complete');
          const outcome = blocked
            ? await this.#skip(id, stage, { code: 'ECHILD', message: `skipped: stage "${blocked}" did not complete` }, step)
            : await this.#stage(p, id, stage, { pipeline: id, input: p.input, stages: results }, later, step);
          if (outcome.status === 'complete') results.set(stage.name, outcome.result);
          return outcome;
        })(),
      );
    }
    const all = await Promise.all(stages.map((s) => outcomes.get(s.name) as Promise<StageOutcome>));
    const bad = stages.map((s, i) => ({ s, o: all[i] as StageOutcome })).find(({ o }) => o.status === 'failed' || o.status === 'denied' || o.status === 'cancelled');
    const error: ErrorValue | null = bad && bad.o.status !== 'complete' ? { code: bad.o.error?.code ?? 'EFAULT', message: `stage "${bad.s.name}" ${bad.o.status}: ${bad.o.error?.message ?? ''}`, details: { stage: bad.s.name } } : null;
    const status = error ? 'failed' : 'complete';
    await later.settle();
    await durably(step, 'pipeline:end', async () => {
      if (await setPipelineStatus(this.env.DB, id, status, Date.now(), error)) await audit(this.env, p.tenant, id, 'end', error ? 'error' : 'ok', error?.code ?? null, { status, error }, 'end');
      return null;
    });
    return { status, error };
  }

  async #skip(id: string, stage: Stage, why: ErrorValue, step: WorkflowStep): Promise<StageOutcome> {
    await durably(step, `stage:${stage.name}:skip`, async () => {
      await upsertStage(this.env.DB, id, stage.name, { status: 'skipped', now: Date.now(), error: why });
      return null;
    });
    return { status: 'skipped', error: why };
  }

  async #stage(p: PipelineParams, id: string, stage: Stage, scope: Scope, later: Later, step: WorkflowStep): Promise<StageOutcome> {
    // A stage with nothing to decide up front starts in its first step (its spawn, or its gate).
    const decides = stage.when !== undefined || (stage.type === 'process' && stage.for_each !== undefined);
    const begin = !decides ? { run: true, items: null, error: null } : await durably(step, `stage:${stage.name}:begin`, async (): Promise<{ run: boolean; items: unknown[] | null; error: ErrorValue | null }> => {
      const now = Date.now();
      const deref = derefFor(this.env, p.tenant);
      try {
        if (stage.when) {
          const path = parsePath(stage.when.path);
          const value = path.ok ? await resolvePath(path.value, scope, deref).catch(() => undefined) : undefined;
          if (!conditionHolds(stage.when, value)) {
            await upsertStage(this.env.DB, id, stage.name, { status: 'skipped', now, error: { code: 'ECHILD', message: `skipped: when ${stage.when.path} did not hold` } });
            return { run: false, items: null, error: null };
          }
        }
        let items: unknown[] | null = null;
        if (stage.type === 'process' && stage.for_each) {
          const path = parsePath(stage.for_each);
          const list = path.ok ? await resolvePath(path.value, scope, deref) : undefined;
          if (!Array.isArray(list)) throw new KernelError('EINVAL', `for_each ${stage.for_each} is not a list`);
          if (list.length > MAX_FAN_OUT) throw new KernelError('E2BIG', `for_each ${stage.for_each} has ${list.length} items; the limit is ${MAX_FAN_OUT}`);
          items = list;
        }
        await upsertStage(this.env.DB, id, stage.name, { status: 'running', now, items: items?.length ?? (stage.type === 'process' ? 1 : null) });
        return { run: true, items, error: null };
      } catch (e) {
        const error = toErrorValue(e);
        await upsertStage(this.env.DB, id, stage.name, { status: 'failed', now, error });
        return { run: false, items: null, error };
      }
    });
    if (begin.error) return { status: 'failed', error: begin.error };
    if (!begin.run) return { status: 'skipped', error: null };
    const outcome = stage.type === 'approval' ? await this.#gate(p, id, stage, scope, step) : await this.#processes(p, id, stage, scope, begin.items, later, step);
    // A one-process stage and a gate record their end in their last step; a fan-out, once all items are in.
    if (stage.type === 'process' && stage.for_each) {
      await durably(step, `stage:${stage.name}:end`, async () => {
        await upsertStage(this.env.DB, id, stage.name, { status: outcome.status, now: Date.now(), ...(outcome.status === 'complete' ? { result: stageResult(outcome.result) } : { error: outcome.error }) });
        return null;
      });
    }
    return outcome;
  }

  async #processes(p: PipelineParams, id: string, stage: ProcessStage, scope: Scope, items: unknown[] | null, later: Later, step: WorkflowStep): Promise<StageOutcome> {
    const count = items?.length ?? 1;
    const slots = new Slots(stage.concurrency);
    const results = await Promise.all(
      Array.from({ length: count }, (_, i) => this.#task(p, id, stage, i, items ? { ...scope, item: { value: items[i], index: i } } : scope, slots, later, step)),
    );
    const failed = results.findIndex((r) => !r.ok);
    if (failed >= 0) {
      const r = results[failed] as Extract<Collected, { ok: false }>;
      return { status: r.cancelled ? 'cancelled' : 'failed', error: { ...r.error, message: `${items ? `item ${failed}: ` : ''}${r.error.message}` } };
    }
    const values = results.map((r) => (r as Extract<Collected, { ok: true }>).result);
    return { status: 'complete', result: items ? values : values[0] };
  }

  /**
   * One item: attempts with backoff; each attempt is spawn → wait for its exit → collect. An attempt
   * holds a slot from its spawn until its process has exited, so at most `concurrency` processes of
   * the stage are alive; the next item spawns while this one's result is being collected. A clean
   * exit whose small result came with its event is the item's result at once: its collect step
   * (the task's and the stage's D1 rows) runs alongside what follows, and the run's end waits for it.
   */
  async #task(p: PipelineParams, id: string, stage: ProcessStage, item: number, scope: Scope, slots: Slots, later: Later, step: WorkflowStep): Promise<Collected> {
    const key = `${stage.name}:${item}`;
    let last: Collected = { ok: false, error: { code: 'EFAULT', message: 'no attempt ran' }, cancelled: false };
    for (let attempt = 1; attempt <= stage.retries.limit + 1; attempt++) {
      const ids = { instance: id, stage: stage.name, item, attempt };
      await slots.acquire();
      const spawned: Spawned = await durably(step, `spawn:${key}:${attempt}`, () => spawnTask(this.env, p, stage, ids, scope));
      if ('error' in spawned) {
        slots.release();
        return { ok: false, error: spawned.error, cancelled: spawned.cancelled }; // cancelled, or a spec or grant problem: retrying cannot help
      }
      const deadline = spawned.started_at + stage.timeout_seconds * 1000;
      let timedOut = false;
      let heard: unknown = null;
      if (!spawned.exited) {
        for (let r = 0; ; r++) {
          const left = deadline - Date.now();
          // The last wait lasts until the deadline: when it gives up, the deadline has come.
          const final = left <= recheckMs(this.env, r);
          if (left > 0) {
            try {
              heard = (await step.waitForEvent(`exit:${key}:${attempt}:${r}`, { type: exitEvent(spawned.pid), timeout: Math.min(left, recheckMs(this.env, r)) })).payload;
              break;
            } catch {
              // no event before the timeout: the process is re-read below
            }
          }
          const state = await durably(step, `check:${key}:${attempt}:${r}`, () => checkTask(this.env, p.tenant, id, spawned.pid, deadline, final));
          if (state === 'exited') break;
          if (state === 'timed_out') {
            timedOut = true;
            break;
          }
        }
      }
      slots.release();
      const lastAttempt = attempt === stage.retries.limit + 1;
      const collecting = durably(step, `collect:${key}:${attempt}`, () => collectTask(this.env, p.tenant, stage, ids, spawned.pid, { timedOut, lastAttempt }));
      const early = timedOut ? null : collectedFromEvent(stage, heard);
      if (early) {
        later.add(collecting);
        return early;
      }
      last = await collecting;
      if (last.ok || last.cancelled) return last;
      if (attempt <= stage.retries.limit) await step.sleep(`backoff:${key}:${attempt}`, retryDelaySeconds(stage.retries, attempt + 1) * 1000);
    }
    return last;
  }

  async #gate(p: PipelineParams, id: string, stage: ApprovalStage, scope: Scope, step: WorkflowStep): Promise<StageOutcome> {
    const opened = await durably(step, `gate:${stage.name}:open`, () => openGate(this.env, p, stage, id, scope));
    if (!opened.ok) return { status: 'failed', error: opened.error };
    const { approval_id, expires_at } = opened.value;
    for (let r = 0; ; r++) {
      const left = expires_at - Date.now();
      if (left > 0) {
        try {
          await step.waitForEvent(`gate:${stage.name}:${r}`, { type: gateEvent(approval_id), timeout: Math.min(left, recheckMs(this.env, r)) });
        } catch {
          // no decision before the timeout: the approval is re-read below
        }
      }
      const state = await durably(step, `gate:${stage.name}:check:${r}`, () => checkGate(this.env, approval_id));
      if (state.status === 'pending') continue;
      const outcome: StageOutcome =
        state.status === 'approved'
          ? { status: 'complete', result: { decision: 'approve', note: state.note, by: state.by, approval_id } }
          : state.status === 'denied'
            ? { status: 'denied', error: { code: 'EPERM', message: `the gate was denied by ${state.by ?? 'a reviewer'}${state.note ? `: ${state.note}` : ''}`, details: { approval_id } } }
            : { status: 'failed', error: { code: 'ETIMEDOUT', message: `nobody decided the gate within ${stage.timeout_seconds} s`, details: { approval_id } } };
      await durably(step, `gate:${stage.name}:close`, async () => {
        await upsertStage(this.env.DB, id, stage.name, { status: outcome.status, now: Date.now(), ...(outcome.status === 'complete' ? { result: outcome.result } : { error: outcome.error }) });
        await audit(this.env, p.tenant, id, 'gate', state.status === 'approved' ? 'approved' : state.status === 'denied' ? 'denied' : 'expired', null, { stage: stage.name, approval_id, ...state }, `gate:${stage.name}:${state.status}`);
        return null;
      });
      return outcome;
    }
  }
}

/** A fan-out's result as its stage row keeps it: inline if small, else only a note that the tasks hold it. */
function stageResult(result: unknown): unknown {
  const text = JSON.stringify(result) ?? 'null';
  return text.length <= 256 * 1024 ? result : { $ref: 'tasks', bytes: text.length };
}

/**
 * Steps the run does not wait on as it goes (its `running` status, the D1 rows of a collect whose
 * result came with the exit event), awaited before its end; a failure among them is the run's.
 */
class Later {
  readonly #steps: Promise<unknown>[] = [];

  add(step: Promise<unknown>): void {
    step.catch(() => {}); // seen by settle(), not as an unhandled rejection meanwhile
    this.#steps.push(step);
  }

  async settle(): Promise<void> {
    await Promise.all(this.#steps);
  }
}

/** A counting semaphore whose waiters are served in the order they came (item order, in a fan-out). */
class Slots {
  #free: number;
  readonly #waiting: (() => void)[] = [];

  constructor(n: number) {
    this.#free = n;
  }

  async acquire(): Promise<void> {
    if (this.#free > 0) {
      this.#free--;
      return;
    }
    await new Promise<void>((resolve) => this.#waiting.push(resolve));
  }

  release(): void {
    const next = this.#waiting.shift();
    if (next) next();
    else this.#free++;
  }
}
