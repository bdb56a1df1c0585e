/**
 * Record and replay of LLM I/O.
 *
 * Recording: every LLM call whose answer is journaled is kept in that step's row (`steps.trace`),
 * written in the step's own commit; a call whose answer was never journaled (a crash during it)
 * leaves no record, and the call asked again is recorded instead.
 * A request is not stored whole (the context grows with the session, and storing it every step
 * would cost O(n²)); it is stored as digests of its system prompt, tool list and messages, plus the
 * messages that are new since the last assistant turn: the inputs of this step (the previous
 * step's syscall results, a message, a notice). Responses are stored whole.
 *
 * Replay: a process spawned with `replay: <trace>` answers every call from the trace's response for
 * that step, and compares the request the kernel built with the recorded one. The first difference
 * is reported once, as a `replay_divergence` event: `syscall_result` at step k−1 when the new
 * inputs differ (a syscall returned something else), `request` at step k otherwise (the kernel
 * built a different prompt), `extra_step` when the run goes past the trace. A change of the tool list
 * alone is not a divergence (see `compare`). Identifiers that differ
 * between any two runs by construction (pids, approval and checkpoint ids, epoch-ms times) are
 * normalised before hashing.
 */
import { z } from 'zod';
import type { ChatMessage, LlmProvider, LlmRequest, LlmResponse } from '../llm/types.ts';
import { sha256Hex } from './chunks.ts';

/** The trace a replaying process answers from (created when one is loaded). */
const REPLAY_SCHEMA = 'CREATE TABLE IF NOT EXISTS replay_steps (step INTEGER PRIMARY KEY, request TEXT NOT NULL, response TEXT NOT NULL)';

export const TRACE_FORMAT = 'agentos-trace/1';

const ToolCallSchema = z.object({ id: z.string(), name: z.string(), args: z.unknown() });
const MessageSchema = z.union([
  z.object({ role: z.literal('user'), content: z.string() }),
  z.object({ role: z.literal('assistant'), content: z.string(), tool_calls: z.array(ToolCallSchema).optional() }),
  z.object({ role: z.literal('tool'), tool_call_id: z.string(), name: z.string(), content: z.string() }),
]);
export const RecordedRequestSchema = z.object({
  model: z.string(),
  tool_mode: z.enum(['native', 'text']),
  system: z.string().describe('SHA-256 of the system prompt (normalised)'),
  tools: z.string().describe('SHA-256 of the tool list'),
  messages: z.string().describe('SHA-256 of all messages (normalised)'),
  count: z.number().int(),
  inputs: z.array(MessageSchema).describe('the messages after the last assistant turn: what is new at this step'),
});
export type RecordedRequest = z.infer<typeof RecordedRequestSchema>;
export const RecordedResponseSchema = z.object({
  text: z.string(),
  tool_calls: z.array(ToolCallSchema),
  usage: z.object({ prompt_tokens: z.number(), completion_tokens: z.number(), cached_tokens: z.number(), cache_write_tokens: z.number() }),
  model: z.string(),
  stop_reason: z.string(),
});

export const TraceSchema = z.object({
  format: z.literal(TRACE_FORMAT),
  pid: z.string(),
  spawn: z.object({ name: z.string(), task: z.string(), image: z.string(), model: z.object({ provider: z.string(), model: z.string() }), tool_mode: z.enum(['native', 'text']), max_context_tokens: z.number().int() }),
  steps: z
    .array(z.object({ step: z.number().int().min(1), at: z.number(), latency_ms: z.number(), request: RecordedRequestSchema, response: RecordedResponseSchema }))
    .max(10_000),
  syscalls: z.array(z.object({ step: z.number().int(), idx: z.number().int(), name: z.string(), args: z.unknown(), result: z.unknown() })),
  exit: z.unknown().describe('the exit status, or null while the process runs'),
});
export type Trace = z.infer<typeof TraceSchema>;

/**
 * Values that differ between two runs of the same process by construction: pids, approval ids,
 * checkpoint ids, times in milliseconds. One pass over the text (the prompt, at every step): the
 * four patterns begin with different characters, so no two can match at the same place.
 */
