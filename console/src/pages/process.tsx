/**
 * One process: its PCB and usage against the quotas, the signals an operator may send, the live event
 * log (SSE, resumed with Last-Event-ID), tokens per minute, the context's pages against the token
 * budget, its files, mailbox, children and exit status. Panels re-read when the live log says
 * something moved, at most twice a second.
 */
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { call, qs } from '../api.ts';
import { Chart } from '../chart.tsx';
import { useGet, useStream } from '../hooks.ts';
import { useSession } from '../session.ts';
import { type ContextView, type FileView, LIVE, type MailboxView, type Pcb, type ProcessEvent, type ProcessRow, type Signal } from '../types.ts';
import { usageOf } from './tokens.tsx';
import { ActionButton, ErrorNote, Json, Loading, RoleNote, Section, StateBadge, Time, fmt } from '../ui.tsx';

const MAX_SHOWN_EVENTS = 500;

/** Bumps a counter at most every `ms` while `fire()` is called: the panels' cue to re-read. */
function useThrottledRev(ms: number): [number, () => void] {
  const [rev, setRev] = useState(0);
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);
  useEffect(() => () => {
    if (timer.current) clearTimeout(timer.current);
  }, []);
  const fire = () => {
    if (timer.current) return;
    timer.current = setTimeout(() => {
      timer.current = null;
      setRev((r) => r + 1);
    }, ms);
  };
  return [rev, fire];
}

