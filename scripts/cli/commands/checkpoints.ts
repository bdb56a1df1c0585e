/**
 * Checkpoint commands (docs/checkpoints.md): list a process's checkpoints, take one, inspect one,
 * diff two, delete, restore (roll back) and fork; and `trace`, the process's run as a trace file
 * (spawn with `replay: <trace>` to run it again).
 */
import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { paths } from '../api-types.ts';
import { CliError, EXIT, call } from '../client.ts';
import { type Ctx, collect, ctxOf, grantsOf, int, modelOf, pid } from '../context.ts';
import { ago, colours, fields, print, printJson, state, table } from '../output.ts';

type ForkBody = paths['/v1/processes/{pid}/checkpoints/{id}/fork']['post']['requestBody']['content']['application/json'];

const CKPT = /^ck\d{4,}-[0-9a-f]{8}$/;
/** Checkpoint ids are checked before a request, like pids: a typo is a usage error. */
function ckpt(v: string): string {
  if (!CKPT.test(v)) throw new CliError(`"${v}" is not a checkpoint id (ck, a number, "-" and 8 hex digits, as checkpoints lists them)`, EXIT.usage);
  return v;
}

/** 1536 → "1.5 KiB". */
export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB'];
  let v = n;
  let u = -1;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[u]}`;
}

/**
 * A command on one checkpoint (`<pid> <id>`): one request, its answer printed as JSON with --json,
 * else as `human` writes it. The command's own options come in as `o`.
 */
function onCheckpoint<O, T>(command: Command, request: (ctx: Ctx, target: string, id: string, o: O) => Promise<T>, human: (answer: T, id: string) => string): Command {
  return command
    .argument('<pid>', 'the process', pid)
    .argument('<id>', 'the checkpoint', ckpt)
    .action(async (target: string, id: string, o: O, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const answer = await request(ctx, target, id, o);
      if (ctx.json) return printJson(answer);
      print(human(answer, id));
    });
}

/**
 * The list, as `checkpoints PID` and `checkpoints ls PID`. Only the group declares -n: commander
 * reads a group's options after its subcommand too, so `ls` takes the group's (optsWithGlobals).
 */
function listing(command: Command): Command {
  return command.argument('<pid>', 'the process', pid).action(async (target: string, _o: unknown, cmd: Command) => {
    const ctx = ctxOf(cmd);
    const o = cmd.optsWithGlobals<{ limit: number }>();
    let policy: { every_steps: number; on_sigstop: boolean; keep: number } | undefined;
    const rows = await collect(async (cursor) => {
      const page = await call(ctx.target, ctx.api.GET('/v1/processes/{pid}/checkpoints', { params: { path: { pid: target }, query: { limit: Math.min(500, Math.max(1, o.limit)), ...(cursor ? { cursor } : {}) } } }));
      policy = page.policy;
      return { rows: page.checkpoints, next_cursor: page.next_cursor };
    }, o.limit);
    if (ctx.json) return printJson({ checkpoints: rows, policy });
    if (policy) print(colours.dim(`automatic: ${policy.every_steps ? `every ${policy.every_steps} steps` : 'off'}${policy.on_sigstop ? ', on SIGSTOP' : ''}, keep ${policy.keep}`));
    if (!rows.length) return print(colours.dim('no checkpoints'));
    const now = Date.now();
    print(table(['ID', 'SEQ', 'STEP', 'STATE', 'REASON', 'LABEL', 'AGE', 'STORED', 'NEW'], rows.map((r) => [r.id, r.seq, r.step, state(r.state), r.reason, r.label ?? '', ago(r.created_at, now), bytes(r.stored_bytes), bytes(r.new_bytes)])));
  });
}

export function registerCheckpoints(program: Command): void {
  const checkpoints = listing(program.command('checkpoints').alias('checkpoint').description("a process's checkpoints, oldest first, and its automatic-checkpoint policy").option('-n, --limit <n>', 'at most this many', int('--limit'), 1000));
  listing(checkpoints.command('ls').alias('list').description('the same list: checkpoints ls PID [-n N]'));

  checkpoints
    .command('create')
    .description('take a checkpoint at the current step boundary; prints its id')
    .argument('<pid>', 'the process', pid)
    .option('-l, --label <label>', 'a label to find it by')
    .action(async (target: string, o: { label?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const c = await call(ctx.target, ctx.api.POST('/v1/processes/{pid}/checkpoints', { params: { path: { pid: target } }, body: o.label ? { label: o.label } : {} }));
      if (ctx.json) return printJson(c);
      print(c.id);
    });

  onCheckpoint(
    checkpoints.command('show').description('inspect a checkpoint: its tables (rows, chunks), sizes, step and time'),
    (ctx, target, id) => call(ctx.target, ctx.api.GET('/v1/processes/{pid}/checkpoints/{id}', { params: { path: { pid: target, id } } })),
    (m) =>
      [
        fields([
          ['checkpoint', `${m.pid}@${m.id}`],
          ['label', m.label ?? '-'],
          ['taken', `${new Date(m.created_at).toISOString()} (${m.reason}) at step ${m.step}, ${m.state}`],
          ['size', `${bytes(m.sizes.raw_bytes)} raw, ${bytes(m.sizes.stored_bytes)} stored, ${bytes(m.sizes.new_bytes)} new (${m.sizes.new_chunks} of ${m.sizes.chunks} chunks)`],
          ['packs', String(m.packs.length)],
          ['digest', m.digest],
          ...(m.forked_from ? [['forked from', m.forked_from] as const] : []),
        ]),
        '',
        // A table's chunks are runs [pack, first index, count] in the checkpoint's packs.
        table(['TABLE', 'POLICY', 'ROWS', 'CHUNKS'], m.tables.map((t) => [t.name, t.policy, t.rows, t.chunks.reduce((n, run) => n + (run[2] ?? 0), 0)])),
      ].join('\n'),
  );

  checkpoints
    .command('diff')
    .description('what changed between two checkpoints: tables (chunks, rows) and files')
    .argument('<pid>', 'the process', pid)
    .argument('<from>', 'the earlier checkpoint', ckpt)
    .argument('<to>', 'the later checkpoint', ckpt)
    .action(async (target: string, from: string, to: string, _o: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const d = await call(ctx.target, ctx.api.GET('/v1/processes/{pid}/checkpoints/{id}/diff/{other}', { params: { path: { pid: target, id: from, other: to } } }));
      if (ctx.json) return printJson(d);
      print(`${d.from} → ${d.to}: ${d.steps} steps, ${d.same_state ? 'the same state' : 'state changed'}`);
      const changed = d.tables.filter((t) => t.chunks_added || t.chunks_removed || t.rows_before !== t.rows_after);
      if (changed.length) print(table(['TABLE', 'ROWS', 'CHUNKS +', 'CHUNKS -'], changed.map((t) => [t.table, `${t.rows_before} → ${t.rows_after}`, t.chunks_added, t.chunks_removed])));
      if (d.changed_files.length) print(`files changed:\n${d.changed_files.map((f) => `  ${f}`).join('\n')}`);
    });

  onCheckpoint(
    checkpoints.command('delete').alias('rm').description('delete a checkpoint; chunks no other checkpoint uses are freed'),
    (ctx, target, id) => call(ctx.target, ctx.api.DELETE('/v1/processes/{pid}/checkpoints/{id}', { params: { path: { pid: target, id } } })),
    (r) => `deleted ${r.deleted}  (${r.chunks_freed} chunks freed)`,
  );

  onCheckpoint(
    checkpoints.command('restore').description('roll the process back to a checkpoint (a new version; its events and the audit record it)'),
    (ctx, target, id) => call(ctx.target, ctx.api.POST('/v1/processes/{pid}/checkpoints/{id}/restore', { params: { path: { pid: target, id } } })),
    (pcb, id) => `${pcb.pid}  restored to ${id}  → ${state(pcb.state)} at step ${pcb.usage.steps}`,
  );

  onCheckpoint(
    checkpoints
      .command('fork')
      .description('start a new process from a checkpoint (capabilities can only narrow); prints the new pid')
      .option('--name <name>', 'the new process name')
      .option('--task <task>', 'a different task: the fork reads it after its history')
      .option('--model <model>', 'a model name, or provider:model')
      .option('--priority <n>', '0 (most urgent) … 100', int('--priority'))
      .option('--cap <grant...>', 'narrower capability grants (each covered by the original and the checkpoint)'),
    (ctx, target, id, o: { name?: string; task?: string; model?: string; priority?: number; cap?: string[] }) => {
      const body = {
        ...(o.name ? { name: o.name } : {}),
        ...(o.task ? { task: o.task } : {}),
        ...(o.model ? { model: modelOf(o.model) } : {}),
        ...(o.priority !== undefined ? { priority: o.priority } : {}),
        ...(o.cap ? { capabilities: grantsOf(o.cap) } : {}),
      } as ForkBody;
      return call(ctx.target, ctx.api.POST('/v1/processes/{pid}/checkpoints/{id}/fork', { params: { path: { pid: target, id } }, body }));
    },
    (pcb) => pcb.pid,
  );

  program
    .command('trace')
    .description("the process's run as a trace file (LLM requests and responses by step, syscall results); spawn with replay to re-run it")
    .argument('<pid>', 'the process', pid)
    .option('-o, --output <file>', 'write the trace to this file (default: standard output)')
    .action(async (target: string, o: { output?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const trace = await call(ctx.target, ctx.api.GET('/v1/processes/{pid}/trace', { params: { path: { pid: target } } }));
      // The trace is JSON whatever --json says: it is a file format, written as such.
      if (o.output === undefined) return printJson(trace);
      try {
        writeFileSync(o.output, `${JSON.stringify(trace, null, 2)}\n`);
      } catch (e) {
        throw new CliError(`cannot write ${o.output}: ${(e as Error).message}`, EXIT.error);
      }
      const summary = { file: o.output, pid: trace.pid, steps: trace.steps.length, syscalls: trace.syscalls.length, exited: trace.exit !== null };
      if (ctx.json) return printJson(summary);
      print(`${o.output}: ${summary.steps} steps, ${summary.syscalls} syscalls of ${trace.pid}${summary.exited ? '' : ' (still running)'}`);
    });
}
