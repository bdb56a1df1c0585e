/**
 * IPC as agents rely on it: mailboxes (exactly once, in per-pair order, whatever the transport does),
 * blocking recv, topics, dead letters and webhooks. Queue batches are driven with
 * createMessageBatch/getQueueResult, alarms with runDurableObjectAlarm: nothing sleeps.
 */
import { createExecutionContext, createMessageBatch, env, getQueueResult } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import worker from '../worker/index.ts';
import type { WireMessage } from '../src/kernel/ipc.ts';
import { api, eventsOf, pcbOf, runUntil, spawn, tick } from './support/helpers.ts';

const scripted = { provider: 'scripted', model: 'scripted' };
const call = (name: string, args: Record<string, unknown> = {}) => ({ tool_calls: [{ name, args }] });
const resultsOf = async (pid: string, name: string) => (await eventsOf(pid)).filter((e) => e.type === 'syscall' && e.data.name === name).map((e) => e.data);
type Mailbox = { queued: number; held: number; messages: { id: string; from: string; body: unknown; status: string; topic: string | null; late?: boolean }[] };
const mailboxOf = async (pid: string) => (await api<Mailbox>('GET', `/v1/processes/${pid}/mailbox?limit=500`)).body;
type DeadLetters = { dead_letters: { id: string; recipient: string | null; code: string; reason: string }[] };
const deadLetters = async () => (await api<DeadLetters>('GET', '/v1/dead-letters?limit=500')).body.dead_letters;

/** A message on the channel of a (fake) sender pid, as a sender's outbox would produce it. */
function wire(from: string, to: string, seq: number, body: unknown): WireMessage {
  return { id: `${from}>${to}#${seq}`, tenant: 'default', from, to, channel: from, seq, topic: null, correlation_id: null, reply_to: null, body, sent_at: 1 };
}

async function runBatch(bodies: unknown[]) {
  const batch = createMessageBatch('agentos-ipc', bodies.map((body, i) => ({ id: `q${Math.random().toString(36).slice(2)}${i}`, timestamp: 1, attempts: 1, body })));
  const ctx = createExecutionContext();
  await worker.queue(batch as MessageBatch<unknown>, env);
  ctx.waitUntil(Promise.resolve());
  return getQueueResult(batch, ctx);
}

