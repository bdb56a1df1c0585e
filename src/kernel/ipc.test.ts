import { describe, expect, it } from 'vitest';
import { MAX_HELD, MAX_MESSAGE_BYTES, type WireMessage, arrival, checkSize, drain, isOutsideSender, matches, messageId } from './ipc.ts';
import { KernelError } from './errors.ts';

const state = (next: number, held: number[] = [], skipped: number[] = []) => ({ next, held: new Set(held), skipped: new Set(skipped) });
const P = 'p00000000000000000001';
const msg = (body: unknown): WireMessage => ({ id: messageId(P, P, 1), tenant: 't', from: P, to: P, channel: P, seq: 1, topic: null, correlation_id: null, reply_to: null, body, sent_at: 0 });

describe('arrival: at-least-once in, exactly-once in order out', () => {
  it('applies the expected seq, drops what was applied, holds what is early', () => {
    expect(arrival(state(1), 1)).toBe('apply');
    expect(arrival(state(3), 2)).toBe('duplicate');
    expect(arrival(state(3), 5)).toBe('hold');
    expect(arrival(state(3, [5]), 5)).toBe('duplicate');
  });
  it('pushes back once MAX_HELD are held, and applies a skipped seq late, once', () => {
    const full = Array.from({ length: MAX_HELD }, (_, i) => i + 10);
    expect(arrival(state(1, full), 5000)).toBe('retry');
    expect(arrival(state(9, [], [4]), 4)).toBe('apply_late');
    expect(arrival(state(9, [], []), 4)).toBe('duplicate');
  });
  it('drain applies the held run that follows, and skips a timed-out gap', () => {
    expect(drain(2, [4, 2, 3, 7], false)).toEqual({ apply: [2, 3, 4], next: 5, skipped: [] });
    expect(drain(2, [5, 6], false)).toEqual({ apply: [], next: 2, skipped: [] });
    expect(drain(2, [5, 6], true)).toEqual({ apply: [5, 6], next: 7, skipped: [2, 3, 4] });
  });
});

describe('messages', () => {
  it('E2BIG past one Queue message (128 KB encoded)', () => {
    expect(checkSize(msg('x'.repeat(1000)))).toBeLessThan(MAX_MESSAGE_BYTES);
    try {
      checkSize(msg('x'.repeat(MAX_MESSAGE_BYTES)));
      expect.unreachable();
    } catch (e) {
      expect((e as KernelError).code).toBe('E2BIG');
    }
  });
  it('matches recv filters; outside senders are not pids', () => {
    const m = { from: P, correlation_id: 'c', topic: null };
    expect(matches({}, m)).toBe(true);
    expect(matches({ from: P, correlation_id: 'c' }, m)).toBe(true);
    expect(matches({ correlation_id: 'd' }, m)).toBe(false);
    expect(matches({ topic: 'a' }, m)).toBe(false);
    expect(isOutsideSender('hook:gh')).toBe(true);
    expect(isOutsideSender(P)).toBe(false);
  });
});
