/**
 * Where checkpoints live: packs and manifests in R2, and, in the process's own SQLite, the index
 * of its checkpoints, of the pieces stored and of the packs holding them.
 *
 * R2 layout (binding CHECKPOINTS), format 2:
 *   ckpt/<tenant>/<pid>/p/<sha256>  one pack: the pieces (row chunks, blobs) one checkpoint added,
 *                                   raw-deflate compressed, named by the SHA-256 of its bytes;
 *                                   shared by every later checkpoint that reuses a piece of it
 *   ckpt/<tenant>/<pid>/m/<id>      one manifest per checkpoint (JSON, raw-deflate compressed)
 *
 * The manifest names each table's chunks by place (pack, index in the pack), in runs, and the packs
 * by hash: a checkpoint of 2,000 steps lists a few runs per table, not a hash per chunk. The
 * pieces' own hashes are kept in the index (ckpt_pieces), which is what finds a piece an earlier
 * checkpoint stored.
 *
 * A checkpoint exists once its manifest is written and its index row committed; packs are put
 * first and the manifest last, so an object evicted half-way leaves no checkpoint (only a pack no
 * checkpoint references, removed with the process). Reference counts are only changed in the
 * commit that adds or removes an index row; a pack is deleted when no checkpoint references it.
 *
 * Format 1 (one gzip object per chunk, `m/<id>.json.gz`) is not read any more: such a checkpoint
 * lists, and can be deleted, but inspect, diff, restore and fork answer EIO.
 */
import { z } from 'zod';
import { KernelError } from '../kernel/errors.ts';
import { tableDdl } from '../process/schema.ts';
import { type PieceKind, inflate } from './chunks.ts';

const INDEX_TABLES = ['ckpt_index', 'ckpt_pieces', 'ckpt_packs'];

export const REASONS = ['api', 'auto', 'sigstop', 'syscall'] as const;
export type Reason = (typeof REASONS)[number];

/** A run of chunks: `count` pieces of pack number `pack` (in the manifest's `packs`), from index `first`. */
const PackNo = z.number().int().min(0).describe('the pack: its position in `packs`');
const Index = z.number().int().min(0).describe("the piece's index in the pack");
const RunSchema = z.tuple([PackNo, Index.describe("the first piece's index in the pack"), z.number().int().min(1).describe('how many pieces')]);
/** A piece's place: [pack, index]. */
const PlaceSchema = z.tuple([PackNo, Index]);

export const ManifestSchema = z.object({
  format: z.literal(2),
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
  /** Every pack the checkpoint reads: its SHA-256 (its name), bytes before and after compression. */
  packs: z.array(z.object({ sha: z.string(), raw: z.number().int(), stored: z.number().int() })),
  /** The piece [pack, index] naming each table's columns and whether rowid is its own column (SchemaPiece). */
  schema: PlaceSchema,
  tables: z.array(
    z.object({
      name: z.string(),
      policy: z.enum(['rollback', 'live', 'skip']),
      rows: z.number().int(),
      /** The table's row chunks in order, as runs [pack, first index, count]. */
      chunks: z.array(RunSchema),
    }),
  ),
  /** Values stored apart from their rows, by SHA-256: [pack, index]. */
  blobs: z.record(z.string(), PlaceSchema),
  sizes: z.object({ raw_bytes: z.number().int(), stored_bytes: z.number().int(), new_bytes: z.number().int(), chunks: z.number().int(), new_chunks: z.number().int() }),
  forked_from: z.string().optional(),
});
export type Manifest = z.infer<typeof ManifestSchema>;
export type ManifestTable = Manifest['tables'][number];

/** The schema piece: per table, its columns and whether rowid is its own column (no INTEGER PRIMARY KEY alias). */
export const SchemaPieceSchema = z.record(z.string(), z.object({ columns: z.array(z.string()), explicit_rowid: z.boolean() }));
export type SchemaPiece = z.infer<typeof SchemaPieceSchema>;

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

/** Where a stored piece is. */
export interface PieceAt {
  readonly pack: string;
  readonly idx: number;
}

