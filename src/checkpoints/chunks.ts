/**
 * Chunking and packing: a table's rows become content-addressed pieces, so what did not change
 * between two checkpoints is stored once, and the pieces a checkpoint adds travel together in one
 * compressed pack.
 *
 * Rows are grouped by rowid range: a chunk holds the rows whose rowids share ⌊rowid / ROWS_PER_CHUNK⌋
 * (split further at MAX_CHUNK_BYTES). Boundaries depend on rowids, not on contents or positions, so
 * appending rows (pages, journal entries) rewrites at most the last, partly filled chunk and leaves
 * every earlier one byte-identical, and changing one row rewrites only its own chunk. Values of LARGE_VALUE_BYTES or more (file
 * contents, big page bodies, tool code) leave the row and become blobs addressed by their own hash:
 * a 10 MB file that did not change costs nothing in the next checkpoint, whatever else changed.
 *
 * A piece's address is the SHA-256 of its bytes. The pieces one checkpoint adds are concatenated
 * into a pack (a one-line header of their lengths, then their bytes), compressed as one raw-deflate
 * stream (no gzip header): one object, one stream's context across all of them, however small each
 * is. A pack is named by the SHA-256 of its uncompressed bytes, and every pack read back is checked
 * against its name before any piece of it is used.
 */
import { KernelError } from '../kernel/errors.ts';

/** Small chunks: an append or a change rewrites little, and they cost little apart, since they travel in packs. */
export const ROWS_PER_CHUNK = 4;
export const MAX_CHUNK_BYTES = 512 * 1024;
export const LARGE_VALUE_BYTES = 4096;
/** A checkpoint's new pieces are split into packs of about this many uncompressed bytes (memory, not R2, is the limit). */
export const PACK_BYTES = 16 * 1024 * 1024;

/** A value as SQLite returns it; blobs travel as base64. */
export type SqlValue = string | number | null | ArrayBuffer;
/** A value inside a chunk: inline, a blob reference, or base64 bytes. */
export type CellValue = string | number | null | { readonly $ref: string } | { readonly $b64: string };

/** Row chunks, values stored apart from their rows, and the tables' columns (one piece per checkpoint, usually shared). */
export type PieceKind = 'rows' | 'blob' | 'schema';

/** One piece of content to store: its address, its bytes, and what it is. */
export interface Piece {
  readonly hash: string;
  readonly bytes: Uint8Array;
  readonly kind: PieceKind;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  let s = '';
  for (const b of digest) s += b.toString(16).padStart(2, '0');
  return s;
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
 * Split a table's rows (rowid first, null for a table without one, then its columns) into pieces: row chunks (a JSON array of
 * rows; the manifest names the table and its columns) and blobs. Returns the row chunks' hashes in
 * order; `pieces` receives every piece (deduplicated by hash).
 */
export async function chunkTable(rows: readonly (readonly [number | null, ...SqlValue[]])[], pieces: Map<string, Piece>): Promise<string[]> {
  const hashes: string[] = [];
  let current: CellValue[][] = [];
  let size = 0;
  let range = 0;
  const flush = async () => {
    if (current.length === 0) return;
    const bytes = encoder.encode(JSON.stringify(current));
    const hash = await sha256Hex(bytes);
    if (!pieces.has(hash)) pieces.set(hash, { hash, bytes, kind: 'rows' });
    hashes.push(hash);
    current = [];
    size = 0;
  };
  for (const [rowid, ...values] of rows) {
    const cells: CellValue[] = [rowid];
    let bytes = 12;
    for (const v of values) {
      if (v instanceof ArrayBuffer) {
        cells.push({ $b64: toBase64(v) });
        bytes += (v.byteLength * 4) / 3;
      } else if (typeof v === 'string' && v.length >= LARGE_VALUE_BYTES / 4 && encoder.encode(v).byteLength >= LARGE_VALUE_BYTES) {
        const blob = encoder.encode(v);
        const hash = await sha256Hex(blob);
        if (!pieces.has(hash)) pieces.set(hash, { hash, bytes: blob, kind: 'blob' });
        cells.push({ $ref: hash });
        bytes += 76;
      } else {
        cells.push(v);
        bytes += typeof v === 'string' ? v.length + 2 : 12;
      }
    }
    // Chunks follow ranges of rowids, so unchanged ranges are shared between checkpoints; a table
    // kept by its key (no rowid: the journal) ranges by its first key column (the step).
    const r = Math.floor((rowid ?? (typeof values[0] === 'number' ? values[0] : 0)) / ROWS_PER_CHUNK);
    if (current.length > 0 && (r !== range || size + bytes > MAX_CHUNK_BYTES)) await flush();
    range = r;
    current.push(cells);
    size += bytes;
  }
  await flush();
  return hashes;
}

