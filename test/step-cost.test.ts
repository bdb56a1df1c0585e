/**
 * A step's cost does not grow with the session: the rows SQLite reads for a slice of steps late in a
 * long session are no more than for the same slice early in it (the page table, token totals and
 * the open step are kept in the process object's memory, not re-read per step).
 */
import { runInDurableObject } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { SLICE_STEPS } from '../src/process/step.ts';
import { pcbOf, spawn, stubOf, tick } from './support/helpers.ts';

const scripted = { provider: 'scripted', model: 'scripted' };
const STEPS = 400;

/** Count the rows SQLite reads (cursor.rowsRead, what the platform bills) for every statement of one object from now on. */
async function countRowsRead(pid: string): Promise<() => Promise<number>> {
  await runInDurableObject(stubOf(pid), (_instance, state) => {
    const sql = state.storage.sql;
    const exec = sql.exec.bind(sql);
    const cursors: SqlStorageCursor<Record<string, SqlStorageValue>>[] = [];
    Object.defineProperty(sql, 'exec', {
      value: (query: string, ...params: SqlStorageValue[]) => {
        const cursor = exec(query, ...params);
        cursors.push(cursor);
        return cursor;
      },
    });
    (globalThis as { rowsReadOf?: Map<string, () => number> }).rowsReadOf ??= new Map();
    (globalThis as { rowsReadOf?: Map<string, () => number> }).rowsReadOf!.set(pid, () => cursors.reduce((n, c) => n + c.rowsRead, 0));
  });
  return () => runInDurableObject(stubOf(pid), () => (globalThis as { rowsReadOf?: Map<string, () => number> }).rowsReadOf!.get(pid)!());
}

