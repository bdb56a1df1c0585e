/** Types of dev-args.mjs, for its test. */
export declare const DEV_TOKEN: string;
export declare function devArgs(extra: readonly string[], devVars: string): { args: string[]; ip: string; port: string; devToken: boolean; warnings: string[] };
