/**
 * Where checkpoints live: chunks and manifests in R2, and, in the process's own SQLite, the index
 * of its checkpoints and a reference count per chunk.
 *
 * R2 layout (binding CHECKPOINTS):
 *   ckpt/<tenant>/<pid>/c/<sha256>     one gzip-compressed chunk (rows or a blob), shared by every
 *                                      checkpoint of the process that contains it
 *   ckpt/<tenant>/<pid>/m/<id>.json.gz one manifest per checkpoint (JSON, gzip-compressed)
 *
 * A checkpoint exists once its manifest is written and its index row committed; chunks are put
 * first and the manifest last, so an object evicted half-way leaves no checkpoint (only chunks the
 * next checkpoint reuses or the next deletion sweeps). Chunk reference counts are only changed in
 * the commit that adds or removes an index row.
 */
import { z } from 'zod';
import { KernelError } from '../kernel/errors.ts';
import { gunzip } from './chunks.ts';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS ckpt_index (
  id TEXT PRIMARY KEY, seq INTEGER NOT NULL UNIQUE, label TEXT, reason TEXT NOT NULL, step INTEGER NOT NULL, state TEXT NOT NULL,
  created_at INTEGER NOT NULL, raw_bytes INTEGER NOT NULL, stored_bytes INTEGER NOT NULL, new_bytes INTEGER NOT NULL, digest TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ckpt_chunks (hash TEXT PRIMARY KEY, kind TEXT NOT NULL, raw INTEGER NOT NULL, stored INTEGER NOT NULL, refs INTEGER NOT NULL);
`;

export const REASONS = ['api', 'auto', 'sigstop', 'syscall'] as const;
export type Reason = (typeof REASONS)[number];

export const ManifestSchema = z.object({
  format: z.literal(1),
  id: z.string(),
  pid: z.string(),
  tenant: z.string(),
  label: z.string().nullable(),
  reason: z.enum(REASONS),
  created_at: z.number(),
  step: z.number().int(),
  version: z.number().int(),
  state: z.string(),
  events_cursor: z.number().int(),
  digest: z.string(),
  tables: z.array(
    z.object({
      name: z.string(),
      policy: z.enum(['rollback', 'live', 'skip']),
      ddl: z.array(z.string()),
      columns: z.array(z.string()),
      explicit_rowid: z.boolean(),
      rows: z.number().int(),
      chunks: z.array(z.string()),
    }),
  ),
  /** Every chunk the checkpoint needs (row chunks and blobs): kind, bytes before and after compression. */
  pieces: z.record(z.string(), z.object({ kind: z.enum(['rows', 'blob']), raw: z.number().int(), stored: z.number().int() })),
  sizes: z.object({ raw_bytes: z.number().int(), stored_bytes: z.number().int(), new_bytes: z.number().int(), chunks: z.number().int(), new_chunks: z.number().int() }),
  forked_from: z.string().optional(),
});
export type Manifest = z.infer<typeof ManifestSchema>;

export type IndexRow = {
  readonly id: string;
  readonly seq: number;
  readonly label: string | null;
  readonly reason: Reason;
  readonly step: number;
  readonly state: string;
  readonly created_at: number;
  readonly raw_bytes: number;
  readonly stored_bytes: number;
  readonly new_bytes: number;
  readonly digest: string;
};

export const prefixOf = (tenant: string, pid: string): string => `ckpt/${tenant}/${pid}`;
export const chunkKey = (prefix: string, hash: string): string => `${prefix}/c/${hash}`;
export const manifestKey = (prefix: string, id: string): string => `${prefix}/m/${id}.json.gz`;

/** The bucket, or a clear error where the deployment has none. */
export function bucketOrFail(bucket: R2Bucket | undefined): R2Bucket {
  if (!bucket) throw new KernelError('ENOSYS', 'checkpoints need an R2 bucket bound as CHECKPOINTS (see docs/checkpoints.md)');
  return bucket;
}

export async function readManifest(bucket: R2Bucket, key: string): Promise<Manifest> {
  const obj = await bucket.get(key);
  if (!obj) throw new KernelError('ENOENT', 'the checkpoint\'s manifest is missing from storage');
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(await gunzip(new Uint8Array(await obj.arrayBuffer()))));
  } catch {
    throw new KernelError('EIO', "the checkpoint's manifest is unreadable");
  }
  const parsed = ManifestSchema.safeParse(json);
  if (!parsed.success) throw new KernelError('EIO', `the checkpoint's manifest is malformed: ${parsed.error.message.slice(0, 200)}`);
  return parsed.data;
}

