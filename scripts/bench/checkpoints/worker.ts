/**
 * Bench Worker for checkpoints (scripts/bench/checkpoints/run.mjs). Not part of the product.
 *
 * It serves the kernel's real HTTP API over the real AgentProcess class (as CkptBenchProcess, which
 * adds two RPC methods) and local R2, plus:
 *  - POST /bench/setup: the D1 schema;
 *  - GET /bench/raw/:pid: the process's raw state (every copied table's rows as JSON, what a
 *    checkpoint holds) and its size compressed in one piece with the codec packs use (raw deflate):
 *    the size floor;
 *  - POST /bench/floor/:pid: the time floor: read the same state, compress it in one piece and put
 *    it as one R2 object (timed by the runner around the request; inside workerd the clock does not
 *    advance during computation).
 */
import { AgentProcess } from '../../../durable/agent-process.ts';
import { AuditChain } from '../../../durable/audit-chain.ts';
import { createApp } from '../../../src/api/app.ts';
import { deflate } from '../../../src/checkpoints/chunks.ts';
import { readSnapshot } from '../../../src/checkpoints/snapshot.ts';
import { applySchema } from '../schema.ts';

export { AuditChain };

export class CkptBenchProcess extends AgentProcess {
  async benchRaw(put: boolean): Promise<{ raw_bytes: number; compressed_bytes: number }> {
    const snap = readSnapshot(this.ctx.storage.sql);
    const raw = new TextEncoder().encode(JSON.stringify(snap.tables.map((t) => [t.name, t.columns, t.rows])));
    const compressed = await deflate(raw);
    if (put) await this.env.CHECKPOINTS.put(`floor/${crypto.randomUUID()}`, compressed);
    return { raw_bytes: raw.byteLength, compressed_bytes: compressed.byteLength };
  }
}

const app = createApp();
const bench = (env: Env, pid: string) => env.AGENT_PROCESS.get(env.AGENT_PROCESS.idFromName(pid)) as unknown as CkptBenchProcess;

export default {
  async fetch(request: Request, env: Env, ctx: ExecutionContext): Promise<Response> {
    const url = new URL(request.url);
    const [, first, route, pid = ''] = url.pathname.split('/');
    if (first === 'bench' && route === 'setup') return applySchema(env.DB, request);
    if (first === 'bench' && route === 'raw') return Response.json(await bench(env, pid).benchRaw(false));
    if (first === 'bench' && route === 'floor') return Response.json(await bench(env, pid).benchRaw(true));
    return app.fetch(request, env, ctx);
  },
};
