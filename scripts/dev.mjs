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

const DEV_TOKEN = 'dev-admin-token';
// The web console's files (wrangler.toml [assets]); served at /console/.
await buildConsole();
const wrangler = 'wrangler';
// `d1 migrations apply` asks for confirmation on a terminal; CI=true answers yes.
const migrate = spawnSync(wrangler, ['d1', 'migrations', 'apply', 'DB', '--local'], {
  stdio: 'inherit',
  env: { ...process.env, CI: 'true' },
});
if (migrate.status !== 0) process.exit(migrate.status ?? 1);

const devVars = existsSync('.dev.vars') ? readFileSync('.dev.vars', 'utf8') : '';
const tokenArgs = /^\s*AGENTOS_ADMIN_TOKEN\s*=/m.test(devVars) ? [] : ['--var', `AGENTOS_ADMIN_TOKEN:${DEV_TOKEN}`];
const args = process.argv.slice(2);
const portAt = args.findIndex((a) => a === '--port' || a.startsWith('--port='));
const port = portAt < 0 ? 8787 : (args[portAt].split('=')[1] ?? args[portAt + 1]);
console.log(`[agentos] web console: http://127.0.0.1:${port}/console/  (sign in with an API token)`);
if (tokenArgs.length) console.log(`[agentos] API token for local development: ${DEV_TOKEN}  (set AGENTOS_ADMIN_TOKEN in .dev.vars to change it)`);

// Loopback unless the caller chose an address (`npm start -- --ip 0.0.0.0`): wrangler takes --ip once.
const extra = process.argv.slice(2);
const ipAt = extra.findIndex((a) => a === '--ip' || a.startsWith('--ip='));
const ip = ipAt < 0 ? '127.0.0.1' : extra[ipAt].startsWith('--ip=') ? extra[ipAt].slice(5) : extra[ipAt + 1];
const ipArgs = ipAt < 0 ? ['--ip', ip] : [];
if (tokenArgs.length && !/^(127\.|localhost$|::1$|\[::1\]$)/.test(ip ?? '')) {
  console.warn(`[agentos] warning: listening on ${ip} with the documented development token: anyone who can reach this address is an admin. Set AGENTOS_ADMIN_TOKEN in .dev.vars.`);
}

const dev = spawn(wrangler, ['dev', ...ipArgs, ...tokenArgs, ...extra], { stdio: 'inherit' });
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => dev.kill(sig));
dev.on('exit', (code) => process.exit(code ?? 0));
