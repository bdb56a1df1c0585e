/**
 * The process table, live: GET /v1/processes as a stream (a snapshot, then changed and removed rows),
 * filtered by state on the server and by name or image here, shown as a table or as the process tree;
 * and the spawn form (operators).
 */
import { useMemo, useState } from 'preact/hooks';
import { call, describe, qs } from '../api.ts';
import { useGet, useStream } from '../hooks.ts';
import { may, useSession } from '../session.ts';
import { type Image, type Pcb, type ProcessRow, STATES } from '../types.ts';
import { ErrorNote, RoleNote, Section, StateBadge, Time } from '../ui.tsx';
import { TokensByProcess } from './tokens.tsx';

const PAGE = 200;

function useLiveTable(state: string): { rows: ProcessRow[]; status: string; error: string | null } {
  const [rows, setRows] = useState<Map<string, ProcessRow>>(new Map());
  const path = `/v1/processes${qs({ state, limit: PAGE })}`;
  const { status, error } = useStream(path, (m) => {
    if (m.event === 'snapshot') {
      const page = JSON.parse(m.data) as { processes: ProcessRow[] };
      setRows(new Map(page.processes.map((r) => [r.pid, r])));
    } else if (m.event === 'changed') {
      const row = JSON.parse(m.data) as ProcessRow;
      setRows((prev) => new Map(prev).set(row.pid, row));
    } else if (m.event === 'removed') {
      const { pid } = JSON.parse(m.data) as { pid: string };
      setRows((prev) => {
        const next = new Map(prev);
        next.delete(pid);
        return next;
      });
    }
  });
  const sorted = useMemo(() => [...rows.values()].sort((a, b) => b.created_at - a.created_at || (a.pid < b.pid ? 1 : -1)), [rows]);
  return { rows: sorted, status, error };
}

function SpawnForm() {
  const s = useSession();
  const images = useGet<{ images: Image[] }>('/v1/images');
  const [error, setError] = useState<string | null>(null);
  const [spawned, setSpawned] = useState<Pcb | null>(null);
  const allowed = may(s, 'operator');
  return (
    <details class="card spawn">
      <summary>Spawn a process</summary>
      <RoleNote role="operator" />
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          const f = new FormData(e.currentTarget);
          setError(null);
          try {
            const body: Record<string, unknown> = { name: String(f.get('name')), task: String(f.get('task')) };
            if (f.get('image')) body.image = String(f.get('image'));
            if (f.get('priority')) body.priority = Number(f.get('priority'));
            for (const key of ['script', 'capabilities'] as const) {
              const raw = String(f.get(key) ?? '').trim();
              if (!raw) continue;
              try {
                body[key] = JSON.parse(raw);
              } catch {
                throw new Error(`${key} is not valid JSON`);
              }
            }
            const pcb = await call<Pcb>(s.token, 'POST', '/v1/processes', body);
            setSpawned(pcb);
          } catch (err) {
            setError(describe(err));
          }
        }}
      >
        <fieldset disabled={!allowed}>
          <div class="grid2">
            <label>
              Name
              <input name="name" required maxLength={128} />
            </label>
            <label>
              Image
              <select name="image">
                {(images.data?.images ?? [{ name: 'default', description: '' }]).map((i) => (
                  <option key={i.name} value={i.name} title={i.description}>
                    {i.name}
                  </option>
                ))}
              </select>
            </label>
            <label>
              Priority (0 most urgent … 100)
              <input name="priority" type="number" min={0} max={100} placeholder="50" />
            </label>
          </div>
          <label>
            Task
            <textarea name="task" required rows={2} />
          </label>
          <details>
            <summary>Script and capabilities (JSON, optional)</summary>
            <label>
              Script for the scripted provider
              <textarea name="script" rows={4} placeholder='[{"tool_calls": [{"name": "fs_write", "args": {"path": "a.txt", "content": "hi"}}]}, {"text": "done"}]' />
            </label>
            <label>
              Capabilities
              <textarea name="capabilities" rows={2} placeholder='["fs:/**:rw", {"cap": "net:*", "effect": "ask"}]' />
            </label>
          </details>
          <button type="submit" class="primary">
            Spawn
          </button>
        </fieldset>
      </form>
      <ErrorNote error={error} />
      {spawned ? (
        <p role="status">
          Spawned <a href={`#/p/${spawned.pid}`}>{spawned.name} ({spawned.pid})</a>.
        </p>
      ) : null}
    </details>
  );
}

