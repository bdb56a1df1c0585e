import { describe, expect, it } from 'vitest';
import { AUTH_CACHE_MS, AuthCache } from './auth-cache.ts';

type P = { tenant: string; role: string; token_id: string };
const alice: P = { tenant: 't', role: 'reader', token_id: 'alice' };
const boot: P = { tenant: 'default', role: 'admin', token_id: 'bootstrap' };

describe('AuthCache: what lets a request skip the D1 read', () => {
  it('a verified token from a client counted under the limit, both within AUTH_CACHE_MS', () => {
    const c = new AuthCache<P>();
    c.remember('d1', alice, undefined, 1000);
    expect(c.principal('d1', 'ip:0', 20, undefined, 1000)).toBeNull(); // the client was never counted here
    c.sawFailures('ip:0', 3, 1000);
    expect(c.principal('d1', 'ip:0', 20, undefined, 1000 + AUTH_CACHE_MS - 1)).toEqual(alice);
    expect(c.principal('d2', 'ip:0', 20, undefined, 1001)).toBeNull(); // another token
    expect(c.principal('d1', 'ip:1', 20, undefined, 1001)).toBeNull(); // another client
  });

  it('expires: after AUTH_CACHE_MS the token and the count are read again', () => {
    const c = new AuthCache<P>();
    c.remember('d1', alice, undefined, 0);
    c.sawFailures('ip:0', 0, 0);
    expect(c.principal('d1', 'ip:0', 20, undefined, AUTH_CACHE_MS)).toBeNull();
    c.sawFailures('ip:0', 0, AUTH_CACHE_MS);
    expect(c.principal('d1', 'ip:0', 20, undefined, AUTH_CACHE_MS)).toBeNull(); // the token is stale even if the count is fresh
    // A clock that went back does not stretch the window.
    c.remember('d1', alice, undefined, 5000);
    expect(c.principal('d1', 'ip:0', 20, undefined, 4000)).toBeNull();
  });

  it('a client at the limit is never answered from the cache (D1 decides), nor a forgotten token', () => {
    const c = new AuthCache<P>();
    c.remember('d1', alice, undefined, 0);
    c.sawFailures('ip:0', 20, 1);
    expect(c.principal('d1', 'ip:0', 20, undefined, 2)).toBeNull();
    c.sawFailures('ip:0', 0, 3);
    expect(c.principal('d1', 'ip:0', 20, undefined, 4)).toEqual(alice);
    c.forget('alice');
    expect(c.principal('d1', 'ip:0', 20, undefined, 5)).toBeNull();
  });

  it('a cached bootstrap principal holds only while the bootstrap secret is the one it was verified against', () => {
    const c = new AuthCache<P>();
    c.remember('db', boot, 'secret-1', 0);
    c.sawFailures('ip:0', 0, 0);
    expect(c.principal('db', 'ip:0', 20, 'secret-1', 1)).toEqual(boot);
    expect(c.principal('db', 'ip:0', 20, 'secret-2', 1)).toBeNull();
  });

  it('stays bounded: past its size the oldest entries go', () => {
    const c = new AuthCache<P>();
    for (let i = 0; i < 1500; i++) c.remember(`d${i}`, alice, undefined, 0);
    c.sawFailures('ip:0', 0, 0);
    expect(c.principal('d0', 'ip:0', 20, undefined, 1)).toBeNull();
    expect(c.principal('d1499', 'ip:0', 20, undefined, 1)).toEqual(alice);
  });
});
