/**
 * What a JIT tool sees: its `sys` argument, a typed client of the syscall broker. Every call is
 * checked against the calling process's capabilities; a refusal or failure throws a `SysError`
 * whose `code` is the kernel's error code (EPERM, ENOENT, EINVAL, EQUOTA …).
 * Tools are TypeScript modules with one `export default async function (args, sys)`; no imports.
 */
declare global {
  interface SysError extends Error {
    readonly code: string;
    readonly details?: unknown;
  }
  interface Sys {
    fs_read(args: { path: string; offset?: number; length?: number }): Promise<{ path: string; content: string; size: number; truncated?: boolean; next_offset?: number }>;
    fs_write(args: { path: string; content: string; append?: boolean }): Promise<{ path: string; bytes_written: number }>;
    fs_list(args: { path: string }): Promise<{ path: string; entries: { name: string; type: 'file' | 'dir'; size?: number }[] }>;
    net_fetch(args: {
      url: string;
      method?: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'OPTIONS';
      headers?: Record<string, string>;
      body?: string;
      timeout_seconds?: number;
      save_to?: string;
    }): Promise<{ status: number; headers: Record<string, string>; body: string; bytes: number; truncated: boolean }>;
  }
}
export {};
