/**
 * The modules of a tool's dynamic isolate. Three modules, evaluated in this order:
 *   - `prelude.js`: installs the budget hook `__aos_tick` (loops and functions call it; see
 *     compile.ts), wraps `fetch` so every request carries the current call's token to the egress
 *     proxy, and charges large allocations (typed arrays, buffers, string repeat/pad, sized arrays)
 *     against a per-call memory budget. Every global it installs is non-writable and
 *     non-configurable: tool code cannot replace or shadow them.
 *   - `tool.js`: the compiled tool (its default export is the function the kernel calls).
 *   - `harness.js` (main): the `Tool` entrypoint the kernel calls over RPC. It runs one call at a
 *     time (the kernel gives each concurrent call its own isolate), builds the `sys` client over the
 *     broker in `env.SYS`, and turns whatever happens into a plain result: the value, or a typed
 *     error with the stack trimmed to the tool's own lines.
 *
 * Everything here is source text: it runs in the dynamic isolate, not in the kernel.
 */

/** The syscalls a tool can make through the broker (the `sys` client's methods). */
export const TOOL_SYSCALLS = ['fs_read', 'fs_write', 'fs_list', 'net_fetch'] as const;
export type ToolSyscall = (typeof TOOL_SYSCALLS)[number];

/** Header the harness's fetch wrapper adds so the egress proxy knows which call a request belongs to. */
export const CALL_HEADER = 'x-agentos-tool-call';
/** Header on the egress proxy's refusals; the fetch wrapper turns such a response into a thrown error. */
export const REFUSED_HEADER = 'x-agentos-refused';

const PRELUDE = `
export const state = { ticks: 0, budget: 1000000, exhausted: false, bytes: 0, memory: 64 * 1024 * 1024, memoryExceeded: false, token: '' };
export class BudgetExceeded extends Error {}
const fail = (kind) => {
  if (kind === 'memory') state.memoryExceeded = true; else state.exhausted = true;
  throw new BudgetExceeded(kind === 'memory' ? 'the tool allocated more memory than its budget' : 'the tool ran out of its CPU budget (runaway loop or recursion)');
};
const define = (obj, key, value) => Object.defineProperty(obj, key, { value, writable: false, configurable: false, enumerable: false });
define(globalThis, '${'__aos_tick'}', () => {
  if (state.exhausted || state.memoryExceeded || ++state.ticks > state.budget) fail(state.memoryExceeded ? 'memory' : 'cpu');
});
const charge = (bytes) => {
  if (typeof bytes !== 'number' || !(bytes > 0)) return;
  state.bytes += bytes;
  if (state.bytes > state.memory) fail('memory');
};
const realFetch = globalThis.fetch;
define(globalThis, 'fetch', (input, init) => {
  const request = new Request(input, init);
  request.headers.set('${CALL_HEADER}', state.token);
  return realFetch(request).then(async (response) => {
    const code = response.headers.get('${REFUSED_HEADER}');
    if (code) throw new Error(code + ': ' + (await response.text()));
    return response;
  });
});
const cost = (args, perItem) => {
  const a = args[0];
  if (typeof a === 'number') charge(a * perItem);
  else if (a && typeof a === 'object' && typeof a.length === 'number') charge(a.length * perItem);
};
const sized = (Ctor, perItem) => new Proxy(Ctor, {
  construct(target, args, newTarget) { cost(args, perItem); return Reflect.construct(target, args, newTarget); },
  apply(target, self, args) { cost(args, perItem); return Reflect.apply(target, self, args); },
});
for (const [name, size] of [['ArrayBuffer', 1], ['SharedArrayBuffer', 1], ['Int8Array', 1], ['Uint8Array', 1], ['Uint8ClampedArray', 1], ['Int16Array', 2], ['Uint16Array', 2], ['Int32Array', 4], ['Uint32Array', 4], ['Float32Array', 4], ['Float64Array', 8], ['BigInt64Array', 8], ['BigUint64Array', 8], ['Array', 8]]) {
  if (typeof globalThis[name] === 'function') define(globalThis, name, sized(globalThis[name], size));
}
const wrap = (proto, key, cost) => {
  const real = proto[key];
  define(proto, key, function (...args) { charge(cost(this, args)); return real.apply(this, args); });
};
wrap(String.prototype, 'repeat', (s, [n]) => String(s).length * Number(n) * 2);
wrap(String.prototype, 'padStart', (s, [n]) => Number(n) * 2);
wrap(String.prototype, 'padEnd', (s, [n]) => Number(n) * 2);
wrap(Array.prototype, 'fill', (a) => a.length * 8);
`;