/** A piece a new pack holds, as the index records it. */
export interface NewPiece extends PieceAt {
  readonly hash: string;
  readonly kind: PieceKind;
  readonly raw: number;
}

export const prefixOf = (tenant: string, pid: string): string => `ckpt/${tenant}/${pid}`;
export const packKey = (prefix: string, sha: string): string => `${prefix}/p/${sha}`;
export const manifestKey = (prefix: string, id: string): string => `${prefix}/m/${id}`;
/** Format 1's manifest (its chunks were `c/<sha256>`). */
const legacyManifestKey = (key: string): string => `${key}.json.gz`;

/** The bucket, or a clear error where the deployment has none. */
export function bucketOrFail(bucket: R2Bucket | undefined): R2Bucket {
  if (!bucket) throw new KernelError('ENOSYS', 'checkpoints need an R2 bucket bound as CHECKPOINTS (see docs/checkpoints.md)');
  return bucket;
}

export async function readManifest(bucket: R2Bucket, key: string): Promise<Manifest> {
  const obj = await bucket.get(key);
  if (!obj) {
    if (await bucket.head(legacyManifestKey(key))) throw new KernelError('EIO', 'this checkpoint was stored in format 1, which this version no longer reads; delete it and take a new one');
    throw new KernelError('ENOENT', "the checkpoint's manifest is missing from storage");
  }
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(await inflate(new Uint8Array(await obj.arrayBuffer()))));
  } catch {
    throw new KernelError('EIO', "the checkpoint's manifest is unreadable");
  }
  const parsed = ManifestSchema.safeParse(json);
  if (!parsed.success) throw new KernelError('EIO', `the checkpoint's manifest is malformed: ${parsed.error.message.slice(0, 200)}`);
  return parsed.data;
}

/** Every piece a manifest references, as [pack number, index] (a piece used twice is listed twice). */
export function piecesOf(m: Manifest): [number, number][] {
  const out: [number, number][] = [];
  for (const t of m.tables) for (const [p, first, count] of t.chunks) for (let i = 0; i < count; i++) out.push([p, first + i]);
  for (const at of Object.values(m.blobs)) out.push(at);
  out.push(m.schema);
  return out;
}

/** A table's chunks as `<pack>:<index>` names (unique within a process: a piece is stored once). */
export const chunkNames = (m: Manifest, t: ManifestTable): string[] => t.chunks.flatMap(([p, first, count]) => Array.from({ length: count }, (_, i) => `${m.packs[p]?.sha.slice(0, 16) ?? p}:${first + i}`));

const INDEX_COLUMNS = 'id, seq, label, reason, step, state, created_at, raw_bytes, stored_bytes, new_bytes, digest';

/** The per-process index of checkpoints, pieces and packs. */
export class CheckpointIndex {
  readonly #sql: SqlStorage;

  constructor(sql: SqlStorage) {
    this.#sql = sql;
  }

