/**
 * What a process holds, each panel read again when the page's live log says something moved (`rev`):
 * its context pages against the token budget, its files, its mailbox and its children.
 */
import { useState } from 'preact/hooks';
import { qs } from '../../api.ts';
import { useGet } from '../../hooks.ts';
import type { ContextView, FileView, MailboxView, ProcessRow } from '../../types.ts';
import { ErrorNote, Loading, Meter, Section, StateBadge, Time, fmt } from '../../ui.tsx';

export function ContextPanel({ pid, rev }: { pid: string; rev: number }) {
  const ctx = useGet<ContextView>(`/v1/processes/${pid}/context`, { rev });
  const c = ctx.data;
  return (
    <Section title="Context" id="context">
      <ErrorNote error={ctx.error} />
      <Loading when={!c && !ctx.error} />
      {c ? (
        <>
          <Meter label="Working set (tokens)" used={c.tokens} max={c.budget} />
          <div class="scroll">
            <table>
              <caption class="visually-hidden">Context pages by step</caption>
              <thead>
                <tr>
                  <th scope="col">Step</th>
                  <th scope="col">Where</th>
                  <th scope="col">Tokens</th>
                  <th scope="col">Pages</th>
                  <th scope="col">First page</th>
                </tr>
              </thead>
              <tbody>
                {c.steps.map((s) => (
                  <tr key={s.step}>
                    <th scope="row">{s.step}</th>
                    <td>
                      {s.resident ? 'resident' : 'swapped'}
                      {s.recalled ? ', recalled' : ''}
                      {s.protected ? ', protected' : ''}
                    </td>
                    <td>{fmt(s.tokens)}</td>
                    <td>
                      {s.pages.length}
                      {s.pages.some((p) => p.pinned) ? ' (pinned)' : ''}
                    </td>
                    <td class="excerpt">{s.pages[0] ? `${s.pages[0].kind}: ${s.pages[0].excerpt}` : ''}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </>
      ) : null}
    </Section>
  );
}

export function FilesPanel({ pid, rev }: { pid: string; rev: number }) {
  const [path, setPath] = useState('/');
  const view = useGet<FileView>(`/v1/processes/${pid}/fs${path.split('/').map(encodeURIComponent).join('/')}`, { rev });
  const v = view.data;
  const up = path === '/' ? null : path.replace(/\/[^/]+\/?$/, '') || '/';
  return (
    <Section title="Files" id="files">
      <p>
        <code>{path}</code>{' '}
        {up !== null ? (
          <button type="button" onClick={() => setPath(up)}>
            Up
          </button>
        ) : null}
      </p>
      <ErrorNote error={view.error && !view.error.startsWith('ENOENT') ? view.error : null} />
      {view.error?.startsWith('ENOENT') ? <p>No files.</p> : null}
      <Loading when={!v && !view.error} />
      {v?.type === 'dir' ? (
        v.entries.length === 0 ? (
          <p>No files.</p>
        ) : (
          <ul class="files">
            {v.entries.map((e) => (
              <li key={e.name}>
                <button type="button" class="link" onClick={() => setPath(`${path.replace(/\/$/, '')}/${e.name}`)}>
                  {e.type === 'dir' ? `${e.name}/` : e.name}
                </button>
                {e.size !== undefined ? <span class="hint"> {fmt(e.size)} bytes</span> : null}
              </li>
            ))}
          </ul>
        )
      ) : null}
      {v?.type === 'file' ? (
        <pre class="json" tabIndex={0} aria-label={`contents of ${v.path}`}>
          {v.content}
        </pre>
      ) : null}
    </Section>
  );
}

export function MailboxPanel({ pid, rev }: { pid: string; rev: number }) {
  const mb = useGet<MailboxView>(`/v1/processes/${pid}/mailbox${qs({ status: 'all', limit: 50 })}`, { rev });
  const m = mb.data;
  return (
    <Section title="Mailbox" id="mailbox">
      <ErrorNote error={mb.error} />
      <Loading when={!m && !mb.error} />
      {m ? (
        <>
          <p>
            {m.queued} queued, {m.held} held.
          </p>
          {m.messages.length ? (
            <ul class="mail">
              {m.messages.map((msg) => (
                <li key={msg.seq}>
                  <span class="badge">{msg.status}</span> from <code>{msg.from}</code> <Time at={msg.sent_at} />
                  {msg.topic ? ` on ${msg.topic}` : ''}: <code class="excerpt">{JSON.stringify(msg.body).slice(0, 200)}</code>
                </li>
              ))}
            </ul>
          ) : (
            <p>No messages.</p>
          )}
        </>
      ) : null}
    </Section>
  );
}

export function ChildrenPanel({ pid, rev }: { pid: string; rev: number }) {
  const kids = useGet<{ processes: ProcessRow[] }>(`/v1/processes${qs({ ppid: pid, limit: 100 })}`, { rev });
  return (
    <Section title="Children" id="children">
      <ErrorNote error={kids.error} />
      <Loading when={!kids.data && !kids.error} />
      {kids.data?.processes.length ? (
        <ul>
          {kids.data.processes.map((k) => (
            <li key={k.pid}>
              <a href={`#/p/${k.pid}`}>{k.name}</a> <StateBadge state={k.state} /> {k.exit_code ? `exit ${k.exit_code}` : ''}
            </li>
          ))}
        </ul>
      ) : kids.data ? (
        <p>No children.</p>
      ) : null}
    </Section>
  );
}
