/**
 * Human approvals of a blocked call: an operator's decision, the standing grant an "always" adds,
 * and the approval's settlement (approved, denied or expired) in the process and in D1's approvals
 * table. An approval is bound to one journal entry and to the hash of its call's arguments.
 */
import { type Grant, parseCapability } from '../kernel/capabilities.ts';
import { type Result, fail, ok, toErrorValue } from '../kernel/errors.ts';
import type { Pcb } from '../kernel/pcb.ts';
import { callHash } from '../kernel/policy.ts';
import type { ProcessCore } from './core.ts';
import type { JournalRow } from './store.ts';

/**
 * An operator decided an approval. It must be the one this process is blocked on, and the call in
 * the journal must hash to what the operator was shown (`argsHash`): an approval never applies to
 * other arguments. Approve: the entry goes back to pending and the dispatcher runs it (for
 * `always`, a standing grant is added first). Deny: the call returns EPERM. Either way the process wakes.
 */
export async function decideApproval(rt: ProcessCore, input: { id: string; tenant: string; args_hash: string; decision: 'approve' | 'deny'; grant: 'once' | 'always'; note: string; by: string }): Promise<Result<Pcb>> {
  const pcb = rt.pcb();
  if (!pcb || pcb.tenant !== input.tenant) return fail('ENOENT', 'no such process');
  const approval = rt.store.approvals.get(input.id);
  const entry = rt.store.blockedEntry();
  if (!approval || pcb.state !== 'waiting' || pcb.wait?.approval_id !== input.id || !entry || entry.step !== approval.step || entry.idx !== approval.idx) {
    return fail('ESTATE', `process ${pcb.pid} is not waiting for approval ${input.id}`, { state: pcb.state });
  }
  const args = (JSON.parse(entry.args) as { args?: unknown }).args;
  if ((await callHash(entry.name, args)) !== input.args_hash) {
    return fail('EPERM', 'the approval does not match the call it was requested for', { id: input.id });
  }
  try {
    applyDecision(rt, input, entry, approval.needed);
  } catch (e) {
    return { ok: false, error: toErrorValue(e) };
  }
  await rt.settle();
  return ok(rt.mustPcb());
}

/** Apply an operator's decision to the blocked entry, in one commit. */
function applyDecision(rt: ProcessCore, input: { id: string; decision: 'approve' | 'deny'; grant: 'once' | 'always'; note: string; by: string }, entry: JournalRow, neededCap: string): void {
  rt.store.transaction(() => {
    if (input.decision === 'deny') {
      settleApproval(rt, input.id, 'denied', input.grant, input.note, input.by);
      rt.completeEntry(entry, { ok: false, error: { code: 'EPERM', message: `an operator denied ${entry.name}${input.note ? `: ${input.note}` : ''}` } });
    } else {
      settleApproval(rt, input.id, 'approved', input.grant, input.note, input.by);
      const needed = neededCap;
      if (entry.name === 'request_capability') {
        addGrant(rt, { cap: needed, effect: 'allow', approved: true, ...(input.grant === 'once' ? { uses: 1 } : {}) }, input.by);
        rt.completeEntry(entry, { ok: true, value: { granted: needed, grant: input.grant } });
      } else {
        if (input.grant === 'always' && parseCapability(needed).ok) addGrant(rt, { cap: needed, effect: 'allow', approved: true }, input.by);
        rt.store.markPending(entry.step, entry.idx);
      }
    }
    rt.wake();
  });
}

export function addGrant(rt: ProcessCore, grant: Grant, by: string): void {
  const pcb = rt.mustPcb();
  rt.save({ ...pcb, capabilities: [...pcb.capabilities, grant], version: pcb.version + 1, updated_at: rt.now });
  rt.emit('capability_granted', { grant, by });
  rt.audit('capability', 'grant', 'ok', null, { grant, by });
}

export function settleApproval(rt: ProcessCore, id: string, status: 'approved' | 'denied' | 'expired', grant: 'once' | 'always' | null, note: string, by: string): void {
  rt.store.approvals.setStatus(id, status);
  rt.send({
    kind: 'd1',
    statement: {
      sql: "UPDATE approvals SET status = ?, grant_kind = ?, note = ?, decided_at = ?, decided_by = ? WHERE id = ? AND status = 'pending'",
      params: [status, grant, note, rt.now, by, id],
    },
  });
  rt.emit('approval_decided', { id, status, grant, note, by });
  rt.audit('approval', id, status === 'approved' ? 'approved' : status === 'denied' ? 'denied' : 'expired', null, { id, grant, note, by });
}
