/**
 * Bench Worker for JIT tools (scripts/bench/tools/run.mjs). Not part of the product.
 *
 * ToolBenchProcess is the kernel's AgentProcess (its real ToolHost: compiler, Worker Loader,
 * harness, broker) with one extra RPC method, `run(kind, n, seq)`, that performs n operations of one
 * kind back to back inside the object:
 *   - native: the built-in json_transform tool's function, imported and called in the Worker;
 *   - warm:   the same tool called through ToolHost.call (schema check, slot, loaded isolate, RPC);
 *   - cold:   compile + store + load + run of a 5 KB tool whose source is new every time (a fresh
 *             content hash, so a fresh isolate);
 *   - compile: compile only (sucrase + acorn instrumentation), same fresh sources;
 *   - rpc:    one bare RPC to an already loaded trivial dynamic isolate (the "+ one RPC" of the goal);
 *   - rpcpayload: the same RPC carrying the tool call's arguments and a result of the same size;
 *   - rawtool: the tool harness invoked directly (no ToolHost: no schema check, slot or broker);
 *   - hostnoop: ToolHost.call of a tool that returns 1;
 *   - noop:   nothing (the request's own overhead, subtracted by the runner).
 * Timing is done by the runner around each HTTP request: inside workerd the clock does not advance
 * during pure computation, so the native arm could not be timed from the inside.
 */
import { AgentProcess } from '../../../durable/agent-process.ts';
import jsonTransform from '../../../jit-tools/json_transform.ts';
import { BUILTIN_TOOLS } from '../../../jit-tools/builtin.gen.ts';
import type { Pcb } from '../../../src/kernel/pcb.ts';
import { compileTool } from '../../../src/tools/compile.ts';
import { toolModules } from '../../../src/tools/harness.ts';

export { AgentProcess };
export { ToolBroker, ToolEgress } from '../../../src/tools/broker.ts';

interface BenchEnv extends Env {
  readonly TOOL_BENCH: DurableObjectNamespace<ToolBenchProcess>;
}

const CSV = 'name,age,city\nada,36,London\ngrace,85,NYC\nlinus,28,Helsinki\n';
const ARGS = { from: 'csv', to: 'json', input: CSV, fields: ['name', 'city'] } as const;
const BASE = BUILTIN_TOOLS.json_transform!;
const DIFF = BUILTIN_TOOLS.text_diff!.source.replace('export default async function textDiff', 'async function textDiff');
/** A ~5 KB tool: json_transform plus text_diff's code (unused at run time, but compiled and loaded). */
const coldSource = (seq: number) => `${BASE.source}\n${DIFF}\n// variant ${seq}\n`;
const PCB = { pid: 'pbenchtools00000000000', capabilities: [] } as unknown as Pcb;

/** A trivial loaded dynamic isolate: what one bare RPC into an isolate costs. */
const RAW = `import { WorkerEntrypoint } from 'cloudflare:workers';
export class E extends WorkerEntrypoint { ping(x) { return x; } echo(c) { return { ok: true, value: { rows: 3, output: JSON.stringify(c.args) } }; } }
export default { fetch() { return new Response(''); } };`;

export class ToolBenchProcess extends AgentProcess {
  #ready = false;

  #raw(): { ping(x: number): Promise<number>; echo(c: unknown): Promise<unknown> } {
    const w = this.env.LOADER.get('bench-raw-rpc', () => ({ compatibilityDate: '2026-01-01', mainModule: 'm.js', modules: { 'm.js': RAW }, globalOutbound: null }));
    return w.getEntrypoint('E') as unknown as { ping(x: number): Promise<number>; echo(c: unknown): Promise<unknown> };
  }

  #rawTool(plain = false): { invoke(c: unknown): Promise<unknown> } {
    const js = this.toolHost.store.code(this.toolHost.store.get('json_transform')!.hash)!.js;
    const modules = toolModules(js);
    // plain: the prelude without its allocation wrappers (to price them).
    if (plain) modules['prelude.js'] = (modules['prelude.js'] ?? '').replace(/const sized =[\s\S]*$/, '');
    const w = this.env.LOADER.get(plain ? 'bench-raw-plain' : 'bench-raw-tool', () => ({ compatibilityDate: '2026-01-01', mainModule: 'harness.js', modules, env: {}, globalOutbound: null }));
    return w.getEntrypoint('Tool') as unknown as { invoke(c: unknown): Promise<unknown> };
  }

  async #setup(): Promise<void> {
    if (this.#ready) return;
    await this.toolHost.install([BASE, { name: 'noop', description: 'noop', parameters: { type: 'object' }, source: 'export default async () => 1' }], 'bench');
    this.#ready = true;
  }

  async run(kind: string, n: number, seq: number): Promise<{ kind: string; n: number; sizes?: { source: number; js: number }; check?: unknown }> {
    await this.#setup();
    const host = this.toolHost;
    let check: unknown = null;
    let sizes: { source: number; js: number } | undefined;
    for (let i = 0; i < n; i++) {
      if (kind === 'native') check = await jsonTransform({ ...ARGS, fields: [...ARGS.fields] }, {} as Sys);
      else if (kind === 'warm') check = (await host.call(PCB, 'json_transform', { ...ARGS, fields: [...ARGS.fields] }, false)).result;
      else if (kind === 'rpc') check = await this.#raw().ping(i);
      else if (kind === 'rpcpayload') check = await this.#raw().echo({ name: 'json_transform', args: { ...ARGS, fields: [...ARGS.fields] }, token: 't', ticks: 1e7, memory: 1e8 });
      else if (kind === 'hostnoop') check = (await host.call(PCB, 'noop', {}, false)).result;
      else if (kind === 'rawplain') check = await this.#rawTool(true).invoke({ name: 'json_transform', args: { ...ARGS, fields: [...ARGS.fields] }, token: 't', ticks: 1e7, memory: 1e8 });
      else if (kind === 'rawtool') check = await this.#rawTool().invoke({ name: 'json_transform', args: { ...ARGS, fields: [...ARGS.fields] }, token: 't', ticks: 1e7, memory: 1e8 });
      else if (kind === 'compile') {
        const c = await compileTool(coldSource(seq * 100_000 + i));
        sizes = { source: c.source_bytes, js: c.js_bytes };
      } else if (kind === 'cold') {
        const name = 'cold_tool';
        const source = coldSource(seq * 100_000 + i);
        const p = await host.prepare({ ...BASE, name, source }, 'bench', Date.now());
        this.ctx.storage.transactionSync(() => p.commit());
        sizes = { source: source.length, js: p.value.js_bytes };
        check = (await host.call(PCB, name, { ...ARGS, fields: [...ARGS.fields] }, false)).result;
      }
    }
    return { kind, n, ...(sizes ? { sizes } : {}), check };
  }
}

export default {
  async fetch(request: Request, env: BenchEnv): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname !== '/bench/tools') return new Response('not found', { status: 404 });
    const kind = url.searchParams.get('kind') ?? 'noop';
    const n = Number(url.searchParams.get('n') ?? 1);
    const seq = Number(url.searchParams.get('seq') ?? 0);
    const stub = env.TOOL_BENCH.get(env.TOOL_BENCH.idFromName('bench'));
    return Response.json(await stub.run(kind, n, seq));
  },
} satisfies ExportedHandler<BenchEnv>;
