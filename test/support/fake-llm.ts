/**
 * A fake LLM service for tests, speaking the providers' exact wire formats over loopback HTTP:
 *   POST /llm/openai/v1/chat/completions   (OpenAI Chat Completions)
 *   POST /llm/anthropic/v1/messages        (Anthropic Messages)
 *   POST /llm/openai/v1/embeddings         (OpenAI embeddings: a deterministic vector per input text, of the
 *                                            requested `dimensions`, or of N for a model named `dims-N`)
 * A test scripts the answers per model name (so tests never share a script):
 *   POST /llm/scenario {model, responses: [{status?, headers?, body?, hang?}]}  — answered in order
 *   GET  /llm/requests/<model>  → every request received: {path, headers, body}
 *   GET  /llm/hanging/<model>   → long-poll: answers once a `hang` response is holding a request
 */
import type http from 'node:http';

type Scripted = { status?: number; headers?: Record<string, string>; body?: unknown; hang?: boolean };
type Recorded = { path: string; headers: Record<string, string | string[] | undefined>; body: unknown };

/** A deterministic pseudo-embedding of a text (not semantic: tests only need stable, distinct vectors). */
function fakeEmbedding(text: string, dims: number): number[] {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619);
  const out: number[] = [];
  for (let i = 0; i < dims; i++) {
    h = Math.imul(h ^ (h >>> 15), 2246822507) ^ i;
    out.push(((h >>> 0) % 2000) / 1000 - 1);
  }
  return out;
}

export function createFakeLlm(): { handle(req: http.IncomingMessage, res: http.ServerResponse, body: string): boolean; close(): void } {
  const scenarios = new Map<string, Scripted[]>();
  const requests = new Map<string, Recorded[]>();
  const hanging = new Map<string, http.ServerResponse[]>();
  const waiters = new Map<string, (() => void)[]>();
  const json = (res: http.ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify(value));
  };
  return {
    handle(req, res, body) {
      const url = new URL(req.url ?? '/', 'http://x');
      if (!url.pathname.startsWith('/llm/')) return false;
      if (url.pathname === '/llm/scenario' && req.method === 'POST') {
        const s = JSON.parse(body) as { model: string; responses: Scripted[] };
        scenarios.set(s.model, [...s.responses]);
        requests.set(s.model, []);
        json(res, 200, { ok: true });
        return true;
      }
      const [, , what, model = ''] = url.pathname.split('/');
      if (what === 'requests' && req.method === 'GET') {
        json(res, 200, requests.get(decodeURIComponent(model)) ?? []);
        return true;
      }
      if (what === 'hanging' && req.method === 'GET') {
        const key = decodeURIComponent(model);
        const done = () => json(res, 200, { hanging: true });
        if ((hanging.get(key) ?? []).length > 0) done();
        else waiters.set(key, [...(waiters.get(key) ?? []), done]);
        return true;
      }
      if (req.method === 'POST' && url.pathname === '/llm/openai/v1/embeddings') {
        const parsed = JSON.parse(body) as { model: string; input: string | string[]; dimensions?: number };
        requests.set(parsed.model, [...(requests.get(parsed.model) ?? []), { path: url.pathname, headers: req.headers, body: parsed }]);
        const inputs = Array.isArray(parsed.input) ? parsed.input : [parsed.input];
        const forced = /^dims-(\d+)$/.exec(parsed.model);
        const dims = forced ? Number(forced[1]) : (parsed.dimensions ?? 1536);
        json(res, 200, {
          object: 'list',
          model: parsed.model,
          data: inputs.map((text, index) => ({ object: 'embedding', index, embedding: fakeEmbedding(text, dims) })),
          usage: { prompt_tokens: inputs.length, total_tokens: inputs.length },
        });
        return true;
      }
      if (req.method === 'POST' && (url.pathname === '/llm/openai/v1/chat/completions' || url.pathname === '/llm/anthropic/v1/messages')) {
        let parsed: { model?: string } = {};
        try {
          parsed = JSON.parse(body) as { model?: string };
        } catch {
          json(res, 400, { error: { message: 'fake: body is not JSON' } });
          return true;
        }
        const key = parsed.model ?? '';
        requests.set(key, [...(requests.get(key) ?? []), { path: url.pathname, headers: req.headers, body: parsed }]);
        const next = scenarios.get(key)?.shift();
        if (!next) {
          json(res, 500, { error: { type: 'api_error', message: `fake: no scripted response left for model ${key}` } });
          return true;
        }
        if (next.hang) {
          hanging.set(key, [...(hanging.get(key) ?? []), res]);
          for (const w of waiters.get(key) ?? []) w();
          waiters.delete(key);
          return true;
        }
        json(res, next.status ?? 200, next.body ?? {}, next.headers ?? {});
        return true;
      }
      json(res, 404, { error: { message: `fake: no route ${req.method} ${url.pathname}` } });
      return true;
    },
    close() {
      for (const list of hanging.values()) for (const r of list) r.destroy();
    },
  };
}
