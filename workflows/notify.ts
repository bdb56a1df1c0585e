/**
 * A process's exit reaches the pipeline waiting on it as a Workflow event (`exit-<pid>`), sent from
 * the process's outbox after the exit is committed (src/process/lifecycle.ts and outbox.ts, `exit_notify`).
 *
 * The event only saves time: a stage that hears nothing re-reads the process itself after
 * PIPELINE_RECHECK_SECONDS (workflows/pipeline.ts), so an event that cannot be delivered because
 * the instance has ended (complete, errored, terminated by a cancel) or is gone is dropped rather
 * than retried for ever; any other failure is thrown, and the outbox retries it with backoff.
 */
import type { ExitNotice } from '../src/process/core.ts';

const OVER = new Set(['complete', 'errored', 'terminated']);

export async function notifyPipeline(workflow: Workflow, notice: ExitNotice): Promise<void> {
  let instance: WorkflowInstance;
  try {
    instance = await workflow.get(notice.pipeline);
  } catch {
    return; // no such instance: nobody is waiting
  }
  try {
    await instance.sendEvent({ type: notice.event, payload: { pid: notice.pid, code: notice.code, ...('result' in notice ? { result: notice.result } : {}) } });
  } catch (e) {
    const status = await instance.status().catch(() => null);
    if (status === null || OVER.has(status.status)) return;
    throw e;
  }
}
