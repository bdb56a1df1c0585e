/**
 * Global setup of the `e2e` test project (vitest.config.ts): the real kernel (./wrangler.toml) under
 * wrangler's dev server on a random loopback port, with a fresh migrated D1 and a random bootstrap
 * admin token, started once for every end-to-end test file and stopped (workerd disposed, state
 * removed) when they are done. Test files read where it is with `inject('kernel')`.
 */
import { randomBytes } from 'node:crypto';
import type { TestProject } from 'vitest/node';
import { startKernel } from '../../scripts/lib/dev-worker.mjs';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The kernel under test: its base URL and its bootstrap admin token. */
    kernel: { base: string; token: string };
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const token = `e2e-${randomBytes(12).toString('hex')}`;
  const kernel = await startKernel({ token, name: 'e2e' });
  project.provide('kernel', { base: kernel.base, token });
  return () => kernel.stop();
}
