/**
 * Pipeline commands (docs/pipelines.md): list runs, show one run stage by stage, start a run from a
 * spec file or a stored spec, cancel a run.
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { paths } from '../api-types.ts';
import { CliError, EXIT, call } from '../client.ts';
import { collect, ctxOf, int } from '../context.ts';
import { ago, colours, fields, print, printJson, short, table } from '../output.ts';

type Status = NonNullable<paths['/v1/pipelines']['get']['parameters']['query']>['status'];
type StartBody = paths['/v1/pipelines']['post']['requestBody']['content']['application/json'];
const STATUSES = ['queued', 'running', 'complete', 'failed', 'cancelled'];

const status = (s: string): string => (s === 'complete' ? colours.green(s) : s === 'failed' ? colours.red(s) : s === 'running' ? colours.cyan(s) : s === 'cancelled' ? colours.dim(s) : s);

function json(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new CliError(`${what} is not valid JSON: ${(e as Error).message}`, EXIT.usage);
  }
}

export function registerPipelines(program: Command): void {
  const pipelines = program
    .command('pipelines')
    .description('pipeline runs, newest first')
    .option('--status <status>', STATUSES.join(', '))
    .option('-n, --limit <n>', 'at most this many runs', int('--limit'), 50)
    .action(async (o: { status?: string; limit: number }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      if (o.status && !STATUSES.includes(o.status)) throw new CliError(`unknown status "${o.status}": ${STATUSES.join(', ')}`, EXIT.usage);
      const rows = await collect(async (cursor) => {
        const query = { limit: Math.min(500, o.limit), ...(o.status ? { status: o.status as Status } : {}), ...(cursor ? { cursor } : {}) };
        const page = await call(ctx.target, ctx.api.GET('/v1/pipelines', { params: { query } }));
        return { rows: page.pipelines, next_cursor: page.next_cursor };
      }, o.limit);
      if (ctx.json) return printJson(rows);
      if (!rows.length) return print(colours.dim('no pipeline runs'));
      const now = Date.now();
      print(table(['ID', 'NAME', 'STATUS', 'AGE', 'ENDED', 'BY'], rows.map((r) => [r.id, r.name ?? '-', status(r.status), ago(r.created_at, now), r.ended_at ? ago(r.ended_at, now) : '', r.created_by])));
    });

  pipelines
    .command('show')
    .description('one run: every stage, its processes, results and errors')
    .argument('<id>', 'the run id')
    .action(async (id: string, _o: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const run = await call(ctx.target, ctx.api.GET('/v1/pipelines/{id}', { params: { path: { id } } }));
      if (ctx.json) return printJson(run);
      print(fields([['id', run.id], ['name', run.name ?? '-'], ['status', status(run.status)], ...(run.error ? [['error', short(run.error, 120)] as const] : [])]));
      print('');
      print(
        table(
          ['STAGE', 'TYPE', 'STATUS', 'ITEMS', 'PROCESSES', 'RESULT'],
          run.stages.map((s) => [s.name, s.type, status(s.status), s.items ?? '-', s.type === 'approval' ? (s.approval_id ?? '-') : s.tasks.map((t) => `${t.pid}${t.exit_code !== null ? `(${t.exit_code})` : ''}`).join(' '), short(s.error ?? s.result ?? '', 50)]),
        ),
      );
    });

  pipelines
    .command('start')
    .description('start a run of a spec file (-f) or a stored spec (--name)')
    .option('-f, --file <file>', 'a spec, or a whole request {spec, input} as in workflows/examples/ (JSON; "-": standard input)')
    .option('--name <name>', 'a stored spec (PUT /v1/pipeline-specs/:name)')
    .option('--input <json>', 'what {{input.…}} reads, as JSON')
    .action(async (o: { file?: string; name?: string; input?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      if ((o.file === undefined) === (o.name === undefined)) throw new CliError('give exactly one of -f FILE and --name NAME', EXIT.usage);
      let spec: unknown;
      if (o.file !== undefined) {
        const file = o.file;
        let text: string;
        try {
          text = readFileSync(file === '-' ? 0 : file, 'utf8');
        } catch (e) {
          throw new CliError(`cannot read ${file}: ${(e as Error).message}`, EXIT.usage);
        }
        spec = json(text, file);
      }
      // A file is a spec ({stages, …}) or a whole start request ({spec | name, input}), like workflows/examples/.
      const whole = spec !== null && typeof spec === 'object' && !('stages' in spec) && ('spec' in spec || 'name' in spec);
      const base = whole ? (spec as Record<string, unknown>) : spec !== undefined ? { spec } : { name: o.name };
      const body = { ...base, ...(o.input !== undefined ? { input: json(o.input, '--input') } : {}) } as StartBody;
      const r = await call(ctx.target, ctx.api.POST('/v1/pipelines', { body }));
      if (ctx.json) return printJson(r);
      print(r.id);
    });

  pipelines
    .command('cancel')
    .description('cancel a run: no new process starts, and every live one gets SIGTERM (cascade)')
    .argument('<id>', 'the run id')
    .action(async (id: string, _o: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const run = await call(ctx.target, ctx.api.POST('/v1/pipelines/{id}/cancel', { params: { path: { id } } }));
      if (ctx.json) return printJson(run);
      print(`${run.id}  ${status(run.status)}`);
    });
}
