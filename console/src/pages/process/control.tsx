/**
 * A process's control panels: its process control block (state, what it waits for, identity,
 * capabilities, usage against the quotas, exit status) and what an operator may do to it (signals,
 * a message to its mailbox, removal).
 */
import { useState } from 'preact/hooks';
import { call } from '../../api.ts';
import { useSession } from '../../session.ts';
import { LIVE, type Pcb, type Signal } from '../../types.ts';
import { ActionButton, Json, Meter, RoleNote, Section, StateBadge, Time, fmt } from '../../ui.tsx';

export function PcbPanel({ pcb }: { pcb: Pcb }) {
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

export function Actions({ pcb, onDone }: { pcb: Pcb; onDone: () => void }) {
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
