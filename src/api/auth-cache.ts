/**
 * What authentication remembers in the isolate (./auth.ts): tokens verified in the last
 * AUTH_CACHE_MS, by the SHA-256 of the presented token (never the token itself), and each client's
 * failure count as D1 last said. A request whose token is cached, from a client whose count was read
 * or updated in this isolate within AUTH_CACHE_MS and was under the limit, needs no D1 read.
 *
 * The cache only ever lets a request skip a read: it never refuses one (a stale or missing entry
 * falls through to D1), so an isolate that outlives a test's storage or a minute's lockout cannot
 * lock anyone out. Both maps are bounded: past their size, expired entries go first, then the oldest.
 */

/** How long a verified token and a client's failure count are trusted without asking D1 again. */
export const AUTH_CACHE_MS = 10_000;
const MAX_TOKENS = 1_000;
const MAX_CLIENTS = 10_000;

interface Verified<P> {
  readonly principal: P;
  /** The bootstrap secret when this was verified: a cached bootstrap principal holds only while it is unchanged. */
  readonly bootstrap: string | undefined;
  readonly at: number;
}

function bound<V extends { at: number }>(map: Map<string, V>, max: number, now: number): void {
  if (map.size < max) return;
  for (const [k, v] of map) if (now - v.at >= AUTH_CACHE_MS) map.delete(k);
  // Maps iterate in insertion order: what is left to drop is the oldest.
  for (const k of map.keys()) {
    if (map.size < max) break;
    map.delete(k);
  }
}

export class AuthCache<P extends { readonly token_id: string }> {
  readonly #tokens = new Map<string, Verified<P>>();
  readonly #clients = new Map<string, { count: number; at: number }>();

  /** The principal of a token verified within AUTH_CACHE_MS, if the client was under `limit` when last counted (as recently). */
  principal(digest: string, client: string, limit: number, bootstrap: string | undefined, now: number): P | null {
    const token = this.#tokens.get(digest);
    if (!token || now - token.at >= AUTH_CACHE_MS || now < token.at) return null;
    if (token.principal.token_id === 'bootstrap' && token.bootstrap !== bootstrap) return null;
    const seen = this.#clients.get(client);
    if (!seen || now - seen.at >= AUTH_CACHE_MS || now < seen.at || seen.count >= limit) return null;
    return token.principal;
  }

  remember(digest: string, principal: P, bootstrap: string | undefined, now: number): void {
    this.#tokens.delete(digest);
    bound(this.#tokens, MAX_TOKENS, now);
    this.#tokens.set(digest, { principal, bootstrap, at: now });
  }

  /** D1's failure count for a client (read before a check, or returned by a failure's increment). */
  sawFailures(client: string, count: number, now: number): void {
    this.#clients.delete(client);
    bound(this.#clients, MAX_CLIENTS, now);
    this.#clients.set(client, { count, at: now });
  }

  /** Forget a token (revoked through this isolate): its next use is checked against D1. */
  forget(tokenId: string): void {
    for (const [k, v] of this.#tokens) if (v.principal.token_id === tokenId) this.#tokens.delete(k);
  }
}
