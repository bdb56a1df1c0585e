/**
 * The console's entry: sign-in, the frame (navigation, who is signed in) and a hash router. Routes
 * live in the fragment (#/p/<pid>) so the assets binding serves one index.html for every page and
 * no server route is needed; the token never appears there.
 */
import { render } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { describe } from './api.ts';
import { ApprovalsPage } from './pages/approvals.tsx';
import { AuditPage } from './pages/audit.tsx';
import { ProcessPage } from './pages/process.tsx';
import { ProcessesPage } from './pages/processes.tsx';
import { SchedulerPage } from './pages/scheduler.tsx';
import { type Session, SessionContext, signIn, signOut, storedToken } from './session.ts';

type Route = { page: 'processes' } | { page: 'process'; pid: string } | { page: 'approvals' } | { page: 'audit' } | { page: 'scheduler' };

function parseRoute(hash: string): Route {
  const parts = hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  if (parts[0] === 'p' && parts[1]) return { page: 'process', pid: parts[1] };
  if (parts[0] === 'approvals') return { page: 'approvals' };
  if (parts[0] === 'audit') return { page: 'audit' };
  if (parts[0] === 'scheduler') return { page: 'scheduler' };
  return { page: 'processes' };
}

function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  useEffect(() => {
    const on = () => setRoute(parseRoute(location.hash));
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return route;
}

const NAV: { href: string; label: string; page: Route['page'][] }[] = [
  { href: '#/', label: 'Processes', page: ['processes', 'process'] },
  { href: '#/approvals', label: 'Approvals', page: ['approvals'] },
  { href: '#/audit', label: 'Audit', page: ['audit'] },
  { href: '#/scheduler', label: 'Scheduler', page: ['scheduler'] },
];

function Login({ onSignedIn }: { onSignedIn: (s: Session) => void }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  return (
    <main class="login">
      <h1>AgentOS console</h1>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          setError(null);
          try {
            onSignedIn(await signIn(token.trim()));
          } catch (err) {
            setError(describe(err));
          } finally {
            setBusy(false);
          }
        }}
      >
        <label for="token">API token</label>
        <input id="token" name="token" type="password" autoComplete="current-password" required value={token} onInput={(e) => setToken(e.currentTarget.value)} aria-describedby="token-help" />
        <p id="token-help" class="hint">
          A bearer token of this deployment (local development: <code>dev-admin-token</code>). It is kept in this tab's session storage only.
        </p>
        {error ? <p class="error" role="alert">{error}</p> : null}
        <button type="submit" class="primary" disabled={busy}>
          Sign in
        </button>
      </form>
    </main>
  );
}

function Frame({ session, onSignOut }: { session: Session; onSignOut: () => void }) {
  const route = useRoute();
  // After a navigation, focus moves to the page (a screen reader announces it; Tab starts there).
  const first = useRef(true);
  useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    document.getElementById('main')?.focus();
  }, [route.page, route.page === 'process' ? route.pid : '']);
  return (
    <SessionContext.Provider value={session}>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <span class="brand">AgentOS</span>
        <nav aria-label="Console">
          <ul>
            {NAV.map((n) => (
              <li key={n.href}>
                <a href={n.href} aria-current={n.page.includes(route.page) ? 'page' : undefined}>
                  {n.label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <span class="who" data-testid="whoami">
          {session.principal.tenant} · <strong>{session.principal.role}</strong>
        </span>
        <button type="button" onClick={onSignOut}>
          Sign out
        </button>
      </header>
      <main id="main" tabIndex={-1}>
        {route.page === 'processes' ? <ProcessesPage /> : null}
        {route.page === 'process' ? <ProcessPage key={route.pid} pid={route.pid} /> : null}
        {route.page === 'approvals' ? <ApprovalsPage /> : null}
        {route.page === 'audit' ? <AuditPage /> : null}
        {route.page === 'scheduler' ? <SchedulerPage /> : null}
      </main>
    </SessionContext.Provider>
  );
}

function App() {
  const [session, setSession] = useState<Session | null>(null);
  const [checking, setChecking] = useState(() => storedToken() !== null);
  useEffect(() => {
    const t = storedToken();
    if (!t) return;
    signIn(t).then(setSession, () => signOut()).finally(() => setChecking(false));
  }, []);
  if (checking) return <p class="loading">Checking the saved token…</p>;
  if (!session) return <Login onSignedIn={setSession} />;
  return (
    <Frame
      session={session}
      onSignOut={() => {
        signOut();
        setSession(null);
      }}
    />
  );
}

render(<App />, document.getElementById('app')!);
