/**
 * Attenuation, pure: the grants a child may hold, given what its spawner asks for (or its image
 * declares) and what its parent holds. Delegation only narrows: every grant handed on is covered by
 * a live allow grant of the parent (an ask grant by an allow or ask grant), cannot outlive or
 * out-use it, and the parent's deny and ask grants always pass down. Used by spawn
 * (src/kernel/spawn.ts) and fork (src/checkpoints/policy.ts).
 */
import { type Capability, type Grant, anyRun, isLive, parseCapability } from './capabilities.ts';
import { type Result, fail, ok } from './errors.ts';
import { globCovers } from './globs.ts';

/** Does `parent` cover everything `child` could grant? Used for attenuation on spawn. */
export function covers(parent: Capability, child: Capability): boolean {
  if (parent.domain !== child.domain) return false;
  switch (child.domain) {
    case 'fs': {
      const p = parent as Extract<Capability, { domain: 'fs' }>;
      const dirOf = p.path.endsWith('/**') ? p.path.slice(0, -3) : null; // fs:/a/** also grants /a itself
      return (!child.read || p.read) && (!child.write || p.write) && (globCovers(p.path, child.path, '/') || child.path === dirOf);
    }
    case 'net': {
      const p = parent as Extract<Capability, { domain: 'net' }>;
      const methodsOk = p.methods === '*' || (child.methods !== '*' && child.methods.every((m) => (p.methods as readonly string[]).includes(m)));
      return methodsOk && (p.host === '*' || globCovers(p.host, child.host, '.'));
    }
    case 'spawn': {
      const p = parent as Extract<Capability, { domain: 'spawn' }>;
      return p.max === null || (child.max !== null && child.max <= p.max);
    }
    case 'proc':
      return (parent as Extract<Capability, { domain: 'proc' }>).right === child.right;
    case 'ipc': {
      const p = parent as Extract<Capability, { domain: 'ipc' }>;
      return p.right === child.right && globCovers(p.target, child.target, '/');
    }
    case 'tool': {
      const p = parent as Extract<Capability, { domain: 'tool' }>;
      if (p.right !== child.right) return false;
      if (child.right === 'register') return true;
      return globCovers((p as { name: string }).name, child.name, '/');
    }
    case 'mem': {
      // `self` is relative (each process's own private namespace); a child gets it only from a parent holding it too.
      const p = parent as Extract<Capability, { domain: 'mem' }>;
      return (!child.read || p.read) && (!child.write || p.write) && globCovers(p.namespace, child.namespace, '/');
    }
    case 'mcp': {
      const p = parent as Extract<Capability, { domain: 'mcp' }>;
      return globCovers(p.server, child.server, '/') && globCovers(anyRun(p.tool), anyRun(child.tool), '/');
    }
  }
}

/**
 * Attenuate: the grants a child may have, given what it asks for and what its parent holds.
 * Every allow grant asked for must be covered by a live allow grant of the parent (an ask grant by
 * an allow or ask grant), and
 * cannot outlive or out-use it. The parent's deny grants are always inherited.
 */
export function attenuate(parent: readonly Grant[], requested: readonly Grant[], now: number): Result<Grant[]> {
  const parentAllows = parent.filter((g) => g.effect === 'allow' && isLive(g, now));
  const parentAsks = parent.filter((g) => g.effect === 'ask' && isLive(g, now));
  const out: Grant[] = [];
  for (const want of requested) {
    const wantCap = parseCapability(want.cap);
    if (!wantCap.ok) return wantCap;
    if (want.effect === 'deny') {
      out.push(want);
      continue;
    }
    // An ask grant may also be passed down from a parent that only holds it as ask.
    // A use-limited grant cannot be handed on: copies would multiply its uses.
    const cover = [...parentAllows, ...(want.effect === 'ask' ? parentAsks : [])].filter((g) => g.uses === null || g.uses === undefined).find((g) => {
      const c = parseCapability(g.cap);
      return c.ok && covers(c.value, wantCap.value);
    });
    if (!cover) return fail('EPERM', `cannot grant "${want.cap}" to a child: the parent does not hold it`, { capability: want.cap });
    const expires = [want.expires_at, cover.expires_at].filter((x): x is number => typeof x === 'number');
    const uses = [want.uses, cover.uses].filter((x): x is number => typeof x === 'number');
    out.push({
      cap: want.cap,
      effect: want.effect,
      ...(expires.length ? { expires_at: Math.min(...expires) } : {}),
      ...(uses.length ? { uses: Math.min(...uses) } : {}),
    });
  }
  // Restrictions always pass down: the parent's denies and asks bind the child too.
  for (const d of parent.filter((g) => (g.effect === 'deny' || g.effect === 'ask') && isLive(g, now))) if (!out.some((g) => g.cap === d.cap && g.effect === d.effect)) out.push(d);
  return ok(out);
}

/**
 * What a child gets when its spawner lists no capabilities: what its parent holds, narrowed to what
 * its image declares. For each grant the image declares, the child gets it as declared when a live
 * allow grant of the parent covers it, and otherwise each of the parent's narrower grants it covers
 * (a parent with `spawn:max=2` spawning an image that declares `spawn:max=16` passes on
 * `spawn:max=2`). Grants that merely overlap are left out, so the result never exceeds either side;
 * use-limited grants are never handed on (copies would multiply their uses). The result is then
 * attenuated like any request, which also passes down the parent's deny and ask grants.
 * @example inheritGrants(['fs:/**:rw', 'spawn:max=2'], ['fs:/**:rw', 'spawn:max=16', 'proc:signal'], now)
 *          // → fs:/**:rw, spawn:max=2
 */
export function inheritGrants(parent: readonly Grant[], declared: readonly Grant[], now: number): Grant[] {
  const held = parent
    .filter((g) => g.effect === 'allow' && isLive(g, now) && (g.uses === null || g.uses === undefined))
    .flatMap((g) => {
      const cap = parseCapability(g.cap);
      return cap.ok ? [{ grant: g, cap: cap.value }] : [];
    });
  const out: Grant[] = [];
  const add = (g: Grant) => {
    if (!out.some((o) => o.cap === g.cap && o.effect === g.effect)) out.push(g);
  };
  for (const want of declared) {
    const wantCap = parseCapability(want.cap);
    if (!wantCap.ok) continue;
    if (want.effect === 'deny') {
      add(want);
      continue;
    }
    const cover = held.find((h) => covers(h.cap, wantCap.value));
    if (cover) {
      add(typeof cover.grant.expires_at === 'number' ? { ...want, expires_at: Math.min(cover.grant.expires_at, want.expires_at ?? Infinity) } : want);
      continue;
    }
    for (const narrower of held.filter((h) => covers(wantCap.value, h.cap))) add({ cap: narrower.grant.cap, effect: want.effect, ...(typeof narrower.grant.expires_at === 'number' ? { expires_at: narrower.grant.expires_at } : {}) });
  }
  return out;
}
