// Types of gen-api.mjs for the TypeScript that imports it (test/e2e).
export declare const API_TYPES: string;
export declare function apiTypes(doc: unknown): Promise<string>;
