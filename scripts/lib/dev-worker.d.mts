// Types of dev-worker.mjs for the TypeScript that imports it (test/e2e, scripts/cli).
export declare const ROOT: string;
export interface DevWorker {
  readonly base: string;
  readonly stateDir: string;
  stop(): Promise<void>;
}
export declare function startDevWorker(options: {
  config: string;
  name?: string;
  bindings?: Record<string, unknown>;
  stateParent?: string;
  inspector?: boolean;
  migrate?: boolean;
}): Promise<DevWorker & { worker: unknown }>;
export declare function startKernel(options: { token: string; vars?: Record<string, string>; name?: string; stateParent?: string }): Promise<DevWorker>;
