/**
 * Process commands: ps (and its tree), spawn, signals (kill, stop, cont), send, cat, context.
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { paths } from '../api-types.ts';
import { CliError, EXIT, call } from '../client.ts';
import { type Ctx, collect, ctxOf, grantsOf, int, modelOf, pid } from '../context.ts';
import { ago, colours, fields, print, printJson, short, state, table } from '../output.ts';

type Row = paths['/v1/processes']['get']['responses'][200]['content']['application/json']['processes'][number];
type SpawnBody = paths['/v1/processes']['post']['requestBody']['content']['application/json'];
type Pcb = paths['/v1/processes/{pid}']['get']['responses'][200]['content']['application/json'];
type Signal = paths['/v1/processes/{pid}/signals']['post']['requestBody']['content']['application/json']['signal'];
type State = NonNullable<paths['/v1/processes']['get']['parameters']['query']>['state'];
export type { Pcb, Row };

const STATES = ['ready', 'running', 'sleeping', 'waiting', 'stopped', 'zombie', 'terminated'];

export async function listProcesses(ctx: Ctx, q: { state?: State; ppid?: string }, max: number): Promise<Row[]> {
  return collect(async (cursor) => {
    const page = await call(ctx.target, ctx.api.GET('/v1/processes', { params: { query: { ...q, limit: Math.min(500, max), ...(cursor ? { cursor } : {}) } } }));
    return { rows: page.processes, next_cursor: page.next_cursor };
  }, max);
}

const exitOf = (r: Row): string => r.exit_code ?? '';

function psTable(rows: readonly Row[], prefix: (r: Row) => string = () => ''): string {
  const now = Date.now();
  return table(
    ['PID', 'STATE', 'PRI', 'NAME', 'IMAGE', 'EXIT', 'AGE', 'PPID'],
    rows.map((r) => [prefix(r) + r.pid, state(r.state), r.priority, r.name, r.image, exitOf(r), ago(r.created_at, now), r.ppid ?? '-']),
  );
}

type Tree = Row & { children: Tree[] };

/** The process tree: roots are processes whose parent is not listed (none, or outside the filter). */
export function treeOf(rows: readonly Row[]): Tree[] {
  const byPid = new Map<string, Tree>(rows.map((r) => [r.pid, { ...r, children: [] }]));
  const roots: Tree[] = [];
  for (const node of [...byPid.values()].sort((a, b) => a.created_at - b.created_at)) {
    const parent = node.ppid ? byPid.get(node.ppid) : undefined;
    (parent ? parent.children : roots).push(node);
  }
  return roots;
}

/** Depth-first rows with their tree glyphs: "├─ " and "└─ " under a parent, "│  " continuing a branch. */
function flatten(nodes: readonly Tree[], indent = '', top = true, out: { row: Row; prefix: string }[] = []): { row: Row; prefix: string }[] {
  nodes.forEach((n, i) => {
    const last = i === nodes.length - 1;
    out.push({ row: n, prefix: top ? '' : indent + (last ? '└─ ' : '├─ ') });
    flatten(n.children, top ? '' : indent + (last ? '   ' : '│  '), false, out);
  });
  return out;
}

