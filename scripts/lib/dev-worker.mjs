/**
 * Start a Worker under wrangler's dev server (local workerd) on loopback, with fresh, temporary
 * state: what the benchmarks, the end-to-end tests (test/e2e) and `npm run gen:api` share.
 *
 *   const kernel = await startKernel({ token });             // the real kernel, D1 migrated
 *   try { await fetch(`${kernel.base}/v1/processes`, …) } finally { await kernel.stop(); }
 *
 * unstable_startWorker(options) is `new DevEnv().startWorker(options)`; building the DevEnv here lets
 * us hear its events: reloadComplete carries the user Worker's own address (wrangler puts a proxy
 * Worker, in a second workerd, in front of it in dev; we bypass that hop, as production traffic does
 * not take it), and error reports a build failure instead of a request that hangs.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

// No network: wrangler must not fetch request.cf data or send metrics.
process.env.CLOUDFLARE_CF_FETCH_ENABLED ??= 'false';
process.env.WRANGLER_SEND_METRICS ??= 'false';

/**
 * Start the Worker of `config` with `bindings` added (wrangler's binding objects, e.g.
 * `{ type: 'secret_text', value }`), state in a new temp dir under `stateParent`. `migrate: true`
 * applies the config's D1 migrations to that state first (`wrangler d1 migrations apply --local`).
 * `inspector: true` opens the V8 inspector on a loopback port (`worker.inspectorUrl`). `stop()`
 * disposes of workerd and removes the state dir; the dir is removed at exit in any case.
 */
export async function startDevWorker({ config, name = 'dev', bindings = {}, stateParent = os.tmpdir(), inspector = false, migrate = false }) {
  const { unstable_DevEnv } = await import('wrangler');
  const stateDir = mkdtempSync(path.join(stateParent, `agentos-${name}-`));
  process.once('exit', () => rmSync(stateDir, { recursive: true, force: true }));
  if (migrate) {
    // The same wrangler that runs the Worker, on the Node running this script.
    const cli = path.join(ROOT, 'node_modules/wrangler/bin/wrangler.js');
    const r = spawnSync(process.execPath, [cli, 'd1', 'migrations', 'apply', 'DB', '--local', '--config', config, '--persist-to', stateDir], {
      encoding: 'utf8',
      env: { ...process.env, CI: 'true' },
    });
    if (r.status !== 0) {
      rmSync(stateDir, { recursive: true, force: true });
      throw new Error(`D1 migrations failed (exit ${r.status}):\n${r.stdout}\n${r.stderr}`);
    }
  }
  const devEnv = new unstable_DevEnv();
  const started = new Promise((resolve, reject) => {
    devEnv.on('reloadComplete', (ev) => {
      const u = ev?.proxyData?.userWorkerUrl;
      if (u) resolve(`${u.protocol}//${u.hostname}:${u.port}`);
    });
    devEnv.on('error', (ev) => reject(new Error(`the Worker did not start: ${ev?.reason ?? ev?.message ?? ev}`)));
    setTimeout(() => reject(new Error('the Worker did not start within 120 s')), 120_000).unref();
  });
  let worker;
  const stop = async () => {
    await worker?.dispose().catch(() => {});
    rmSync(stateDir, { recursive: true, force: true });
  };
  try {
    worker = await devEnv.startWorker({
      config,
      bindings,
      dev: { server: { hostname: '127.0.0.1', port: 0 }, inspector: inspector ? { hostname: '127.0.0.1', port: 0 } : false, watch: false, logLevel: 'warn', persist: stateDir },
    });
    return { base: await started, worker, stateDir, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/**
 * The real kernel (./wrangler.toml) with its D1 migrated and `token` as the bootstrap admin token
 * (AGENTOS_ADMIN_TOKEN). `vars` override wrangler.toml's [vars] (strings).
 */
export async function startKernel({ token, vars = {}, name = 'kernel', stateParent } = {}) {
  if (!token || token.length < 8) throw new Error('startKernel needs a bootstrap token of at least 8 characters');
  // wrangler.toml's [assets] directory (the console) must exist before the Worker starts.
  const { buildConsole } = await import('../build-console.mjs');
  await buildConsole({ quiet: true });
  const bindings = { AGENTOS_ADMIN_TOKEN: { type: 'secret_text', value: token } };
  for (const [k, v] of Object.entries(vars)) bindings[k] = { type: 'plain_text', value: String(v) };
  return startDevWorker({ config: path.join(ROOT, 'wrangler.toml'), name, bindings, migrate: true, ...(stateParent ? { stateParent } : {}) });
}
