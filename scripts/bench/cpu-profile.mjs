/**
 * A CPU profile of a bench Worker's isolate through the V8 inspector, and its summary by function:
 * what scripts/bench/profile.mjs and `scheduler/run.mjs --profile` share. The Worker must have been
 * started with `inspector: true` (startBenchWorker).
 *
 *   const p = await startProfile(bench.worker);   // sampling every 100 µs
 *   …workload…
 *   const profile = await p.stop();
 *   console.log(profileTables(profile, 30));
 *
 * Native work (SQLite, RPC serialisation) is charged to the JavaScript frame that called it;
 * "(idle)" is time the isolate waited (I/O, alarms, other objects).
 */
export async function startProfile(worker, intervalUs = 100) {
  const inspector = new URL(String(await worker.inspectorUrl));
  // The inspector proxy checks the Origin header; Node's WebSocket accepts headers as an option.
  const ws = new WebSocket(`ws://${inspector.host}/ws`, { headers: { Origin: `http://${inspector.host}` } });
  await new Promise((resolve, reject) => Object.assign(ws, { onopen: resolve, onerror: () => reject(new Error('cannot open the inspector')) }));
  let id = 0;
  const pending = new Map();
  ws.onmessage = (m) => {
    const d = JSON.parse(m.data);
    pending.get(d.id)?.(d);
    pending.delete(d.id);
  };
  const send = (method, params = {}) => new Promise((r) => (pending.set(++id, r), ws.send(JSON.stringify({ id, method, params }))));
  await send('Profiler.enable');
  await send('Profiler.setSamplingInterval', { interval: intervalUs });
  await send('Profiler.start');
  return {
    async stop() {
      const { result } = await send('Profiler.stop');
      ws.close();
      return result.profile;
    },
  };
}

/**
 * Self and inclusive share per function (a function counted once per sample even if recursive), the
 * top `top` of each, by samples: on a busy machine a sample's time delta includes the time the thread
 * waited for a core, which would be charged to whatever ran before it.
 */
export function profileTables(profile, top = 30) {
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map();
  for (const node of profile.nodes) for (const c of node.children ?? []) parent.set(c, node.id);
  const label = (node) => `${node.callFrame.functionName || '(anonymous)'} ${node.callFrame.url.split('/').slice(-1)[0]}:${node.callFrame.lineNumber + 1}`;
  const self = new Map();
  const incl = new Map();
  let total = 0;
  profile.samples.forEach((sid) => {
    const dt = 1;
    total += dt;
    const l = label(nodes.get(sid));
    self.set(l, (self.get(l) ?? 0) + dt);
    const seen = new Set();
    for (let cur = sid; cur !== undefined; cur = parent.get(cur)) {
      const cl = label(nodes.get(cur));
      if (!seen.has(cl)) incl.set(cl, (incl.get(cl) ?? 0) + dt), seen.add(cl);
    }
  });
  const wall = (profile.endTime - profile.startTime) / 1000;
  const table = (m) => [...m].sort((a, b) => b[1] - a[1]).slice(0, top).map(([l, n]) => `${((wall * n) / total).toFixed(1).padStart(9)} ms ${((100 * n) / total).toFixed(1).padStart(5)}%  ${l}`).join('\n');
  return { total_ms: wall, samples: total, text: `--- self time\n${table(self)}\n\n--- inclusive time\n${table(incl)}` };
}
