/**
 * API authentication: every call but /healthz and /openapi.json carries `Authorization: Bearer <token>`.
 *
 * Tokens map to a tenant and a role (admin > operator > reader). The bootstrap admin token is the
 * secret AGENTOS_ADMIN_TOKEN (tenant `default`); further tokens are created through the API, look
 * like `aos_<id>.<secret>`, and only a SHA-256 hash of the secret is stored. Comparisons are
 * constant-time (crypto.subtle.timingSafeEqual over digests, so lengths do not leak either).
 *
 * Failed attempts are counted per client and minute in D1. Past AUTH_FAILURE_LIMIT the client gets
 * 429 (ERATE) for the rest of the minute, even with a valid token, so guessing does not pay. Every failure
 * is audited in the `system` tenant's chain.
 *
 * A verified token, and a client's failure count as D1 last said, are kept in the isolate for
 * AUTH_CACHE_MS (./auth-cache.ts), so a client that keeps presenting a good token costs no D1 read
 * per request. What that trades: a token revoked through another isolate keeps working in this one
 * for up to AUTH_CACHE_MS (revoking evicts it at once in the isolate that served the revocation),
 * and a client locked out by failures seen only in other isolates may still use a good token here
 * for as long. Every failure still goes to D1 and is counted and audited; a failure seen here
 * updates this isolate's count at once, and nothing cached can refuse a request.
 */
import { auditChain } from '../rpc/stubs.ts';
import { KernelError } from '../kernel/errors.ts';
import { sha256Hex } from '../kernel/policy.ts';
import { AuthCache } from './auth-cache.ts';

export { AUTH_CACHE_MS } from './auth-cache.ts';

export const ROLES = ['reader', 'operator', 'admin'] as const;
export type Role = (typeof ROLES)[number];
export const SYSTEM_TENANT = 'system';
export const BOOTSTRAP_TENANT = 'default';
export const AUTH_FAILURE_LIMIT = 20;

export interface Principal {
  readonly tenant: string;
  readonly role: Role;
  readonly token_id: string;
}

/** This isolate's verified tokens and failure counts (./auth-cache.ts). */
const authCache = new AuthCache<Principal>();

/** A token was revoked: this isolate stops trusting it at once (others within AUTH_CACHE_MS). */
export function forgetToken(tokenId: string): void {
  authCache.forget(tokenId);
}

export const roleAtLeast = (have: Role, need: Role): boolean => ROLES.indexOf(have) >= ROLES.indexOf(need);

async function digest(text: string): Promise<ArrayBuffer> {
  return crypto.subtle.digest('SHA-256', new TextEncoder().encode(text));
}

/** Constant-time equality of two strings, whatever their lengths. */
export async function safeEqual(a: string, b: string): Promise<boolean> {
  const [da, db] = await Promise.all([digest(a), digest(b)]);
  return crypto.subtle.timingSafeEqual(da, db);
}

const TOKEN_PATTERN = /^aos_([a-z0-9]{12})\.([a-z0-9]{32})$/;

function randomId(length: number): string {
  const alphabet = '0123456789abcdefghijklmnopqrstuvwxyz';
  const bytes = crypto.getRandomValues(new Uint8Array(length));
  return [...bytes].map((b) => alphabet[b % 36]).join('');
}

/** Create a token; the secret is returned once and stored only as a hash. */
export async function createToken(db: D1Database, input: { tenant: string; role: Role; name: string; created_by: string; now: number }): Promise<{ id: string; token: string }> {
  const id = randomId(12);
  const secret = randomId(32);
  await db
    .prepare('INSERT INTO tokens (id, tenant, role, name, secret_hash, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?)')
    .bind(id, input.tenant, input.role, input.name, await sha256Hex(secret), input.now, input.created_by)
    .run();
  return { id, token: `aos_${id}.${secret}` };
}

interface TokenRow {
  tenant: string;
  role: Role;
  secret_hash: string;
  revoked_at: number | null;
}

