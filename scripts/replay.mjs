#!/usr/bin/env node
/**
 * Re-run a saved trace against the current code, in the Workers runtime, and fail on divergence:
 *
 *   npm run replay -- trace.json     # a trace from GET /v1/processes/:pid/trace
 *   npm run replay -- --record       # record the scenarios of test/replay.test.ts into test/traces/
 *
 * The replay itself is test/replay.test.ts (a process spawned with `replay: <trace>` reports the
 * first divergence as a `replay_divergence` event with its step); this script hands it the file.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const arg = process.argv[2];
if (!arg || arg === '--help') {
  console.error('usage: npm run replay -- <trace.json> | --record');
  process.exit(2);
}
const record = arg === '--record';
const env = { ...process.env };
if (record) env.RECORD_TRACES = '1';
else env.REPLAY_TRACE = readFileSync(path.resolve(arg), 'utf8');
const test = record ? 'records the scenarios' : 'replays a trace given on the command line';
const run = spawnSync('npx', ['vitest', 'run', 'test/replay.test.ts', '-t', test], { cwd: root, env, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
process.stderr.write(run.stderr ?? '');
if (record) {
  const found = [...(run.stdout ?? '').matchAll(/@@TRACE (\w+) (.*?) @@END/gs)];
  for (const [, name, json] of found) {
    const file = path.join(root, 'test', 'traces', `${name}.json`);
    writeFileSync(file, `${JSON.stringify(JSON.parse(json), null, 1)}\n`);
    console.log(`recorded ${path.relative(root, file)}`);
  }
  if (found.length === 0) process.stdout.write(run.stdout ?? '');
  process.exit(found.length > 0 && run.status === 0 ? 0 : 1);
}
process.stdout.write(run.stdout ?? '');
process.exit(run.status ?? 1);