describe('mailboxes', () => {
  it('a blocked recv is woken by the arrival of a message and returns it', async () => {
    const b = await spawn({ name: 'b', task: 't', model: scripted, script: [call('recv', {}), call('exit', { code: 0, result: '{{last_result}}' })] });
    const waiting = await runUntil(b.pid, ['waiting']);
    expect(waiting.wait).toMatchObject({ reason: 'message' });
    const a = await spawn({ name: 'a', task: 't', model: scripted, script: [call('send', { to: b.pid, body: { hello: 'world' }, correlation_id: 'c1' }), call('exit', { code: 0 })] });
    await runUntil(a.pid, ['terminated']);
    // Delivered by the sender's outbox (direct RPC): b is runnable without anyone polling.
    expect((await pcbOf(b.pid)).state).toBe('ready');
    const done = await runUntil(b.pid, ['terminated']);
    expect(JSON.parse(String(done.exit?.result))).toMatchObject({ ok: true, value: { from: a.pid, body: { hello: 'world' }, correlation_id: 'c1', id: `${a.pid}>${b.pid}#1` } });
    expect((await resultsOf(a.pid, 'send'))[0]).toMatchObject({ ok: true, result: { seq: 1 } });
  });

  it('a blocked recv times out through the alarm with ETIMEDOUT; timeout 0 does not block', async () => {
    const { pid } = await spawn({ name: 't', task: 't', model: scripted, script: [call('recv', { timeout_seconds: 0 }), call('recv', { from: 'nobody', timeout_seconds: 30 }), call('exit', { code: 3 })] });
    await runUntil(pid, ['waiting']);
    const done = await runUntil(pid, ['terminated']);
    expect(done.exit?.code).toBe(3);
    const recvs = await resultsOf(pid, 'recv');
    expect(recvs.map((r) => (r.error as { code: string }).code)).toEqual(['ETIMEDOUT', 'ETIMEDOUT']);
  });

  it('duplicate and out-of-order Queue deliveries are applied exactly once, in per-pair order', async () => {
    const b = await spawn({ name: 'sink', task: 't', model: scripted, script: [call('sleep', { seconds: 3600 })] });
    const sender = 'p00000000000000000001';
    const r1 = await runBatch([wire(sender, b.pid, 3, 'three'), wire(sender, b.pid, 1, 'one'), wire(sender, b.pid, 1, 'one')]);
    expect(r1.explicitAcks).toHaveLength(3);
    expect(r1.retryMessages).toEqual([]);
    let box = await mailboxOf(b.pid);
    expect(box.messages.map((m) => m.body)).toEqual(['one']); // 3 is held until 2 arrives
    expect(box.held).toBe(1);
    const r2 = await runBatch([wire(sender, b.pid, 2, 'two'), wire(sender, b.pid, 3, 'three'), wire(sender, b.pid, 2, 'two')]);
    expect(r2.explicitAcks).toHaveLength(3);
    box = await mailboxOf(b.pid);
    // Newest first: arrival order is 1, 2, 3, each once.
    expect(box.messages.map((m) => m.body)).toEqual(['three', 'two', 'one']);
    expect(box).toMatchObject({ queued: 3, held: 0 });
  });

  it('a poison payload and a message to an unknown pid end in the dead-letter table, acked', async () => {
    const result = await runBatch([{ tenant: 'default', not: 'a message' }, wire('p00000000000000000002', 'p0000000000000000zzzz', 1, 'lost')]);
    expect(result.explicitAcks).toHaveLength(2);
    const dead = await deadLetters();
    expect(dead).toEqual(expect.arrayContaining([expect.objectContaining({ code: 'EINVAL' }), expect.objectContaining({ id: 'p00000000000000000002>p0000000000000000zzzz#1', code: 'ENOENT' })]));
  });

  it('a send to a process that has exited is dead-lettered, not dropped; oversized bodies are 413 E2BIG (the syscall case: src/kernel/ipc.test.ts)', async () => {
    const gone = await spawn({ name: 'gone', task: 't', model: scripted, script: [call('exit', { code: 0 })] });
    await runUntil(gone.pid, ['terminated']);
    const a = await spawn({ name: 'a', task: 't', model: scripted, script: [call('send', { to: gone.pid, body: 'anyone?' }), call('exit', { code: 0 })] });
    await runUntil(a.pid, ['terminated']);
    expect(await deadLetters()).toEqual(expect.arrayContaining([expect.objectContaining({ id: `${a.pid}>${gone.pid}#1`, recipient: gone.pid, code: 'ESTATE' })]));
    const big = await api('POST', `/v1/processes/${gone.pid}/messages`, { body: 'y'.repeat(140_000) });
    expect(big.status).toBe(413);
  });

  it('POST /messages delivers from outside (idempotent by id); the message enters the context as untrusted', async () => {
    const b = await spawn({ name: 'in', task: 't', model: scripted, script: [call('recv', {}), call('exit', { code: 0, result: '{{last_result}}' })] });
    await runUntil(b.pid, ['waiting']);
    const first = await api<{ status: string }>('POST', `/v1/processes/${b.pid}/messages`, { body: { n: 1 }, id: 'k1' });
    const again = await api<{ status: string }>('POST', `/v1/processes/${b.pid}/messages`, { body: { n: 1 }, id: 'k1' });
    expect([first.status, first.body.status, again.body.status]).toEqual([202, 'applied', 'duplicate']);
    const done = await runUntil(b.pid, ['terminated']);
    // What the model read: the result page carries the untrusted label (risky syscalls now need approval).
    expect(String(done.exit?.result)).toMatch(/^\[untrusted content from a message from api:bootstrap/);
    expect((await mailboxOf(b.pid)).messages).toHaveLength(1);
    expect((await api('POST', '/v1/processes/p0000000000000000nope/messages', { body: 1 })).status).toBe(404);
  });
});

describe('topics', () => {
  it('publish fans out to every subscriber exactly once', async () => {
    const subs = await Promise.all(
      ['s1', 's2'].map((name) => spawn({ name, task: 't', model: scripted, script: [call('subscribe', { topic: 'alerts/disk' }), call('recv', { topic: 'alerts/disk' }), call('exit', { code: 0, result: '{{last_result}}' })] })),
    );
    for (const s of subs) await runUntil(s.pid, ['waiting']);
    const pub = await spawn({ name: 'pub', task: 't', model: scripted, script: [call('publish', { topic: 'alerts/disk', body: 'disk full' }), call('exit', { code: 0 })] });
    await runUntil(pub.pid, ['terminated']);
    expect((await resultsOf(pub.pid, 'publish'))[0]).toMatchObject({ ok: true, result: { subscribers: 2 } });
    for (const s of subs) {
      const done = await runUntil(s.pid, ['terminated']);
      expect(JSON.parse(String(done.exit?.result))).toMatchObject({ value: { from: pub.pid, topic: 'alerts/disk', body: 'disk full' } });
      expect((await mailboxOf(s.pid)).messages).toHaveLength(1);
    }
  });
});

describe('signals and the process tree', () => {
  const signal = (pid: string, sig: string, cascade?: boolean) => api<{ state: string }>('POST', `/v1/processes/${pid}/signals`, { signal: sig, ...(cascade ? { cascade } : {}) });

  it('SIGTERM interrupts a sleep, grants one clean-up step, then ends the process with SIGTERM', async () => {
    const { pid } = await spawn({ name: 'term', task: 't', model: scripted, script: [call('sleep', { seconds: 600 }), call('fs_write', { path: 'cleanup.txt', content: 'saved' }), call('sleep', { seconds: 1 })] });
    await runUntil(pid, ['sleeping']);
    expect((await signal(pid, 'SIGTERM')).body.state).toBe('ready');
    const done = await runUntil(pid, ['terminated']);
    expect(done.exit?.code).toBe('SIGTERM');
    expect((await api<{ content: string }>('GET', `/v1/processes/${pid}/fs/cleanup.txt`)).body.content).toBe('saved');
    expect((await resultsOf(pid, 'sleep'))[0]).toMatchObject({ ok: false, error: { code: 'EINTR' } });
    expect((await eventsOf(pid)).some((e) => e.type === 'term_cleanup')).toBe(true);
    expect(done.usage.steps).toBe(2);
  });

  it('SIGTERM: a clean-up step that stalls is ended when the grace period runs out', async () => {
    const { pid } = await spawn({ name: 'stall', task: 't', model: scripted, script: [call('sleep', { seconds: 600 }), call('sleep', { seconds: 600 })] });
    await runUntil(pid, ['sleeping']);
    await signal(pid, 'SIGTERM');
    await runUntil(pid, ['sleeping']); // the clean-up step sleeps past the 30 s grace period
    await tick(pid);
    expect(await pcbOf(pid)).toMatchObject({ state: 'terminated', exit: { code: 'SIGTERM', reason: expect.stringMatching(/grace period/) } });
  });

  it('SIGSTOP holds a message for a stopped recv; SIGCONT completes the recv', async () => {
    const b = await spawn({ name: 'b', task: 't', model: scripted, script: [call('recv', {}), call('exit', { code: 0, result: '{{last_result}}' })] });
    await runUntil(b.pid, ['waiting']);
    expect((await signal(b.pid, 'SIGSTOP')).body.state).toBe('stopped');
    await api('POST', `/v1/processes/${b.pid}/messages`, { body: 'while stopped' });
    expect((await pcbOf(b.pid)).state).toBe('stopped');
    expect((await signal(b.pid, 'SIGCONT')).body.state).toBe('ready');
    const done = await runUntil(b.pid, ['terminated']);
    expect(String(done.exit?.result)).toContain('"body":"while stopped"');
  });

  it('SIGCHLD: a child exit lands in the parent mailbox, waking a recv; wait then collects the zombie', async () => {
    const { pid } = await spawn({
      name: 'parent',
      task: 't',
      model: scripted,
      script: [call('spawn', { name: 'kid', task: 'x', image: 'demo-helper' }), call('recv', { from: '{{result:0.value.pid}}' }), call('wait', {}), call('exit', { code: 0, result: '{{result:1.value.body.signal}}' })],
    });
    await runUntil(pid, ['waiting']);
    const kid = (await api<{ processes: { pid: string }[] }>('GET', `/v1/processes?ppid=${pid}`)).body.processes[0]!.pid;
    expect((await runUntil(kid, ['zombie'])).state).toBe('zombie');
    const done = await runUntil(pid, ['terminated']);
    expect(done.exit?.result).toBe('SIGCHLD');
    expect((await resultsOf(pid, 'wait'))[0]).toMatchObject({ ok: true, result: { pid: kid, exit: { code: 0 } } });
    expect((await pcbOf(kid)).state).toBe('terminated');
  });

  it('orphans are re-parented to the tenant init, which reaps them when they exit', async () => {
    const { pid } = await spawn({ name: 'p', task: 't', model: scripted, script: [call('spawn', { name: 'kid', task: 'x', image: 'idle' }), call('exit', { code: 0 })] });
    await runUntil(pid, ['terminated']);
    const kid = ((await resultsOf(pid, 'spawn'))[0]!.result as { pid: string }).pid;
    const orphan = await pcbOf(kid);
    expect(orphan.ppid).not.toBe(pid);
    const init = await pcbOf(orphan.ppid!);
    expect(init).toMatchObject({ name: 'init', image: 'init', state: 'waiting' });
    expect((await api('POST', `/v1/processes/${init.pid}/signals`, { signal: 'SIGKILL' })).status).toBe(403);
    await signal(kid, 'SIGKILL');
    expect((await pcbOf(kid)).state).toBe('terminated'); // reaped by init, not left a zombie
  });

  it('SIGKILL with cascade ends the whole process group', async () => {
    const { pid } = await spawn({ name: 'leader', task: 't', model: scripted, script: [call('spawn', { name: 'kid', task: 'x', image: 'idle' }), call('sleep', { seconds: 3600 })] });
    await runUntil(pid, ['sleeping']);
    const kid = (await api<{ processes: { pid: string }[] }>('GET', `/v1/processes?ppid=${pid}`)).body.processes[0]!.pid;
    await runUntil(kid, ['sleeping']);
    await signal(pid, 'SIGKILL', true);
    expect((await pcbOf(pid)).state).toBe('terminated');
    expect(await pcbOf(kid)).toMatchObject({ state: 'terminated', exit: { code: 'SIGKILL' } });
  });
});

describe('webhooks', () => {
  const secret = 'a-very-secret-webhook-key';
  async function sign(body: string): Promise<string> {
    const key = await crypto.subtle.importKey('raw', new TextEncoder().encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
    const mac = new Uint8Array(await crypto.subtle.sign('HMAC', key, new TextEncoder().encode(body)));
    return `sha256=${[...mac].map((b) => b.toString(16).padStart(2, '0')).join('')}`;
  }
  const hook = (name: string, body: string, headers: Record<string, string>) => fetchHook(name, body, headers);
  async function fetchHook(name: string, body: string, headers: Record<string, string>) {
    const { SELF } = await import('cloudflare:test');
    return SELF.fetch(`http://agentos.test/v1/hooks/${name}`, { method: 'POST', body, headers: { 'content-type': 'application/json', ...headers } });
  }

  it('a signed deliver route accepts a good signature and refuses bad or missing ones (nothing delivered)', async () => {
    const b = await spawn({ name: 'hooked', task: 't', model: scripted, script: [call('sleep', { seconds: 3600 })] });
    expect((await api('POST', '/v1/hooks', { name: 'gh', action: 'deliver', pid: b.pid, secret })).status).toBe(201);
    const payload = JSON.stringify({ action: 'opened', number: 7 });
    expect((await hook('gh', payload, { 'x-agentos-signature': await sign('tampered') })).status).toBe(401);
    expect((await hook('gh', payload, {})).status).toBe(401);
    expect((await mailboxOf(b.pid)).messages).toHaveLength(0);
    const good = await hook('gh', payload, { 'x-agentos-signature': await sign(payload), 'x-agentos-delivery': 'd-1' });
    expect(good.status).toBe(202);
    await hook('gh', payload, { 'x-agentos-signature': await sign(payload), 'x-agentos-delivery': 'd-1' });
    const box = await mailboxOf(b.pid);
    expect(box.messages).toEqual([expect.objectContaining({ from: 'hook:gh', body: { action: 'opened', number: 7 } })]);
    const list = await api<{ hooks: Record<string, unknown>[] }>('GET', '/v1/hooks');
    expect(list.body.hooks[0]).toMatchObject({ name: 'gh', signed: true });
    expect(JSON.stringify(list.body)).not.toContain(secret);
  });

  it('a spawn route starts a process with the payload as its (untrusted) task', async () => {
    expect((await api('POST', '/v1/hooks', { name: 'job', action: 'spawn', image: 'idle', secret })).status).toBe(201);
    const payload = 'summarise ticket 42';
    const r = await hook('job', payload, { 'x-agentos-signature': await sign(payload) });
    expect(r.status).toBe(202);
    const { spawned } = (await r.json()) as { spawned: string };
    expect(await pcbOf(spawned)).toMatchObject({ name: 'hook:job', task: payload });
  });
});

describe('tenant isolation', () => {
  it("another tenant can neither read a mailbox nor message a process, nor see the dead letters", async () => {
    const made = await api<{ token: string }>('POST', '/v1/tokens', { tenant: 'other', role: 'operator', name: 'other-op' });
    const other = { authorization: `Bearer ${made.body.token}` };
    const b = await spawn({ name: 'private', task: 't', model: scripted, script: [call('sleep', { seconds: 3600 })] });
    expect((await api('GET', `/v1/processes/${b.pid}/mailbox`, undefined, other)).status).toBe(404);
    expect((await api('POST', `/v1/processes/${b.pid}/messages`, { body: 'hi' }, other)).status).toBe(404);
    expect((await mailboxOf(b.pid)).messages).toHaveLength(0);
    const theirs = await api<DeadLetters>('GET', '/v1/dead-letters', undefined, other);
    expect(theirs.body.dead_letters.every((d) => d.recipient === b.pid)).toBe(true);
  });
});
