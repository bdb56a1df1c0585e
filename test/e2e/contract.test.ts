/**
 * The API's contract, as the kernel under `wrangler dev` serves it: GET /openapi.json is clean under
 * `redocly lint`'s recommended rules (redocly.yaml), and the CLI's generated client types
 * (scripts/cli/api-types.ts) are what openapi-typescript makes of it today.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { API_TYPES, apiTypes } from '../../scripts/gen-api.mjs';
import { ROOT } from '../../scripts/lib/dev-worker.mjs';

const { base } = inject('kernel');
/** Where the linted copy goes: .redocly.lint-ignore.yaml names its intended findings by this path. */
const LINTED = path.join(ROOT, 'node_modules/.cache/agentos/openapi.json');

type Doc = { servers?: unknown[]; paths: Record<string, Record<string, { operationId?: string; parameters?: { name: string; in: string; schema: { type?: string } }[]; responses: Record<string, unknown> }>> };
const doc = async (): Promise<Doc> => (await fetch(`${base}/openapi.json`)).json() as Promise<Doc>;

describe('the OpenAPI document', () => {
  it('is clean under redocly lint (recommended rules): no errors, no warnings', async () => {
    mkdirSync(path.dirname(LINTED), { recursive: true });
    writeFileSync(LINTED, JSON.stringify(await doc(), null, 2));
    const cli = path.join(ROOT, 'node_modules/@redocly/cli/bin/cli.js');
    const r = spawnSync(process.execPath, [cli, 'lint', LINTED, '--config', path.join(ROOT, 'redocly.yaml'), '--format', 'stylish'], { encoding: 'utf8', cwd: ROOT, env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' } });
    const output = `${r.stdout}\n${r.stderr}`;
    expect(r.status, output).toBe(0);
    expect(output, output).toMatch(/Your API description is valid/);
    expect(output, output).not.toMatch(/\b(warning|error)s?\b/i);
  });

  it('names every operation, and types integer query parameters as integers', async () => {
    const d = await doc();
    const ops = Object.values(d.paths).flatMap((p) => Object.values(p));
    expect(ops.length).toBeGreaterThan(25);
    expect(ops.every((o) => typeof o.operationId === 'string')).toBe(true);
    const limits = ops.flatMap((o) => o.parameters ?? []).filter((p) => p.name === 'limit');
    expect(limits.length).toBeGreaterThan(5);
    expect(limits.every((p) => p.in === 'query' && p.schema.type === 'integer')).toBe(true);
    const fs = d.paths['/v1/processes/{pid}/fs/{path}']?.get;
    expect(fs?.parameters?.filter((p) => p.in === 'path').map((p) => p.name)).toEqual(['pid', 'path']);
  });

  it('matches the committed client types (npm run gen:api regenerates them)', async () => {
    const fresh = await apiTypes(await doc());
    const committed = readFileSync(API_TYPES, 'utf8');
    expect(committed === fresh, `${path.relative(ROOT, API_TYPES)} is stale: run npm run gen:api`).toBe(true);
  });
});
