/**
 * The signed-in token: kept in sessionStorage (this tab only, gone when it closes; never in a URL or
 * a cookie), checked with GET /v1/whoami, which also says the role the buttons follow.
 */
import { createContext } from 'preact';
import { useContext } from 'preact/hooks';
import { call } from './api.ts';
import type { Principal, Role } from './types.ts';

const KEY = 'agentos.token';

export interface Session {
  readonly token: string;
  readonly principal: Principal;
}

export const storedToken = (): string | null => sessionStorage.getItem(KEY);

/** Check a token against the API; on success it is remembered for this tab. */
export async function signIn(token: string): Promise<Session> {
  const principal = await call<Principal>(token, 'GET', '/v1/whoami');
  sessionStorage.setItem(KEY, token);
  return { token, principal };
}

export function signOut(): void {
  sessionStorage.removeItem(KEY);
}

const RANK: Record<Role, number> = { reader: 0, operator: 1, admin: 2 };
/** Whether the session may do what needs `role` (the API checks again; this only sets the buttons). */
export const may = (s: Session, role: Role): boolean => RANK[s.principal.role] >= RANK[role];

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const s = useContext(SessionContext);
  if (!s) throw new Error('useSession() outside a signed-in console');
  return s;
}
