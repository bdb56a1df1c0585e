/**
 * Helpers for end-to-end tests against the kernel that test/e2e/kernel-setup.ts started: plain API
 * calls, waiting for a process's event on its live stream (no timers: the backlog comes first, so
 * nothing that already happened is missed), and the CLI run as a subprocess.
 */
import { type ChildProcessWithoutNullStreams, spawn as spawnChild } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createParser } from 'eventsource-parser';
import { inject } from 'vitest';
import { ROOT } from '../../scripts/lib/dev-worker.mjs';

export const kernel = () => inject('kernel');

export async function api<T = unknown>(method: string, route: string, body?: unknown, token = kernel().token): Promise<{ status: number; body: T }> {
  const res = await fetch(`${kernel().base}${route}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: res.status, body: parsed as T };
}

export type KernelEvent = { seq: number; at: number; type: string; data: Record<string, unknown> };

/** Resolve with the first event of `pid` (from its beginning) that `match` accepts; reject if the stream ends first. */
export async function eventOf(pid: string, match: (e: KernelEvent) => boolean): Promise<KernelEvent> {
  const abort = new AbortController();
  const res = await fetch(`${kernel().base}/v1/processes/${pid}/events`, { headers: { authorization: `Bearer ${kernel().token}`, accept: 'text/event-stream' }, signal: abort.signal });
  if (!res.ok || !res.body) throw new Error(`events of ${pid}: HTTP ${res.status}`);
  let found: KernelEvent | undefined;
  const parser = createParser({
    onEvent: (m) => {
      const e = JSON.parse(m.data) as KernelEvent;
      if (!found && match(e)) found = e;
    },
  });
  const decoder = new TextDecoder();
  try {
    for await (const chunk of res.body) {
      parser.feed(decoder.decode(chunk, { stream: true }));
      if (found) return found;
    }
  } finally {
    abort.abort();
  }
  throw new Error(`the event stream of ${pid} ended without the awaited event`);
}

export const reached = (pid: string, state: string) => eventOf(pid, (e) => e.type === 'state' && e.data.to === state);

export interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

type Expected = string | RegExp | ((stdout: string) => boolean);
const seen = (text: Expected, stdout: string): boolean => (typeof text === 'string' ? stdout.includes(text) : text instanceof RegExp ? text.test(stdout) : text(stdout));

export interface Running extends Promise<Run> {
  readonly pid: number | undefined;
  /** Resolves with the output so far once stdout contains `text` (or `text(stdout)` holds). */
  until(text: Expected): Promise<string>;
}

const AGENTOS = path.join(ROOT, 'scripts/cli/agentos.ts');
const cliEnv = (env: Record<string, string | undefined>) => ({ ...process.env, AGENTOS_URL: kernel().base, AGENTOS_TOKEN: kernel().token, AGENTOS_CONFIG: path.join(ROOT, 'node_modules/.cache/agentos/no-login.json'), NO_COLOR: '1', FORCE_COLOR: undefined, ...env });

/** Run `agentos …args` as a subprocess on this Node, against the test kernel unless `env` says otherwise. */
export function agentos(args: readonly string[], env: Record<string, string | undefined> = {}, input?: string): Running {
  return watch(spawnChild(process.execPath, [AGENTOS, ...args], { cwd: ROOT, env: cliEnv(env), stdio: ['pipe', 'pipe', 'pipe'] }), input ?? '');
}

export interface OnTerminal extends Running {
  /** Type into the terminal (its input is in raw mode while top runs: "q", "\x03" …). */
  type(keys: string): void;
  /** The pid of agentos itself (not of the terminal around it), once it has started. */
  agentosPid(): Promise<number>;
}

/**
 * Run `agentos …args` on a real pseudo-terminal of `rows` × `cols`: util-linux `script` allocates it
 * and copies what agentos writes to our stdout (the terminal's output, raw) and what we type to it.
 */
export function agentosOnTerminal(args: readonly string[], env: Record<string, string | undefined> = {}, size = { rows: 40, cols: 160 }): OnTerminal {
  const quote = (s: string) => `'${s.replace(/'/g, "'\\''")}'`;
  const pidFile = path.join(mkdtempSync(path.join(os.tmpdir(), 'agentos-tty-')), 'pid');
  // The shell records its pid and then becomes agentos (exec), so that pid is agentos's.
  const command = `stty rows ${size.rows} cols ${size.cols}; echo $$ > ${quote(pidFile)}; exec ${[process.execPath, AGENTOS, ...args].map(quote).join(' ')}`;
  const child = spawnChild('script', ['-qfec', command, '/dev/null'], { cwd: ROOT, env: cliEnv({ TERM: 'xterm-256color', ...env }), stdio: ['pipe', 'pipe', 'pipe'] });
  const run = watch(child, null);
  const agentosPid = async (): Promise<number> => {
    // The pid file is written before agentos prints anything: the first output proves it is there.
    await run.until(/\S/);
    return Number(readFileSync(pidFile, 'utf8').trim());
  };
  return Object.assign(run, { type: (keys: string) => child.stdin?.write(keys), agentosPid });
}

/** Collect a child's output; `input` (null: keep standard input open for typing) is written and closed. */
function watch(child: ChildProcessWithoutNullStreams, input: string | null): Running {
  let stdout = '';
  let stderr = '';
  const waiters: { text: Expected; resolve: (s: string) => void }[] = [];
  child.stdout.on('data', (b: Buffer) => {
    stdout += b.toString('utf8');
    for (const w of [...waiters]) {
      if (seen(w.text, stdout)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(stdout);
      }
    }
  });
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString('utf8')));
  if (input !== null) child.stdin.end(input);
  const done = new Promise<Run>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
  return Object.assign(done, {
    pid: child.pid,
    until: (text: Expected) =>
      new Promise<string>((resolve, reject) => {
        if (seen(text, stdout)) return resolve(stdout);
        waiters.push({ text, resolve });
        void done.then((r) => reject(new Error(`agentos exited (${r.code}) before printing ${String(text)}:\n${r.stdout}\n${r.stderr}`)));
      }),
  });
}

/** Run and parse --json output; fails the test with the output if the command failed. */
export async function agentosJson<T>(args: readonly string[], env: Record<string, string | undefined> = {}): Promise<T> {
  const r = await agentos([...args, '--json'], env);
  if (r.code !== 0) throw new Error(`agentos ${args.join(' ')} exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}
