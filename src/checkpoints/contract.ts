/**
 * The checkpoint operations' data as they cross Durable Object RPC (src/rpc/contracts.ts names
 * them): a leaf module, importing only kernel schemas, so the contracts stay free of cycles.
 */
import { z } from 'zod';
import { GrantInputSchema, GrantSchema } from '../kernel/capabilities.ts';
import { ModelRefSchema, PrioritySchema, QuotasSchema } from '../kernel/pcb.ts';

export const ForkInputSchema = z.object({
  manifest_key: z.string(),
  pid: z.string(),
  tenant: z.string(),
  ppid: z.string().nullable(),
  forked_from: z.string(),
  spawn_key: z.string(),
  capabilities: z.array(GrantSchema),
  quotas: QuotasSchema,
  name: z.string().optional(),
  task: z.string().optional(),
  model: ModelRefSchema.optional(),
  priority: z.number().int().optional(),
  lineage: z.array(z.object({ pid: z.string(), max_tokens: z.number() })).optional(),
});
export type ForkInput = z.infer<typeof ForkInputSchema>;

/** What a caller may change in a fork; everything else comes from the checkpoint. */
export const ForkRequestSchema = z
  .object({
    name: z.string().min(1).max(128).optional(),
    task: z.string().min(1).max(256 * 1024).optional().describe('a different task: the fork reads it as a notice after its history'),
    model: z.union([z.string().min(1).max(256), ModelRefSchema.strict()]).optional(),
    priority: PrioritySchema.optional(),
    capabilities: z.array(GrantInputSchema).max(64).optional().describe('narrower grants; each must be covered by the original now and by the checkpoint'),
  })
  .strict();
export type ForkRequest = z.infer<typeof ForkRequestSchema>;

export type CheckpointOp =
  | { readonly op: 'create'; readonly label: string | null }
  | { readonly op: 'list'; readonly limit: number; readonly after: number | null }
  | { readonly op: 'get'; readonly id: string }
  | { readonly op: 'diff'; readonly from: string; readonly to: string }
  | { readonly op: 'delete'; readonly id: string }
  | { readonly op: 'restore'; readonly id: string; readonly by: string }
  | { readonly op: 'digest' }
  | { readonly op: 'trace' }
  | {
      readonly op: 'fork';
      readonly id: string;
      readonly by: string;
      readonly request: ForkRequest;
      /** The new process: its pid, parent (null from the API) and idempotency key. */
      readonly pid: string;
      readonly ppid: string | null;
      readonly spawn_key: string;
      readonly lineage?: readonly { pid: string; max_tokens: number }[];
    };

