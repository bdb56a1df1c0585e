// `npm start`: bring up the kernel under `wrangler dev` (local workerd), with the local D1
// database migrated first. Runs on the Node 22 that npm installed (node_modules/.bin is first on
// PATH inside npm scripts). Extra arguments go to `wrangler dev`, e.g. `npm start -- --port 9000`
// or `npm start -- --ip 0.0.0.0` (it listens on 127.0.0.1 otherwise).
//
// Every API call needs a bearer token. Unless .dev.vars sets AGENTOS_ADMIN_TOKEN, local development
// uses the documented token `dev-admin-token` (never used in production: there it is a secret).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { buildConsole } from './build-console.mjs';
import { DEV_TOKEN, devArgs } from './lib/dev-args.mjs';

// What goes to wrangler: the caller's arguments, loopback unless they chose --ip, and the dev token
// unless .dev.vars sets one (scripts/lib/dev-args.mjs, tested in test/e2e/dev-args.test.ts).
const dev = devArgs(process.argv.slice(2), existsSync('.dev.vars') ? readFileSync('.dev.vars', 'utf8') : '');
// The web console's files (wrangler.toml [assets]); served at /console/.
await buildConsole();
const wrangler = 'wrangler';
// `d1 migrations apply` asks for confirmation on a terminal; CI=true answers yes.
const migrate = spawnSync(wrangler, ['d1', 'migrations', 'apply', 'DB', '--local'], {
  stdio: 'inherit',
  env: { ...process.env, CI: 'true' },
});
if (migrate.status !== 0) process.exit(migrate.status ?? 1);

console.log(`[agentos] web console: http://127.0.0.1:${dev.port}/console/  (sign in with an API token)`);
if (dev.devToken) console.log(`[agentos] API token for local development: ${DEV_TOKEN}  (set AGENTOS_ADMIN_TOKEN in .dev.vars to change it)`);
for (const w of dev.warnings) console.warn(`[agentos] warning: ${w}`);

// wrangler's local trace collector records every span of every request, RPC and query in the same
// workerd: useful to debug, but it doubles a busy kernel's step time (docs/BENCHMARKS.md). Off unless
// asked for: `X_LOCAL_OBSERVABILITY=true npm start`.
const tracing = process.env.X_LOCAL_OBSERVABILITY ?? 'false';
console.log(`[agentos] wrangler's local tracing: ${/^(true|1|on)$/i.test(tracing) ? 'on' : 'off (X_LOCAL_OBSERVABILITY=true npm start turns it on)'}`);
const child = spawn(wrangler, dev.args, { stdio: 'inherit', env: { ...process.env, X_LOCAL_OBSERVABILITY: tracing } });
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));
child.on('exit', (code) => process.exit(code ?? 0));
