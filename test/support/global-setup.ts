/**
 * A loopback HTTP server the tests' workerd can reach: the outside world for net_fetch, including
 * an endpoint that hangs until released (to kill a process in the middle of a syscall).
 *
 *   GET  /echo?…          → 200 JSON {method, path, query, body}
 *   GET  /big?bytes=N     → N bytes of "x"
 *   ANY  /hang/<key>      → held open; the first request for a key hangs, later ones answer 200
 *   GET  /hanging/<key>   → long-poll: answers once a request is hanging on /hang/<key>
 *   ANY  /sink/<key>      → 200, counted: where a test's forbidden effects would land
 *   GET  /page?body=…     → a page with the given body (injected instructions)
 *   GET  /redirect?to=…   → 302 to the given URL
 *   GET  /count/<key>     → how many requests /hang/<key> or /sink/<key> has received
 *   GET  /text/<kind>?bytes=N → about N bytes of hostile or ordinary text (./hostile-text.ts)
 *   /llm/…                → the fake LLM service (./fake-llm.ts)
 *   /mcp-test/…           → a real MCP server built with the official SDK (./mcp-server.ts)
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TestProject } from 'vitest/node';
import { createFakeLlm } from './fake-llm.ts';
import { hostileText, type TextKind } from './hostile-text.ts';
import { createFakeMcp } from './mcp-server.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    testServerPort: number;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const llm = createFakeLlm();
  const mcp = createFakeMcp();
  const counts = new Map<string, number>();
  const hanging = new Map<string, http.ServerResponse>();
  const waiters = new Map<string, ((v: void) => void)[]>();
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      if (llm.handle(req, res, body)) return;
      if (mcp.handle(req, res, body)) return;
      const [, route, key = ''] = url.pathname.split('/');
      if (route === 'echo') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ method: req.method, path: url.pathname, query: Object.fromEntries(url.searchParams), body }));
      } else if (route === 'big') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end('x'.repeat(Number(url.searchParams.get('bytes') ?? 0)));
      } else if (route === 'hang') {
        const n = (counts.get(key) ?? 0) + 1;
        counts.set(key, n);
        if (n === 1) {
          hanging.set(key, res);
          for (const w of waiters.get(key) ?? []) w();
          waiters.delete(key);
        } else {
          res.writeHead(200, { 'content-type': 'text/plain' });
          res.end(`answered on attempt ${n}`);
        }
      } else if (route === 'hanging') {
        const done = () => {
          res.writeHead(200);
          res.end('hanging');
        };
        if (hanging.has(key)) done();
        else waiters.set(key, [...(waiters.get(key) ?? []), done]);
      } else if (route === 'sink') {
        // A place effects land: counted, so a test can prove an effect did or did not happen.
        counts.set(key, (counts.get(key) ?? 0) + 1);
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end('received');
      } else if (route === 'redirect') {
        res.writeHead(302, { location: url.searchParams.get('to') ?? '/' });
        res.end();
      } else if (route === 'page') {
        // A web page whose body is given in the query: how tests serve injected instructions.
        res.writeHead(200, { 'content-type': 'text/html' });
        res.end(url.searchParams.get('body') ?? '');
      } else if (route === 'text') {
        res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
        res.end(hostileText(key as TextKind, Number(url.searchParams.get('bytes') ?? 0)));
      } else if (route === 'count') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ count: counts.get(key) ?? 0 }));
      } else {
        res.writeHead(404);
        res.end('not found');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  project.provide('testServerPort', (server.address() as AddressInfo).port);
  return async () => {
    for (const res of hanging.values()) res.destroy();
    llm.close();
    mcp.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
}
