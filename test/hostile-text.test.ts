/**
 * Hostile text through every door it can enter a process by: the task at spawn, a fetched page, a
 * file read, a received message and a JIT tool's result, each at the largest size that door lets in.
 * Token counting was quadratic in a run without breaks (200 k × "x" in a task: 28 s, with every
 * other request waiting); now each door handles it within a small multiple of the same amount of
 * prose, measured in the same run, and the API answers meanwhile. Bodies over the cap stay 413.
 */
import { env } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { hostileText, TEXT_KINDS, type TextKind } from './support/hostile-text.ts';
import { api, eventsOf, runUntil, spawn } from './support/helpers.ts';

const scripted = { provider: 'scripted', model: 'scripted' };
const call = (name: string, args: unknown = {}) => ({ name, args });
type Result = { name: string; ok: boolean; result?: Record<string, unknown>; error?: { code: string } };
const HOSTILE = TEXT_KINDS.filter((k) => k !== 'prose');

/**
 * Runs `door` once per kind of text and returns each kind's time over prose's. While each hostile
 * run goes on, the API is asked for something else and must answer.
 */
async function ratios(door: (kind: TextKind) => Promise<void>): Promise<Record<string, number>> {
  const time = async (kind: TextKind) => {
    const t = performance.now();
    await door(kind);
    return performance.now() - t;
  };
  await time('prose'); // warm the tokenizer and the runtime
  const prose = Math.max(await time('prose'), 1);
  const out: Record<string, number> = {};
  for (const kind of HOSTILE) {
    const [ms, health] = await Promise.all([time(kind), api('GET', '/v1/processes?limit=1')]);
    expect(health.status).toBe(200);
    out[kind] = ms / prose;
  }
  return out;
}

/** A hostile run may cost several times prose (pieces are counted one by one), never orders more. */
const LIMIT = 8;

async function results(pid: string): Promise<Result[]> {
  return (await eventsOf(pid)).filter((e) => e.type === 'syscall').map((e) => e.data as unknown as Result);
}

describe('hostile text is handled in linear time at every door', () => {
  it('spawn: a task of the largest size accepted', async () => {
    const r = await ratios(async (kind) => {
      const { pid } = await spawn({ name: 'h', task: hostileText(kind, 250_000).slice(0, 256 * 1024), model: scripted, script: [{ tool_calls: [call('exit', { code: 0 })] }] });
      expect((await runUntil(pid, ['terminated'])).exit).toMatchObject({ code: 0 });
    });
    for (const [kind, ratio] of Object.entries(r)) expect(ratio, kind).toBeLessThan(LIMIT);
  });

  it('net_fetch and fs_read: a 5 MB page, saved and read back', async () => {
    const r = await ratios(async (kind) => {
      const { pid } = await spawn({
        name: 'h',
        task: 'fetch',
        model: scripted,
        capabilities: ['fs:/**:rw', 'net:127.0.0.1'],
        script: [
          { tool_calls: [call('net_fetch', { url: `${env.TEST_SERVER}/text/${kind}?bytes=5000000`, save_to: 'page.txt' })] },
          { tool_calls: [call('fs_read', { path: 'page.txt' })] },
          { tool_calls: [call('exit', { code: 0 })] },
        ],
      });
      expect((await runUntil(pid, ['terminated'])).exit).toMatchObject({ code: 0 });
      expect((await results(pid)).map((x) => [x.name, x.ok])).toEqual([['net_fetch', true], ['fs_read', true], ['exit', true]]);
    });
    for (const [kind, ratio] of Object.entries(r)) expect(ratio, kind).toBeLessThan(LIMIT);
  });

  it('recv: a message of the largest size accepted', async () => {
    const r = await ratios(async (kind) => {
      const { pid } = await spawn({ name: 'h', task: 'listen', model: scripted, script: [{ tool_calls: [call('recv', {})] }, { tool_calls: [call('exit', { code: 0 })] }] });
      await runUntil(pid, ['waiting']);
      const sent = await api('POST', `/v1/processes/${pid}/messages`, { body: hostileText(kind, 120_000) });
      expect(sent.status).toBe(202);
      expect((await runUntil(pid, ['terminated'])).exit).toMatchObject({ code: 0 });
      expect((await results(pid))[0]).toMatchObject({ name: 'recv', ok: true });
    });
    for (const [kind, ratio] of Object.entries(r)) expect(ratio, kind).toBeLessThan(LIMIT);
  });

  it("a JIT tool's result of the largest size returned", async () => {
    const r = await ratios(async (kind) => {
      const text = hostileText(kind, 200_000).slice(0, 64 * 1024 - 100);
      const source = `export default async function (): Promise<{ text: string }> { return { text: ${JSON.stringify(text)} }; }`;
      const { pid } = await spawn({
        name: 'h',
        task: 'tool',
        model: scripted,
        capabilities: ['tool:register', 'tool:call:*'],
        script: [
          { tool_calls: [call('tool_register', { name: 'emit', description: 'returns text', parameters: { type: 'object' }, source })] },
          { tool_calls: [call('tool_call', { name: 'emit', args: {} })] },
          { tool_calls: [call('exit', { code: 0 })] },
        ],
      });
      expect((await runUntil(pid, ['terminated'])).exit).toMatchObject({ code: 0 });
      expect((await results(pid)).map((x) => [x.name, x.ok])).toEqual([['tool_register', true], ['tool_call', true], ['exit', true]]);
    });
    for (const [kind, ratio] of Object.entries(r)) expect(ratio, kind).toBeLessThan(LIMIT);
  });

  it('bodies over the 1 MiB cap are a typed 413, and a task over its limit EINVAL, whatever the text', async () => {
    for (const kind of HOSTILE) {
      const big = await api<{ error: { code: string } }>('POST', '/v1/processes', { name: 'h', task: hostileText(kind, 1_100_000), model: scripted });
      expect(big.status, kind).toBe(413);
      expect(big.body.error.code).toBe('E2BIG');
      const long = await api<{ error: { code: string } }>('POST', '/v1/processes', { name: 'h', task: 'x'.repeat(256 * 1024 + 1), model: scripted });
      expect(long.status).toBe(400);
      expect(long.body.error.code).toBe('EINVAL');
    }
  });
});
