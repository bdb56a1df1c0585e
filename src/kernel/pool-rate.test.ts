import { describe, expect, it } from 'vitest';
import { INITIAL_STATE, type RateConfig, factorAt, recordSent, release, windowAllowance, windowRoom } from './pool-rate.ts';
import { PoolConfigSchema, type QueuedTicket, pick } from './scheduler.ts';

const rate = (c: Partial<RateConfig> = {}): RateConfig => PoolConfigSchema.parse(c);
const tickets = (n: number, est = 100): QueuedTicket[] => Array.from({ length: n }, (_, i) => ({ id: `t${i}`, pid: `p${i}`, tenant: 'a', priority: 50, est_tokens: est, enqueued_at: 0, lineage: [{ pid: `p${i}`, max_tokens: 1e12 }] }));
const NOW = 1_000_000;
const pickAt = (config: RateConfig, queue: QueuedTicket[], window: { entries: [number, number][]; in_flight: number; in_flight_tokens: number }, now = NOW) =>
  pick({ config: PoolConfigSchema.parse(config), shards: 1, state: INITIAL_STATE, queue, in_flight: window.in_flight, vtimes: { tenant: new Map(), pid: new Map() }, windows: new Map(), subtree: new Map(), window, now });

describe('the sliding window', () => {
  // 100 requests and 100,000 tokens per 10 s; buckets of a minute, so that the window is what binds here.
  const config = rate({ rpm: 600, tpm: 600_000, window_seconds: 10, burst_seconds: 60, headroom: 0.97 });

  it("holds grants to a window's allowance, whatever the buckets would allow", () => {
    expect(windowAllowance(config, 1, INITIAL_STATE, NOW)).toEqual({ requests: 97, tokens: 97_000, ms: 10_000 });
    const r = pickAt(config, tickets(150), { entries: [], in_flight: 0, in_flight_tokens: 0 });
    expect(r.decisions).toHaveLength(97);
    // Everything is in flight: only a release can make room.
    expect(r).toMatchObject({ blocked_by: 'requests', next_at: null });
  });

  it('counts a released request from when it was sent until it leaves the window', () => {
    const entries: [number, number][] = Array.from({ length: 97 }, (_, i) => [NOW - 9_000 + i * 10, 100]);
    const r = pickAt(config, tickets(3), { entries, in_flight: 0, in_flight_tokens: 0 });
    expect(r.decisions).toHaveLength(0);
    // The oldest leaves at its send time + 10 s: one more fits then.
    expect(r).toMatchObject({ blocked_by: 'requests', next_at: NOW + 1_000 });
    expect(pickAt(config, tickets(3), { entries, in_flight: 0, in_flight_tokens: 0 }, NOW + 1_000).decisions).toHaveLength(1);
  });

  it('holds tokens the same way, and lets a call bigger than the window go alone', () => {
    const r = pickAt(config, tickets(3, 40_000), { entries: [[NOW - 5_000, 30_000]], in_flight: 0, in_flight_tokens: 0 });
    expect(r.decisions).toHaveLength(1);
    expect(r).toMatchObject({ blocked_by: 'tokens', next_at: NOW + 5_000 });
    expect(pickAt(config, tickets(2, 500_000), { entries: [], in_flight: 0, in_flight_tokens: 0 }).decisions).toHaveLength(1);
  });

  it('keeps entries in order of sending and drops those past the window', () => {
    let e = recordSent([], NOW - 2_000, 5, 10_000, NOW);
    e = recordSent(e, NOW - 3_000, 7, 10_000, NOW);
    e = recordSent(e, NOW - 20_000, 9, 10_000, NOW);
    expect(e).toEqual([[NOW - 3_000, 7], [NOW - 2_000, 5]]);
    expect(recordSent(e, NOW, 1, 10_000, NOW + 7_500)).toEqual([[NOW - 2_000, 5], [NOW, 1]]);
    expect(windowRoom({ requests: 2, tokens: 100, ms: 10_000 }, { entries: e, in_flight: 1, in_flight_tokens: 0 }, 1, NOW)).toEqual({ ok: false, blocked_by: 'requests', next_at: NOW + 8_000 });
  });
});

describe('429s', () => {
  const config = rate({ rpm: 600 });

  it('pauses on the first 429 without slowing down: a bunch sent late is not a lower limit', () => {
    const first = release(config, INITIAL_STATE, 1, 1, { kind: 'rate_limited', retry_after_ms: 2_000 }, NOW, NOW - 500);
    expect(first).toMatchObject({ paused_until: NOW + 2_000, paused_at: NOW, factor: 1 });
    // More of the same bunch (granted before the pause began) only extend the pause.
    const bunch = release(config, first, 1, 1, { kind: 'rate_limited', retry_after_ms: 3_000 }, NOW + 100, NOW - 200);
    expect(bunch).toMatchObject({ paused_until: NOW + 3_100, paused_at: NOW, factor: 1 });
    expect(factorAt(bunch, NOW + 60_000)).toBe(1);
  });

  it('slows down by 15% when 429s persist after a pause, recovering 5% a minute', () => {
    const first = release(config, INITIAL_STATE, 1, 1, { kind: 'rate_limited', retry_after_ms: 2_000 }, NOW, NOW - 500);
    const again = release(config, first, 1, 1, { kind: 'rate_limited', retry_after_ms: 1_000 }, NOW + 4_000, NOW + 2_500);
    expect(again).toMatchObject({ paused_until: NOW + 5_000, paused_at: NOW + 4_000 });
    expect(again.factor).toBeCloseTo(0.85);
    expect(factorAt(again, NOW + 4_000 + 60_000)).toBeCloseTo(0.9);
    // Long after the pause, a 429 is a new first one.
    expect(release(config, first, 1, 1, { kind: 'rate_limited', retry_after_ms: 1_000 }, NOW + 600_000, NOW + 599_000).factor).toBe(1);
    // A state saved before paused_at existed: a first 429 again.
    const { paused_at: _, ...old } = INITIAL_STATE;
    expect(release(config, old, 1, 1, { kind: 'rate_limited', retry_after_ms: 1_000 }, NOW, NOW).factor).toBe(1);
  });
});
