/**
 * The approvals inbox: each request shows the exact call (syscall and arguments, as the process will
 * run it), the capability it needs and why, and is decided with approve once, approve always (a
 * standing grant for that capability) or deny with a note. Paged with the API's cursor, filtered by
 * status and pid on the server. Polled every 3 s: approvals have no stream.
 */
import { useState } from 'preact/hooks';
import { call, qs } from '../api.ts';
import { useGet } from '../hooks.ts';
import { may, useSession } from '../session.ts';
import type { Approval } from '../types.ts';
import { ActionButton, ErrorNote, Json, Pager, RoleNote, Time, usePages } from '../ui.tsx';

const STATUSES = ['pending', 'approved', 'denied', 'expired'] as const;

function ApprovalCard({ a, onDecided }: { a: Approval; onDecided: () => void }) {
  const session = useSession();
  const { token } = session;
  const [note, setNote] = useState('');
  const decide = (decision: 'approve' | 'deny', grant: 'once' | 'always') => async () => {
    await call(token, 'POST', `/v1/approvals/${encodeURIComponent(a.id)}`, { decision, grant, note });
    onDecided();
  };
  const noteId = `note-${a.id}`;
  return (
    <li>
      <article class="card approval" aria-labelledby={`h-${a.id}`} data-approval={a.id}>
        <h2 id={`h-${a.id}`}>
          <code>{a.syscall}</code> by{' '}
          {a.pid ? (
            <a href={`#/p/${a.pid}`}>{a.pid}</a>
          ) : (
            <>
              pipeline <code>{a.pipeline}</code>, stage <code>{a.stage}</code>
            </>
          )}
        </h2>
        <dl class="kv">
          <dt>Capability</dt>
          <dd>
            <code data-testid="capability">{a.capability}</code>
          </dd>
          <dt>Why asked</dt>
          <dd>{a.reason}</dd>
          <dt>Call</dt>
          <dd>
            step {a.step}, call {a.idx}
          </dd>
          <dt>Asked</dt>
          <dd>
            <Time at={a.created_at} />, expires <Time at={a.expires_at} />
          </dd>
          {a.status !== 'pending' ? (
            <>
              <dt>Decision</dt>
              <dd>
                {a.status}
                {a.grant_kind ? ` (${a.grant_kind})` : ''} by {a.decided_by ?? '—'} <Time at={a.decided_at} />
                {a.note ? `: ${a.note}` : ''}
              </dd>
            </>
          ) : null}
        </dl>
        <h3>Arguments</h3>
        <Json value={a.args} label={`arguments of ${a.syscall}`} />
        {a.status === 'pending' ? (
          <div class="buttons">
            <label for={noteId}>Note (optional)</label>
            <input id={noteId} value={note} maxLength={2000} disabled={!may(session, 'operator')} onInput={(e) => setNote(e.currentTarget.value)} />
            <ActionButton role="operator" variant="primary" run={decide('approve', 'once')}>
              Approve once
            </ActionButton>
            <ActionButton role="operator" run={decide('approve', 'always')}>
              Approve always
            </ActionButton>
            <ActionButton role="operator" variant="danger" run={decide('deny', 'once')}>
              Deny
            </ActionButton>
          </div>
        ) : null}
      </article>
    </li>
  );
}

const PAGE = 100;
const PID = /^p[0-9a-z]{20}$/;

/**
 * One page of requests at a time, oldest first, read with the API's own `status`, `pid` and cursor,
 * so every request is reachable however many are open. usePages() holds the cursors of the pages
 * before this one (for "Previous"); the current page is polled, so a decision elsewhere shows here.
 */
export function ApprovalsPage() {
  const [status, setStatus] = useState<(typeof STATUSES)[number]>('pending');
  const [pidInput, setPidInput] = useState('');
  const [pid, setPid] = useState('');
  const pages = usePages();
  const cursor = pages.cursor;
  const list = useGet<{ approvals: Approval[]; next_cursor: string | null }>(`/v1/approvals${qs({ status, pid: pid || undefined, cursor, limit: PAGE })}`, { pollMs: 3000 });
  const shown = list.data?.approvals ?? [];
  const next = list.data?.next_cursor ?? null;
  const pidValid = pidInput.trim() === '' || PID.test(pidInput.trim());
  return (
    <>
      <h1>Approvals</h1>
      <RoleNote role="operator" />
      <div class="toolbar" role="group" aria-label="Filters">
        <label>
          Status
          <select
            value={status}
            onChange={(e) => {
              setStatus(e.currentTarget.value as (typeof STATUSES)[number]);
              pages.reset();
            }}
          >
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <form
          role="search"
          onSubmit={(e) => {
            e.preventDefault();
            if (!pidValid) return;
            setPid(pidInput.trim());
            pages.reset();
          }}
        >
          <label>
            Pid
            <input type="search" value={pidInput} aria-invalid={!pidValid} placeholder="a whole pid" onInput={(e) => setPidInput(e.currentTarget.value)} />
          </label>
          <button type="submit" disabled={!pidValid}>
            Filter
          </button>
        </form>
        <button type="button" onClick={list.reload}>
          Refresh
        </button>
      </div>
      {!pidValid ? <p role="alert">A pid is p followed by 20 letters or digits.</p> : null}
      <ErrorNote error={list.error} />
      {list.data && shown.length === 0 ? <p>No {status} approvals{pid ? ` of ${pid}` : ''}{pages.trail.length ? ' on this page' : ''}.</p> : null}
      <ul class="approvals">
        {shown.map((a) => (
          <ApprovalCard key={a.id} a={a} onDecided={list.reload} />
        ))}
      </ul>
      <Pager pages={pages} next={next} size={PAGE} label="Pages of approvals" />
    </>
  );
}
