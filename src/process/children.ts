/**
 * A process's children (the `children` table: live → exited → reaped), kept in memory once read: the
 * object is its storage's only writer, and every write below keeps the copy exact (rows are
 * immutable; a change replaces one, undone with the open commit, ./commit.ts).
 */
import type { Pending } from './commit.ts';

export type ChildRow = {
  readonly pid: string;
  readonly name: string;
  readonly status: 'live' | 'exited' | 'reaped';
  readonly exit: string | null;
  readonly spawn_key: string;
};

export class ChildStore {
  readonly #sql: SqlStorage;
  readonly #w: Pending;

  constructor(sql: SqlStorage, pending: Pending) {
    this.#sql = sql;
    this.#w = pending;
  }

  /** The table was created just now (a new object): no children, known without a read. */
  empty(): void {
    this.#children = [];
  }

  /** Forget the copy (the table was rewritten or dropped). */
  reset(): void {
    this.#children = undefined;
  }

  /** The children, in memory: read once per instance, kept with every write (rows are immutable; a change replaces one). */
  #children: (ChildRow & { readonly created_at: number })[] | undefined;

  #kids(): (ChildRow & { readonly created_at: number })[] {
    this.#children ??= this.#sql.exec<ChildRow & { created_at: number }>('SELECT pid, name, status, exit, spawn_key, created_at FROM children ORDER BY created_at, pid').toArray();
    return this.#children;
  }

  #setKids(next: (ChildRow & { readonly created_at: number })[]): void {
    const prev = this.#kids();
    this.#children = next;
    this.#w.onUndo(() => (this.#children = prev));
  }

  bySpawnKey(key: string): ChildRow | null {
    return strip(this.#kids().find((c) => c.spawn_key === key));
  }

  get(pid: string): ChildRow | null {
    return strip(this.#kids().find((c) => c.pid === pid));
  }

  all(): ChildRow[] {
    return this.#kids().map((c) => strip(c)!);
  }

  add(pid: string, name: string, spawnKey: string, at: number): void {
    this.#sql.exec("INSERT INTO children (pid, name, status, spawn_key, created_at) VALUES (?, ?, 'live', ?, ?) ON CONFLICT(pid) DO NOTHING", pid, name, spawnKey, at);
    const kids = this.#kids();
    if (kids.some((c) => c.pid === pid)) return;
    this.#setKids([...kids, { pid, name, status: 'live' as const, exit: null, spawn_key: spawnKey, created_at: at }].sort((a, b) => a.created_at - b.created_at || (a.pid < b.pid ? -1 : a.pid > b.pid ? 1 : 0)));
  }

  remove(pid: string): void {
    this.#sql.exec('DELETE FROM children WHERE pid = ?', pid);
    this.#setKids(this.#kids().filter((c) => c.pid !== pid));
  }

  setStatus(pid: string, status: ChildRow['status'], exit: string | null): void {
    this.#sql.exec('UPDATE children SET status = ?, exit = COALESCE(?, exit) WHERE pid = ?', status, exit, pid);
    this.#setKids(this.#kids().map((c) => (c.pid === pid ? { ...c, status, exit: exit ?? c.exit } : c)));
  }
}

/** A child row without the bookkeeping the cache keeps. */
function strip(c: (ChildRow & { readonly created_at: number }) | undefined): ChildRow | null {
  if (!c) return null;
  return { pid: c.pid, name: c.name, status: c.status, exit: c.exit, spawn_key: c.spawn_key };
}
