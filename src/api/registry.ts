/**
 * A small route registry over hono: each route declares its params, query and body as zod schemas;
 * the registry validates requests with them and builds the OpenAPI document from the same schemas.
 * One schema, two uses, no drift.
 *
 * Bodies are read with a size cap before parsing: an oversized body is 413; malformed JSON, JSON
 * nested deeper than 64 levels or a declared content type that is not JSON is 400; a schema
 * violation is 400 with zod's issues. Handlers receive only validated, typed input.
 *
 * The document is a contract clients are generated from (scripts/cli/api.d.ts, by openapi-typescript),
 * linted by `redocly lint` in test/e2e/contract.test.ts: every operation has an operationId (the
 * generated method's name), every path parameter is declared (a trailing `/*` is `{path}`), and the
 * errors the registry itself produces (400 bad input, 401/429 authentication, 403 role, 413 body
 * size) are declared on every route they can come from, beside the route's own.
 */
import type { Context, Hono } from 'hono';
import { z } from 'zod';
import { KernelError } from '../kernel/errors.ts';
import { type Principal, type Role, authenticate, roleAtLeast } from './auth.ts';
import { ErrorSchema } from './common.ts';

export const MAX_BODY_BYTES = 1024 * 1024;

type Method = 'get' | 'post' | 'put' | 'delete';

export interface RouteDef<P extends z.ZodType, Q extends z.ZodType, B extends z.ZodType> {
  readonly method: Method;
  /** Hono path syntax: /v1/processes/:pid */
  readonly path: string;
  /** The operation's name in generated clients: a camelCase verb phrase, unique in the API. */
  readonly operationId: string;
  readonly summary: string;
  readonly tag: string;
  /** The least role that may call it; `public` needs no token. */
  readonly role: Role | 'public';
  readonly params?: P;
  readonly query?: Q;
  readonly body?: B;
  readonly responses: Readonly<Record<number, { readonly description: string; readonly schema?: z.ZodType; readonly contentType?: string }>>;
}

export interface RouteInput<P extends z.ZodType, Q extends z.ZodType, B extends z.ZodType> {
  readonly params: z.infer<P>;
  readonly query: z.infer<Q>;
  readonly body: z.infer<B>;
  readonly c: Context<{ Bindings: Env }>;
  /** Who is calling. For public routes: an anonymous reader with no tenant. */
  readonly principal: Principal;
}

const ANONYMOUS: Principal = { tenant: '', role: 'reader', token_id: 'anonymous' };

function invalid(where: string, error: z.ZodError): KernelError {
  return new KernelError('EINVAL', `invalid ${where}: ${z.prettifyError(error)}`, {
    issues: error.issues.map((i) => ({ path: i.path.map(String), message: i.message, code: i.code })),
  });
}

/**
 * Read a body of at most `limit` bytes (E2BIG past it, said as `tooBig`); an absent body is empty.
 * The declared content-length is checked first, then the bytes as they arrive.
 */
export async function readCapped(request: Request, limit: number, tooBig = `request body exceeds the limit of ${limit} bytes`): Promise<Uint8Array> {
  const declared = Number(request.headers.get('content-length') ?? NaN);
  if (Number.isFinite(declared) && declared > limit) throw new KernelError('E2BIG', `${tooBig} (${declared} bytes declared)`, { limit });
  const reader = request.body?.getReader();
  if (!reader) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel();
      throw new KernelError('E2BIG', tooBig, { limit });
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.byteLength;
  }
  return bytes;
}

/**
 * Content types a JSON body may be declared as: JSON, and text/plain, which is what `fetch` sends
 * for a string body. A form, multipart or any other declared type is refused rather than guessed at.
 */
function declaredJson(contentType: string | null): boolean {
  if (contentType === null) return true;
  const media = (contentType.split(';')[0] ?? '').trim().toLowerCase();
  return media === 'application/json' || media.endsWith('+json') || media === 'text/plain' || media === '';
}

/** How deeply a request's JSON may nest. Real bodies stay far below; deeper is refused before parsing. */
export const MAX_JSON_DEPTH = 64;

/**
 * EINVAL when JSON text nests arrays and objects deeper than {@link MAX_JSON_DEPTH}, found by one
 * linear scan. `JSON.parse` copes with any depth, but much of what follows recurses
 * (`JSON.stringify`, structured clone over RPC) and overflows the stack: a 100 k-deep message was a 500.
 */
export function checkJsonDepth(text: string): void {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > MAX_JSON_DEPTH) throw new KernelError('EINVAL', `request body nests deeper than ${MAX_JSON_DEPTH} levels`, { max_depth: MAX_JSON_DEPTH });
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
}

/** Read a JSON body with a size cap. */
export async function readJson(request: Request, limit = MAX_BODY_BYTES): Promise<unknown> {
  if (!request.body) throw new KernelError('EINVAL', 'request body is required (JSON)');
  const contentType = request.headers.get('content-type');
  if (!declaredJson(contentType)) {
    throw new KernelError('EINVAL', `request body must be JSON, sent as content-type application/json, not "${(contentType ?? '').slice(0, 100)}"`, { content_type: (contentType ?? '').slice(0, 100) });
  }
  const bytes = await readCapped(request, limit);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    throw new KernelError('EINVAL', 'request body is not valid UTF-8');
  }
  if (text.trim() === '') throw new KernelError('EINVAL', 'request body is empty; send a JSON object');
  checkJsonDepth(text);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new KernelError('EINVAL', `request body is not valid JSON: ${(e as Error).message}`);
  }
}

const WILDCARD = /\/\*$/;
const openapiPath = (path: string): string => path.replace(/:([A-Za-z_]+)/g, '{$1}').replace(WILDCARD, '/{path}');
const ERROR_REF = { $ref: '#/components/schemas/Error' };