  #db(): SqlStorage {
    // Created on use (and again after the process's storage was released): most processes never checkpoint.
    this.#sql.exec(tableDdl(INDEX_TABLES));
    return this.#sql;
  }

  list(): IndexRow[] {
    return this.#db().exec<IndexRow>(`SELECT ${INDEX_COLUMNS} FROM ckpt_index ORDER BY seq`).toArray();
  }

  /** Up to `limit` checkpoints numbered after `after`, oldest first. */
  page(after: number, limit: number): IndexRow[] {
    return this.#db().exec<IndexRow>(`SELECT ${INDEX_COLUMNS} FROM ckpt_index WHERE seq > ? ORDER BY seq LIMIT ?`, after, limit).toArray();
  }

  get(id: string): IndexRow | null {
    return this.#db().exec<IndexRow>(`SELECT ${INDEX_COLUMNS} FROM ckpt_index WHERE id = ?`, id).toArray()[0] ?? null;
  }

  nextSeq(): number {
    return (this.#db().exec<{ n: number | null }>('SELECT MAX(seq) AS n FROM ckpt_index').one().n ?? 0) + 1;
  }

  /** Where the already stored ones of these pieces are (one statement, however many). */
  find(hashes: Iterable<string>): Map<string, PieceAt> {
    const rows = this.#db().exec<{ hash: string; pack: string; idx: number }>('SELECT hash, pack, idx FROM ckpt_pieces WHERE hash IN (SELECT value FROM json_each(?))', JSON.stringify([...hashes])).toArray();
    return new Map(rows.map((r) => [r.hash, { pack: r.pack, idx: r.idx }]));
  }

  /** A stored pack's sizes. */
  pack(sha: string): { raw: number; stored: number } | null {
    return this.#db().exec<{ raw: number; stored: number }>('SELECT raw, stored FROM ckpt_packs WHERE sha = ?', sha).toArray()[0] ?? null;
  }

  /**
   * Record a checkpoint: its index row, the packs it put and their pieces, and one reference from
   * it to each pack and piece it reads. Part of the caller's commit.
   */
  add(row: IndexRow, manifest: Manifest, packs: readonly { sha: string; raw: number; stored: number; pieces: readonly NewPiece[] }[]): void {
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
    for (const p of packs) {
      db.exec('INSERT INTO ckpt_packs (sha, raw, stored, refs) VALUES (?, ?, ?, 0) ON CONFLICT(sha) DO NOTHING', p.sha, p.raw, p.stored);
      for (const x of p.pieces) db.exec('INSERT INTO ckpt_pieces (hash, pack, idx, kind, raw, refs) VALUES (?, ?, ?, ?, ?, 0) ON CONFLICT(hash) DO NOTHING', x.hash, x.pack, x.idx, x.kind, x.raw);
    }
    for (const p of manifest.packs) db.exec('UPDATE ckpt_packs SET refs = refs + 1 WHERE sha = ?', p.sha);
    this.#count(manifest, 1);
  }

  /** Add `by` to the reference count of every piece a manifest uses (as often as it uses it); returns the counts now. */
  #count(manifest: Manifest, by: 1 | -1): number[] {
    const uses = new Map<string, number>();
    for (const [p, idx] of piecesOf(manifest)) {
      const key = JSON.stringify([manifest.packs[p]?.sha ?? '', idx]);
      uses.set(key, (uses.get(key) ?? 0) + 1);
    }
    const list = JSON.stringify([...uses].map(([key, n]) => [...(JSON.parse(key) as [string, number]), n * by]));
    return this.#sql
      .exec<{ refs: number }>(
        `UPDATE ckpt_pieces SET refs = refs + u.n FROM (SELECT json_extract(value, '$[0]') AS pack, json_extract(value, '$[1]') AS idx, json_extract(value, '$[2]') AS n FROM json_each(?)) AS u
         WHERE ckpt_pieces.pack = u.pack AND ckpt_pieces.idx = u.idx RETURNING ckpt_pieces.refs AS refs`,
        list,
      )
      .toArray()
      .map((r) => r.refs);
  }

  /**
   * Drop a checkpoint's row and references. Returns how many pieces no checkpoint references any
   * more, and the packs none does (to delete from R2; their pieces leave the index).
   */
  remove(id: string, manifest: Manifest | null): { freed: number; packs: string[] } {
    const db = this.#db();
    db.exec('DELETE FROM ckpt_index WHERE id = ?', id);
    if (!manifest) return { freed: 0, packs: [] };
    const freed = this.#count(manifest, -1).filter((refs) => refs <= 0).length;
    const packs: string[] = [];
    for (const { sha } of manifest.packs) {
      const left = db.exec<{ refs: number }>('UPDATE ckpt_packs SET refs = refs - 1 WHERE sha = ? RETURNING refs', sha).toArray()[0];
      if (left && left.refs <= 0) {
        db.exec('DELETE FROM ckpt_packs WHERE sha = ?', sha);
        db.exec('DELETE FROM ckpt_pieces WHERE pack = ?', sha);
        packs.push(sha);
      }
    }
    return { freed, packs };
  }
}
