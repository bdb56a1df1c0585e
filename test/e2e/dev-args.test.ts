/**
 * What `npm start -- …` hands to `wrangler dev` (scripts/dev.mjs builds it with devArgs, a pure
 * function, so no server starts here): the caller's arguments unchanged, loopback and the
 * development token only where the caller did not choose otherwise.
 */
import { describe, expect, it } from 'vitest';
import { DEV_TOKEN, devArgs } from '../../scripts/lib/dev-args.mjs';

const TOKEN_VAR = ['--var', `AGENTOS_ADMIN_TOKEN:${DEV_TOKEN}`];
const count = (args: readonly string[], flag: string) => args.filter((a) => a === flag || a.startsWith(`${flag}=`)).length;

describe('npm start arguments', () => {
  it('by default: loopback, port 8787, the development token', () => {
    expect(devArgs([], '')).toEqual({ args: ['dev', '--ip', '127.0.0.1', ...TOKEN_VAR], ip: '127.0.0.1', port: '8787', devToken: true, warnings: [] });
  });

  it('--ip is passed once, the caller\'s, in either spelling, with a warning beyond loopback', () => {
    for (const extra of [['--ip', '0.0.0.0'], ['--ip=0.0.0.0']]) {
      const r = devArgs(extra, '');
      expect(r.args).toEqual(['dev', ...TOKEN_VAR, ...extra]);
      expect(count(r.args, '--ip')).toBe(1);
      expect(r.ip).toBe('0.0.0.0');
      expect(r.warnings).toEqual([expect.stringMatching(/^listening on 0\.0\.0\.0 with the documented development token/)]);
    }
    // A loopback address of the caller's: no warning.
    expect(devArgs(['--ip', '::1'], '').warnings).toEqual([]);
  });

  it('--port and every other argument go through unchanged and in order; the console URL uses the port', () => {
    const extra = ['--port', '9000', '--log-level', 'debug', '--persist-to', '/tmp/x'];
    const r = devArgs(extra, '');
    expect(r.args).toEqual(['dev', '--ip', '127.0.0.1', ...TOKEN_VAR, ...extra]);
    expect(r.port).toBe('9000');
    expect(devArgs(['--port=9001'], '').port).toBe('9001');
  });

  it('no development token when .dev.vars sets AGENTOS_ADMIN_TOKEN or the caller passes it; then no warning either', () => {
    const fromFile = devArgs(['--ip', '0.0.0.0'], 'OPENAI_API_KEY=sk-x\n  AGENTOS_ADMIN_TOKEN = secret\n');
    expect(fromFile).toMatchObject({ args: ['dev', '--ip', '0.0.0.0'], devToken: false, warnings: [] });
    // A commented-out or differently named variable does not count.
    expect(devArgs([], '# AGENTOS_ADMIN_TOKEN=x\nMY_AGENTOS_ADMIN_TOKEN=y\n').devToken).toBe(true);
    for (const extra of [['--var', 'AGENTOS_ADMIN_TOKEN:mine'], ['--var=AGENTOS_ADMIN_TOKEN:mine']]) {
      const r = devArgs(extra, '');
      expect(r.args).toEqual(['dev', '--ip', '127.0.0.1', ...extra]);
      expect(r.devToken).toBe(false);
    }
    // Another --var leaves the development token in place.
    expect(devArgs(['--var', 'LOG:1'], '').args).toEqual(['dev', '--ip', '127.0.0.1', ...TOKEN_VAR, '--var', 'LOG:1']);
  });
});