/** Decode a row chunk (rowid first in each row), resolving blob references through `blob`. */
export function decodeRows(bytes: Uint8Array, blob: (hash: string) => string): SqlValue[][] {
  const rows = JSON.parse(decoder.decode(bytes)) as CellValue[][];
  return rows.map((r) =>
    r.map((c): SqlValue => {
      if (c === null || typeof c !== 'object') return c;
      if ('$ref' in c) return blob(c.$ref);
      return fromBase64(c.$b64);
    }),
  );
}

export const blobText = (bytes: Uint8Array): string => decoder.decode(bytes);

// --- packs --------------------------------------------------------------------------------------

const PACK_MAGIC = 'agentos-pack/2';

/** A pack's uncompressed bytes: `agentos-pack/2 <length>,<length>,…\n`, then the pieces' bytes in order. */
export function encodePack(pieces: readonly Uint8Array[]): Uint8Array {
  const header = encoder.encode(`${PACK_MAGIC} ${pieces.map((p) => p.byteLength).join(',')}\n`);
  const out = new Uint8Array(header.byteLength + pieces.reduce((n, p) => n + p.byteLength, 0));
  out.set(header, 0);
  let at = header.byteLength;
  for (const p of pieces) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

/** The pieces of a pack's uncompressed bytes, in order. */
export function decodePack(raw: Uint8Array): Uint8Array[] {
  const nl = raw.indexOf(10);
  const header = nl < 0 ? '' : decoder.decode(raw.subarray(0, nl));
  if (!header.startsWith(`${PACK_MAGIC} `)) throw new KernelError('EIO', 'a checkpoint pack has an unknown format');
  const lengths = header.slice(PACK_MAGIC.length + 1).split(',').filter((s) => s !== '').map(Number);
  const out: Uint8Array[] = [];
  let at = nl + 1;
  for (const n of lengths) {
    out.push(raw.subarray(at, at + n));
    at += n;
  }
  if (at !== raw.byteLength) throw new KernelError('EIO', 'a checkpoint pack is truncated or has trailing bytes');
  return out;
}

async function pipe(bytes: Uint8Array, stream: CompressionStream | DecompressionStream): Promise<Uint8Array> {
  const out = new Response(new Blob([bytes]).stream().pipeThrough(stream));
  return new Uint8Array(await out.arrayBuffer());
}

/** Raw deflate: the compressed stream without gzip's header and trailer (a pack is checked by its hash instead). */
export const deflate = (bytes: Uint8Array): Promise<Uint8Array> => pipe(bytes, new CompressionStream('deflate-raw'));
export const inflate = (bytes: Uint8Array): Promise<Uint8Array> => pipe(bytes, new DecompressionStream('deflate-raw'));

/** Decompress a stored pack and check it against its name; its pieces, in order. */
export async function unpackVerified(stored: Uint8Array, sha: string): Promise<Uint8Array[]> {
  let raw: Uint8Array;
  try {
    raw = await inflate(stored);
  } catch {
    throw new KernelError('EIO', `checkpoint pack ${sha.slice(0, 12)} is corrupt (it does not decompress)`, { pack: sha });
  }
  if ((await sha256Hex(raw)) !== sha) throw new KernelError('EIO', `checkpoint pack ${sha.slice(0, 12)} is corrupt (its content does not match its address)`, { pack: sha });
  return decodePack(raw);
}