export function registerProcesses(program: Command): void {
  program
    .command('ps')
    .description('list processes, newest first')
    .option('-s, --state <state>', `only processes in this state (${STATES.join(', ')})`)
    .option('-p, --parent <pid>', 'only children of this process', pid)
    .option('-n, --limit <n>', 'at most this many rows', int('--limit'), 50)
    .option('-a, --all', 'every process (follows every page)')
    .option('-t, --tree', 'as a tree of parents and children')
    .action(async (o: { state?: string; parent?: string; limit: number; all?: boolean; tree?: boolean }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      if (o.state && !STATES.includes(o.state)) throw new CliError(`unknown state "${o.state}": one of ${STATES.join(', ')}`, EXIT.usage);
      const max = o.all || o.tree ? 100_000 : o.limit;
      const rows = await listProcesses(ctx, { ...(o.state ? { state: o.state as State } : {}), ...(o.parent ? { ppid: o.parent } : {}) }, max);
      if (o.tree) {
        const forest = treeOf(rows);
        if (ctx.json) return printJson(forest);
        const flat = flatten(forest);
        const prefixes = new Map(flat.map((f) => [f.row.pid, f.prefix]));
        return print(rows.length ? psTable(flat.map((f) => f.row), (r) => prefixes.get(r.pid) ?? '') : colours.dim('no processes'));
      }
      if (ctx.json) return printJson(rows);
      print(rows.length ? psTable(rows) : colours.dim('no processes'));
    });

  program
    .command('spawn')
    .description('spawn a process from flags or a JSON file (the body of POST /v1/processes); prints its pid')
    .option('-f, --file <file>', 'a JSON spawn request ("-": standard input); flags override its fields')
    .option('--name <name>', 'process name')
    .option('--task <task>', 'what the agent is asked to do')
    .option('--image <image>', 'an image (GET /v1/images), e.g. demo')
    .option('--priority <n>', '0 (most urgent) … 100', int('--priority'))
    .option('--model <model>', 'a model name, or provider:model (e.g. openai:gpt-4.1, scripted:scripted)')
    .option('--tool-mode <mode>', 'native or text')
    .option('--cap <grant...>', 'capability grants: "fs:/**:rw", or JSON such as \'{"cap":"net:*","effect":"ask"}\'')
    .option('--max-steps <n>', 'quota: LLM steps', int('--max-steps'))
    .option('--max-tokens <n>', 'quota: tokens', int('--max-tokens'))
    .option('--script <file>', 'scripted-provider turns as a JSON array (tests, demos)')
    .action(async (o: Record<string, string | number | string[] | undefined>, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const readJson = (f: string): unknown => {
        try {
          return JSON.parse(readFileSync(f === '-' ? 0 : f, 'utf8'));
        } catch (e) {
          throw new CliError(`cannot read ${f === '-' ? 'standard input' : f} as JSON: ${(e as Error).message}`, EXIT.usage);
        }
      };
      const body: Record<string, unknown> = o.file ? (readJson(String(o.file)) as Record<string, unknown>) : {};
      if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new CliError('the spawn file must hold a JSON object', EXIT.usage);
      for (const k of ['name', 'task', 'image', 'priority'] as const) if (o[k] !== undefined) body[k] = o[k];
      if (o.toolMode !== undefined) body.tool_mode = o.toolMode;
      if (Array.isArray(o.cap)) body.capabilities = grantsOf(o.cap);
      if (typeof o.model === 'string') body.model = modelOf(o.model);
      if (o.maxSteps !== undefined || o.maxTokens !== undefined) body.quotas = { ...(body.quotas as object | undefined), ...(o.maxSteps !== undefined ? { max_steps: o.maxSteps } : {}), ...(o.maxTokens !== undefined ? { max_tokens: o.maxTokens } : {}) };
      if (o.script !== undefined) body.script = readJson(String(o.script));
      if (body.name === undefined || body.task === undefined) throw new CliError('spawn needs --name and --task (or a --file that has them)', EXIT.usage);
      const pcb = await call(ctx.target, ctx.api.POST('/v1/processes', { body: body as SpawnBody }));
      if (ctx.json) return printJson(pcb);
      print(pcb.pid);
    });

  const signal = async (cmd: Command, target: string, sig: Signal, cascade: boolean) => {
    const ctx = ctxOf(cmd);
    const pcb = await call(ctx.target, ctx.api.POST('/v1/processes/{pid}/signals', { params: { path: { pid: target } }, body: { signal: sig, ...(cascade ? { cascade: true } : {}) } }));
    if (ctx.json) return printJson(pcb);
    print(`${pcb.pid}  ${sig}  → ${state(pcb.state)}`);
  };
  const SIGNALS: Record<string, Signal> = { TERM: 'SIGTERM', '15': 'SIGTERM', KILL: 'SIGKILL', '9': 'SIGKILL', STOP: 'SIGSTOP', '19': 'SIGSTOP', CONT: 'SIGCONT', '18': 'SIGCONT' };
  program
    .command('kill')
    .description('send a signal (default SIGTERM: one clean-up step, then ended)')
    .argument('<pid>', 'the process', pid)
    .option('-s, --signal <sig>', 'TERM, KILL, STOP or CONT (with or without SIG, or 15, 9, 19, 18)', 'TERM')
    .option('--cascade', 'signal the whole process group: the process and all its descendants')
    .action(async (target: string, o: { signal: string; cascade?: boolean }, cmd: Command) => {
      const sig = SIGNALS[o.signal.toUpperCase().replace(/^SIG/, '')];
      if (!sig) throw new CliError(`unknown signal "${o.signal}": TERM, KILL, STOP or CONT`, EXIT.usage);
      await signal(cmd, target, sig, o.cascade === true);
    });
  for (const [name, sig, what] of [
    ['stop', 'SIGSTOP', 'stop a process (SIGSTOP): it keeps its state and takes no more steps'],
    ['cont', 'SIGCONT', 'continue a stopped process (SIGCONT)'],
  ] as const) {
    program
      .command(name)
      .description(what)
      .argument('<pid>', 'the process', pid)
      .option('--cascade', 'the whole process group')
      .action((target: string, o: { cascade?: boolean }, cmd: Command) => signal(cmd, target, sig, o.cascade === true));
  }

  program
    .command('send')
    .description("deliver a message to a process's mailbox (BODY: JSON, else sent as a string)")
    .argument('<pid>', 'the recipient', pid)
    .argument('<body>', 'the message body')
    .option('--correlation-id <id>', 'correlation id for request/reply')
    .option('--reply-to <pid>', 'where replies should go', pid)
    .option('--id <key>', 'idempotency key: a second message with the same id is a duplicate')
    .action(async (target: string, raw: string, o: { correlationId?: string; replyTo?: string; id?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      let body: unknown = raw;
      try {
        body = JSON.parse(raw);
      } catch {
        // not JSON: a string
      }
      const r = await call(
        ctx.target,
        ctx.api.POST('/v1/processes/{pid}/messages', {
          params: { path: { pid: target } },
          body: { body, ...(o.correlationId ? { correlation_id: o.correlationId } : {}), ...(o.replyTo ? { reply_to: o.replyTo } : {}), ...(o.id ? { id: o.id } : {}) },
        }),
      );
      if (ctx.json) return printJson(r);
      print(`${r.status}  ${r.id}`);
    });

  program
    .command('cat')
    .description("print a file from a process's filesystem (a directory: its listing)")
    .argument('<pid>', 'the process', pid)
    .argument('[path]', 'the path', '/')
    .action(async (target: string, file: string, _o: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const view = await call(ctx.target, ctx.api.GET('/v1/processes/{pid}/fs/{path}', { params: { path: { pid: target, path: file.replace(/^\/+/, '') } } }));
      if (ctx.json) return printJson(view);
      if (view.type === 'file') return void process.stdout.write(view.content);
      print(table(['NAME', 'TYPE', 'SIZE'], view.entries.map((e) => [e.type === 'dir' ? colours.blue(`${e.name}/`) : e.name, e.type, e.size ?? ''])));
    });

  program
    .command('context')
    .description("a process's context: the working set under its token budget, and the page table")
    .argument('<pid>', 'the process', pid)
    .action(async (target: string, _o: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const view = await call(ctx.target, ctx.api.GET('/v1/processes/{pid}/context', { params: { path: { pid: target } } }));
      if (ctx.json) return printJson(view);
      const resident = view.steps.filter((s) => s.resident);
      print(fields([['budget', `${view.tokens} of ${view.budget} tokens in the working set`], ['steps', `${resident.length} resident, ${view.steps.length - resident.length} swapped out`]]));
      print('');
      print(
        table(
          ['STEP', 'WHERE', 'TOKENS', 'PAGES', 'EXCERPT'],
          view.steps.map((s) => [
            s.step,
            s.resident ? (s.recalled ? colours.cyan('recalled') : colours.green('resident')) : colours.dim('swapped'),
            s.tokens,
            s.pages.map((p) => `${p.kind}${p.pinned ? colours.yellow('*') : ''}`).join(' '),
            short(s.pages[0]?.excerpt ?? '', 60),
          ]),
        ),
      );
    });
}