/** The per-process index of checkpoints and chunk reference counts. */
export class CheckpointIndex {
  readonly #sql: SqlStorage;

  constructor(sql: SqlStorage) {
    this.#sql = sql;
  }

  #db(): SqlStorage {
    // Created on use (and again after the process's storage was released): most processes never checkpoint.
    this.#sql.exec(SCHEMA);
    return this.#sql;
  }

  list(): IndexRow[] {
    return this.#db().exec<IndexRow>('SELECT id, seq, label, reason, step, state, created_at, raw_bytes, stored_bytes, new_bytes, digest FROM ckpt_index ORDER BY seq').toArray();
  }

  get(id: string): IndexRow | null {
    return this.#db().exec<IndexRow>('SELECT id, seq, label, reason, step, state, created_at, raw_bytes, stored_bytes, new_bytes, digest FROM ckpt_index WHERE id = ?', id).toArray()[0] ?? null;
  }

  nextSeq(): number {
    return (this.#db().exec<{ n: number | null }>('SELECT MAX(seq) AS n FROM ckpt_index').one().n ?? 0) + 1;
  }

  /** Chunks already stored for this process. */
  known(hashes: Iterable<string>): Set<string> {
    const db = this.#db();
    const out = new Set<string>();
    for (const h of hashes) if (db.exec('SELECT 1 FROM ckpt_chunks WHERE hash = ?', h).toArray().length > 0) out.add(h);
    return out;
  }

  storedSize(hash: string): number | null {
    return this.#db().exec<{ stored: number }>('SELECT stored FROM ckpt_chunks WHERE hash = ?', hash).toArray()[0]?.stored ?? null;
  }

  /** Record a checkpoint: its index row and one reference to each of its chunks. Part of the caller's commit. */
  add(row: IndexRow, manifest: Manifest): void {
    const db = this.#db();
    db.exec(
      'INSERT INTO ckpt_index (id, seq, label, reason, step, state, created_at, raw_bytes, stored_bytes, new_bytes, digest) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      row.id,
      row.seq,
      row.label,
      row.reason,
      row.step,
      row.state,
      row.created_at,
      row.raw_bytes,
      row.stored_bytes,
      row.new_bytes,
      row.digest,
    );
    for (const [hash, p] of Object.entries(manifest.pieces)) {
      db.exec('INSERT INTO ckpt_chunks (hash, kind, raw, stored, refs) VALUES (?, ?, ?, ?, 1) ON CONFLICT(hash) DO UPDATE SET refs = refs + 1', hash, p.kind, p.raw, p.stored);
    }
  }

  /** Drop a checkpoint's row and references; returns the chunks no checkpoint references any more. */
  remove(id: string, manifest: Manifest): string[] {
    const db = this.#db();
    db.exec('DELETE FROM ckpt_index WHERE id = ?', id);
    const orphans: string[] = [];
    for (const hash of Object.keys(manifest.pieces)) {
      db.exec('UPDATE ckpt_chunks SET refs = refs - 1 WHERE hash = ?', hash);
      if ((db.exec<{ refs: number }>('SELECT refs FROM ckpt_chunks WHERE hash = ?', hash).toArray()[0]?.refs ?? 0) <= 0) {
        db.exec('DELETE FROM ckpt_chunks WHERE hash = ?', hash);
        orphans.push(hash);
      }
    }
    return orphans;
  }
}
