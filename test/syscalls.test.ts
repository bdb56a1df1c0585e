/**
 * Syscalls as the model experiences them: malformed calls become typed errors in its context and the
 * process keeps going; the filesystem is confined and chunked; net_fetch is capped and http(s)-only.
 */
import { env } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { api, eventsOf, runUntil, spawn } from './support/helpers.ts';

const scripted = { provider: 'scripted', model: 'scripted' };
const call = (name: string, args: unknown = {}) => ({ name, args });
type Result = { name: string; ok: boolean; result?: Record<string, unknown>; error?: { code: string; message: string; details?: unknown } };

async function run(turns: unknown[], image = 'default', capabilities?: string[]): Promise<{ pid: string; results: Result[]; exit: unknown }> {
  const { pid } = await spawn({ name: 't', task: 'test', image, model: scripted, script: turns, ...(capabilities ? { capabilities } : {}) });
  const done = await runUntil(pid, ['terminated']);
  const results = (await eventsOf(pid)).filter((e) => e.type === 'syscall').map((e) => e.data as unknown as Result);
  return { pid, results, exit: done.exit };
}

describe('malformed syscalls from the model', () => {
  it('unknown names, bad arguments and unparseable JSON become ENOSYS/EINVAL results, and the process carries on', async () => {
    const { results, exit } = await run([
      {
        tool_calls: [
          call('format_disk', {}),
          call('sleep', { seconds: -5 }),
          call('fs_write', '{"path": "a.txt", "content": '),
          call('fs_write', { path: 'ok.txt', content: 'fine', extra: 1 }),
          call('fs_write', { path: 'ok.txt', content: 'fine' }),
        ],
      },
      { tool_calls: [call('exit', { code: 0 })] },
    ]);
    expect(results.map((r) => [r.name, r.ok, r.error?.code])).toEqual([
      ['format_disk', false, 'ENOSYS'],
      ['sleep', false, 'EINVAL'],
      ['fs_write', false, 'EINVAL'],
      ['fs_write', false, 'EINVAL'],
      ['fs_write', true, undefined],
      ['exit', true, undefined],
    ]);
    expect(results[1]?.error?.message).toMatch(/seconds/);
    expect(exit).toMatchObject({ code: 0 });
  });

  it('parses [SYS_CALL::…] text blocks like native calls; a broken block is an EINVAL result, not a crash', async () => {
    const { pid, results, exit } = await run(
      [
        {
          text: 'First [SYS_CALL::{"name": "fs_write", "args": {"path": "t.txt", "content": "a ] b } c"}}] then [SYS_CALL::{"name": "fs_write", "args": {broken}] and [SYS_CALL:: nothing',
        },
        { text: '[SYS_CALL::{"name":"exit","args":{"code":5}}]' },
      ],
      'demo-helper',
    );
    expect(results.map((r) => [r.name, r.ok, r.error?.code])).toEqual([
      ['fs_write', true, undefined],
      ['SYS_CALL', false, 'EINVAL'],
      ['SYS_CALL', false, 'EINVAL'],
      ['exit', true, undefined],
    ]);
    expect(exit).toMatchObject({ code: 5 });
    expect((await api<{ content: string }>('GET', `/v1/processes/${pid}/fs/t.txt`)).body.content).toBe('a ] b } c');
  });
});