const HARNESS = `
import { state, BudgetExceeded } from './prelude.js';
import run from './tool.js';
import { WorkerEntrypoint } from 'cloudflare:workers';

class SysError extends Error {
  constructor(error) { super(error.message); this.name = 'SysError'; this.code = error.code; this.details = error.details; }
}
const SYSCALLS = ${JSON.stringify(TOOL_SYSCALLS)};
const trimStack = (stack, name) => String(stack ?? '').split('\\n').filter((l) => l.includes('tool.js')).map((l) => l.replace(/[^\\s(]*tool\\.js/g, name + '.ts').trim()).slice(0, 12);
const codeOf = (e) => {
  const msg = String(e?.message ?? e);
  if (state.memoryExceeded) return 'EQUOTA';
  if (e instanceof BudgetExceeded || state.exhausted) return 'ETIMEDOUT';
  if (e instanceof SysError) return e.code;
  if (e instanceof RangeError && /call stack/i.test(msg)) return 'ETIMEDOUT';
  if (/code generation from strings disallowed|wasm code generation disallowed|not permitted to access the internet/i.test(msg)) return 'EPERM';
  const m = /^(EPERM|ENOENT|EINVAL|E2BIG|EQUOTA|ETIMEDOUT|EIO|EAGAIN): /.exec(msg);
  return m ? m[1] : null;
};

export class Tool extends WorkerEntrypoint {
  async invoke(call) {
    state.ticks = 0; state.budget = call.ticks; state.bytes = 0; state.memory = call.memory; state.token = call.token;
    state.exhausted = false; state.memoryExceeded = false;
    const broker = this.env.SYS;
    const sys = {};
    for (const name of SYSCALLS) {
      sys[name] = async (args) => {
        const r = await broker.syscall(call.token, name, args ?? {});
        if (!r.ok) throw new SysError(r.error);
        return r.value;
      };
    }
    Object.freeze(sys);
    try {
      const value = await run(call.args, sys);
      if (state.exhausted || state.memoryExceeded) throw new BudgetExceeded('budget');
      const json = value === undefined ? null : JSON.parse(JSON.stringify(value));
      return { ok: true, value: json };
    } catch (e) {
      const code = codeOf(e);
      const thrown = { name: String(e?.name ?? 'Error'), message: String(e?.message ?? e).slice(0, 2000), stack: trimStack(e?.stack, call.name) };
      if (code === 'ETIMEDOUT' && (state.exhausted || e instanceof BudgetExceeded)) return { ok: false, error: { code, message: 'tool ' + call.name + ' ran out of its CPU budget (a runaway loop or recursion?)', details: { tool: call.name, budget_ticks: call.ticks, thrown } } };
      if (code === 'ETIMEDOUT') return { ok: false, error: { code, message: 'tool ' + call.name + ' recursed without bound: ' + thrown.message, details: { tool: call.name, thrown } } };
      if (code === 'EQUOTA' && state.memoryExceeded) return { ok: false, error: { code, message: 'tool ' + call.name + ' allocated more than its memory budget of ' + call.memory + ' bytes', details: { tool: call.name, thrown } } };
      if (code) return { ok: false, error: { code, message: 'tool ' + call.name + ': ' + thrown.message, details: { tool: call.name, thrown } } };
      return { ok: false, error: { code: 'EFAULT', message: 'tool ' + call.name + ' threw ' + thrown.name + ': ' + thrown.message, details: { tool: call.name, thrown } } };
    } finally {
      state.token = '';
    }
  }
}
export default { fetch() { return new Response('a tool isolate answers only RPC', { status: 404 }); } };
`;

export function toolModules(js: string): Record<string, string> {
  return { 'harness.js': HARNESS, 'prelude.js': PRELUDE, 'tool.js': js };
}
