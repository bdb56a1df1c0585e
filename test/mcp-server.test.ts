/**
 * The kernel's /mcp endpoint driven by the official MCP SDK's Client over Streamable HTTP, in the
 * Workers runtime: delegate a job (spawn), follow its progress, collect its result; roles and
 * tenants apply exactly as in the HTTP API; malformed JSON-RPC is a typed error, never a 500.
 */
import { SELF } from 'cloudflare:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { CfWorkerJsonSchemaValidator } from '@modelcontextprotocol/sdk/validation/cfworker';
import { afterEach, describe, expect, it } from 'vitest';
import { api, runUntil } from './support/helpers.ts';

const scripted = { provider: 'scripted', model: 'scripted' };
const clients: Client[] = [];

async function connect(token = 'test-admin-token'): Promise<Client> {
  const transport = new StreamableHTTPClientTransport(new URL('http://agentos.test/mcp'), {
    fetch: (url, init) => SELF.fetch(url, init),
    requestInit: { headers: { authorization: `Bearer ${token}` } },
  });
  const client = new Client({ name: 'mcp-server-test', version: '1.0.0' }, { jsonSchemaValidator: new CfWorkerJsonSchemaValidator() });
  await client.connect(transport);
  clients.push(client);
  return client;
}

afterEach(async () => {
  for (const c of clients.splice(0)) await c.close();
});

async function token(role: 'reader' | 'operator' | 'admin', tenant?: string): Promise<string> {
  const r = await api<{ token: string }>('POST', '/v1/tokens', { role, name: `mcp-${role}`, ...(tenant ? { tenant } : {}) });
  expect(r.status).toBe(201);
  return r.body.token;
}

const structured = <T>(r: unknown): T => (r as CallToolResult).structuredContent as T;
const text = (r: unknown): string => ((r as CallToolResult).content[0] as { text: string }).text;

