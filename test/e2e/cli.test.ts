/**
 * The `agentos` CLI as a user runs it: a subprocess against the real kernel under `wrangler dev`
 * (one for the whole project, test/e2e/kernel-setup.ts). Every command, its --json output parsed,
 * the exit codes of docs/cli.md, and `logs -f` printing events as they happen.
 */
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { agentos, agentosJson, agentosOnTerminal, eventOf, kernel, reached } from './support.ts';

const dir = mkdtempSync(path.join(os.tmpdir(), 'agentos-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const scripted = 'scripted:scripted';
type Call = { name: string; args: Record<string, unknown> };
const turns = (...calls: Call[]) => JSON.stringify(calls.map((c) => ({ tool_calls: [c] })));
const scriptFile = (name: string, ...calls: Call[]): string => {
  const f = path.join(dir, `${name}.json`);
  writeFileSync(f, turns(...calls));
  return f;
};
type Pcb = { pid: string; state: string; ppid: string | null; wait: { reason: string } | null; exit: { code: number | string } | null };

async function spawnScript(name: string, ...calls: Call[]): Promise<string> {
  const r = await agentos(['spawn', '--name', name, '--task', `test ${name}`, '--model', scripted, '--script', scriptFile(name, ...calls)]);
  expect(r.code, r.stderr).toBe(0);
  const pid = r.stdout.trim();
  expect(pid).toMatch(/^p[0-9a-z]{20}$/);
  return pid;
}

const sleepFor = { name: 'sleep', args: { seconds: 3600 } };

describe('processes', () => {
  it('spawn (flags and a JSON file), ps with filters and --tree, context, cat', async () => {
    const file = path.join(dir, 'spawn.json');
    writeFileSync(file, JSON.stringify({ name: 'from-file', task: 'write then sleep', model: { provider: 'scripted', model: 'scripted' }, script: JSON.parse(turns({ name: 'fs_write', args: { path: 'notes/hello.txt', content: 'hello from a file\n' } }, { name: 'spawn', args: { name: 'kid', task: 'say hi', image: 'demo-helper' } }, sleepFor)) }));
    const pcb = await agentosJson<Pcb>(['spawn', '-f', file, '--priority', '20']);
    expect(pcb).toMatchObject({ state: 'ready', ppid: null });
    const parent = pcb.pid;
    await reached(parent, 'sleeping');

    const mine = await agentosJson<{ pid: string; state: string; priority: number }[]>(['ps', '--state', 'sleeping', '--all']);
    expect(mine.find((p) => p.pid === parent)).toMatchObject({ state: 'sleeping', priority: 20 });
    expect(mine.every((p) => p.state === 'sleeping')).toBe(true);
    const kids = await agentosJson<{ pid: string; ppid: string; name: string }[]>(['ps', '--parent', parent]);
    expect(kids.map((k) => k.name)).toEqual(['kid']);
    const tree = await agentosJson<{ pid: string; children: { pid: string }[] }[]>(['ps', '--tree']);
    expect(tree.find((n) => n.pid === parent)?.children.map((c) => c.pid)).toEqual([kids[0]!.pid]);
    const human = await agentos(['ps', '--tree']);
    expect(human.stdout).toMatch(new RegExp(`^${parent}\\s+sleeping\\s+20\\s+from-file`, 'm'));
    expect(human.stdout).toMatch(new RegExp(`^└─ ${kids[0]!.pid}\\s`, 'm'));

    const cat = await agentos(['cat', parent, 'notes/hello.txt']);
    expect(cat).toMatchObject({ code: 0, stdout: 'hello from a file\n' });
    const listing = await agentosJson<{ type: string; entries: { name: string }[] }>(['cat', parent, 'notes']);
    expect(listing).toMatchObject({ type: 'dir', entries: [{ name: 'hello.txt' }] });
    expect((await agentos(['cat', parent, 'nope.txt'])).code).toBe(6);

    const context = await agentosJson<{ budget: number; tokens: number; steps: { step: number; resident: boolean }[] }>(['context', parent]);
    expect(context.budget).toBe(64_000);
    expect(context.steps.length).toBeGreaterThan(2);
    expect((await agentos(['context', parent])).stdout).toMatch(/tokens in the working set/);

    expect((await agentos(['kill', parent, '-s', 'KILL', '--cascade'])).code).toBe(0);
    await reached(kids[0]!.pid, 'terminated');
  });

  it('kill, stop and cont change state; a second kill is a conflict (exit 8)', async () => {
    const pid = await spawnScript('sleeper', sleepFor);
    await reached(pid, 'sleeping');
    expect(await agentosJson<Pcb>(['stop', pid])).toMatchObject({ state: 'stopped' });
    const cont = await agentos(['cont', pid]);
    expect(cont.stdout).toMatch(new RegExp(`^${pid}  SIGCONT  → sleeping`));
    expect(await agentosJson<Pcb>(['kill', pid, '-s', 'SIGKILL'])).toMatchObject({ state: 'terminated', exit: { code: 'SIGKILL' } });
    const again = await agentos(['kill', pid]);
    expect(again.code).toBe(8);
    expect(again.stderr).toMatch(/ESTATE/);
    expect((await agentos(['kill', pid, '-s', 'HUP'])).code).toBe(2);
  });

  it('logs -f prints events live, one line each, and ends with the process; send wakes it', async () => {
    const pid = await spawnScript('listener', { name: 'recv', args: { timeout_seconds: 600 } }, { name: 'exit', args: { code: 0, result: 'heard it' } });
    const follow = agentos(['logs', pid, '-f']);
    // The follower is attached and has printed the process blocking on its mailbox…
    await follow.until(/running → waiting \(block\)/);
    // …and what happens from now on reaches it while it runs.
    const sent = await agentos(['send', pid, '{"hello": "world"}']);
    expect(sent.code, sent.stderr).toBe(0);
    expect(sent.stdout).toMatch(/^applied  /);
    const done = await follow;
    expect(done.code, done.stderr).toBe(0);
    const lines = done.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^\d\d:\d\d:\d\d\.\d{3}\s+#1 spawned\s+listener/);
    expect(done.stdout).toMatch(/mail\s+.*"applied":1/);
    expect(done.stdout).toMatch(/syscall\s+recv \{"timeout_seconds":600\} → \{"id":/);
    expect(done.stdout).toMatch(/exit\s+code 0 \(exited\): heard it/);
    expect(lines.at(-1)).toMatch(/zombie → terminated/);
    const seqs = lines.map((l) => Number(/#(\d+)/.exec(l)?.[1]));
    expect(seqs).toEqual(seqs.map((_, i) => i + 1));

    const json = await agentosJson<{ seq: number; type: string; data: { name?: string; result?: { body?: unknown } } }[]>(['logs', pid]);
    expect(json.map((e) => e.seq)).toEqual(seqs);
    expect(json.find((e) => e.type === 'syscall' && e.data.name === 'recv')?.data.result?.body).toEqual({ hello: 'world' });
    const tail = await agentos(['logs', pid, '--since', String(seqs.length - 2), '--json']);
    expect((JSON.parse(tail.stdout) as unknown[]).length).toBe(2);
  });

  it('top: live processes with rates, and the scheduler pools, as JSON lines', async () => {
    const pid = await spawnScript('top-sleeper', sleepFor);
    await reached(pid, 'sleeping');
    const r = await agentos(['top', '-n', '2', '--interval', '0.2', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const frames = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { processes: { pid: string; steps: number; steps_per_min: number | null }[]; pools: unknown[] });
    expect(frames).toHaveLength(2);
    expect(frames[0]!.processes.find((p) => p.pid === pid)).toMatchObject({ steps: 1, steps_per_min: null });
    expect(frames[1]!.processes.find((p) => p.pid === pid)).toMatchObject({ steps: 1, steps_per_min: 0 });
    expect(Array.isArray(frames[0]!.pools)).toBe(true);
    const once = await agentos(['top']);
    expect(once.stdout).toMatch(/agentos top/);
    expect(once.stdout).toMatch(new RegExp(`${pid}\\s+top-sleeper\\s+sleeping`));
    expect(once.stdout).toMatch(/LLM scheduler/);
    await agentos(['kill', pid, '-s', 'KILL']);
  });
});

describe('top on a terminal', () => {
  const ESC = '\x1b';
  const FRAME = `${ESC}[H`;
  /** The frames top drew: what follows each cursor-home, up to the erase-below that ends it. */
  const framesOf = (out: string) => out.split(FRAME).slice(1).map((f) => f.slice(0, f.indexOf(`${ESC}[J`)));

  it('redraws in place on the alternate screen, fits the terminal, and q restores it (exit 0)', async () => {
    const pid = await spawnScript('top-tty', sleepFor);
    await reached(pid, 'sleeping');
    const top = agentosOnTerminal(['top', '--interval', '0.2'], { NO_COLOR: undefined }, { rows: 12, cols: 200 });
    // Three frames: the first and two redraws over it.
    await top.until((out) => out.split(FRAME).length > 3);
    top.type('q');
    const done = await top;
    expect(done.code, done.stderr).toBe(0);
    const out = done.stdout;
    // Enter the alternate screen and hide the cursor first; show it and leave last.
    expect(out.startsWith(`${ESC}[?1049h${ESC}[?25l`)).toBe(true);
    expect(out.trimEnd().endsWith(`${ESC}[?25h${ESC}[?1049l`)).toBe(true);
    const frames = framesOf(out);
    expect(frames.length).toBeGreaterThanOrEqual(3);
    for (const f of frames) {
      // Every frame starts at the top-left corner and is cut to the terminal's height (11 lines and
      // the cursor's), so the screen never scrolls; every line erases the rest of the old one.
      const lines = f.split(/\r?\n/).filter((l, i, all) => i < all.length - 1 || l !== '');
      expect(lines.length).toBeLessThanOrEqual(11);
      expect(lines.every((l) => l.endsWith(`${ESC}[K`))).toBe(true);
      expect(f).toMatch(/agentos top/);
    }
    // Colours on a terminal (NO_COLOR unset): the header is bold.
    expect(out).toMatch(/\x1b\[1m/);
    // Nothing but the screen switches is written outside the frames: no frame is ever appended below another.
    expect(out.split(FRAME)[0]).toBe(`${ESC}[?1049h${ESC}[?25l`);
    await agentos(['kill', pid, '-s', 'KILL']);
  });

  it('Ctrl-C (raw mode: a byte) and SIGINT both end it cleanly, with the screen restored', async () => {
    for (const how of ['ctrl-c', 'SIGINT'] as const) {
      const top = agentosOnTerminal(['top', '--interval', '0.2']);
      await top.until((out) => out.includes(FRAME) && out.includes('agentos top'));
      if (how === 'ctrl-c') top.type('\x03');
      else process.kill(await top.agentosPid(), 'SIGINT');
      const done = await top;
      expect(done.code, `${how}: ${done.stderr}`).toBe(0);
      expect(done.stdout.trimEnd().endsWith(`${ESC}[?25h${ESC}[?1049l`), how).toBe(true);
      // NO_COLOR (the helper's default) on a terminal: cursor control to redraw, but no colour (SGR) codes.
      expect(done.stdout, how).not.toMatch(/\x1b\[[0-9;]*m/);
    }
  });

  it('with standard output not a terminal: frames one after another, no escape codes even with colours allowed', async () => {
    const r = await agentos(['top', '-n', '2', '--interval', '0.1'], { NO_COLOR: undefined });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).not.toMatch(/\x1b/);
    expect(r.stdout.match(/^agentos top/gm)).toHaveLength(2);
  });
});

describe('approvals and audit', () => {
  it('approvals lists the exact call; approve --always runs it, deny --note refuses it', async () => {
    const ask = [{ cap: 'fs:/**:r' }, { cap: 'fs:/**:w', effect: 'ask' }];
    const spawnAsker = async (name: string) => {
      const pcb = await agentosJson<Pcb>(['spawn', '--name', name, '--task', 't', '--model', scripted, '--script', scriptFile(name, { name: 'fs_write', args: { path: 'out.md', content: name } }, { name: 'exit', args: { code: 0 } })].concat(ask.flatMap((g) => ['--cap', JSON.stringify(g)])));
      await eventOf(pcb.pid, (e) => e.type === 'state' && e.data.to === 'waiting');
      return pcb.pid;
    };
    const yes = await spawnAsker('asker-yes');
    const no = await spawnAsker('asker-no');
    const pending = await agentosJson<{ id: string; pid: string; syscall: string; capability: string; args: unknown; status: string }[]>(['approvals', '--pid', yes]);
    expect(pending).toEqual([expect.objectContaining({ pid: yes, syscall: 'fs_write', capability: 'fs:/out.md:w', status: 'pending', args: { path: 'out.md', content: 'asker-yes' } })]);
    const table = await agentos(['approvals']);
    expect(table.stdout).toMatch(new RegExp(`${pending[0]!.id}\\s+${yes}\\s+pending\\s+fs_write`));
    expect(await agentosJson<{ status: string; grant_kind: string }>(['approve', pending[0]!.id, '--always'])).toMatchObject({ status: 'approved', grant_kind: 'always' });
    await reached(yes, 'terminated');
    expect((await agentos(['cat', yes, 'out.md'])).stdout).toBe('asker-yes');

    const [req] = await agentosJson<{ id: string }[]>(['approvals', '--pid', no]);
    const denied = await agentos(['deny', req!.id, '--note', 'not today']);
    expect(denied.stdout).toMatch(/denied/);
    await reached(no, 'terminated');
    expect((await agentos(['cat', no, 'out.md'])).code).toBe(6);
    expect((await agentos(['approve', req!.id])).code).toBe(8);
    expect((await agentosJson<{ id: string }[]>(['approvals', '--status', 'denied'])).map((a) => a.id)).toContain(req!.id);
  });

  it('audit [PID] and audit verify', async () => {
    const pid = await spawnScript('audited', { name: 'exit', args: { code: 3 } });
    await reached(pid, 'terminated');
    const rows = await agentosJson<{ pid: string; kind: string; action: string; outcome: string; code: string | null }[]>(['audit', pid]);
    // (An `audit anchor` row follows once the exited process anchors its chain: docs/security.md.)
    expect(rows.filter((r) => r.kind !== 'audit').map((r) => [r.kind, r.action])).toEqual([
      ['lifecycle', 'spawn'],
      ['llm', 'llm_call'],
      ['syscall', 'exit'],
      ['lifecycle', 'exit'],
    ]);
    expect((await agentos(['audit', pid])).stdout).toMatch(/SEQ\s+TIME\s+PID\s+KIND/);
    const all = await agentosJson<{ seq: number }[]>(['audit']);
    expect(all.length).toBeGreaterThan(rows.length);
    const verify = await agentos(['audit', 'verify']);
    expect(verify).toMatchObject({ code: 0 });
    expect(verify.stdout).toMatch(/^ok  \d+ rows in the chain of default/);
    expect(await agentosJson<{ ok: boolean; first_broken: null }>(['audit', 'verify'])).toMatchObject({ ok: true, first_broken: null });
  });
});

describe('pipelines', () => {
  it('start (an example file), list, show, cancel; cancelling again is a conflict (exit 8)', async () => {
    const example = path.join(dir, 'long.json');
    writeFileSync(example, JSON.stringify({ input: { topic: 'gardens' }, spec: { stages: [{ name: 'research', task: 'read about {{input.topic}}', script: JSON.parse(turns(sleepFor)) }, { name: 'write', needs: ['research'], task: 'write it up' }] } }));
    const started = await agentosJson<{ id: string; status: string }>(['pipelines', 'start', '-f', example]);
    expect(started.status).toBe('queued');
    const runs = await agentosJson<{ id: string }[]>(['pipelines']);
    expect(runs.map((r) => r.id)).toContain(started.id);
    const shown = await agentosJson<{ id: string; stages: { name: string }[] }>(['pipelines', 'show', started.id]);
    expect(shown.stages.map((s) => s.name)).toEqual(['research', 'write']);
    expect((await agentos(['pipelines', 'show', started.id])).stdout).toMatch(/^research\s+process\s/m);
    expect(await agentosJson<{ status: string }>(['pipelines', 'cancel', started.id])).toMatchObject({ status: 'cancelled' });
    expect((await agentos(['pipelines', 'cancel', started.id])).code).toBe(8);
    expect((await agentos(['pipelines', 'start'])).code).toBe(2);
    const triage = await agentos(['pipelines', 'start', '-f', 'workflows/examples/triage.json']);
    expect(triage.code, triage.stderr).toBe(0);
    expect(triage.stdout.trim()).not.toBe('');
  });
});

describe('checkpoints and traces', () => {
  it('checkpoints: create, list, show, diff, restore, fork, delete; trace to a file and to standard output', async () => {
    const pid = await spawnScript('keeper', { name: 'fs_write', args: { path: 'kept.txt', content: 'kept\n' } }, sleepFor);
    await reached(pid, 'sleeping');
    const first = await agentos(['checkpoints', 'create', pid, '--label', 'first']);
    expect(first.code, first.stderr).toBe(0);
    const a = first.stdout.trim();
    expect(a).toMatch(/^ck\d{4,}-[0-9a-f]{8}$/);
    const b = await agentosJson<{ id: string; name: string; label: string | null; state: string; step: number }>(['checkpoint', 'create', pid]);
    expect(b).toMatchObject({ name: `${pid}@${b.id}`, label: null, state: 'sleeping' });

    const list = await agentosJson<{ checkpoints: { id: string; label: string | null }[]; policy: { keep: number } }>(['checkpoints', pid]);
    expect(list.checkpoints.map((c) => [c.id, c.label])).toEqual([
      [a, 'first'],
      [b.id, null],
    ]);
    expect(list.policy.keep).toBeGreaterThan(0);
    const human = await agentos(['checkpoints', pid]);
    expect(human.stdout).toMatch(/^automatic: /);
    expect(human.stdout).toMatch(new RegExp(`^${a}\\s+1\\s+${b.step}\\s+sleeping\\s+api\\s+first\\s`, 'm'));
    expect((await agentosJson<{ checkpoints: unknown[] }>(['checkpoint', 'ls', pid, '-n', '1'])).checkpoints).toHaveLength(1);
    expect((await agentosJson<{ checkpoints: unknown[] }>(['checkpoints', pid, '-n', '1'])).checkpoints).toHaveLength(1);
    expect((await agentosJson<{ checkpoints: unknown[] }>(['checkpoints', 'ls', pid])).checkpoints).toHaveLength(2);

    const shown = await agentosJson<{ id: string; step: number; tables: { name: string }[] }>(['checkpoints', 'show', pid, a]);
    expect(shown).toMatchObject({ id: a, step: b.step });
    expect(shown.tables.map((t) => t.name)).toContain('files');
    expect((await agentos(['checkpoints', 'show', pid, a])).stdout).toMatch(/^files\s+rollback\s+\d+\s+1$/m);
    // Two checkpoints of the same step boundary hold the same state.
    expect(await agentosJson<{ steps: number; same_state: boolean; changed_files: string[] }>(['checkpoints', 'diff', pid, a, b.id])).toMatchObject({ steps: 0, same_state: true, changed_files: [] });
    expect((await agentos(['checkpoints', 'diff', pid, a, b.id])).stdout).toMatch(new RegExp(`^${a} → ${b.id}: 0 steps, the same state`));

    expect(await agentosJson<{ pid: string }>(['checkpoints', 'restore', pid, a])).toMatchObject({ pid });
    const fork = await agentos(['checkpoints', 'fork', pid, a, '--name', 'keeper-fork']);
    expect(fork.code, fork.stderr).toBe(0);
    const forked = fork.stdout.trim();
    expect(forked).toMatch(/^p[0-9a-z]{20}$/);
    expect((await agentos(['cat', forked, 'kept.txt'])).stdout).toBe('kept\n');
    expect((await agentosJson<{ pid: string; name: string }[]>(['ps', '--all'])).find((p) => p.pid === forked)).toMatchObject({ name: 'keeper-fork' });

    expect((await agentos(['checkpoints', 'rm', pid, b.id])).stdout).toMatch(new RegExp(`^deleted ${b.id}`));
    const gone = await agentos(['checkpoints', 'show', pid, b.id]);
    expect(gone.code).toBe(6);
    expect(gone.stderr).toMatch(/ENOENT/);
    expect((await agentos(['checkpoints', 'delete', pid, b.id])).code).toBe(6);
    expect((await agentos(['checkpoints', 'show', pid, 'not-a-checkpoint'])).code).toBe(2);
    expect((await agentos(['checkpoints', 'p00000000000000000000'])).code).toBe(6);

    const file = path.join(dir, 'keeper.trace.json');
    const wrote = await agentos(['trace', pid, '-o', file]);
    expect(wrote.code, wrote.stderr).toBe(0);
    expect(wrote.stdout).toMatch(new RegExp(`: ${b.step} steps, \\d+ syscalls of ${pid} \\(still running\\)\\n$`));
    expect(wrote.stdout.startsWith(`${file}: `)).toBe(true);
    const trace = JSON.parse(readFileSync(file, 'utf8')) as { format: number; pid: string; steps: { step: number }[]; syscalls: { name: string }[]; exit: unknown };
    expect(trace).toMatchObject({ pid, exit: null });
    expect(trace.steps.map((s) => s.step)).toEqual(Array.from({ length: b.step }, (_, i) => i + 1));
    expect(trace.syscalls.map((s) => s.name)).toContain('fs_write');
    const out = await agentos(['trace', pid]);
    expect(JSON.parse(out.stdout)).toEqual(trace);
    expect((await agentos(['trace', 'p00000000000000000000'])).code).toBe(6);
    for (const p of [pid, forked]) await agentos(['kill', p, '-s', 'KILL']);
  });
});

describe('tokens, login and errors', () => {
  it('tokens: create, list, revoke; a reader cannot act (exit 5); a revoked token is refused (exit 4)', async () => {
    const t = await agentosJson<{ id: string; token: string; role: string }>(['tokens', 'create', '--role', 'reader', '--name', 'e2e-reader']);
    expect(t).toMatchObject({ role: 'reader', token: expect.stringMatching(/^aos_/) });
    expect((await agentosJson<{ id: string; name: string }[]>(['tokens'])).find((x) => x.id === t.id)).toMatchObject({ name: 'e2e-reader' });
    const reader = { AGENTOS_TOKEN: t.token };
    expect((await agentos(['ps'], reader)).code).toBe(0);
    const denied = await agentos(['spawn', '--name', 'x', '--task', 'y'], reader);
    expect(denied.code).toBe(5);
    expect(denied.stderr).toMatch(/EPERM: this call needs the operator role; the token has reader/);
    expect((await agentos(['tokens'], reader)).code).toBe(5);
    expect((await agentos(['tokens', 'revoke', t.id])).stdout).toMatch(/revoked/);
    const revoked = await agentos(['ps'], reader);
    expect(revoked.code).toBe(4);
  });

  it('a bad token: a clear message naming where it came from, exit 4', async () => {
    const r = await agentos(['ps'], { AGENTOS_TOKEN: 'not-a-real-token' });
    expect(r.code).toBe(4);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/EUNAUTH: the bearer token is invalid or revoked\. The token came from AGENTOS_TOKEN; set AGENTOS_TOKEN or run agentos login\./);
  });

  it('an unknown pid is exit 6, a malformed one a usage error (exit 2), as is an unknown command', async () => {
    for (const args of [['logs', 'p00000000000000000000'], ['logs', 'p00000000000000000000', '-f'], ['kill', 'p00000000000000000000'], ['context', 'p00000000000000000000'], ['send', 'p00000000000000000000', 'hi']]) {
      const r = await agentos(args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(6);
      expect(r.stderr).toMatch(/ENOENT/);
    }
    expect((await agentos(['logs', 'not-a-pid'])).code).toBe(2);
    expect((await agentos(['frobnicate'])).code).toBe(2);
    expect((await agentos(['spawn', '--name', 'x'])).code).toBe(2);
  });

  it('an unreachable kernel is exit 3', async () => {
    const r = await agentos(['ps'], { AGENTOS_URL: 'http://127.0.0.1:9' });
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/cannot reach the kernel at http:\/\/127\.0\.0\.1:9/);
  });

  it('login checks the token and saves it with mode 0600; later commands use it', async () => {
    const config = path.join(dir, 'login', 'config.json');
    const env = { AGENTOS_CONFIG: config, AGENTOS_TOKEN: undefined, AGENTOS_URL: undefined };
    expect((await agentos(['login', '--url', kernel().base], { ...env }, 'wrong-token\n')).code).toBe(4);
    const ok = await agentos(['login', '--url', kernel().base], env, `${kernel().token}\n`);
    expect(ok.code, ok.stderr).toBe(0);
    expect(statSync(config).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(config, 'utf8'))).toEqual({ url: kernel().base, token: kernel().token });
    expect((await agentos(['ps', '-n', '1'], env)).code).toBe(0);
  });

  it('colour only on request when not a terminal, never with NO_COLOR', async () => {
    const plain = await agentos(['ps', '-n', '3'], { NO_COLOR: undefined });
    expect(plain.stdout).not.toMatch(/\x1b\[/);
    expect((await agentos(['ps', '-n', '3'], { NO_COLOR: undefined, FORCE_COLOR: '1' })).stdout).toMatch(/\x1b\[/);
    expect((await agentos(['ps', '-n', '3'], { NO_COLOR: '1', FORCE_COLOR: '1' })).stdout).not.toMatch(/\x1b\[/);
  });

  it('every command has --help, and the list of exit codes is in the help', async () => {
    const help = await agentos(['--help']);
    expect(help.code).toBe(0);
    for (const c of ['ps', 'top', 'spawn', 'logs', 'kill', 'stop', 'cont', 'send', 'cat', 'context', 'approvals', 'approve', 'deny', 'audit', 'tokens', 'login', 'pipelines', 'checkpoints', 'trace']) expect(help.stdout).toMatch(new RegExp(`^  ${c}\\b`, 'm'));
    expect(help.stdout).toMatch(/Exit codes:/);
  });
});

