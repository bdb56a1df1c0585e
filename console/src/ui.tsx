/** Small shared pieces: state badges, times, JSON, errors, meters, and buttons that follow the role. */
import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';
import { describe } from './api.ts';
import { may, useSession } from './session.ts';
import type { Role } from './types.ts';

export const StateBadge = ({ state }: { state: string }) => <span class={`badge state-${state}`}>{state}</span>;

/** A time of day, with the date when it is not today (an approval expires tomorrow). */
export const Time = ({ at }: { at: number | null | undefined }) => {
  if (!at) return <span>—</span>;
  const d = new Date(at);
  const today = d.toDateString() === new Date().toDateString();
  return (
    <time dateTime={d.toISOString()} title={d.toISOString()}>
      {today ? d.toLocaleTimeString() : d.toLocaleString()}
    </time>
  );
};

export const Json = ({ value, label }: { value: unknown; label?: string }) => (
  <pre class="json" aria-label={label} tabIndex={0}>
    {JSON.stringify(value, null, 2)}
  </pre>
);

/** What a panel says before its first answer arrives. */
export const Loading = ({ when }: { when: boolean }) => (when ? <p class="hint">Loading…</p> : null);

export const ErrorNote = ({ error }: { error: string | null }) => (error ? <p class="error" role="alert">{error}</p> : null);

export const RoleNote = ({ role }: { role: Role }) => {
  const s = useSession();
  return may(s, role) ? null : (
    <p class="role-note" id={`needs-${role}`}>
      Your token is a {s.principal.role}: these actions need the {role} role, so they are disabled.
    </p>
  );
};

/**
 * A button for an action that needs `role`: disabled (and saying why) for a token below it. While
 * `run` is in flight it is disabled too (and when `disabled`: the action makes no sense now); its
 * error is shown next to it.
 */
export function ActionButton(props: { role: Role; run: () => Promise<unknown>; children: ComponentChildren; variant?: 'danger' | 'primary'; label?: string; disabled?: boolean }) {
  const s = useSession();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const allowed = may(s, props.role);
  return (
    <span class="action">
      <button
        type="button"
        class={props.variant ?? ''}
        disabled={!allowed || busy || props.disabled}
        aria-label={props.label}
        title={allowed ? undefined : `needs the ${props.role} role`}
        onClick={async () => {
          setBusy(true);
          setError(null);
          try {
            await props.run();
          } catch (e) {
            setError(describe(e));
          } finally {
            setBusy(false);
          }
        }}
      >
        {props.children}
      </button>
      {error ? <span class="error" role="alert">{error}</span> : null}
    </span>
  );
}

export const Section = ({ title, children, id }: { title: string; children: ComponentChildren; id?: string }) => (
  <section class="card" aria-labelledby={id ? `${id}-h` : undefined}>
    <h2 id={id ? `${id}-h` : undefined}>{title}</h2>
    {children}
  </section>
);

export const fmt = (n: number): string => n.toLocaleString('en-US');

/** Used against a limit, as a bar that turns to a warning past 80%. */
export function Meter({ label, used, max }: { label: string; used: number; max: number }) {
  return (
    <div class="meter">
      <label>
        <span>
          {label}: {fmt(used)} / {fmt(max)}
        </span>
        <meter min={0} max={max} value={used} high={max * 0.8} optimum={0} />
      </label>
    </div>
  );
}

/**
 * Keyset pages of an API list (`cursor` in, `next_cursor` out): `trail` holds the cursors of the
 * pages before this one, so "Previous" goes back exactly; `reset` starts over when a filter changes.
 */
export function usePages(): { cursor: string | undefined; trail: readonly string[]; forward: (next: string) => void; back: () => void; reset: () => void } {
  const [trail, setTrail] = useState<string[]>([]);
  return { cursor: trail.at(-1), trail, forward: (next) => setTrail((t) => [...t, next]), back: () => setTrail((t) => t.slice(0, -1)), reset: () => setTrail([]) };
}

/** Previous / next buttons over usePages(); nothing when everything fits on one page. */
export const Pager = ({ pages, next, size, label }: { pages: ReturnType<typeof usePages>; next: string | null; size: number; label: string }) =>
  pages.trail.length > 0 || next !== null ? (
    <nav class="toolbar" aria-label={label}>
      <button type="button" disabled={pages.trail.length === 0} onClick={pages.back}>
        Previous {size}
      </button>
      <span>page {pages.trail.length + 1}</span>
      <button type="button" disabled={next === null} onClick={() => next !== null && pages.forward(next)}>
        Next {size}
      </button>
    </nav>
  ) : null;