function Meter({ label, used, max }: { label: string; used: number; max: number }) {
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

function PcbPanel({ pcb }: { pcb: Pcb }) {
  const u = pcb.usage;
  return (
    <Section title="Process control block" id="pcb">
      <dl class="kv">
        <dt>State</dt>
        <dd data-testid="pcb-state">
          <StateBadge state={pcb.state} />
          {pcb.wait ? (
            <span>
              {' '}
              waiting for {pcb.wait.reason}
              {pcb.wait.approval_id ? (
                <>
                  {' '}
                  (<a href="#/approvals">{pcb.wait.approval_id}</a>)
                </>
              ) : null}
            </span>
          ) : null}
        </dd>
        <dt>Pid</dt>
        <dd class="pid">{pcb.pid}</dd>
        <dt>Image</dt>
        <dd>{pcb.image}</dd>
        <dt>Model</dt>
        <dd>
          {pcb.model.provider}:{pcb.model.model}
        </dd>
        <dt>Priority</dt>
        <dd>{pcb.priority}</dd>
        <dt>Parent</dt>
        <dd>{pcb.ppid ? <a href={`#/p/${pcb.ppid}`}>{pcb.ppid}</a> : '—'}</dd>
        <dt>Created</dt>
        <dd>
          <Time at={pcb.created_at} />
        </dd>
        <dt>Updated</dt>
        <dd>
          <Time at={pcb.updated_at} /> (version {pcb.version})
        </dd>
        <dt>Task</dt>
        <dd class="task">{pcb.task}</dd>
        <dt>Capabilities</dt>
        <dd>
          <ul class="caps">
            {pcb.capabilities.map((g, i) => (
              <li key={i}>
                <code>{typeof g === 'string' ? g : JSON.stringify(g)}</code>
              </li>
            ))}
          </ul>
        </dd>
      </dl>
      <Meter label="Steps" used={u.steps} max={pcb.quotas.max_steps} />
      <Meter label="Tokens" used={u.prompt_tokens + u.completion_tokens} max={pcb.quotas.max_tokens} />
      <p class="hint">
        {fmt(u.llm_calls)} LLM calls, {fmt(u.prompt_tokens)} prompt + {fmt(u.completion_tokens)} completion tokens ({fmt(u.cached_tokens)} cached), {fmt(u.syscalls)} syscalls.
      </p>
      <h3>Exit</h3>
      {pcb.exit ? (
        <div data-testid="exit">
          <p>
            Exit code <strong>{String(pcb.exit.code)}</strong>: {pcb.exit.reason}
          </p>
          {pcb.exit.result !== undefined ? <Json value={pcb.exit.result} label="exit result" /> : null}
        </div>
      ) : (
        <p>Not exited.</p>
      )}
    </Section>
  );
}

function Actions({ pcb, onDone }: { pcb: Pcb; onDone: () => void }) {
  const { token } = useSession();
  const [cascade, setCascade] = useState(false);
  const [body, setBody] = useState('');
  const signal = (sig: Signal) => async () => {
    await call(token, 'POST', `/v1/processes/${pcb.pid}/signals`, { signal: sig, cascade });
    onDone();
  };
  const live = LIVE.has(pcb.state);
  return (
    <Section title="Actions" id="actions">
      <RoleNote role="operator" />
      <div class="buttons">
        {pcb.state === 'stopped' ? (
          <ActionButton role="operator" disabled={!live} run={signal('SIGCONT')}>
            Continue (SIGCONT)
          </ActionButton>
        ) : (
          <ActionButton role="operator" disabled={!live} run={signal('SIGSTOP')}>
            Stop (SIGSTOP)
          </ActionButton>
        )}
        <ActionButton role="operator" disabled={!live} run={signal('SIGTERM')}>
          Terminate (SIGTERM)
        </ActionButton>
        <ActionButton role="operator" disabled={!live} variant="danger" run={signal('SIGKILL')}>
          Kill (SIGKILL)
        </ActionButton>
        <label class="inline">
          <input type="checkbox" checked={cascade} onChange={(e) => setCascade(e.currentTarget.checked)} /> the whole process group
        </label>
      </div>
      {live ? null : <p class="hint">The process has exited: there is nothing left to signal.</p>}
      <div class="send">
        <label>
          Message to its mailbox (JSON or text)
          <input value={body} onInput={(e) => setBody(e.currentTarget.value)} />
        </label>
        <ActionButton
          role="operator"
          run={async () => {
            let parsed: unknown = body;
            try {
              parsed = JSON.parse(body);
            } catch {
              // plain text is a string body
            }
            await call(token, 'POST', `/v1/processes/${pcb.pid}/messages`, { body: parsed });
            setBody('');
            onDone();
          }}
        >
          Send
        </ActionButton>
      </div>
      <div class="buttons">
        <ActionButton
          role="operator"
          variant="danger"
          run={async () => {
            if (!confirm(`Remove ${pcb.name} (${pcb.pid})? It is killed if alive and its storage is released.`)) return;
            await call(token, 'DELETE', `/v1/processes/${pcb.pid}`);
            location.hash = '#/';
          }}
        >
          Remove process
        </ActionButton>
      </div>
    </Section>
  );
}

function summarize(e: ProcessEvent): string {
  const d = e.data as Record<string, unknown> | null;
  if (!d || typeof d !== 'object') return '';
  switch (e.type) {
    case 'state':
      return `${String(d.from)} → ${String(d.to)} (${String(d.event)})`;
    case 'syscall':
      return `${String(d.name)} ${d.ok ? 'ok' : `failed: ${JSON.stringify((d.error as { code?: string } | undefined)?.code ?? '')}`}`;
    case 'llm_call': {
      const u = d.usage as { prompt_tokens?: number; completion_tokens?: number } | undefined;
      return `${String(d.model)}: ${u?.prompt_tokens ?? 0} + ${u?.completion_tokens ?? 0} tokens, ${String(d.latency_ms)} ms${Array.isArray(d.calls) && d.calls.length ? `, calls ${d.calls.join(', ')}` : ''}`;
    }
    case 'approval_requested':
      return `${String(d.name)} needs ${JSON.stringify(d.needed)}`;
    case 'exit':
      return `code ${String(d.code)}: ${String(d.reason)}`;
    case 'spawned':
      return `${String(d.name)} from image ${String(d.image)}${d.ppid ? `, child of ${String(d.ppid)}` : ''}`;
    default:
      return JSON.stringify(d).slice(0, 160);
  }
}

function EventLog({ events, status, error }: { events: ProcessEvent[]; status: string; error: string | null }) {
  const shown = events.slice(-MAX_SHOWN_EVENTS).reverse();
  return (
    <Section title="Events" id="events">
      <p>
        <span class={`live live-${status}`} role="status" data-testid="events-live">
          {status}
        </span>{' '}
        {events.length} events, newest first.
      </p>
      <ErrorNote error={error} />
      <div role="log" aria-label="Event log">
      <ol class="events" data-testid="events">
        {shown.map((e) => (
          <li key={e.seq} data-type={e.type}>
            <details>
              <summary>
                <span class="seq">#{e.seq}</span> <Time at={e.at} /> <strong>{e.type}</strong> <span class="sum">{summarize(e)}</span>
              </summary>
              <Json value={e.data} label={`event ${e.seq}`} />
            </details>
          </li>
        ))}
      </ol>
      </div>
    </Section>
  );
}

/** Tokens per minute from the log's llm_call events: prompt and completion, one bar per minute. */
function TokensChart({ events }: { events: ProcessEvent[] }) {
  const data = useMemo(() => {
    const buckets = new Map<number, [number, number]>();
    for (const e of events) {
      const u = usageOf(e);
      if (!u) continue;
      const minute = Math.floor(e.at / 60_000) * 60;
      const b = buckets.get(minute) ?? [0, 0];
      b[0] += u.prompt;
      b[1] += u.completion;
      buckets.set(minute, b);
    }
    // Every minute from the first call to the last (quiet minutes are zero), one either side, at
    // most the last three hours: a continuous axis, also when all calls fell in one minute.
    const keys = [...buckets.keys()];
    if (keys.length === 0) return [[], [], []] as [number[], number[], number[]];
    const last = Math.max(...keys) + 60;
    const first = Math.max(Math.min(...keys) - 60, last - 180 * 60);
    const xs: number[] = [];
    for (let m = first; m <= last; m += 60) xs.push(m);
    return [xs, xs.map((x) => (buckets.get(x)?.[0] ?? 0) + (buckets.get(x)?.[1] ?? 0)), xs.map((x) => buckets.get(x)?.[1] ?? 0)] as [number[], number[], number[]];
  }, [events]);
  const total = data[1].reduce((a, b) => a + b, 0);
  const minutes = data[1].filter((t) => t > 0).length;
  return (
    <Section title="Tokens per minute" id="tpm">
      {data[0].length === 0 ? (
        <p>No LLM calls yet.</p>
      ) : (
        <Chart
          summary={`Tokens per minute: ${fmt(total)} tokens in ${minutes} minute(s) with LLM calls tokens ; the most in one minute: ${fmt(Math.max(...data[1]))}.`}
          series={[
            { label: 'all tokens', color: '#3566c8' },
            { label: 'completion', color: '#d9822b' },
          ]}
          data={data}
          bars
          yLabel="tokens/min"
        />
      )}
    </Section>
  );
}

function ContextPanel({ pid, rev }: { pid: string; rev: number }) {
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

function FilesPanel({ pid, rev }: { pid: string; rev: number }) {
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

function MailboxPanel({ pid, rev }: { pid: string; rev: number }) {
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

function ChildrenPanel({ pid, rev }: { pid: string; rev: number }) {
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

export function ProcessPage({ pid }: { pid: string }) {
  const [rev, bump] = useThrottledRev(500);
  const pcb = useGet<Pcb>(`/v1/processes/${pid}`, { rev });
  const [events, setEvents] = useState<ProcessEvent[]>([]);
  const { status, error } = useStream(
    `/v1/processes/${pid}/events`,
    (m) => {
      const e = JSON.parse(m.data) as ProcessEvent;
      setEvents((prev) => (prev.length && prev[prev.length - 1]!.seq >= e.seq ? prev : [...prev, e]));
      bump();
    },
    true,
  );
  const p = pcb.data;
  return (
    <>
      <p class="crumbs">
        <a href="#/">Processes</a> /
      </p>
      <h1>{p ? p.name : pid}</h1>
      <ErrorNote error={pcb.error} />
      {p ? (
        <div class="columns">
          <div>
            <PcbPanel pcb={p} />
            <Actions pcb={p} onDone={pcb.reload} />
            <TokensChart events={events} />
            <ChildrenPanel pid={pid} rev={rev} />
            <MailboxPanel pid={pid} rev={rev} />
          </div>
          <div>
            <EventLog events={events} status={status} error={error} />
            <ContextPanel pid={pid} rev={rev} />
            <FilesPanel pid={pid} rev={rev} />
          </div>
        </div>
      ) : null}
    </>
  );
}
