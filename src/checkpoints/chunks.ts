/**
 * Chunking: a table's rows become content-addressed chunks, so what did not change between two
 * checkpoints is stored once.
 *
 * Rows are grouped in rowid order, and a chunk ends after a row whose rowid hashes to a boundary
 * (about one row in ROWS_PER_CHUNK) or when it reaches MAX_CHUNK_BYTES. Boundaries depend on rowids,
 * not on contents, so appending rows (pages, journal entries) leaves earlier chunks byte-identical,
 * and changing one row rewrites only its own chunk. Values of LARGE_VALUE_BYTES or more (file
 * contents, big page bodies, tool code) leave the row and become blobs addressed by their own hash:
 * a 10 MB file that did not change costs nothing in the next checkpoint, whatever else changed.
 *
 * A chunk's address is the SHA-256 of its uncompressed bytes; what is stored is those bytes
 * compressed with gzip (CompressionStream). Every chunk read back is checked against its address.
 */
import { KernelError } from '../kernel/errors.ts';

export const ROWS_PER_CHUNK = 64;
export const MAX_CHUNK_BYTES = 512 * 1024;
export const LARGE_VALUE_BYTES = 4096;

/** A value as SQLite returns it; blobs travel as base64. */
export type SqlValue = string | number | null | ArrayBuffer;
/** A value inside a chunk: inline, a blob reference, or base64 bytes. */
export type CellValue = string | number | null | { readonly $ref: string } | { readonly $b64: string };

export interface RowChunk {
  readonly table: string;
  readonly columns: readonly string[];
  /** Each row: its rowid, then one cell per column. */
  readonly rows: readonly (readonly CellValue[])[];
}

/** One piece of content to store: its address, its uncompressed bytes, and what it is. */
export interface Piece {
  readonly hash: string;
  readonly bytes: Uint8Array;
  readonly kind: 'rows' | 'blob';
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  let s = '';
  for (const b of digest) s += b.toString(16).padStart(2, '0');
  return s;
}

/** FNV-1a over a rowid: where chunk boundaries fall. Not a security property, only a stable spread. */
function boundary(rowid: number): boolean {
  let h = 0x811c9dc5;
  const s = String(rowid);
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % ROWS_PER_CHUNK === 0;
}

function toBase64(buf: ArrayBuffer): string {
  let s = '';
  const bytes = new Uint8Array(buf);
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

function fromBase64(s: string): ArrayBuffer {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out.buffer;
}

/**
 * Split a table's rows (rowid first, then `columns`) into pieces: row chunks and blobs.
 * Returns the row chunks' hashes in order; `pieces` receives every piece (deduplicated by hash).
 */
export async function chunkTable(table: string, columns: readonly string[], rows: readonly (readonly [number, ...SqlValue[]])[], pieces: Map<string, Piece>): Promise<string[]> {
  const hashes: string[] = [];
  let current: CellValue[][] = [];
  let size = 0;
  const flush = async () => {
    if (current.length === 0) return;
    const chunk: RowChunk = { table, columns, rows: current };
    const bytes = encoder.encode(JSON.stringify(chunk));
    const hash = await sha256Hex(bytes);
    if (!pieces.has(hash)) pieces.set(hash, { hash, bytes, kind: 'rows' });
    hashes.push(hash);
    current = [];
    size = 0;
  };
  for (const [rowid, ...values] of rows) {
    const cells: CellValue[] = [rowid];
    for (const v of values) {
      if (v instanceof ArrayBuffer) {
        cells.push({ $b64: toBase64(v) });
      } else if (typeof v === 'string' && v.length >= LARGE_VALUE_BYTES / 4 && encoder.encode(v).byteLength >= LARGE_VALUE_BYTES) {
        const bytes = encoder.encode(v);
        const hash = await sha256Hex(bytes);
        if (!pieces.has(hash)) pieces.set(hash, { hash, bytes, kind: 'blob' });
        cells.push({ $ref: hash });
        size += 70;
      } else {
        cells.push(v);
        size += typeof v === 'string' ? v.length + 2 : 12;
      }
    }
    current.push(cells);
    if (boundary(rowid) || size >= MAX_CHUNK_BYTES) await flush();
  }
  await flush();
  return hashes;
}

/** Decode a row chunk (rowid first in each row), resolving blob references through `blob`. */
export function decodeRows(bytes: Uint8Array, blob: (hash: string) => string): { table: string; columns: readonly string[]; rows: SqlValue[][] } {
  const chunk = JSON.parse(decoder.decode(bytes)) as RowChunk;
  const rows = chunk.rows.map((r) =>
    r.map((c): SqlValue => {
      if (c === null || typeof c !== 'object') return c;
      if ('$ref' in c) return blob(c.$ref);
      return fromBase64(c.$b64);
    }),
  );
  return { table: chunk.table, columns: chunk.columns, rows };
}

/** The blob references in a row chunk. */
export function blobRefs(bytes: Uint8Array): string[] {
  const chunk = JSON.parse(decoder.decode(bytes)) as RowChunk;
  const refs: string[] = [];
  for (const r of chunk.rows) for (const c of r) if (c !== null && typeof c === 'object' && '$ref' in c) refs.push(c.$ref);
  return refs;
}

export const blobText = (bytes: Uint8Array): string => decoder.decode(bytes);

async function pipe(bytes: Uint8Array, stream: CompressionStream | DecompressionStream): Promise<Uint8Array> {
  const out = new Response(new Blob([bytes]).stream().pipeThrough(stream));
  return new Uint8Array(await out.arrayBuffer());
}

export const gzip = (bytes: Uint8Array): Promise<Uint8Array> => pipe(bytes, new CompressionStream('gzip'));
export const gunzip = (bytes: Uint8Array): Promise<Uint8Array> => pipe(bytes, new DecompressionStream('gzip'));

/** Decompress a stored chunk and check it against its address. */
export async function gunzipVerified(stored: Uint8Array, hash: string): Promise<Uint8Array> {
  const bytes = await gunzip(stored);
  if ((await sha256Hex(bytes)) !== hash) throw new KernelError('EIO', `checkpoint chunk ${hash.slice(0, 12)} is corrupt (its content does not match its address)`, { chunk: hash });
  return bytes;
}
