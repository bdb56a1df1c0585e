/** Types of build-console.mjs, for vitest.config.ts. */
export declare const ASSETS_DIR: string;
export declare function buildConsole(opts?: { quiet?: boolean }): Promise<void>;