/** The token's principal, or null. `row` is the tokens row of an `aos_` token's id (read with the failure count). */
async function lookup(env: Env, presented: string, row: TokenRow | null): Promise<Principal | null> {
  const bootstrap = env.AGENTOS_ADMIN_TOKEN;
  if (typeof bootstrap === 'string' && bootstrap.length >= 8 && (await safeEqual(presented, bootstrap))) {
    return { tenant: BOOTSTRAP_TENANT, role: 'admin', token_id: 'bootstrap' };
  }
  const m = TOKEN_PATTERN.exec(presented);
  if (!m) return null;
  // Hash and compare even when the id is unknown, so timing does not reveal which ids exist.
  const ok = await safeEqual(await sha256Hex(m[2] ?? ''), row?.secret_hash ?? '0'.repeat(64));
  if (!row || !ok || row.revoked_at !== null) return null;
  return { tenant: row.tenant, role: row.role, token_id: m[1] ?? '' };
}

function clientKey(request: Request, now: number): string {
  const ip = request.headers.get('cf-connecting-ip') ?? 'local';
  return `${ip}:${Math.floor(now / 60_000)}`;
}

async function recordFailure(env: Env, request: Request, reason: string, now: number): Promise<number> {
  const key = clientKey(request, now);
  const row = await env.DB.prepare('INSERT INTO auth_failures (key, count, expires_at) VALUES (?, 1, ?) ON CONFLICT(key) DO UPDATE SET count = count + 1 RETURNING count')
    .bind(key, now + 120_000)
    .first<{ count: number }>();
  authCache.sawFailures(key, row?.count ?? 1, now);
  await env.DB.prepare('DELETE FROM auth_failures WHERE expires_at < ?').bind(now).run();
  const id = `auth:${now}:${crypto.randomUUID()}`;
  await auditChain(env, SYSTEM_TENANT).append(SYSTEM_TENANT, [
    { id, tenant: SYSTEM_TENANT, pid: '-', at: now, kind: 'auth', action: `${request.method} ${new URL(request.url).pathname}`, outcome: 'refused', code: 'EUNAUTH', detail: { reason, client: key.split(':')[0] } },
  ]);
  return row?.count ?? 1;
}

/**
 * The client's failure count and, for an `aos_` token, its row: one D1 round trip. The count is
 * remembered (./auth-cache.ts) so that a cached token can skip this read.
 */
async function readD1(env: Env, key: string, presented: string | undefined, now: number): Promise<{ failures: number; row: TokenRow | null }> {
  const limit = env.DB.prepare('SELECT count FROM auth_failures WHERE key = ?').bind(key);
  const id = presented ? TOKEN_PATTERN.exec(presented)?.[1] : undefined;
  const [counted, token] = id ? await env.DB.batch([limit, env.DB.prepare('SELECT tenant, role, secret_hash, revoked_at FROM tokens WHERE id = ?').bind(id)]) : [await limit.all()];
  const failures = (counted?.results[0] as { count: number } | undefined)?.count ?? 0;
  authCache.sawFailures(key, failures, now);
  return { failures, row: (token?.results[0] as TokenRow | undefined) ?? null };
}

/** Authenticate a request, or throw EUNAUTH (401) / EAGAIN (429 while rate-limited). */
export async function authenticate(request: Request, env: Env, now: number): Promise<Principal> {
  const key = clientKey(request, now);
  const header = request.headers.get('authorization') ?? '';
  const presented = /^Bearer (.+)$/i.exec(header)?.[1]?.trim();
  const digestHex = presented ? await sha256Hex(presented) : null;
  // A token verified in the last AUTH_CACHE_MS, from a client D1 did not count as locked out then.
  const cached = digestHex ? authCache.principal(digestHex, key, AUTH_FAILURE_LIMIT, env.AGENTOS_ADMIN_TOKEN, now) : null;
  if (cached) return cached;
  const { failures, row } = await readD1(env, key, presented, now);
  if (failures >= AUTH_FAILURE_LIMIT) {
    throw new KernelError('ERATE', 'too many failed authentication attempts from this client; try again in a minute', { retry_after_seconds: 60 - Math.floor((now % 60_000) / 1000) });
  }
  const principal = presented ? await lookup(env, presented, row) : null;
  if (principal && digestHex) {
    authCache.remember(digestHex, principal, env.AGENTOS_ADMIN_TOKEN, now);
    return principal;
  }
  const count = await recordFailure(env, request, presented ? 'invalid or revoked token' : 'missing bearer token', now);
  if (count >= AUTH_FAILURE_LIMIT) throw new KernelError('ERATE', 'too many failed authentication attempts from this client; try again in a minute');
  throw new KernelError('EUNAUTH', presented ? 'the bearer token is invalid or revoked' : 'send Authorization: Bearer <token>');
}
