/**
 * Header secrets of registered MCP servers, encrypted at rest: AES-256-GCM under a key derived
 * (HKDF-SHA-256) from the `MCP_SECRET_KEY` Worker secret, with the row's tenant and server name as
 * additional data, so a ciphertext copied onto another tenant's or server's row does not decrypt.
 * Stored as `v1.<iv base64>.<ciphertext base64>`. Plain values exist only in the memory of the call
 * that sends them; nothing here logs, emits or returns them.
 */
import { KernelError } from '../kernel/errors.ts';

const VERSION = 'v1';
const MIN_SECRET_CHARS = 16;
const enc = new TextEncoder();

const b64 = (bytes: Uint8Array): string => btoa(String.fromCharCode(...bytes));
const unb64 = (text: string): Uint8Array => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));

async function keyFrom(secret: string | undefined): Promise<CryptoKey> {
  if (typeof secret !== 'string' || secret.length < MIN_SECRET_CHARS) {
    throw new KernelError('EINVAL', `MCP server headers are stored encrypted, and this deployment has no key: set the MCP_SECRET_KEY secret (at least ${MIN_SECRET_CHARS} characters)`);
  }
  const material = await crypto.subtle.importKey('raw', enc.encode(secret), 'HKDF', false, ['deriveKey']);
  return crypto.subtle.deriveKey({ name: 'HKDF', hash: 'SHA-256', salt: enc.encode('agentos/mcp-headers'), info: enc.encode(VERSION) }, material, { name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']);
}

const aad = (tenant: string, name: string) => enc.encode(`${tenant}/${name}`);

export async function sealHeaders(secret: string | undefined, tenant: string, name: string, headers: Readonly<Record<string, string>>): Promise<string> {
  const key = await keyFrom(secret);
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const sealed = await crypto.subtle.encrypt({ name: 'AES-GCM', iv, additionalData: aad(tenant, name) }, key, enc.encode(JSON.stringify(headers)));
  return `${VERSION}.${b64(iv)}.${b64(new Uint8Array(sealed))}`;
}

export async function openHeaders(secret: string | undefined, tenant: string, name: string, sealed: string): Promise<Record<string, string>> {
  const [version, iv, data] = sealed.split('.');
  if (version !== VERSION || !iv || !data) throw new KernelError('EFAULT', `the stored headers of MCP server "${name}" are in an unknown format; register it again`);
  const key = await keyFrom(secret);
  try {
    const plain = await crypto.subtle.decrypt({ name: 'AES-GCM', iv: unb64(iv), additionalData: aad(tenant, name) }, key, unb64(data));
    return JSON.parse(new TextDecoder().decode(plain)) as Record<string, string>;
  } catch {
    throw new KernelError('EFAULT', `the stored headers of MCP server "${name}" do not decrypt (was MCP_SECRET_KEY changed?); register it again`);
  }
}
