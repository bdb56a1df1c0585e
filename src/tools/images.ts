/**
 * Tools that come with an image: the image's built-in tools (jit-tools/, named in the image) and the
 * tools published into it (D1, versioned per tenant). A process spawned from an image registers
 * both before its first step, through the same compiler as tool_register; a published tool
 * replaces a built-in one of the same name.
 *
 * Publishing appends a version holding the full set of definitions (source included) and moves
 * the image's head to it. Restoring appends a copy of an older version as the newest and moves the
 * head, so history is never rewritten and a restore can itself be undone.
 */
import { z } from 'zod';
import { BUILTIN_TOOLS } from '../../jit-tools/builtin.gen.ts';
import { KernelError } from '../kernel/errors.ts';
import { IMAGES } from '../kernel/images.ts';
import type { Statement } from '../audit/audit.ts';
import type { ToolDefinition } from './store.ts';

export const MAX_PUBLISHED_TOOLS_BYTES = 900 * 1024;

const DefinitionSchema = z.object({ name: z.string(), description: z.string(), parameters: z.record(z.string(), z.unknown()), source: z.string() });

export interface ImageToolVersion {
  readonly version: number;
  readonly tool_count: number;
  readonly tools: string[];
  readonly source_pid: string | null;
  readonly restored_from: number | null;
  readonly created_at: number;
  readonly created_by: string;
}

export function knownImage(image: string): void {
  if (!Object.hasOwn(IMAGES, image)) throw new KernelError('ENOENT', `no image named "${image}"`, { image });
}

export function builtinTools(image: string): ToolDefinition[] {
  const names = IMAGES[image]?.tools ?? [];
  return names.map((n) => {
    const def = BUILTIN_TOOLS[n];
    if (!def) throw new KernelError('EFAULT', `image ${image} names a built-in tool "${n}" that does not exist`);
    return def;
  });
}

/** The image's published head: one D1 read (a spawn sends it in the same batch as its process-table row). */
export function imageHeadStatement(tenant: string, image: string): Statement {
  return {
    sql: 'SELECT v.version AS version, v.tools AS tools FROM image_tool_heads h JOIN image_tool_versions v ON v.tenant = h.tenant AND v.image = h.image AND v.version = h.version WHERE h.tenant = ? AND h.image = ?',
    params: [tenant, image],
  };
}

/** A row of imageHeadStatement, as it comes back from D1. */
export type ImageHeadRow = { readonly version: number; readonly tools: string };

function head(row: ImageHeadRow | null | undefined): { version: number; tools: ToolDefinition[] } | null {
  if (!row) return null;
  return { version: row.version, tools: z.array(DefinitionSchema).parse(JSON.parse(row.tools)) };
}

/** What a process spawned from `image` starts with, given its published head (or none): groups of definitions, each with its origin. */
export function imageTools(image: string, row: ImageHeadRow | null | undefined): { defs: ToolDefinition[]; origin: string }[] {
  const groups: { defs: ToolDefinition[]; origin: string }[] = [];
  const builtin = builtinTools(image);
  const published = head(row);
  const overridden = new Set(published?.tools.map((t) => t.name) ?? []);
  const kept = builtin.filter((t) => !overridden.has(t.name));
  if (kept.length) groups.push({ defs: kept, origin: 'builtin' });
  if (published?.tools.length) groups.push({ defs: published.tools, origin: `image:${image}@${published.version}` });
  return groups;
}

/** imageTools, reading the head from D1 on its own. */
export async function imageToolsAtSpawn(db: D1Database, tenant: string, image: string): Promise<{ defs: ToolDefinition[]; origin: string }[]> {
  const s = imageHeadStatement(tenant, image);
  return imageTools(image, await db.prepare(s.sql).bind(...s.params).first<ImageHeadRow>());
}

