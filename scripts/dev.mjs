// `npm start`: bring up the kernel under `wrangler dev` (local workerd), with the local D1
// database migrated first. Runs on the Node 22 that npm installed (node_modules/.bin is first on
// PATH inside npm scripts). Extra arguments go to `wrangler dev`, e.g. `npm start -- --port 9000`.
import { spawnSync, spawn } from 'node:child_process';

const wrangler = 'wrangler';
// `d1 migrations apply` asks for confirmation on a terminal; CI=true answers yes.
const migrate = spawnSync(wrangler, ['d1', 'migrations', 'apply', 'DB', '--local'], {
  stdio: 'inherit',
  env: { ...process.env, CI: 'true' },
});
if (migrate.status !== 0) process.exit(migrate.status ?? 1);

const dev = spawn(wrangler, ['dev', '--ip', '127.0.0.1', ...process.argv.slice(2)], { stdio: 'inherit' });
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => dev.kill(sig));
dev.on('exit', (code) => process.exit(code ?? 0));