describe('the per-process filesystem', () => {
  it('confines paths: escapes are EPERM, NUL bytes and backslashes EINVAL, missing files ENOENT', async () => {
    const { results } = await run([
      {
        tool_calls: [
          call('fs_write', { path: '../../etc/passwd', content: 'x' }),
          call('fs_write', { path: 'a\u0000b', content: 'x' }),
          call('fs_write', { path: 'a\\b', content: 'x' }),
          call('fs_write', { path: 'C:/x', content: 'x' }),
          call('fs_read', { path: 'nope.txt' }),
          call('fs_write', { path: '/docs/../docs/./readme.md', content: 'hello' }),
          call('fs_write', { path: 'docs/sub/deep.txt', content: 'deep' }),
          call('fs_list', { path: '/docs' }),
          call('fs_write', { path: 'docs/readme.md/child', content: 'x' }),
        ],
      },
    ]);
    expect(results.slice(0, 5).map((r) => r.error?.code)).toEqual(['EPERM', 'EINVAL', 'EINVAL', 'EPERM', 'ENOENT']);
    expect(results[5]).toMatchObject({ ok: true, result: { path: '/docs/readme.md' } });
    expect(results[7]?.result?.entries).toEqual([
      { name: 'readme.md', type: 'file', size: 5 },
      { name: 'sub', type: 'dir' },
    ]);
    expect(results[8]?.error?.code).toBe('EINVAL');
  });

  it('the API refuses paths that escape the process root', async () => {
    const { pid } = await run([{ tool_calls: [call('fs_write', { path: 'a.txt', content: 'A' })] }]);
    expect((await api('GET', `/v1/processes/${pid}/fs/..%2f..%2fsecret`)).status).toBe(403);
    expect((await api('GET', `/v1/processes/${pid}/fs/a%00b`)).status).toBe(400);
    expect((await api('GET', `/v1/processes/${pid}/fs/missing.txt`)).status).toBe(404);
    const dir = await api<{ type: string; entries: unknown[] }>('GET', `/v1/processes/${pid}/fs/`);
    expect(dir.body).toMatchObject({ type: 'dir', entries: [{ name: 'a.txt', type: 'file', size: 1 }] });
  });

  it('stores files larger than the 2 MB row limit in chunks and reads them back whole, with paging for the model', async () => {
    const { pid, results } = await run([
      { tool_calls: [call('net_fetch', { url: `${env.TEST_SERVER}/big?bytes=3000000`, save_to: 'big.txt' })] },
      { tool_calls: [call('fs_write', { path: 'big.txt', content: 'END', append: true }), call('fs_read', { path: 'big.txt', offset: 2_999_990 })] },
    ], 'default', ['fs:/**:rw', 'net:127.0.0.1']);
    expect(results[0]).toMatchObject({ ok: true, result: { status: 200, bytes: 3_000_000, truncated: true, saved_to: '/big.txt' } });
    expect(results[2]?.result).toMatchObject({ content: 'xxxxxxxxxxEND', size: 3_000_003 });
    const whole = await api<{ content: string; size: number }>('GET', `/v1/processes/${pid}/fs/big.txt`);
    expect(whole.body.size).toBe(3_000_003);
    expect(whole.body.content.length).toBe(3_000_003);
    expect(whole.body.content.endsWith('xEND')).toBe(true);
  });
});

describe('net_fetch', () => {
  it('returns status, headers and body; sends method and body', async () => {
    const { results } = await run([{ tool_calls: [call('net_fetch', { url: `${env.TEST_SERVER}/echo?q=1`, method: 'POST', body: 'ping' })] }], 'default', ['net:127.0.0.1:POST']);
    expect(results[0]).toMatchObject({ ok: true, result: { status: 200, truncated: false } });
    expect(JSON.parse(String(results[0]?.result?.body))).toEqual({ method: 'POST', path: '/echo', query: { q: '1' }, body: 'ping' });
  });

  it('caps bodies at 5 MB with a truncation flag, and only speaks http(s)', async () => {
    const { results } = await run([
      // (Each fetched page taints the context, so the fetch that succeeds goes last.)
      { tool_calls: [call('net_fetch', { url: 'ftp://example.com/file' }), call('net_fetch', { url: 'http://127.0.0.1:1/' }), call('net_fetch', { url: `${env.TEST_SERVER}/big?bytes=6000000` })] },
    ], 'default', ['net:127.0.0.1']);
    expect(results[0]?.error?.code).toBe('EINVAL');
    expect(results[1]?.error?.code).toBe('EIO');
    expect(results[2]).toMatchObject({ ok: true, result: { bytes: 5 * 1024 * 1024, truncated: true } });
    // The model sees the first 64 KiB (the event log keeps a preview that names the full length).
    expect(String(results[2]?.result?.body)).toMatch(/\[65536 chars\]$/);
  });
});
