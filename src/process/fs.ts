/**
 * The per-process filesystem, in the process's SQLite storage.
 *
 * Files are text. A Durable Object row holds at most 2 MB, so contents are split into chunks of at
 * most CHUNK_CHARS UTF-16 code units (≤ 768 KiB of UTF-8 each), never splitting a surrogate pair.
 * Directories are implied by paths, as in object stores: "/a/b.txt" makes "/a" a directory.
 * All paths reaching this module are already normalised (src/kernel/paths.ts).
 */
import { KernelError } from '../kernel/errors.ts';
import { dirPrefix } from '../kernel/paths.ts';
import { MAX_FILE_BYTES } from '../kernel/syscalls.ts';
import type { DirEntry } from '../rpc/contracts.ts';

export type { DirEntry };

export const CHUNK_CHARS = 256 * 1024;
/** Total bytes one process may keep in files. */
export const MAX_FS_BYTES = 256 * 1024 * 1024;

const encoder = new TextEncoder();
export const utf8Length = (s: string): number => encoder.encode(s).byteLength;

/** Split text into chunks of at most `size` code units without cutting a surrogate pair in two. */
export function chunkText(text: string, size = CHUNK_CHARS): string[] {
  const chunks: string[] = [];
  let i = 0;
  while (i < text.length) {
    let end = Math.min(i + size, text.length);
    const last = text.charCodeAt(end - 1);
    if (end < text.length && last >= 0xd800 && last <= 0xdbff) end--;
    chunks.push(text.slice(i, end));
    i = end;
  }
  return chunks;
}

export type FileInfo = {
  readonly path: string;
  readonly size: number;
  readonly updated_at: number;
};


export class ProcessFs {
  readonly #sql: SqlStorage;
  readonly #onRollback: (undo: () => void) => void;
  /** Bytes in all files: read once per instance, then kept by `write` (this object is the only writer of `files`). */
  #total: number | undefined;

  /** `onRollback` registers an undo for the byte total should the caller's transaction roll back. */
  constructor(sql: SqlStorage, onRollback: (undo: () => void) => void = () => {}) {
    this.#sql = sql;
    this.#onRollback = onRollback;
  }

  /** Forget what is cached (the storage was deleted). */
  reset(): void {
    this.#total = undefined;
  }

  stat(path: string): FileInfo | null {
    return this.#sql.exec<FileInfo>('SELECT path, size, updated_at FROM files WHERE path = ?', path).toArray()[0] ?? null;
  }

  isDir(path: string): boolean {
    if (path === '/') return true;
    const prefix = dirPrefix(path);
    return this.#sql.exec('SELECT 1 FROM files WHERE path >= ? AND path < ? LIMIT 1', prefix, `${prefix}\uffff`).toArray().length > 0;
  }

  read(path: string): string {
    if (!this.stat(path)) {
      throw new KernelError('ENOENT', this.isDir(path) ? `${path} is a directory; use fs_list` : `no such file: ${path}`, { path });
    }
    return this.#sql
      .exec<{ data: string }>('SELECT data FROM file_chunks WHERE path = ? ORDER BY idx', path)
      .toArray()
      .map((r) => r.data)
      .join('');
  }

  totalBytes(): number {
    this.#total ??= this.#sql.exec<{ n: number | null }>('SELECT SUM(size) AS n FROM files').one().n ?? 0;
    return this.#total;
  }

  /** Write or append. Callers run this inside a storage transaction with the journal update. */
  write(path: string, content: string, append: boolean, now: number): FileInfo {
    if (path === '/' || this.isDir(path)) throw new KernelError('EINVAL', `${path} is a directory`, { path });
    const existing = this.stat(path);
    const previous = append && existing ? existing.size : 0;
    const size = previous + utf8Length(content);
    if (size > MAX_FILE_BYTES) {
      throw new KernelError('E2BIG', `file would be ${size} bytes; the limit is ${MAX_FILE_BYTES}`, { path, size, limit: MAX_FILE_BYTES });
    }
    const others = this.totalBytes() - (existing?.size ?? 0);
    if (others + size > MAX_FS_BYTES) {
      throw new KernelError('EQUOTA', `the filesystem would hold ${others + size} bytes; the limit is ${MAX_FS_BYTES}`, { limit: MAX_FS_BYTES });
    }
    const parentIsFile = this.#parentFile(path);
    if (parentIsFile) throw new KernelError('EINVAL', `${parentIsFile} is a file, not a directory`, { path: parentIsFile });
    let startIdx = 0;
    let tail = content;
    if (append && existing && existing.size > 0) {
      // Rewrite only the last chunk: appends cost O(appended bytes), not O(file).
      const last = this.#sql.exec<{ idx: number; data: string }>('SELECT idx, data FROM file_chunks WHERE path = ? ORDER BY idx DESC LIMIT 1', path).toArray()[0];
      if (last) {
        startIdx = last.idx;
        tail = last.data + content;
      }
    } else {
      this.#sql.exec('DELETE FROM file_chunks WHERE path = ?', path);
    }
    const chunks = chunkText(tail);
    chunks.forEach((data, i) => {
      this.#sql.exec('INSERT INTO file_chunks (path, idx, data) VALUES (?, ?, ?) ON CONFLICT(path, idx) DO UPDATE SET data = excluded.data', path, startIdx + i, data);
    });
    const count = startIdx + Math.max(chunks.length, 1);
    this.#sql.exec(
      'INSERT INTO files (path, size, chunks, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT(path) DO UPDATE SET size = excluded.size, chunks = excluded.chunks, updated_at = excluded.updated_at',
      path,
      size,
      count,
      now,
    );
    const before = this.#total;
    this.#total = others + size;
    this.#onRollback(() => (this.#total = before));
    return { path, size, updated_at: now };
  }

  list(dir: string): DirEntry[] {
    if (dir !== '/' && !this.isDir(dir)) {
      if (this.stat(dir)) throw new KernelError('EINVAL', `${dir} is a file, not a directory`, { path: dir });
      throw new KernelError('ENOENT', `no such directory: ${dir}`, { path: dir });
    }
    const prefix = dirPrefix(dir);
    const rows = this.#sql.exec<{ path: string; size: number }>('SELECT path, size FROM files WHERE path >= ? AND path < ? ORDER BY path', prefix, `${prefix}\uffff`).toArray();
    const entries = new Map<string, DirEntry>();
    for (const r of rows) {
      const rest = r.path.slice(prefix.length);
      const slash = rest.indexOf('/');
      if (slash < 0) entries.set(rest, { name: rest, type: 'file', size: r.size });
      else {
        const name = rest.slice(0, slash);
        if (!entries.has(name)) entries.set(name, { name, type: 'dir' });
      }
    }
    return [...entries.values()];
  }

  /** The nearest ancestor of `path` that exists as a file, if any (a file cannot contain files). */
  #parentFile(path: string): string | null {
    const parts = path.split('/').filter(Boolean);
    for (let i = 1; i < parts.length; i++) {
      const ancestor = `/${parts.slice(0, i).join('/')}`;
      if (this.stat(ancestor)) return ancestor;
    }
    return null;
  }
}
