/**
 * A request never waits forever: a spawn whose process object (or D1 behind it) does not answer is
 * a 503 EAGAIN with Retry-After within REQUEST_DEADLINE_SECONDS, naming the pid to check later. The
 * soak (scripts/soak.mjs) once saw a spawn hang for 300 s; here the object never answers at all.
 */
import { createExecutionContext, env } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { createApp } from '../src/api/app.ts';
import { ADMIN } from './support/helpers.ts';

/** A process namespace whose objects take every call and never answer. */
function unresponsiveProcesses(): { namespace: DurableObjectNamespace; calls: string[] } {
  const calls: string[] = [];
  const never = (name: string) => () => {
    calls.push(name);
    return new Promise<never>(() => {});
  };
  const stub = { spawn: never('spawn'), info: never('info') };
  const namespace = { idFromName: (name: string) => env.AGENT_PROCESS.idFromName(name), get: () => stub };
  return { namespace: namespace as unknown as DurableObjectNamespace, calls };
}

describe('bounded requests', () => {
  it('a spawn the process object never answers is a 503 EAGAIN with Retry-After, within the deadline', async () => {
    const { namespace, calls } = unresponsiveProcesses();
    const app = createApp();
    const request = new Request('http://agentos.test/v1/processes', {
      method: 'POST',
      headers: { ...ADMIN, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'stalled', task: 't', model: { provider: 'scripted', model: 'scripted' } }),
    });
    const res = await app.fetch(request, { ...env, AGENT_PROCESS: namespace, REQUEST_DEADLINE_SECONDS: '0.2' }, createExecutionContext());
    expect(calls).toEqual(['spawn']);
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('5');
    const body = (await res.json()) as { error: { code: string; message: string; details: { pid: string; deadline_ms: number } } };
    expect(body.error).toMatchObject({ code: 'EAGAIN', details: { deadline_ms: 200 } });
    expect(body.error.details.pid).toMatch(/^p[a-z0-9]+$/);
    expect(body.error.message).toContain('did not answer within 0.2 s');
  });

  it('the rate limiter and other EAGAIN refusals that say when carry Retry-After', async () => {
    const { errorResponse } = await import('../src/api/common.ts');
    expect(errorResponse({ code: 'ERATE', message: 'slow down', details: { retry_after_seconds: 42 } }).headers.get('retry-after')).toBe('42');
    expect(errorResponse({ code: 'EAGAIN', message: 'busy', details: { retry_after_ms: 1500 } }).headers.get('retry-after')).toBe('2');
    expect(errorResponse({ code: 'EAGAIN', message: 'busy' }).headers.get('retry-after')).toBeNull();
    expect(errorResponse({ code: 'EPERM', message: 'no', details: { retry_after_seconds: 3 } }).headers.get('retry-after')).toBeNull();
  });
});
