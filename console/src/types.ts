/**
 * The shapes the console reads from the API. The PCB comes from the kernel's own zod schema (types
 * only: nothing of the kernel is bundled); the rest mirror the API's JSON answers.
 */
import type { Pcb, ProcessState, Signal } from '../../src/kernel/pcb.ts';

export type { Pcb, ProcessState, Signal };

export const STATES: readonly ProcessState[] = ['ready', 'running', 'sleeping', 'waiting', 'stopped', 'zombie', 'terminated'];
export const LIVE: ReadonlySet<ProcessState> = new Set<ProcessState>(['ready', 'running', 'sleeping', 'waiting', 'stopped']);

export type Role = 'reader' | 'operator' | 'admin';
export interface Principal {
  readonly tenant: string;
  readonly role: Role;
  readonly token_id: string;
}

/** A row of the process table (ps). */
export type ProcessRow = Pick<Pcb, 'pid' | 'ppid' | 'name' | 'image' | 'state' | 'priority' | 'created_at' | 'updated_at' | 'version'> & { readonly exit_code: string | null };

export interface ProcessEvent {
  readonly seq: number;
  readonly at: number;
  readonly type: string;
  readonly data: unknown;
}

export interface Approval {
  readonly id: string;
  /** null for a pipeline's human gate (pipeline and stage name it). */
  readonly pid: string | null;
  readonly step: number;
  readonly idx: number;
  readonly syscall: string;
  readonly args: unknown;
  readonly capability: string;
  readonly reason: string;
  readonly status: 'pending' | 'approved' | 'denied' | 'expired';
  readonly grant_kind: string | null;
  readonly note: string | null;
  readonly created_at: number;
  readonly expires_at: number;
  readonly decided_at: number | null;
  readonly decided_by: string | null;
  readonly pipeline: string | null;
  readonly stage: string | null;
}

export interface AuditRow {
  readonly seq: number;
  readonly id: string;
  readonly pid: string;
  readonly at: number;
  readonly kind: string;
  readonly action: string;
  readonly outcome: string;
  readonly code: string | null;
  readonly detail: unknown;
}

export interface ContextPage {
  readonly seq: number;
  readonly kind: string;
  readonly tokens: number;
  readonly importance: number;
  readonly pinned: boolean | number;
  readonly excerpt: string;
}
export interface ContextView {
  readonly budget: number;
  readonly tokens: number;
  readonly steps: { readonly step: number; readonly resident: boolean; readonly recalled: boolean; readonly protected: boolean; readonly tokens: number; readonly score: number; readonly pages: ContextPage[] }[];
}

export type FileView =
  | { readonly type: 'file'; readonly path: string; readonly content: string; readonly size: number }
  | { readonly type: 'dir'; readonly path: string; readonly entries: { readonly name: string; readonly type: 'file' | 'dir'; readonly size?: number }[] };

export interface MailboxView {
  readonly pid: string;
  readonly queued: number;
  readonly held: number;
  readonly messages: { readonly seq: number; readonly id: string; readonly from: string; readonly topic: string | null; readonly body: unknown; readonly status: string; readonly sent_at: number; readonly received_at: number | null }[];
}

export interface Waits {
  readonly granted: number;
  readonly mean_ms: number | null;
  readonly p50_ms: number | null;
  readonly p95_ms: number | null;
  readonly max_ms: number;
}
export interface PoolStats {
  readonly pool: string;
  readonly shards: number;
  readonly queue_length: number;
  readonly in_flight: number;
  readonly tokens_per_min: number;
  readonly requests_per_min: number;
  readonly granted: number;
  readonly denied: number;
  readonly rate_limited: number;
  readonly paused_until: number | null;
  readonly rate_factor: number;
  readonly waits: Record<string, Waits>;
}

export interface Image {
  readonly name: string;
  readonly description: string;
}
