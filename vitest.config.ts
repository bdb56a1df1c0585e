import path from 'node:path';
import { cloudflareTest, readD1Migrations } from '@cloudflare/vitest-plugin';
import { defineConfig } from 'vitest/config';
import { buildConsole } from './scripts/build-console.mjs';

/**
 * Two projects:
 *  - `workers`: the suite inside workerd (@cloudflare/vitest-plugin), one isolated storage per file;
 *  - `e2e`: Node-side tests against the real kernel under `wrangler dev` (test/e2e): the CLI run as a
 *    subprocess, the OpenAPI contract, browsers. One kernel for the whole project (test/e2e/kernel-setup.ts).
 */
export default defineConfig(async () => {
  // wrangler.toml's [assets] directory must exist before the Worker starts: build the console (~0.2 s).
  await buildConsole({ quiet: true });
  const migrations = await readD1Migrations(path.join(import.meta.dirname, 'migrations'));
  return {
    test: {
      projects: [
        {
          plugins: [
            cloudflareTest(({ inject }) => ({
              wrangler: { configPath: './wrangler.toml' },
              miniflare: {
                // The test runner ships each module to workerd in one WebSocket message, capped at 1 MiB by
                // default; the tokenizer's rank table (src/llm/tokens.ts) is 2.4 MB. This local-only flag
                // raises the cap for the harness's transport; it changes nothing the Worker does.
                compatibilityFlags: ['nodejs_compat', 'enable_request_signal', 'increase_websocket_message_size'],
                bindings: {
                  TEST_MIGRATIONS: migrations,
                  TEST_SERVER: `http://127.0.0.1:${inject('testServerPort')}`,
                  // scripts/replay.mjs: a trace to replay (npm run replay -- trace.json), or record the scenarios again.
                  REPLAY_TRACE: process.env.REPLAY_TRACE ?? '',
                  RECORD_TRACES: process.env.RECORD_TRACES ?? '',
                  // test/crash-battery.test.ts: rerun a battery by its seed, or inject more faults.
                  CRASH_SEED: process.env.CRASH_SEED ?? '',
                  CRASH_INJECTIONS: process.env.CRASH_INJECTIONS ?? '',
                  // The real SDKs, pointed at the fake LLM service in test/support/fake-llm.ts.
                  OPENAI_BASE_URL: `http://127.0.0.1:${inject('testServerPort')}/llm/openai/v1`,
                  OPENAI_API_KEY: 'sk-test-openai',
                  ANTHROPIC_BASE_URL: `http://127.0.0.1:${inject('testServerPort')}/llm/anthropic`,
                  ANTHROPIC_API_KEY: 'sk-ant-test',
                  AGENTOS_ADMIN_TOKEN: 'test-admin-token',
                  MCP_SECRET_KEY: 'test-mcp-secret-key-0123456789',
                  // Only these pools are scheduled in tests (test/scheduler.test.ts); every other model calls
                  // its provider directly, so the rest of the suite runs as before, at the same speed.
                  SCHEDULER_POOLS: JSON.stringify({
                    'scripted:sched-open': {},
                    'scripted:sched-rpm': { rpm: 1, burst_seconds: 60, headroom: 1 },
                    'scripted:sched-restart': { rpm: 1, burst_seconds: 60, headroom: 1 },
                    'openai:sched-lease': { concurrency: 1, lease_seconds: 30 },
                    'openai:sched-429': { rpm: 600, headroom: 1 },
                  }),
                },
              },
            })),
          ],
          test: {
            name: 'workers',
            globalSetup: ['./test/support/global-setup.ts'],
            setupFiles: ['./test/support/apply-migrations.ts'],
            include: ['test/**/*.test.ts', 'src/**/*.test.ts', 'workflows/**/*.test.ts'],
            exclude: ['test/e2e/**', '**/node_modules/**'],
            testTimeout: 20_000,
          },
        },
        {
          test: {
            name: 'e2e',
            environment: 'node',
            globalSetup: ['./test/e2e/kernel-setup.ts'],
            include: ['test/e2e/**/*.test.ts'],
            testTimeout: 60_000,
            hookTimeout: 180_000,
          },
        },
      ],
    },
  };
});
