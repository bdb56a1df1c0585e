/**
 * Reading a checkpoint back from R2: each pack its manifest names fetched once, checked against its
 * hash and unpacked; a table's rows decoded from its chunks, large values resolved from their blob
 * pieces. What inspect (diff), restore and fork read (service.ts, restore.ts, fork.ts).
 */
import { KernelError } from '../kernel/errors.ts';
import type { Pcb } from '../kernel/pcb.ts';
import { type SqlValue, blobText, decodeRows, unpackVerified } from './chunks.ts';
import type { TableRows } from './snapshot.ts';
import { type Manifest, type ManifestTable, type SchemaPiece, SchemaPieceSchema, packKey, prefixOf } from './store.ts';
import { LIVE_TIMERS } from './tables.ts';

/** Reads a manifest's pieces: each pack fetched, checked and unpacked once. */
export class PieceReader {
  readonly #packs = new Map<number, Promise<Uint8Array[]>>();
  constructor(
    readonly bucket: R2Bucket,
    readonly m: Manifest,
  ) {}

  piece(p: number, idx: number): Promise<Uint8Array> {
    let pack = this.#packs.get(p);
    if (!pack) {
      pack = this.#load(p);
      this.#packs.set(p, pack);
    }
    return pack.then((pieces) => {
      const piece = pieces[idx];
      if (!piece) throw new KernelError('EIO', `checkpoint ${this.m.id} names piece ${idx} of a pack that has ${pieces.length}`);
      return piece;
    });
  }

  async #load(p: number): Promise<Uint8Array[]> {
    const sha = this.m.packs[p]?.sha;
    if (!sha) throw new KernelError('EIO', `checkpoint ${this.m.id} names pack ${p}, which its manifest does not list`);
    const obj = await this.bucket.get(packKey(prefixOf(this.m.tenant, this.m.pid), sha));
    if (!obj) throw new KernelError('EIO', `checkpoint ${this.m.id} is missing pack ${sha.slice(0, 12)}`, { pack: sha });
    return unpackVerified(new Uint8Array(await obj.arrayBuffer()), sha);
  }

  #schema: Promise<SchemaPiece> | undefined;

  /** A table's columns, and whether rowid is its own column. */
  async shape(table: string): Promise<SchemaPiece[string]> {
    this.#schema ??= this.piece(...this.m.schema).then((bytes) => {
      const parsed = SchemaPieceSchema.safeParse(JSON.parse(blobText(bytes)));
      if (!parsed.success) throw new KernelError('EIO', `checkpoint ${this.m.id} has a malformed schema piece`);
      return parsed.data;
    });
    const s = (await this.#schema)[table];
    if (!s) throw new KernelError('EIO', `checkpoint ${this.m.id} has no columns for table ${table}`);
    return s;
  }

  /** A table's rows (rowid first), blobs resolved. */
  async rows(t: ManifestTable): Promise<SqlValue[][]> {
    const rows: SqlValue[][] = [];
    for (const [p, first, count] of t.chunks) {
      for (let i = first; i < first + count; i++) {
        const bytes = await this.piece(p, i);
        const refs = new Map<string, string>();
        for (const match of new TextDecoder().decode(bytes).matchAll(/\{"\$ref":"([0-9a-f]{64})"\}/g)) {
          const h = match[1] ?? '';
          const at = this.m.blobs[h];
          if (!at) throw new KernelError('EIO', `checkpoint ${this.m.id} references a blob ${h.slice(0, 12)} its manifest does not place`);
          if (!refs.has(h)) refs.set(h, blobText(await this.piece(at[0], at[1])));
        }
        rows.push(...decodeRows(bytes, (h) => refs.get(h) ?? ''));
      }
    }
    return rows;
  }
}

/** Rows of every table of a manifest, in manifest order. Live timers are left out (the live ones stay). */
export async function loadTables(bucket: R2Bucket, m: Manifest): Promise<TableRows[]> {
  const reader = new PieceReader(bucket, m);
  const out: TableRows[] = [];
  for (const t of m.tables) {
    let rows = await reader.rows(t);
    if (t.name === 'timers') {
      const kind = (await reader.shape(t.name)).columns.indexOf('kind');
      rows = rows.filter((r) => !LIVE_TIMERS.includes(String(r[kind + 1])));
    }
    const { columns, explicit_rowid } = await reader.shape(t.name);
    out.push({ name: t.name, columns, explicit_rowid, rows });
  }
  return out;
}

/** The PCB a checkpoint's loaded tables hold (null: none). */
export function pcbOf(tables: readonly TableRows[]): Pcb | null {
  const t = tables.find((x) => x.name === 'pcb');
  return t ? (JSON.parse(String(t.rows[0]?.[t.columns.indexOf('data') + 1])) as Pcb) : null;
}

/** A checkpoint's files, path → the file's row as JSON: what a diff compares. */
export async function filesOf(bucket: R2Bucket, m: Manifest): Promise<Map<string, string>> {
  const t = m.tables.find((x) => x.name === 'files');
  if (!t) return new Map<string, string>();
  const reader = new PieceReader(bucket, m);
  const rows = await reader.rows(t);
  const path = (await reader.shape(t.name)).columns.indexOf('path');
  const out = new Map<string, string>();
  for (const r of rows) out.set(String(r[path + 1]), JSON.stringify(r.slice(1)));
  return out;
}