const VOLATILE = /\bp[0-9a-z]{20}\b|\bap_[0-9a-f]{24}\b|\bck\d{4,}-[0-9a-f]{8}\b|\b1[6-9]\d{11}\b/g;
const PLACEHOLDER: Readonly<Record<string, string>> = { p: '<pid>', a: '<approval>', c: '<checkpoint>', '1': '<time>' };
const normalise = (s: string): string => s.replace(VOLATILE, (m) => PLACEHOLDER[m[0]!]!);

const hashOf = (json: string): Promise<string> => sha256Hex(new TextEncoder().encode(normalise(json)));

/**
 * Digests of the parts that rarely change between steps (the system prompt, the tool list), by
 * their JSON: every process of this isolate asks for the same few, at every step.
 */
const stable = new Map<string, Promise<string>>();
const STABLE_MAX = 64;

function stableDigest(value: unknown): Promise<string> {
  const json = JSON.stringify(value);
  let d = stable.get(json);
  if (d === undefined) {
    if (stable.size >= STABLE_MAX) stable.delete(stable.keys().next().value!);
    d = hashOf(json);
    stable.set(json, d);
  }
  return d;
}

function inputsOf(messages: readonly ChatMessage[]): RecordedRequest['inputs'] {
  let i = messages.length;
  while (i > 0 && messages[i - 1]?.role !== 'assistant') i--;
  return messages.slice(i).map((m) => MessageSchema.parse(JSON.parse(normalise(JSON.stringify(m)))));
}

export async function recordRequest(request: LlmRequest): Promise<RecordedRequest> {
  return {
    model: request.model,
    tool_mode: request.tool_mode,
    system: await stableDigest(request.system),
    tools: await stableDigest(request.tools),
    messages: await hashOf(JSON.stringify(request.messages)),
    count: request.messages.length,
    inputs: inputsOf(request.messages),
  };
}

/** A recorded call as it is kept in its step's row (steps.trace). */
type StepTrace = { readonly at: number; readonly latency_ms: number; readonly request: RecordedRequest; readonly response: LlmResponse };

/**
 * The process's record of LLM calls (and, in a replaying process, the trace it replays).
 *
 * A call's record is kept in memory until the step it answered is journaled, and is written in that
 * step's row (`take`, in the step's commit: no row or statement of its own). An answer that is
 * never journaled (the process died or was killed during the call) leaves no record: the call is
 * asked again, and that one is recorded. Calls recorded before schema version 6 are in the legacy
 * `llm_trace` table, which `steps()` still reads.
 */
export class TraceStore {
  readonly #sql: SqlStorage;
  /** The last call's record, until its step is written. */
  #pending: { step: number; json: string } | null = null;

  constructor(sql: SqlStorage) {
    this.#sql = sql;
  }

  /** After a restore or a release of storage the tables may be new: check again on next use. */
  reset(): void {
    this.#replaying = undefined;
    this.#pending = null;
  }

  /** Whether replay_steps holds a trace: asked once per instance (it is written only by loadReplay). */
  #replaying: boolean | undefined;

