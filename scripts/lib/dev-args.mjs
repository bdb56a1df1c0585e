/**
 * What `npm start -- …` (scripts/dev.mjs) passes to `wrangler dev`, as a pure function so it can be
 * tested without starting a server (test/e2e/dev-args.test.ts). The caller's arguments go through
 * unchanged and in order; around them:
 *  - `--ip 127.0.0.1` unless the caller chose an address (`--ip X` or `--ip=X`): wrangler takes `--ip`
 *    once, and passing ours as well as theirs was the bug of `npm start -- --ip 0.0.0.0`;
 *  - the documented development token as `--var AGENTOS_ADMIN_TOKEN:dev-admin-token`, unless
 *    .dev.vars sets AGENTOS_ADMIN_TOKEN or the caller passes that variable with `--var` themselves;
 *  - a warning when that token would be served beyond loopback.
 */

export const DEV_TOKEN = 'dev-admin-token';
const LOOPBACK = /^(127\.|localhost$|::1$|\[::1\]$)/;

/** The value of `--name X` or `--name=X` in `args`, or undefined. */
function optionValue(args, name) {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === name) return args[i + 1];
    if (args[i].startsWith(`${name}=`)) return args[i].slice(name.length + 1);
  }
  return undefined;
}

/**
 * @param {readonly string[]} extra the arguments after `npm start --`
 * @param {string} devVars the text of .dev.vars ('' when there is none)
 * @returns {{ args: string[], ip: string, port: string, devToken: boolean, warnings: string[] }}
 */
export function devArgs(extra, devVars) {
  const chosenIp = optionValue(extra, '--ip');
  const ip = chosenIp ?? '127.0.0.1';
  const port = optionValue(extra, '--port') ?? '8787';
  const vars = extra.flatMap((a, i) => (a === '--var' ? [extra[i + 1] ?? ''] : a.startsWith('--var=') ? [a.slice(6)] : []));
  const tokenSet = /^\s*AGENTOS_ADMIN_TOKEN\s*=/m.test(devVars) || vars.some((v) => v.startsWith('AGENTOS_ADMIN_TOKEN:'));
  const warnings = [];
  if (!tokenSet && !LOOPBACK.test(ip)) {
    warnings.push(`listening on ${ip} with the documented development token: anyone who can reach this address is an admin. Set AGENTOS_ADMIN_TOKEN in .dev.vars.`);
  }
  return {
    args: ['dev', ...(chosenIp === undefined ? ['--ip', ip] : []), ...(tokenSet ? [] : ['--var', `AGENTOS_ADMIN_TOKEN:${DEV_TOKEN}`]), ...extra],
    ip,
    port,
    devToken: !tokenSet,
    warnings,
  };
}