describe('the kernel as an MCP server', () => {
  it('lists its tools with the API schemas and its resource templates', async () => {
    const client = await connect();
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual(
      ['approval_decide', 'approvals_list', 'process_events', 'process_get', 'process_list', 'process_read_file', 'process_send', 'process_signal', 'process_spawn', 'process_wait'].sort(),
    );
    const spawnTool = tools.find((t) => t.name === 'process_spawn');
    // The spawn route's own body schema: strict, with its required fields.
    expect(spawnTool?.inputSchema.required).toEqual(expect.arrayContaining(['name', 'task']));
    expect(spawnTool?.inputSchema.additionalProperties).toBe(false);
    const signal = tools.find((t) => t.name === 'process_signal');
    expect(Object.keys(signal?.inputSchema.properties ?? {}).sort()).toEqual(['cascade', 'pid', 'signal']);
    const { resourceTemplates } = await client.listResourceTemplates();
    expect(resourceTemplates.map((t) => t.uriTemplate).sort()).toEqual(['agentos://processes/{pid}', 'agentos://processes/{pid}/fs/{+path}']);
  });

  it('delegates a job: spawn, follow progress, collect the result and the files', async () => {
    const client = await connect();
    const spawned = await client.callTool({
      name: 'process_spawn',
      arguments: {
        name: 'delegated',
        task: 'write a report',
        model: scripted,
        script: [{ tool_calls: [{ name: 'fs_write', args: { path: '/out/report.md', content: '# findings' } }] }, { tool_calls: [{ name: 'exit', args: { code: 0, result: { answer: 42 } } }] }],
      },
    });
    expect(spawned.isError).toBeFalsy();
    const pid = structured<{ pid: string }>(spawned).pid;
    expect(pid).toMatch(/^p/);

    const progress: string[] = [];
    const waiting = client.callTool({ name: 'process_wait', arguments: { pid, timeout_ms: 15_000 } }, undefined, { onprogress: (p) => progress.push(p.message ?? ''), timeout: 20_000 });
    await runUntil(pid, ['terminated']);
    const waited = structured<{ done: boolean; next_after: number; pcb: { state: string; exit: { code: number; result: unknown } } }>(await waiting);
    expect(waited.done).toBe(true);
    expect(waited.pcb.exit).toMatchObject({ code: 0, result: { answer: 42 } });
    expect(waited.next_after).toBeGreaterThan(0);
    expect(progress).toContain('syscall fs_write ok');
    expect(progress.at(-1)).toMatch(/-> (zombie|terminated)$/);

    // After the end, a wait returns at once; events and files are there to collect.
    const again = structured<{ done: boolean }>(await client.callTool({ name: 'process_wait', arguments: { pid, after: waited.next_after, timeout_ms: 5_000 } }));
    expect(again.done).toBe(true);
    const events = structured<{ events: { type: string }[] }>(await client.callTool({ name: 'process_events', arguments: { pid, limit: 1000 } }));
    expect(events.events.some((e) => e.type === 'syscall')).toBe(true);
    const file = structured<{ content: string }>(await client.callTool({ name: 'process_read_file', arguments: { pid, path: '/out/report.md' } }));
    expect(file.content).toBe('# findings');
    const resource = await client.readResource({ uri: `agentos://processes/${pid}/fs/out/report.md` });
    expect(JSON.parse((resource.contents[0] as { text: string }).text)).toMatchObject({ type: 'file', content: '# findings' });
    const pcb = await client.readResource({ uri: `agentos://processes/${pid}` });
    expect(JSON.parse((pcb.contents[0] as { text: string }).text)).toMatchObject({ pid, state: 'terminated' });
    const listed = structured<{ processes: { pid: string }[] }>(await client.callTool({ name: 'process_list', arguments: { limit: 500 } }));
    expect(listed.processes.map((p) => p.pid)).toContain(pid);
  });

  it('a wait that times out says so and gives the cursor to continue from', async () => {
    const client = await connect();
    const spawned = await client.callTool({ name: 'process_spawn', arguments: { name: 'sleeper', task: 'sleep', model: scripted, script: [{ tool_calls: [{ name: 'sleep', args: { seconds: 3600 } }] }] } });
    const pid = structured<{ pid: string }>(spawned).pid;
    await runUntil(pid, ['sleeping']);
    const waited = structured<{ done: boolean; next_after: number; pcb: { state: string } }>(await client.callTool({ name: 'process_wait', arguments: { pid, timeout_ms: 0 } }));
    expect(waited.done).toBe(false);
    expect(waited.pcb.state).toBe('sleeping');
    // Signal it through MCP, then the next wait, from the cursor, sees the end.
    const killed = await client.callTool({ name: 'process_signal', arguments: { pid, signal: 'SIGKILL' } });
    expect(killed.isError).toBeFalsy();
    const end = structured<{ done: boolean; pcb: { exit: { code: string } } }>(await client.callTool({ name: 'process_wait', arguments: { pid, after: waited.next_after, timeout_ms: 5_000 } }));
    expect(end.done).toBe(true);
    expect(end.pcb.exit.code).toBe('SIGKILL');
  });

  it('a reader token reads but cannot spawn, signal or decide', async () => {
    const reader = await connect(await token('reader'));
    const spawned = await reader.callTool({ name: 'process_spawn', arguments: { name: 'x', task: 'y', model: scripted, script: [] } });
    expect(spawned.isError).toBe(true);
    expect(text(spawned)).toMatch(/^EPERM: this call needs the operator role/);
    expect(structured<{ error: { code: string } }>(spawned).error.code).toBe('EPERM');
    const listed = await reader.callTool({ name: 'approvals_list', arguments: {} });
    expect(listed.isError).toBeFalsy();
    const decided = await reader.callTool({ name: 'approval_decide', arguments: { id: 'a1', decision: 'approve' } });
    expect(text(decided)).toMatch(/^EPERM/);
  });

  it("another tenant's pid is not found, by tool or by resource", async () => {
    const mine = await connect();
    const pid = structured<{ pid: string }>(await mine.callTool({ name: 'process_spawn', arguments: { name: 'private', task: 't', model: scripted, script: [{ tool_calls: [{ name: 'sleep', args: { seconds: 3600 } }] }] } })).pid;
    const other = await connect(await token('admin', 'mcp-other'));
    for (const call of [
      { name: 'process_get', arguments: { pid } },
      { name: 'process_events', arguments: { pid } },
      { name: 'process_wait', arguments: { pid, timeout_ms: 1000 } },
      { name: 'process_signal', arguments: { pid, signal: 'SIGKILL' } },
      { name: 'process_read_file', arguments: { pid, path: '/out' } },
    ]) {
      const r = await other.callTool(call);
      expect(r.isError, call.name).toBe(true);
      expect(text(r), call.name).toMatch(/^ENOENT/);
    }
    await expect(other.readResource({ uri: `agentos://processes/${pid}` })).rejects.toMatchObject({ code: -32002 });
    const listed = structured<{ processes: { pid: string }[] }>(await other.callTool({ name: 'process_list', arguments: {} }));
    expect(listed.processes.map((p) => p.pid)).not.toContain(pid);
    // And the owner still sees it running.
    expect(structured<{ state: string }>(await mine.callTool({ name: 'process_get', arguments: { pid } })).state).not.toBe('terminated');
  });

  it('invalid tool arguments are a tool error naming the field, not a crash', async () => {
    const client = await connect();
    const r = await client.callTool({ name: 'process_signal', arguments: { pid: 'p'.padEnd(21, 'a'), signal: 'SIGNOPE' } });
    expect(r.isError).toBe(true);
    expect(text(r)).toMatch(/signal/);
  });
});

