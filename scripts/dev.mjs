// `npm start`: bring up the kernel under `wrangler dev` (local workerd), with the local D1
// database migrated first. Runs on the Node 22 that npm installed (node_modules/.bin is first on
// PATH inside npm scripts). Extra arguments go to `wrangler dev`, e.g. `npm start -- --port 9000`.
//
// Every API call needs a bearer token. Unless .dev.vars sets AGENTOS_ADMIN_TOKEN, local development
// uses the documented token `dev-admin-token` (never used in production: there it is a secret).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';

const DEV_TOKEN = 'dev-admin-token';
const wrangler = 'wrangler';
// `d1 migrations apply` asks for confirmation on a terminal; CI=true answers yes.
const migrate = spawnSync(wrangler, ['d1', 'migrations', 'apply', 'DB', '--local'], {
  stdio: 'inherit',
  env: { ...process.env, CI: 'true' },
});
if (migrate.status !== 0) process.exit(migrate.status ?? 1);

const devVars = existsSync('.dev.vars') ? readFileSync('.dev.vars', 'utf8') : '';
const tokenArgs = /^\s*AGENTOS_ADMIN_TOKEN\s*=/m.test(devVars) ? [] : ['--var', `AGENTOS_ADMIN_TOKEN:${DEV_TOKEN}`];
if (tokenArgs.length) console.log(`[agentos] API token for local development: ${DEV_TOKEN}  (set AGENTOS_ADMIN_TOKEN in .dev.vars to change it)`);

const dev = spawn(wrangler, ['dev', '--ip', '127.0.0.1', ...tokenArgs, ...process.argv.slice(2)], { stdio: 'inherit' });
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => dev.kill(sig));
dev.on('exit', (code) => process.exit(code ?? 0));
