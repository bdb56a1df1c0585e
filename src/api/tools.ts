/**
 * JIT tool routes: a process's registered tools, and publishing them into an image (versioned,
 * restorable) so that processes spawned from the image inherit them. See docs/tools.md.
 */
import { z } from 'zod';
import { processStub } from '../rpc/stubs.ts';
import { KernelError } from '../kernel/errors.ts';
import { PID_PATTERN } from '../kernel/pcb.ts';
import { publishTools, restoreTools, toolVersions } from '../tools/images.ts';
import { E, PidParams, pidOf, unwrap } from './common.ts';
import { SeqCursor, pageParams } from './paging.ts';
import type { ApiRegistry } from './registry.ts';

const ImageParams = z.object({ image: z.string().min(1).max(64) });
const VersionsSchema = z.object({
  image: z.string(),
  head: z.number().nullable(),
  builtin: z.array(z.string()),
  versions: z.array(z.object({ version: z.number(), tool_count: z.number(), tools: z.array(z.string()), source_pid: z.string().nullable(), restored_from: z.number().nullable(), created_at: z.number(), created_by: z.string() })),
});

export function registerToolRoutes(api: ApiRegistry): void {
  api.route(
    { method: 'get', path: '/v1/processes/:pid/tools', operationId: 'listProcessTools', summary: "A process's registered JIT tools, with their source", tag: 'tools', role: 'reader', params: PidParams, responses: { 200: { description: 'the tool table' }, 404: E('unknown pid') } },
    async ({ params, c, principal }) => c.json({ tools: unwrap(await processStub(c.env, pidOf(params.pid)).listTools(principal.tenant)) }),
  );

  api.route(
    {
      method: 'post',
      path: '/v1/images/:image/tools',
      operationId: 'publishTools',
      summary: "Publish a process's tools into an image as a new version; processes spawned from it inherit them",
      tag: 'tools',
      role: 'operator',
      params: ImageParams,
      body: z.object({ from_pid: z.string().regex(PID_PATTERN), only: z.array(z.string()).max(64).optional().describe('publish only these tools') }).strict(),
      responses: { 201: { description: 'the new version' }, 404: E('unknown image or pid'), 413: E('tool set too large') },
    },
    async ({ params, body, c, principal }) => {
      const tools = unwrap(await processStub(c.env, body.from_pid).listTools(principal.tenant)).filter((t) => !body.only || body.only.includes(t.name));
      const missing = body.only?.filter((n) => !tools.some((t) => t.name === n)) ?? [];
      if (missing.length) throw new KernelError('ENOENT', `process ${body.from_pid} has no tool named ${missing.join(', ')}`, { missing });
      const defs = tools.map((t) => ({ name: t.name, description: t.description, parameters: t.parameters, source: t.source }));
      const version = await publishTools(c.env.DB, principal.tenant, params.image, defs, body.from_pid, `api:${principal.token_id}`, Date.now());
      return c.json({ image: params.image, version, tools: defs.map((d) => d.name) }, 201);
    },
  );

  api.route(
    {
      method: 'get',
      path: '/v1/images/:image/tools',
      operationId: 'listToolVersions',
      summary: "An image's published tool versions (newest first, paged) and its head",
      tag: 'tools',
      role: 'reader',
      params: ImageParams,
      query: z.object({ ...pageParams(100, 500, SeqCursor) }),
      responses: { 200: { description: 'a page of versions', schema: VersionsSchema }, 400: E('bad query'), 404: E('unknown image') },
    },
    async ({ params, query, c, principal }) => c.json(await toolVersions(c.env.DB, principal.tenant, params.image, { limit: query.limit, before: query.cursor })),
  );

  api.route(
    {
      method: 'post',
      path: '/v1/images/:image/tools/restore',
      operationId: 'restoreTools',
      summary: 'Make an older tool version current again (appended as a new version)',
      tag: 'tools',
      role: 'operator',
      params: ImageParams,
      body: z.object({ version: z.number().int().min(1) }).strict(),
      responses: { 201: { description: 'the new version' }, 404: E('unknown image or version') },
    },
    async ({ params, body, c, principal }) => {
      const version = await restoreTools(c.env.DB, principal.tenant, params.image, body.version, `api:${principal.token_id}`, Date.now());
      return c.json({ image: params.image, version, restored_from: body.version }, 201);
    },
  );
}