describe('/mcp over raw HTTP', () => {
  const post = (body: string, headers: Record<string, string> = {}) =>
    SELF.fetch('http://agentos.test/mcp', { method: 'POST', body, headers: { authorization: 'Bearer test-admin-token', 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers } });

  it('malformed JSON and non-JSON-RPC bodies are JSON-RPC errors with a 4xx', async () => {
    for (const body of ['{not json', '{"hello": "world"}', '"x"', '[1, 2]', JSON.stringify({ jsonrpc: '1.0', method: 'tools/list', id: 1 })]) {
      const res = await post(body);
      expect(res.status, body).toBeGreaterThanOrEqual(400);
      expect(res.status, body).toBeLessThan(500);
      const json = (await res.json()) as { jsonrpc: string; error: { code: number } };
      expect(json.jsonrpc, body).toBe('2.0');
      expect(typeof json.error.code, body).toBe('number');
    }
  });

  it('an oversized body is 413, an unknown method a JSON-RPC error', async () => {
    const big = await post(JSON.stringify({ jsonrpc: '2.0', method: 'ping', id: 1, params: { pad: 'x'.repeat(1024 * 1024 + 10) } }));
    expect(big.status).toBe(413);
    await big.body?.cancel();
    const init = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'nonsense/method', params: {} });
    const res = await post(init, { accept: 'application/json, text/event-stream' });
    expect(res.status).toBeLessThan(500);
    expect(await res.text()).toMatch(/"code":-32601/);
  });

  it('needs a bearer token; GET and DELETE are 405', async () => {
    const anon = await SELF.fetch('http://agentos.test/mcp', { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
    expect(anon.status).toBe(401);
    expect(((await anon.json()) as { error: { code: string } }).error.code).toBe('EUNAUTH');
    for (const method of ['GET', 'DELETE']) {
      const res = await SELF.fetch('http://agentos.test/mcp', { method, headers: { authorization: 'Bearer test-admin-token', accept: 'text/event-stream' } });
      expect(res.status).toBe(405);
      await res.body?.cancel();
    }
  });
});