  #has(table: string): boolean {
    return this.#sql.exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", table).toArray().length > 0;
  }

  record(step: number, at: number, latencyMs: number, request: RecordedRequest, response: LlmResponse): void {
    const trace: StepTrace = { at, latency_ms: latencyMs, request, response };
    this.#pending = { step, json: JSON.stringify(trace) };
  }

  /** The record of the call that answered `step`, for its row (once: it is then forgotten here). */
  take(step: number): string | null {
    const p = this.#pending;
    if (p === null || p.step !== step) return null;
    this.#pending = null;
    return p.json;
  }

  steps(): Trace['steps'] {
    const out = new Map<number, Trace['steps'][number]>();
    if (this.#has('llm_trace')) {
      for (const r of this.#sql.exec<{ step: number; at: number; latency_ms: number; request: string; response: string }>('SELECT step, at, latency_ms, request, response FROM llm_trace ORDER BY step')) {
        out.set(r.step, { step: r.step, at: r.at, latency_ms: r.latency_ms, request: JSON.parse(r.request) as RecordedRequest, response: JSON.parse(r.response) as Trace['steps'][number]['response'] });
      }
    }
    for (const r of this.#sql.exec<{ step: number; trace: string }>('SELECT step, trace FROM steps WHERE trace IS NOT NULL ORDER BY step')) {
      const t = JSON.parse(r.trace) as StepTrace;
      out.set(r.step, { step: r.step, at: t.at, latency_ms: t.latency_ms, request: t.request, response: t.response as Trace['steps'][number]['response'] });
    }
    return [...out.values()].sort((a, b) => a.step - b.step);
  }

  /** Load the trace this process replays. */
  loadReplay(trace: Trace): void {
    this.#sql.exec(REPLAY_SCHEMA);
    for (const s of trace.steps) this.#sql.exec('INSERT OR REPLACE INTO replay_steps (step, request, response) VALUES (?, ?, ?)', s.step, JSON.stringify(s.request), JSON.stringify(s.response));
    this.#replaying = undefined;
  }

  replaying(): boolean {
    this.#replaying ??= this.#has('replay_steps') && this.#sql.exec('SELECT 1 FROM replay_steps LIMIT 1').toArray().length > 0;
    return this.#replaying;
  }

  replayStep(step: number): { request: RecordedRequest; response: LlmResponse } | null {
    if (!this.replaying()) return null;
    const row = this.#sql.exec<{ request: string; response: string }>('SELECT request, response FROM replay_steps WHERE step = ?', step).toArray()[0];
    return row ? { request: JSON.parse(row.request) as RecordedRequest, response: JSON.parse(row.response) as LlmResponse } : null;
  }
}

export interface Divergence {
  readonly kind: 'request' | 'syscall_result' | 'extra_step';
  readonly step: number;
  readonly part?: 'system' | 'tools' | 'messages' | 'model';
  readonly expected?: unknown;
  readonly actual?: unknown;
}

/** Compare the request built at `step` with the recorded one: the first difference, or null. */
export function compare(step: number, recorded: RecordedRequest | null, actual: RecordedRequest): Divergence | null {
  if (!recorded) return { kind: 'extra_step', step };
  if (JSON.stringify(recorded.inputs) !== JSON.stringify(actual.inputs)) {
    const tool = actual.inputs.some((m) => m.role === 'tool' || (m.role === 'user' && m.content.startsWith('[SYS_RESULT::')));
    return { kind: tool ? 'syscall_result' : 'request', step: tool ? step - 1 : step, part: 'messages', expected: recorded.inputs, actual: actual.inputs };
  }
  // The tool list alone is not compared: syscalls may be added without re-recording every trace; one
  // the trace used that was removed or changed shows up as a different syscall result (ENOSYS, EINVAL).
  for (const part of ['model', 'system', 'messages'] as const) {
    if (recorded[part] !== actual[part]) return { kind: 'request', step, part, expected: recorded[part], actual: actual[part] };
  }
  return null;
}

/**
 * Wrap a provider: record each call; in a replaying process, answer from the trace instead and
 * report the first divergence through `diverged`.
 */
export function tracingProvider(inner: () => LlmProvider, store: TraceStore, now: () => number, diverged: (d: Divergence) => void): LlmProvider {
  const replaying = store.replaying();
  return {
    name: replaying ? 'replay' : 'recorded',
    async complete(request, options) {
      const step = request.step ?? 0;
      const recorded = await recordRequest(request);
      const started = now();
      let response: LlmResponse;
      if (replaying) {
        const from = store.replayStep(step);
        const d = compare(step, from?.request ?? null, recorded);
        if (d) diverged(d);
        // Past the end of the trace: a final answer, so the process exits (the divergence is reported).
        response = from?.response ?? { text: `replay: the trace has no step ${step}`, tool_calls: [], usage: { prompt_tokens: 0, completion_tokens: 0, cached_tokens: 0, cache_write_tokens: 0 }, model: request.model, stop_reason: 'end_turn' };
      } else {
        response = await inner().complete(request, options);
      }
      store.record(step, started, now() - started, recorded, response);
      return response;
    },
  };
}
