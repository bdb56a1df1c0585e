/**
 * AuditChain: one Durable Object per tenant that appends audit records to the tenant's hash chain
 * in D1: the records of no process (the API's), and the anchors of the processes' own chains
 * (src/audit/audit.ts). Appends are serialised here, so the chain has one writer and no forks.
 *
 * The object keeps the chain's head (chain_seq and hash) in its own storage as an anchor. D1 holds
 * the rows; the anchor lives elsewhere. So `verify` detects an edited row (its hash no longer
 * matches its content), a deleted row in the middle (a gap, or a broken prev_hash link), and a
 * deleted tail (D1 ends before the anchor). Appends continue from the anchor, never from a D1 head
 * that has been cut back, so new rows cannot paper over a deletion.
 */
import { DurableObject } from 'cloudflare:workers';
import { type AnchorDetail, type AuditRecord, GENESIS, boundRecord, chainContent, chainHash, chainPage, processChainContent, processChainPage } from '../src/audit/audit.ts';
import { processStub } from '../src/rpc/stubs.ts';
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

  /**
   * Recompute every chain of the tenant from D1: the tenant's own (against the head kept here), then
   * each process's (against its latest anchor in the tenant's chain, and against the head the
   * process itself keeps, which covers what is not anchored yet). The first break found is reported.
   */
  async verify(tenant: string): Promise<VerifyReport> {
    await this.#queue;
    const anchor = (await this.ctx.storage.get<ChainHead>('anchor')) ?? null;
    let prev = GENESIS;
    let expected = 1;
    let rows = 0;
    let chains = 0;
    let last: ChainHead | null = null;
    /** The latest anchor of each process chain, from the tenant's chain. */
    const anchors = new Map<string, AnchorDetail>();
    type Broken = NonNullable<VerifyReport['first_broken']>;
    const report = (first_broken: Broken | null): VerifyReport => ({ ok: first_broken === null, tenant, rows, chains, head: first_broken === null ? last : anchor, first_broken });
    const inTenant = (chain_seq: number, id: string | null, reason: string): VerifyReport => report({ chain_seq, pid: null, pid_seq: null, id, reason });
    const inProcess = (pid: string, pid_seq: number, id: string | null, reason: string): VerifyReport => report({ chain_seq: null, pid, pid_seq, id, reason });
    for (;;) {
      const page = await chainPage(this.env.DB, tenant, last?.seq ?? 0, 500);
      if (page.length === 0) break;
      for (const row of page) {
        if (row.chain_seq !== expected) return inTenant(expected, null, `row ${expected} is missing (the next row is ${row.chain_seq})`);
        if (row.prev_hash !== prev) return inTenant(expected, row.id, 'prev_hash does not match the previous row: a row before it was changed or removed');
        const hash = await chainHash(prev, chainContent({ ...row, chain_seq: expected }));
        if (hash !== row.hash) return inTenant(expected, row.id, 'the row content does not match its hash: it was edited');
        if (row.kind === 'audit' && row.action === 'anchor') {
          const a = row.detail as AnchorDetail;
          if ((anchors.get(row.pid)?.seq ?? 0) < a.seq) anchors.set(row.pid, a);
        }
        prev = row.hash;
        last = { seq: expected, hash: row.hash };
        expected++;
        rows++;
      }
    }
    if (anchor && (!last || last.seq < anchor.seq)) return inTenant((last?.seq ?? 0) + 1, null, `the chain ends at ${last?.seq ?? 0} but its anchor records ${anchor.seq} rows: rows were deleted from the end`);
    if (anchor && last && last.seq >= anchor.seq) {
      const at = anchor.seq === last.seq ? last : (await chainPage(this.env.DB, tenant, anchor.seq - 1, 1))[0];
      if (!at || at.hash !== anchor.hash) return inTenant(anchor.seq, null, 'the row at the anchor does not have the anchored hash');
    }

    // The process chains, in (pid, pid_seq) order. `ends` keeps each chain's last row, and the hash
    // at its anchor, for the checks that follow the walk.
    const ends = new Map<string, { seq: number; hash: string; anchored: string | null }>();
    let pos = { pid: '', seq: 0 };
    type ChainEnd = { pid: string; seq: number; hash: string; anchored: string | null };
    let cur = null as ChainEnd | null;
    for (;;) {
      const page = await processChainPage(this.env.DB, tenant, pos, 500);
      if (page.length === 0) break;
      for (const row of page) {
        if (cur?.pid !== row.pid) {
          if (cur) ends.set(cur.pid, cur);
          chains++;
          // A chain starts from GENESIS; a first row that links elsewhere had rows before it.
          if (row.prev_hash !== GENESIS) return inProcess(row.pid, row.pid_seq, row.id, `the chain's first row in D1 (${row.pid_seq}) links to an earlier row: rows before it were removed`);
          cur = { pid: row.pid, seq: row.pid_seq - 1, hash: GENESIS, anchored: null };
        }
        if (row.pid_seq !== cur.seq + 1) return inProcess(row.pid, cur.seq + 1, null, `row ${cur.seq + 1} is missing (the next row is ${row.pid_seq})`);
        if (row.prev_hash !== cur.hash) return inProcess(row.pid, row.pid_seq, row.id, 'prev_hash does not match the previous row: a row before it was changed or removed');
        const hash = await chainHash(cur.hash, processChainContent(row));
        if (hash !== row.hash) return inProcess(row.pid, row.pid_seq, row.id, 'the row content does not match its hash: it was edited');
        cur = { pid: row.pid, seq: row.pid_seq, hash, anchored: anchors.get(row.pid)?.seq === row.pid_seq ? hash : cur.anchored };
        rows++;
        pos = { pid: row.pid, seq: row.pid_seq };
      }
    }
    if (cur) ends.set(cur.pid, cur);
    for (const [pid, a] of anchors) {
      const end = ends.get(pid);
      if (!end || end.seq < a.seq) return inProcess(pid, (end?.seq ?? 0) + 1, null, `the chain ends at ${end?.seq ?? 0} but its anchor records ${a.seq} rows: rows were deleted from the end`);
      if (end.anchored !== a.hash) return inProcess(pid, a.seq, null, 'the row at the anchor does not have the anchored hash');
    }

    // What no anchor covers yet: each process's own head. A process listed, or with rows or
    // anchors, whose object holds a head beyond D1's rows has lost rows from the end.
    const { results } = await this.env.DB.prepare('SELECT pid FROM processes WHERE tenant = ?').bind(tenant).all<{ pid: string }>();
    const pids = [...new Set([...ends.keys(), ...anchors.keys(), ...results.map((r) => r.pid)])];
    for (let i = 0; i < pids.length; i += 25) {
      const heads = await Promise.all(pids.slice(i, i + 25).map(async (pid) => ({ pid, head: await processStub(this.env, pid).auditHead(tenant) })));
      for (const { pid, head } of heads) {
        if (!head.ok || head.value.seq === 0) continue;
        const end = ends.get(pid);
        if (!end || end.seq < head.value.seq) return inProcess(pid, (end?.seq ?? 0) + 1, null, `the chain ends at ${end?.seq ?? 0} but the process has delivered ${head.value.seq} records: rows were deleted from the end`);
        const at = end.seq === head.value.seq ? end.hash : (await this.env.DB.prepare('SELECT hash FROM audit WHERE tenant = ? AND pid = ? AND pid_seq = ?').bind(tenant, pid, head.value.seq).first<{ hash: string }>())?.hash;
        if (at !== head.value.hash) return inProcess(pid, head.value.seq, null, "the row at the process's head does not have the hash the process holds");
      }
    }
    return report(null);
  }
}
