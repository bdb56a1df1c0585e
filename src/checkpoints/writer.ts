/**
 * Writing a checkpoint to R2: a snapshot's tables cut into pieces (chunks.ts), the pieces an earlier
 * checkpoint of the process stored reused where they are, the rest put into new packs, and the
 * manifest that places every piece, written last (store.ts: a checkpoint exists once its manifest
 * is written and its index row committed; the caller commits the row).
 */
import { PACK_BYTES, type Piece, deflate, encodePack, sha256Hex } from './chunks.ts';
import { type Snapshot, chunkSnapshot, stateDigest } from './snapshot.ts';
import type { CheckpointIndex, Manifest, ManifestTable, NewPiece, PieceAt, Reason, SchemaPiece } from './store.ts';
import { manifestKey, packKey } from './store.ts';

/** Who and where the process was when the snapshot was read: the manifest's head. */
export interface CheckpointHead {
  readonly id: string;
  readonly pid: string;
  readonly tenant: string;
  readonly label: string | null;
  readonly reason: Reason;
  readonly created_at: number;
  readonly step: number;
  readonly version: number;
  readonly state: string;
  readonly forked_from?: string | undefined;
}

/** A pack this checkpoint put, as the index records it. */
export interface WrittenPack {
  readonly sha: string;
  readonly raw: number;
  readonly stored: number;
  readonly pieces: NewPiece[];
}

/** Put the snapshot's new pieces in packs under `prefix`, then its manifest. Returns the manifest and the packs written, for the index row. */
export async function writeCheckpoint(bucket: R2Bucket, index: CheckpointIndex, prefix: string, snap: Snapshot, head: CheckpointHead): Promise<{ manifest: Manifest; written: WrittenPack[] }> {
  const { pieces, tables } = await chunkSnapshot(snap);
  // The tables' shapes travel as one piece, shared by every checkpoint taken under the same schema.
  const shape: SchemaPiece = Object.fromEntries(snap.tables.map((t) => [t.name, { columns: [...t.columns], explicit_rowid: t.explicit_rowid }]));
  const shapeBytes = new TextEncoder().encode(JSON.stringify(shape));
  const shapeHash = await sha256Hex(shapeBytes);
  if (!pieces.has(shapeHash)) pieces.set(shapeHash, { hash: shapeHash, bytes: shapeBytes, kind: 'schema' });
  const digest = await stateDigest(snap.tables);
  // Pieces an earlier checkpoint stored are reused where they are; the rest go into new packs.
  const at = index.find(pieces.keys());
  const fresh = [...pieces.values()].filter((p) => !at.has(p.hash));
  const written: WrittenPack[] = [];
  for (let i = 0; i < fresh.length; ) {
    const group: Piece[] = [];
    let size = 0;
    while (i < fresh.length && (group.length === 0 || size + (fresh[i]?.bytes.byteLength ?? 0) <= PACK_BYTES)) {
      const p = fresh[i++] as Piece;
      group.push(p);
      size += p.bytes.byteLength;
    }
    const raw = encodePack(group.map((p) => p.bytes));
    const sha = await sha256Hex(raw);
    const body = await deflate(raw);
    await bucket.put(packKey(prefix, sha), body);
    const placed = group.map((p, idx): NewPiece => ({ hash: p.hash, kind: p.kind, raw: p.bytes.byteLength, pack: sha, idx }));
    for (const x of placed) at.set(x.hash, x);
    written.push({ sha, raw: raw.byteLength, stored: body.byteLength, pieces: placed });
  }
  // The packs this checkpoint reads, numbered in order of first use.
  const packs: Manifest['packs'] = [];
  const packNo = new Map<string, number>();
  const place = (hash: string): [number, number] => {
    const where = at.get(hash) as PieceAt;
    let n = packNo.get(where.pack);
    if (n === undefined) {
      n = packs.length;
      packNo.set(where.pack, n);
      const w = written.find((x) => x.sha === where.pack);
      const known = w ?? index.pack(where.pack);
      packs.push({ sha: where.pack, raw: known?.raw ?? 0, stored: known?.stored ?? 0 });
    }
    return [n, where.idx];
  };
  const manifestTables: ManifestTable[] = snap.tables.map((t, i) => {
    const runs: ManifestTable['chunks'] = [];
    for (const hash of tables[i]?.chunks ?? []) {
      const [p, idx] = place(hash);
      const last = runs.at(-1);
      if (last && last[0] === p && last[1] + last[2] === idx) last[2]++;
      else runs.push([p, idx, 1]);
    }
    return { name: t.name, policy: t.policy, rows: t.rows.length, chunks: runs };
  });
  const blobs: Manifest['blobs'] = {};
  for (const p of pieces.values()) if (p.kind === 'blob') blobs[p.hash] = place(p.hash);
  const rawBytes = [...pieces.values()].reduce((n, p) => n + p.bytes.byteLength, 0);
  const packBytes = packs.reduce((n, p) => n + p.stored, 0);
  const newBytes = written.reduce((n, p) => n + p.stored, 0);
  const manifestBase = {
    format: 2 as const,
    id: head.id,
    pid: head.pid,
    tenant: head.tenant,
    label: head.label,
    reason: head.reason,
    created_at: head.created_at,
    step: head.step,
    version: head.version,
    state: head.state,
    events_cursor: snap.events_cursor,
    digest,
    packs,
    schema: place(shapeHash),
    tables: manifestTables,
    blobs,
    ...(head.forked_from ? { forked_from: head.forked_from } : {}),
  };
  const counts = { chunks: pieces.size, new_chunks: fresh.length };
  const draft = await deflate(new TextEncoder().encode(JSON.stringify({ ...manifestBase, sizes: { raw_bytes: rawBytes, stored_bytes: packBytes, new_bytes: newBytes, ...counts } })));
  // The manifest counts in what this checkpoint added (it is never shared); sizes are of the draft (±a few bytes).
  const manifestBytes = draft.byteLength;
  const manifest: Manifest = { ...manifestBase, sizes: { raw_bytes: rawBytes, stored_bytes: packBytes + manifestBytes, new_bytes: newBytes + manifestBytes, ...counts } };
  await bucket.put(manifestKey(prefix, head.id), await deflate(new TextEncoder().encode(JSON.stringify(manifest))), { httpMetadata: { contentType: 'application/json' } });
  return { manifest, written };
}
