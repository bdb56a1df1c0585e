/**
 * AuditChain: one Durable Object per tenant that appends audit records to the tenant's hash chain
 * in D1. Appends are serialised here, so the chain has one writer and no forks.
 *
 * The object keeps the chain's head (chain_seq and hash) in its own storage as an anchor. D1 holds
 * the rows; the anchor lives elsewhere. So `verify` detects an edited row (its hash no longer
 * matches its content), a deleted row in the middle (a gap, or a broken prev_hash link), and a
 * deleted tail (D1 ends before the anchor). Appends continue from the anchor, never from a D1 head
 * that has been cut back, so new rows cannot paper over a deletion.
 */
import { DurableObject } from 'cloudflare:workers';
import { type AuditRecord, GENESIS, boundRecord, chainContent, chainHash, chainPage } from '../src/audit/audit.ts';
import type { AuditChainApi, ChainHead, Served, VerifyReport } from '../src/rpc/contracts.ts';

export class AuditChain extends DurableObject<Env> implements Served<AuditChainApi> {
  #queue: Promise<unknown> = Promise.resolve();
  #head: ChainHead | null | undefined;

  /** Append records in order; ids already in the log are skipped (redelivery is harmless). */
  append(tenant: string, records: AuditRecord[]): Promise<{ appended: number }> {
    const run = this.#queue.then(() => this.#append(tenant, records));
    this.#queue = run.catch(() => {
      this.#head = undefined; // reload from the anchor after a failed append
    });
    return run;
  }

  async #headFor(tenant: string): Promise<ChainHead | null> {
    if (this.#head !== undefined) return this.#head;
    const anchor = (await this.ctx.storage.get<ChainHead>('anchor')) ?? null;
    const row = await this.env.DB.prepare('SELECT chain_seq AS seq, hash FROM audit WHERE tenant = ? AND chain_seq IS NOT NULL ORDER BY chain_seq DESC LIMIT 1').bind(tenant).first<ChainHead>();
    // D1 ahead of the anchor: an append committed before its anchor was saved. Behind: rows were cut.
    this.#head = row && (!anchor || row.seq > anchor.seq) ? row : anchor;
    return this.#head;
  }

  async #append(tenant: string, records: AuditRecord[]): Promise<{ appended: number }> {
    if (records.length === 0) return { appended: 0 };
    let head = await this.#headFor(tenant);
    const known = new Set<string>();
    for (let i = 0; i < records.length; i += 50) {
      const ids = records.slice(i, i + 50).map((r) => r.id);
      const { results } = await this.env.DB.prepare(`SELECT id FROM audit WHERE id IN (${ids.map(() => '?').join(',')})`).bind(...ids).all<{ id: string }>();
      for (const r of results) known.add(r.id);
    }
    const statements: D1PreparedStatement[] = [];
    for (const raw of records) {
      if (known.has(raw.id) || raw.tenant !== tenant) continue;
      known.add(raw.id);
      const r = boundRecord(raw);
      const seq = (head?.seq ?? 0) + 1;
      const prev = head?.hash ?? GENESIS;
      const hash = await chainHash(prev, chainContent({ ...r, chain_seq: seq }));
      statements.push(
        this.env.DB.prepare('INSERT INTO audit (id, tenant, chain_seq, pid, at, kind, action, outcome, code, detail, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)').bind(
          r.id,
          tenant,
          seq,
          r.pid,
          r.at,
          r.kind,
          r.action,
          r.outcome,
          r.code,
          JSON.stringify(r.detail),
          prev,
          hash,
        ),
      );
      head = { seq, hash };
    }
    if (statements.length === 0) return { appended: 0 };
    await this.env.DB.batch(statements);
    this.#head = head;
    await this.ctx.storage.put('anchor', head);
    return { appended: statements.length };
  }

  /** Recompute the tenant's chain from D1 and compare it with the anchor. */
  async verify(tenant: string): Promise<VerifyReport> {
    await this.#queue;
    const anchor = (await this.ctx.storage.get<ChainHead>('anchor')) ?? null;
    let prev = GENESIS;
    let expected = 1;
    let count = 0;
    let last: ChainHead | null = null;
    const broken = (chain_seq: number, id: string | null, reason: string): VerifyReport => ({ ok: false, tenant, rows: count, head: anchor, first_broken: { chain_seq, id, reason } });
    for (;;) {
      const page = await chainPage(this.env.DB, tenant, last?.seq ?? 0, 500);
      if (page.length === 0) break;
      for (const row of page) {
        if (row.chain_seq !== expected) return broken(expected, null, `row ${expected} is missing (the next row is ${row.chain_seq})`);
        if (row.prev_hash !== prev) return broken(row.chain_seq, row.id, 'prev_hash does not match the previous row: a row before it was changed or removed');
        const hash = await chainHash(prev, chainContent(row));
        if (hash !== row.hash) return broken(row.chain_seq, row.id, 'the row content does not match its hash: it was edited');
        prev = row.hash;
        last = { seq: row.chain_seq, hash: row.hash };
        expected++;
        count++;
      }
    }
    if (anchor && (!last || last.seq < anchor.seq)) return broken((last?.seq ?? 0) + 1, null, `the chain ends at ${last?.seq ?? 0} but its anchor records ${anchor.seq} rows: rows were deleted from the end`);
    if (anchor && last && last.seq >= anchor.seq) {
      const at = anchor.seq === last.seq ? last : (await chainPage(this.env.DB, tenant, anchor.seq - 1, 1))[0];
      if (!at || at.hash !== anchor.hash) return broken(anchor.seq, null, 'the row at the anchor does not have the anchored hash');
    }
    return { ok: true, tenant, rows: count, head: last, first_broken: null };
  }
}