function Table({ rows }: { rows: ProcessRow[] }) {
  return (
    <div class="scroll">
      <table class="ps">
        <caption class="visually-hidden">Processes, newest first</caption>
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">State</th>
            <th scope="col" class="wide">Image</th>
            <th scope="col" class="wide">Priority</th>
            <th scope="col">Exit</th>
            <th scope="col" class="wide">Parent</th>
            <th scope="col">Updated</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => (
            <tr key={r.pid} data-pid={r.pid}>
              <th scope="row">
                <a href={`#/p/${r.pid}`}>{r.name}</a>
                <div class="pid">{r.pid}</div>
              </th>
              <td>
                <StateBadge state={r.state} />
              </td>
              <td class="wide">{r.image}</td>
              <td class="wide">{r.priority}</td>
              <td>{r.exit_code ?? ''}</td>
              <td class="wide">{r.ppid ? <a href={`#/p/${r.ppid}`}>{r.ppid.slice(0, 9)}…</a> : ''}</td>
              <td>
                <Time at={r.updated_at} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** Parents above children; a child whose parent is not on this page is shown at the top level. */
function Tree({ rows }: { rows: ProcessRow[] }) {
  const byParent = new Map<string | null, ProcessRow[]>();
  const present = new Set(rows.map((r) => r.pid));
  for (const r of rows) {
    const parent = r.ppid && present.has(r.ppid) ? r.ppid : null;
    byParent.set(parent, [...(byParent.get(parent) ?? []), r]);
  }
  const branch = (parent: string | null, depth: number) => {
    const kids = byParent.get(parent);
    if (!kids || depth > 64) return null;
    return (
      <ul role={depth === 0 ? 'tree' : 'group'} aria-label={depth === 0 ? 'Process tree' : undefined}>
        {kids.map((r) => (
          <li key={r.pid} role="treeitem" aria-expanded={byParent.has(r.pid) ? true : undefined}>
            <a href={`#/p/${r.pid}`}>{r.name}</a> <StateBadge state={r.state} /> <span class="pid">{r.pid}</span>
            {r.exit_code ? <span class="exit"> exit {r.exit_code}</span> : null}
            {branch(r.pid, depth + 1)}
          </li>
        ))}
      </ul>
    );
  };
  return <div class="tree">{branch(null, 0)}</div>;
}

export function ProcessesPage() {
  const [state, setState] = useState('');
  const [text, setText] = useState('');
  const [view, setView] = useState<'table' | 'tree'>('table');
  const { rows, status, error } = useLiveTable(state);
  const shown = rows.filter((r) => !text || r.name.includes(text) || r.image.includes(text) || r.pid.includes(text));
  return (
    <>
      <h1>Processes</h1>
      <SpawnForm />
      <TokensByProcess rows={rows} />
      <Section title="Process table" id="ps">
        <div class="toolbar" role="group" aria-label="Filters">
          <label>
            State
            <select value={state} onChange={(e) => setState(e.currentTarget.value)}>
              <option value="">all</option>
              {STATES.map((s) => (
                <option key={s} value={s}>
                  {s}
                </option>
              ))}
            </select>
          </label>
          <label>
            Name, image or pid
            <input type="search" value={text} onInput={(e) => setText(e.currentTarget.value)} />
          </label>
          <fieldset class="segmented">
            <legend>View</legend>
            {(['table', 'tree'] as const).map((v) => (
              <label key={v}>
                <input type="radio" name="view" value={v} checked={view === v} onChange={() => setView(v)} /> {v}
              </label>
            ))}
          </fieldset>
          <span class={`live live-${status}`} role="status" data-testid="ps-live">
            {status}
          </span>
        </div>
        <ErrorNote error={error} />
        <p class="hint">
          {shown.length} of {rows.length} shown{rows.length >= PAGE ? ` (the newest ${PAGE})` : ''}.
        </p>
        {view === 'table' ? <Table rows={shown} /> : <Tree rows={shown} />}
      </Section>
    </>
  );
}
