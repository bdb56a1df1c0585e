import { describe, expect, it } from 'vitest';
import { ERROR_CODES, ERROR_CODE_LIST, type ErrorCode, KernelError, fail, httpStatus, isErrorCode, ok, toErrorValue, unwrap } from './errors.ts';

const EXPECTED_STATUS: Record<ErrorCode, number> = {
  EINVAL: 400,
  E2BIG: 413,
  EUNAUTH: 401,
  EPERM: 403,
  ENOENT: 404,
  ENOSYS: 400,
  ESTATE: 409,
  EEXIST: 409,
  ECHILD: 409,
  EQUOTA: 429,
  ERATE: 429,
  EAGAIN: 503,
  ETIMEDOUT: 504,
  EINTR: 500,
  EIO: 502,
  EFAULT: 500,
};

describe('error codes', () => {
  it('maps every code to its HTTP status', () => {
    expect([...ERROR_CODE_LIST].sort()).toEqual(Object.keys(EXPECTED_STATUS).sort());
    for (const code of ERROR_CODE_LIST) {
      expect(httpStatus(code), code).toBe(EXPECTED_STATUS[code]);
      expect(new KernelError(code, 'm').status, code).toBe(EXPECTED_STATUS[code]);
      expect(ERROR_CODES[code].summary.length).toBeGreaterThan(0);
    }
  });

  it('isErrorCode accepts only the closed set', () => {
    expect(isErrorCode('EPERM')).toBe(true);
    for (const v of ['eperm', 'EWHAT', 'toString', '__proto__', '', 1, null, undefined]) expect(isErrorCode(v)).toBe(false);
  });
});

describe('KernelError', () => {
  it('is an Error with name, code, message and details', () => {
    const e = new KernelError('ENOENT', 'no such file', { path: '/a' });
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe('KernelError');
    expect(e.code).toBe('ENOENT');
    expect(e.message).toBe('no such file');
    expect(e.details).toEqual({ path: '/a' });
  });

  it('round-trips through toValue / fromValue', () => {
    const e = new KernelError('EQUOTA', 'too many steps', { quota: 'max_steps', n: [1, 2] });
    const v = e.toValue();
    expect(v).toEqual({ code: 'EQUOTA', message: 'too many steps', details: { quota: 'max_steps', n: [1, 2] } });
    const back = KernelError.fromValue(structuredClone(v));
    expect(back).toBeInstanceOf(KernelError);
    expect(back.toValue()).toEqual(v);
  });

  it('omits details from the value when there are none', () => {
    const v = new KernelError('EAGAIN', 'busy').toValue();
    expect(v).toEqual({ code: 'EAGAIN', message: 'busy' });
    expect('details' in v).toBe(false);
    expect(KernelError.fromValue(v).toValue()).toEqual(v);
  });
});

describe('toErrorValue', () => {
  it('keeps a KernelError as it is', () => {
    expect(toErrorValue(new KernelError('EPERM', 'nope', { x: 1 }))).toEqual({ code: 'EPERM', message: 'nope', details: { x: 1 } });
  });

  it('turns a plain Error or any thrown value into EFAULT', () => {
    expect(toErrorValue(new TypeError('x is undefined'))).toEqual({ code: 'EFAULT', message: 'internal fault: x is undefined' });
    expect(toErrorValue('boom')).toEqual({ code: 'EFAULT', message: 'internal fault: boom' });
    expect(toErrorValue({ code: 'EPERM', message: 'fake' }).code).toBe('EFAULT');
  });

  it("turns the platform's overloaded Durable Object error into EAGAIN with a retry delay", () => {
    const e = Object.assign(new Error('Durable Object is overloaded. Too many requests queued.'), { overloaded: true, retryable: true });
    expect(toErrorValue(e)).toEqual({ code: 'EAGAIN', message: 'overloaded: Durable Object is overloaded. Too many requests queued.', details: { retry_after_seconds: 1 } });
  });
});

describe('Result helpers', () => {
  it('ok / fail / unwrap', () => {
    expect(unwrap(ok(5))).toBe(5);
    const f = fail('ENOENT', 'gone', { pid: 'p1' });
    expect(f).toEqual({ ok: false, error: { code: 'ENOENT', message: 'gone', details: { pid: 'p1' } } });
    expect('details' in (fail('ENOENT', 'gone') as { error: object }).error).toBe(false);
    try {
      unwrap(f);
      expect.unreachable('unwrap should throw');
    } catch (e) {
      expect(e).toBeInstanceOf(KernelError);
      expect(e instanceof KernelError && e.toValue()).toEqual({ code: 'ENOENT', message: 'gone', details: { pid: 'p1' } });
    }
  });
});
