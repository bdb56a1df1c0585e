/**
 * Start the `wrangler dev` CLI the way `npm start` runs it (scripts/dev.mjs): on 127.0.0.1 and a
 * free port, with fresh state in a temp dir, its own process group, and a bootstrap admin token; what
 * the soak (scripts/soak.mjs) and the outside benchmark (scripts/bench/outside.mjs) measure, since a
 * user meets the kernel that way. (In-process starts for tests and the other benchmarks:
 * dev-worker.mjs.)
 *
 *   const server = await startDevCli({ name: 'soak', token, migrate: true });
 *   try { await fetch(`${server.base}/v1/processes`, …) } finally { server.stop(); }
 *
 * The CLI is the project's own wrangler (node_modules), run on the Node running this script. The
 * server is stopped by its pid: SIGTERM to its process group (the CLI and its workerd processes),
 * then its state dir goes; `stop()` is also run when this process exits.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, openSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ROOT } from './dev-worker.mjs';

const WRANGLER = path.join(ROOT, 'node_modules/wrangler/bin/wrangler.js');

/** A TCP port free on loopback right now. */
export const freePort = () =>
  new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Start `wrangler dev` for `config` (null: the kernel's wrangler.toml) with AGENTOS_ADMIN_TOKEN set
 * to `token`. `migrate: true` applies the config's D1 migrations to the fresh state dir first (as
 * `npm start` does). `tracing` 'on' or 'off' sets wrangler's local tracing (X_LOCAL_OBSERVABILITY,
 * read by the CLI at start); left out, the environment decides. `log` is a file for the server's
 * output (default: discarded). Resolves when the server answers /healthz, at most 180 s.
 * @returns {Promise<{ name: string, base: string, state: string, pid: number, exited: boolean, stop: () => void }>}
 */
export async function startDevCli({ name, token, config = null, migrate = false, tracing, stateParent = os.tmpdir(), log }) {
  const state = mkdtempSync(path.join(stateParent, `agentos-${name}-`));
  const env = { ...process.env, CI: 'true', ...(tracing ? { X_LOCAL_OBSERVABILITY: tracing === 'on' ? 'true' : 'false' } : {}) };
  const configArgs = config ? ['--config', config] : [];
  if (migrate) {
    const r = spawnSync(process.execPath, [WRANGLER, 'd1', 'migrations', 'apply', 'DB', '--local', ...configArgs, '--persist-to', state], { cwd: ROOT, encoding: 'utf8', env });
    if (r.status !== 0) {
      rmSync(state, { recursive: true, force: true });
      throw new Error(`D1 migrations failed (exit ${r.status}):\n${r.stdout}\n${r.stderr}`);
    }
  }
  const port = await freePort();
  const out = log ? openSync(log, 'w') : 'ignore';
  const child = spawn(process.execPath, [WRANGLER, 'dev', ...configArgs, '--ip', '127.0.0.1', '--port', String(port), '--persist-to', state, '--var', `AGENTOS_ADMIN_TOKEN:${token}`], {
    cwd: ROOT,
    env,
    stdio: ['ignore', out, out],
    detached: true,
  });
  let stopped = false;
  const server = {
    name,
    base: `http://127.0.0.1:${port}`,
    state,
    pid: child.pid,
    exited: false,
    stop() {
      if (stopped) return;
      stopped = true;
      try {
        if (!server.exited) process.kill(-server.pid, 'SIGTERM');
      } catch {
        // already gone
      }
      rmSync(state, { recursive: true, force: true });
    },
  };
  child.on('exit', () => (server.exited = true));
  process.once('exit', server.stop);
  for (let i = 0; ; i++) {
    if (server.exited) throw new Error(`wrangler dev (${name}) exited before answering${log ? `; see ${log}` : '; rerun with its log kept'}`);
    try {
      const r = await fetch(`${server.base}/healthz`, { signal: AbortSignal.timeout(5000) });
      await r.arrayBuffer();
      if (r.status < 500) break;
    } catch {
      // not up yet
    }
    if (i > 360) {
      server.stop();
      throw new Error(`wrangler dev (${name}) did not answer within 180 s`);
    }
    await sleep(500);
  }
  return server;
}