const jsonSchema = (schema: z.ZodType, io: 'input' | 'output'): Record<string, unknown> => {
  const s = z.toJSONSchema(schema, { io, unrepresentable: 'any', target: 'openapi-3.0' }) as Record<string, unknown>;
  delete s.$schema;
  return s;
};

export class ApiRegistry {
  readonly #app: Hono<{ Bindings: Env }>;
  readonly #paths: Record<string, Record<string, unknown>> = {};
  readonly #operationIds = new Set<string>();
  readonly #routes: RouteDef<z.ZodType, z.ZodType, z.ZodType>[] = [];

  constructor(app: Hono<{ Bindings: Env }>) {
    this.#app = app;
  }

  route<P extends z.ZodType = z.ZodObject, Q extends z.ZodType = z.ZodObject, B extends z.ZodType = z.ZodUndefined>(
    def: RouteDef<P, Q, B>,
    handler: (input: RouteInput<P, Q, B>) => Promise<Response> | Response,
  ): void {
    if (this.#operationIds.has(def.operationId)) throw new Error(`two routes share the operationId ${def.operationId}`);
    this.#operationIds.add(def.operationId);
    this.#document(def);
    this.#routes.push(def);
    this.#app[def.method](def.path, async (c) => {
      let principal = ANONYMOUS;
      if (def.role !== 'public') {
        principal = await authenticate(c.req.raw, c.env, Date.now());
        if (!roleAtLeast(principal.role, def.role)) {
          throw new KernelError('EPERM', `this call needs the ${def.role} role; the token has ${principal.role}`, { needed: def.role, role: principal.role });
        }
      }
      const params = def.params ? def.params.safeParse(c.req.param()) : { success: true as const, data: {} };
      if (!params.success) throw invalid('path parameters', params.error);
      const query = def.query ? def.query.safeParse(c.req.query()) : { success: true as const, data: {} };
      if (!query.success) throw invalid('query parameters', query.error);
      let body: unknown;
      if (def.body) {
        const parsed = def.body.safeParse(await readJson(c.req.raw));
        if (!parsed.success) throw invalid('request body', parsed.error);
        body = parsed.data;
      }
      return handler({ params: params.data as z.infer<P>, query: query.data as z.infer<Q>, body: body as z.infer<B>, c, principal });
    });
  }

  #document(def: RouteDef<z.ZodType, z.ZodType, z.ZodType>): void {
    const parameters: unknown[] = [];
    const addParams = (schema: z.ZodType | undefined, where: 'path' | 'query') => {
      if (!schema) return;
      const js = jsonSchema(schema, 'input') as { properties?: Record<string, Record<string, unknown>>; required?: string[] };
      for (const [name, s] of Object.entries(js.properties ?? {})) {
        const { description, ...rest } = s;
        parameters.push({ name, in: where, required: where === 'path' || (js.required ?? []).includes(name), schema: rest, ...(description ? { description } : {}) });
      }
    };
    addParams(def.params, 'path');
    if (WILDCARD.test(def.path)) parameters.push({ name: 'path', in: 'path', required: true, schema: { type: 'string' }, description: 'a path in the process filesystem; may contain "/"' });
    addParams(def.query, 'query');
    const responses: Record<string, unknown> = {};
    const errors: Record<number, string> = {};
    if (def.params || def.query || def.body || WILDCARD.test(def.path)) errors[400] = 'invalid input (EINVAL), with the issues';
    if (def.role !== 'public') Object.assign(errors, { 401: 'missing, invalid or revoked token (EUNAUTH)', 429: 'too many failed logins from this client (ERATE)' });
    if (def.role === 'operator' || def.role === 'admin') errors[403] = `the token's role is below ${def.role} (EPERM)`;
    if (def.body) errors[413] = 'body over 1 MiB (E2BIG)';
    for (const [status, r] of Object.entries(def.responses)) {
      const error = r.schema === ErrorSchema;
      if (error && errors[Number(status)]) {
        errors[Number(status)] = `${r.description}; or ${errors[Number(status)]}`;
        continue;
      }
      const schema = error ? ERROR_REF : r.schema ? jsonSchema(r.schema, 'output') : undefined;
      responses[status] = { description: r.description, ...(schema ? { content: { [r.contentType ?? 'application/json']: { schema } } } : {}) };
    }
    for (const [status, description] of Object.entries(errors)) responses[status] = { description, content: { 'application/json': { schema: ERROR_REF } } };
    const path = openapiPath(def.path);
    this.#paths[path] ??= {};
    (this.#paths[path] as Record<string, unknown>)[def.method] = {
      operationId: def.operationId,
      summary: def.summary,
      tags: [def.tag],
      ...(def.role === 'public' ? { security: [] } : { description: `Requires the ${def.role} role.` }),
      ...(parameters.length ? { parameters } : {}),
      ...(def.body ? { requestBody: { required: true, content: { 'application/json': { schema: jsonSchema(def.body, 'input') } } } } : {}),
      responses,
    };
  }

  /** Every route as declared, schemas included (the fuzz battery generates requests from them). */
  get routes(): readonly RouteDef<z.ZodType, z.ZodType, z.ZodType>[] {
    return this.#routes;
  }

  openapi(info: { title: string; version: string; description: string }): Record<string, unknown> {
    return {
      openapi: '3.0.3',
      info,
      // Relative: the deployment that serves the document (wrangler dev, workers.dev or a route).
      servers: [{ url: '/', description: 'the deployment serving this document' }],
      paths: this.#paths,
      components: { schemas: { Error: jsonSchema(ErrorSchema, 'output') }, securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    };
  }
}