async function append(db: D1Database, tenant: string, image: string, tools: readonly ToolDefinition[], meta: { source_pid: string | null; restored_from: number | null; by: string; now: number }): Promise<number> {
  const json = JSON.stringify(tools);
  if (json.length > MAX_PUBLISHED_TOOLS_BYTES) throw new KernelError('E2BIG', `the tool set is ${json.length} bytes; an image version holds at most ${MAX_PUBLISHED_TOOLS_BYTES}`);
  const [inserted] = await db.batch<{ version: number }>([
    db
      .prepare(
        `INSERT INTO image_tool_versions (tenant, image, version, tools, tool_count, source_pid, restored_from, created_at, created_by)
         SELECT ?1, ?2, COALESCE(MAX(version), 0) + 1, ?3, ?4, ?5, ?6, ?7, ?8 FROM image_tool_versions WHERE tenant = ?1 AND image = ?2
         RETURNING version`,
      )
      .bind(tenant, image, json, tools.length, meta.source_pid, meta.restored_from, meta.now, meta.by),
    db
      .prepare(
        `INSERT INTO image_tool_heads (tenant, image, version, updated_at)
         SELECT ?1, ?2, MAX(version), ?3 FROM image_tool_versions WHERE tenant = ?1 AND image = ?2
         ON CONFLICT (tenant, image) DO UPDATE SET version = excluded.version, updated_at = excluded.updated_at`,
      )
      .bind(tenant, image, meta.now),
  ]);
  const version = inserted?.results[0]?.version;
  if (typeof version !== 'number') throw new KernelError('EFAULT', 'publishing did not return a version');
  return version;
}

export async function publishTools(db: D1Database, tenant: string, image: string, tools: readonly ToolDefinition[], sourcePid: string, by: string, now: number): Promise<number> {
  knownImage(image);
  return append(db, tenant, image, tools, { source_pid: sourcePid, restored_from: null, by, now });
}

export async function restoreTools(db: D1Database, tenant: string, image: string, version: number, by: string, now: number): Promise<number> {
  knownImage(image);
  const row = await db.prepare('SELECT tools FROM image_tool_versions WHERE tenant = ? AND image = ? AND version = ?').bind(tenant, image, version).first<{ tools: string }>();
  if (!row) throw new KernelError('ENOENT', `image ${image} has no tool version ${version}`, { image, version });
  const tools = z.array(DefinitionSchema).parse(JSON.parse(row.tools));
  return append(db, tenant, image, tools, { source_pid: null, restored_from: version, by, now });
}

/**
 * An image's published versions, newest first, a page at a time: `before` is the version to read
 * below (the previous page's `next_cursor`), so every version is reachable however many there are.
 */
export async function toolVersions(
  db: D1Database,
  tenant: string,
  image: string,
  page: { limit: number; before?: number },
): Promise<{ image: string; head: number | null; builtin: string[]; versions: ImageToolVersion[]; next_cursor: string | null }> {
  knownImage(image);
  const rows = await db
    .prepare('SELECT version, tool_count, tools, source_pid, restored_from, created_at, created_by FROM image_tool_versions WHERE tenant = ? AND image = ? AND version < ? ORDER BY version DESC LIMIT ?')
    .bind(tenant, image, page.before ?? Number.MAX_SAFE_INTEGER, page.limit + 1)
    .all<{ version: number; tool_count: number; tools: string; source_pid: string | null; restored_from: number | null; created_at: number; created_by: string }>();
  const h = await db.prepare('SELECT version FROM image_tool_heads WHERE tenant = ? AND image = ?').bind(tenant, image).first<{ version: number }>();
  const shown = rows.results.slice(0, page.limit);
  const last = shown.at(-1);
  return {
    image,
    head: h?.version ?? null,
    builtin: [...(IMAGES[image]?.tools ?? [])],
    versions: shown.map((r) => ({ ...r, tools: (JSON.parse(r.tools) as { name: string }[]).map((t) => t.name) })),
    next_cursor: rows.results.length > page.limit && last ? String(last.version) : null,
  };
}
