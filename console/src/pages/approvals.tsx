/**
 * The approvals inbox: each request shows the exact call (syscall and arguments, as the process will
 * run it), the capability it needs and why, and is decided with approve once, approve always (a
 * standing grant for that capability) or deny with a note. Polled every 3 s: approvals have no stream.
 */
import { useState } from 'preact/hooks';
import { call, qs } from '../api.ts';
import { useGet } from '../hooks.ts';
import { may, useSession } from '../session.ts';
import type { Approval } from '../types.ts';
import { ActionButton, ErrorNote, Json, RoleNote, Time } from '../ui.tsx';

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
          <code>{a.syscall}</code> by <a href={`#/p/${a.pid}`}>{a.pid}</a>
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

export function ApprovalsPage() {
  const [status, setStatus] = useState<(typeof STATUSES)[number]>('pending');
  const [pid, setPid] = useState('');
  const list = useGet<{ approvals: Approval[] }>(`/v1/approvals${qs({ status, limit: 100 })}`, { pollMs: 3000 });
  const shown = (list.data?.approvals ?? []).filter((a) => !pid || a.pid.includes(pid.trim()));
  return (
    <>
      <h1>Approvals</h1>
      <RoleNote role="operator" />
      <div class="toolbar" role="group" aria-label="Filters">
        <label>
          Status
          <select value={status} onChange={(e) => setStatus(e.currentTarget.value as (typeof STATUSES)[number])}>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <label>
          Pid
          <input type="search" value={pid} onInput={(e) => setPid(e.currentTarget.value)} />
        </label>
        <button type="button" onClick={list.reload}>
          Refresh
        </button>
      </div>
      <ErrorNote error={list.error} />
      {list.data && shown.length === 0 ? <p>No {status} approvals.</p> : null}
      <ul class="approvals">
        {shown.map((a) => (
          <ApprovalCard key={a.id} a={a} onDecided={list.reload} />
        ))}
      </ul>
    </>
  );
}