describe('step cost', () => {
  it('reads as many SQLite rows per step late in a long session as early in it', async () => {
    const turns = Array.from({ length: STEPS - 1 }, (_, i) => ({ tool_calls: [{ name: 'fs_write', args: { path: `/n/${i}.txt`, content: `note ${i}` } }] }));
    const { pid } = await spawn({ name: 'long-session', task: 'write notes', model: scripted, script: [...turns, { tool_calls: [{ name: 'exit', args: { code: 0 } }] }], quotas: { max_steps: STEPS + 10 } });
    const rowsRead = await countRowsRead(pid);
    // Each alarm runs one slice (src/process/step.ts SLICE_STEPS); record the rows read per slice.
    const perSlice: { step: number; rows: number }[] = [];
    let before = await rowsRead();
    for (let i = 0; i < 100; i++) {
      const pcb = await pcbOf(pid);
      if (pcb.state === 'terminated') break;
      if (!(await tick(pid))) break;
      const now = await rowsRead();
      perSlice.push({ step: (await pcbOf(pid)).usage.steps, rows: now - before });
      before = await rowsRead();
    }
    const done = await pcbOf(pid);
    expect(done.exit?.code).toBe(0);
    expect(done.usage.steps).toBe(STEPS);
    // Compare full slices (SLICE_STEPS each) of the same work: an early one (after the first, which
    // loads the object's caches) against a late one (before the last, which exits).
    const full = perSlice.filter((s, i) => i > 0 && s.step - perSlice[i - 1]!.step === SLICE_STEPS);
    expect(full.length).toBeGreaterThanOrEqual(4);
    const early = full[1]!;
    const late = full.at(-2)!;
    expect(late.step).toBeGreaterThan(early.step + 100);
    // Before the in-memory page table, a late slice read several times the rows of an early one.
    console.log(`rows read per ${SLICE_STEPS}-step slice: early (to step ${early.step}) ${early.rows}, late (to step ${late.step}) ${late.rows}`);
    expect(late.rows).toBeLessThanOrEqual(early.rows * 1.1 + 8);
  });

  it('commits a step of one atomic call in one transaction, with a bounded number of statements', async () => {
    const n = 2 * SLICE_STEPS + 8;
    const turns = Array.from({ length: n }, (_, i) => ({ tool_calls: [{ name: 'fs_write', args: { path: `/n/${i}.txt`, content: `note ${i}` } }] }));
    const { pid } = await spawn({ name: 'one-commit', task: 'write notes', model: scripted, capabilities: ['fs:/**:rw'], script: [...turns, { tool_calls: [{ name: 'exit', args: { code: 0 } }] }], quotas: { max_steps: n + 10 } });
    await tick(pid); // the first slice loads the object's caches
    await runInDurableObject(stubOf(pid), (_instance, state) => {
      const storage = state.storage;
      const counts = { statements: 0, syscall: 0, transactions: 0, rowsWritten: 0 };
      const sql = storage.sql;
      const exec = sql.exec.bind(sql);
      const cursors: { cursor: SqlStorageCursor<Record<string, SqlStorageValue>>; syscall: boolean }[] = [];
      Object.defineProperty(sql, 'exec', {
        value: (query: string, ...params: SqlStorageValue[]) => {
          counts.statements++;
          // The syscall's own statements (the filesystem's tables), counted apart from the kernel's.
          const syscall = /\b(files|file_chunks)\b/.test(query);
          if (syscall) counts.syscall++;
          const cursor = exec(query, ...params);
          cursors.push({ cursor, syscall });
          return cursor;
        },
      });
      // Commits: outermost transactions (a nested one is a savepoint inside its commit).
      const txn = storage.transactionSync.bind(storage);
      let depth = 0;
      Object.defineProperty(storage, 'transactionSync', {
        value: <T>(fn: () => T): T => {
          if (depth === 0) counts.transactions++;
          depth++;
          try {
            return txn(fn);
          } finally {
            depth--;
          }
        },
      });
      const written = (syscall: boolean) => cursors.reduce((k, c) => k + (c.syscall === syscall ? c.cursor.rowsWritten : 0), 0);
      (globalThis as { stepCounts?: () => typeof counts & { syscallRows: number } }).stepCounts = () => ({ ...counts, rowsWritten: written(false), syscallRows: written(true) });
    });
    const before = (await pcbOf(pid)).usage.steps;
    await tick(pid);
    const steps = (await pcbOf(pid)).usage.steps - before;
    expect(steps).toBe(SLICE_STEPS);
    const c = await runInDurableObject(stubOf(pid), () => (globalThis as { stepCounts?: () => { statements: number; syscall: number; transactions: number; rowsWritten: number; syscallRows: number } }).stepCounts!());
    const per = { kernel: (c.statements - c.syscall) / steps, syscall: c.syscall / steps, transactions: c.transactions / steps, rowsWritten: c.rowsWritten / steps, syscallRows: c.syscallRows / steps };
    console.log(`per step, slice of ${steps} fs_write steps (delivery included): ${per.kernel.toFixed(2)} kernel statements + ${per.syscall.toFixed(2)} of the syscall, ${per.transactions.toFixed(2)} transactions, ${per.rowsWritten.toFixed(2)} kernel rows written + ${per.syscallRows.toFixed(2)} of the syscall`);
    // One commit per step, plus the slice's dispatch and its delivery (amortised over the slice);
    // before the fused step: 3.3 transactions and about 24 kernel statements per step; before events
    // and audit records were kept one row per commit (and slices were 8 steps): 1.4 and 11.
    expect(per.transactions).toBeLessThanOrEqual(1.1);
    // Schema 6 (the LLM trace and the PCB's counters in the step's row, the journal by its key) and
    // an append-only audit log: 7.3 → 5.3 kernel statements and 13.2 → 10.2 rows written in all
    // for these steps; the kernel's own rows: the step, its journal entry, two pages, the events
    // and the audit records, and the slice's bookkeeping spread over its steps.
    expect(per.kernel).toBeLessThanOrEqual(6);
    expect(per.rowsWritten).toBeLessThanOrEqual(6.5);
  });
});
