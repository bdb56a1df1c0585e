/**
 * Governance commands: approvals (approve, deny), audit (and audit verify), tokens, login.
 */
import { createInterface } from 'node:readline/promises';
import type { Command } from 'commander';
import type { paths } from '../api-types.ts';
import { CliError, EXIT, apiClient, call, configPath, resolveTarget, writeConfig } from '../client.ts';
import { collect, ctxOf, int, pid } from '../context.ts';
import { ago, clock, colours, fields, print, printJson, short, table } from '../output.ts';

type ApprovalStatus = NonNullable<paths['/v1/approvals']['get']['parameters']['query']>['status'];
type Role = paths['/v1/tokens']['post']['requestBody']['content']['application/json']['role'];
const APPROVAL_STATUSES = ['pending', 'approved', 'denied', 'expired', 'all'];

/** Who waits on an approval: its process, or a pipeline's gate as <run>/<stage>. */
const approver = (a: { pid: string | null; pipeline: string | null; stage: string | null }): string => a.pid ?? `${a.pipeline ?? '?'}/${a.stage ?? '?'}`;

export function registerGovernance(program: Command): void {
  program
    .command('approvals')
    .description('human approval requests, oldest first (default: pending)')
    .option('--status <status>', APPROVAL_STATUSES.join(', '), 'pending')
    .option('-p, --pid <pid>', "only this process's requests", pid)
    .option('-n, --limit <n>', 'at most this many', int('--limit'), 1000)
    .action(async (o: { status: string; pid?: string; limit: number }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      if (!APPROVAL_STATUSES.includes(o.status)) throw new CliError(`unknown status "${o.status}": ${APPROVAL_STATUSES.join(', ')}`, EXIT.usage);
      const rows = await collect(async (cursor) => {
        const query = { status: o.status as ApprovalStatus, limit: Math.min(500, o.limit), ...(o.pid ? { pid: o.pid } : {}), ...(cursor ? { cursor } : {}) };
        const page = await call(ctx.target, ctx.api.GET('/v1/approvals', { params: { query } }));
        return { rows: page.approvals, next_cursor: page.next_cursor };
      }, o.limit);
      if (ctx.json) return printJson(rows);
      if (!rows.length) return print(colours.dim(`no ${o.status === 'all' ? '' : `${o.status} `}approvals`));
      const now = Date.now();
      print(table(['ID', 'PID', 'STATUS', 'CALL', 'CAPABILITY', 'AGE', 'REASON'], rows.map((a) => [a.id, approver(a), a.status, `${a.syscall} ${short(a.args, 50)}`, a.capability, ago(a.created_at, now), short(a.reason, 40)])));
    });

  const decide = async (cmd: Command, id: string, body: { decision: 'approve' | 'deny'; grant?: 'once' | 'always'; note?: string }) => {
    const ctx = ctxOf(cmd);
    const a = await call(ctx.target, ctx.api.POST('/v1/approvals/{id}', { params: { path: { id } }, body: { grant: 'once', note: '', ...body } }));
    if (ctx.json) return printJson(a);
    print(`${a.id}  ${a.status}${a.grant_kind ? ` (${a.grant_kind})` : ''}  ${a.syscall} for ${approver(a)}`);
  };
  program
    .command('approve')
    .description('approve a request: the process wakes and the call runs')
    .argument('<id>', 'the approval id')
    .option('--always', 'a standing grant for the capability: the same kind of call is not asked again')
    .option('--note <text>', 'a note for the audit trail')
    .action((id: string, o: { always?: boolean; note?: string }, cmd: Command) => decide(cmd, id, { decision: 'approve', grant: o.always ? 'always' : 'once', ...(o.note ? { note: o.note } : {}) }));
  program
    .command('deny')
    .description('deny a request: the call fails with EPERM and the process goes on')
    .argument('<id>', 'the approval id')
    .option('--note <text>', 'why (the process sees it)')
    .action((id: string, o: { note?: string }, cmd: Command) => decide(cmd, id, { decision: 'deny', ...(o.note ? { note: o.note } : {}) }));

  const audit = program
    .command('audit')
    .description("the tenant's audit log, oldest first (or one process's)")
    .argument('[pid]', 'only this process', pid)
    .option('--since <seq>', 'only rows after this seq', int('--since'), 0)
    .option('-n, --limit <n>', 'at most this many rows', int('--limit'), 1000)
    .option('--tenant <tenant>', "the bootstrap admin: another tenant's log")
    .action(async (target: string | undefined, o: { since: number; limit: number; tenant?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const rows = await collect(async (cursor) => {
        const query = { limit: Math.min(1000, o.limit), cursor: cursor ?? String(o.since), ...(target ? { pid: target } : {}), ...(o.tenant ? { tenant: o.tenant } : {}) };
        const page = await call(ctx.target, ctx.api.GET('/v1/audit', { params: { query } }));
        return { rows: page.rows, next_cursor: page.next_cursor };
      }, o.limit);
      if (ctx.json) return printJson(rows);
      if (!rows.length) return print(colours.dim('no audit rows'));
      print(table(['SEQ', 'TIME', 'PID', 'KIND', 'ACTION', 'OUTCOME', 'CODE'], rows.map((r) => [r.seq, clock(r.at), r.pid, r.kind, r.action, r.outcome === 'ok' ? colours.green(r.outcome) : colours.red(r.outcome), r.code ?? ''])));
    });
  audit
    .command('verify')
    .description("recompute the tenant's audit hash chains (its own and each process's); exit code 9 if a row was edited, removed or the chain truncated")
    .option('--tenant <tenant>', "the bootstrap admin: another tenant's chain")
    .action(async (o: { tenant?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const report = await call(ctx.target, ctx.api.GET('/v1/audit/verify', { params: { query: o.tenant ? { tenant: o.tenant } : {} } }));
      if (ctx.json) printJson(report);
      else if (report.ok) print(`${colours.green('ok')}  ${report.rows} rows in the chain of ${report.tenant} and its ${report.chains} process chains${report.head ? `, head #${report.head.seq} ${report.head.hash.slice(0, 16)}…` : ''}`);
      else {
        const b = report.first_broken;
        const where = b?.pid ? `process ${b.pid}, row ${b.pid_seq}` : `tenant chain row ${b?.chain_seq}`;
        print(`${colours.red('BROKEN')}  at ${where} (${b?.id ?? 'missing'}): ${b?.reason}`);
      }
      if (!report.ok) throw new CliError('', EXIT.auditBroken);
    });

  const tokens = program
    .command('tokens')
    .description("admin: the tenant's API tokens (no secrets)")
    .option('--tenant <tenant>', "the bootstrap admin: another tenant's tokens")
    .action(async (o: { tenant?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const rows = await collect(async (cursor) => {
        const page = await call(ctx.target, ctx.api.GET('/v1/tokens', { params: { query: { limit: 500, ...(o.tenant ? { tenant: o.tenant } : {}), ...(cursor ? { cursor } : {}) } } }));
        return { rows: page.tokens, next_cursor: page.next_cursor };
      }, 100_000);
      if (ctx.json) return printJson(rows);
      const now = Date.now();
      print(table(['ID', 'ROLE', 'NAME', 'CREATED', 'BY', 'REVOKED'], rows.map((t) => [t.id, t.role, t.name, ago(t.created_at, now), t.created_by, t.revoked_at ? ago(t.revoked_at, now) : ''])));
    });
  tokens
    .command('create')
    .description('create a token; its secret is shown once')
    .requiredOption('--role <role>', 'reader, operator or admin')
    .requiredOption('--name <name>', 'what it is for')
    .option('--tenant <tenant>', 'the bootstrap admin: a token of another tenant')
    .action(async (o: { role: string; name: string; tenant?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      if (!['reader', 'operator', 'admin'].includes(o.role)) throw new CliError(`unknown role "${o.role}": reader, operator or admin`, EXIT.usage);
      const t = await call(ctx.target, ctx.api.POST('/v1/tokens', { body: { role: o.role as Role, name: o.name, ...(o.tenant ? { tenant: o.tenant } : {}) } }));
      if (ctx.json) return printJson(t);
      print(fields([['id', t.id], ['tenant', t.tenant], ['role', t.role], ['token', t.token]]));
      process.stderr.write('The token is shown only now: store it (agentos login --token …, or AGENTOS_TOKEN).\n');
    });
  tokens
    .command('revoke')
    .description('revoke a token')
    .argument('<id>', 'the token id')
    .action(async (id: string, _o: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const r = await call(ctx.target, ctx.api.DELETE('/v1/tokens/{id}', { params: { path: { id } } }));
      if (ctx.json) return printJson(r);
      print(`${r.id}  revoked`);
    });

  program
    .command('login')
    .description(`check a token against the kernel and save it with the URL (mode 0600) for later commands`)
    .addHelpText('after', '\nThe token: --token <token>, or read from standard input. The URL: --url, AGENTOS_URL, or the default.')
    .action(async (_o: unknown, cmd: Command) => {
      const globals = cmd.optsWithGlobals<{ url?: string; token?: string; json?: boolean }>();
      let token = globals.token;
      if (!token) {
        const rl = createInterface({ input: process.stdin, output: process.stdin.isTTY ? process.stderr : undefined, terminal: process.stdin.isTTY });
        token = (await rl.question(process.stdin.isTTY ? 'token: ' : '')).trim();
        rl.close();
      }
      if (!token) throw new CliError('no token given: agentos login --token <token>, or pipe it in', EXIT.usage);
      const target = { ...resolveTarget({ url: globals.url, token }), source: 'flag' as const };
      await call(target, apiClient(target).GET('/v1/processes', { params: { query: { limit: 1 } } }));
      const file = configPath();
      writeConfig(file, { url: target.url, token });
      if (globals.json) return printJson({ url: target.url, config: file });
      print(`logged in to ${target.url}; saved to ${file}`);
    });
}
