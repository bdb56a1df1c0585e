/**
 * The audit log of the tenant, oldest first and paged by seq, filtered by pid; and the verify button,
 * which has the kernel recompute the hash chain and say where it breaks, if it does.
 */
import { useEffect, useState } from 'preact/hooks';
import { call, describe, qs } from '../api.ts';
import { useSession } from '../session.ts';
import type { AuditRow } from '../types.ts';
import { ErrorNote, Json, Time } from '../ui.tsx';

const PAGE = 100;

export function AuditPage() {
  const { token } = useSession();
  const [pid, setPid] = useState('');
  const [rows, setRows] = useState<AuditRow[]>([]);
  const [after, setAfter] = useState(0);
  const [more, setMore] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [verify, setVerify] = useState<unknown>(null);
  const [verifying, setVerifying] = useState(false);
  const load = async (from: number, replace: boolean, filter: string) => {
    try {
      const page = await call<{ rows: AuditRow[]; next_cursor: string | null }>(token, 'GET', `/v1/audit${qs({ pid: filter || undefined, cursor: from || undefined, limit: PAGE })}`);
      setRows((prev) => (replace ? page.rows : [...prev, ...page.rows]));
      setAfter(page.rows.at(-1)?.seq ?? from);
      setMore(page.next_cursor !== null);
      setError(null);
    } catch (e) {
      setError(describe(e));
    }
  };
  useEffect(() => {
    void load(0, true, '');
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [token]);
  return (
    <>
      <h1>Audit</h1>
      <div class="toolbar">
        <form
          role="search"
          onSubmit={(e) => {
            e.preventDefault();
            void load(0, true, pid.trim());
          }}
        >
          <label>
            Pid
            <input type="search" value={pid} pattern="p[0-9a-z]{20}" onInput={(e) => setPid(e.currentTarget.value)} />
          </label>
          <button type="submit">Filter</button>
        </form>
        <button
          type="button"
          class="primary"
          disabled={verifying}
          onClick={async () => {
            setVerifying(true);
            try {
              setVerify(await call(token, 'GET', '/v1/audit/verify'));
            } catch (e) {
              setVerify({ error: describe(e) });
            } finally {
              setVerifying(false);
            }
          }}
        >
          Verify the hash chain
        </button>
      </div>
      {verify !== null ? (
        <div role="status" class={`card verify ${(verify as { ok?: boolean }).ok ? 'ok' : 'bad'}`} data-testid="verify">
          <p>{(verify as { ok?: boolean }).ok ? 'The chain verifies: no row was changed or removed.' : 'The chain does not verify.'}</p>
          <Json value={verify} label="verification report" />
        </div>
      ) : null}
      <ErrorNote error={error} />
      <div class="scroll">
        <table>
          <caption class="visually-hidden">Audit rows, oldest first</caption>
          <thead>
            <tr>
              <th scope="col">Seq</th>
              <th scope="col">At</th>
              <th scope="col">Pid</th>
              <th scope="col">Kind</th>
              <th scope="col">Action</th>
              <th scope="col">Outcome</th>
              <th scope="col">Detail</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => (
              <tr key={r.seq}>
                <th scope="row">{r.seq}</th>
                <td>
                  <Time at={r.at} />
                </td>
                <td>{r.pid === '-' ? '—' : <a href={`#/p/${r.pid}`}>{r.pid.slice(0, 9)}…</a>}</td>
                <td>{r.kind}</td>
                <td>{r.action}</td>
                <td>
                  {r.outcome}
                  {r.code ? ` (${r.code})` : ''}
                </td>
                <td>
                  <details>
                    <summary>detail</summary>
                    <Json value={r.detail} label={`detail of row ${r.seq}`} />
                  </details>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {more ? (
        <button type="button" onClick={() => void load(after, false, pid.trim())}>
          Load more
        </button>
      ) : null}
    </>
  );
}
