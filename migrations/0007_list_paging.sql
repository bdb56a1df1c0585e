-- Every list of the API pages by a keyset (src/api/paging.ts); these indexes serve the approval
-- filters that have none: all statuses of a tenant, and one process's requests, oldest first.
CREATE INDEX IF NOT EXISTS approvals_by_time ON approvals (tenant, created_at, id);
CREATE INDEX IF NOT EXISTS approvals_by_pid ON approvals (tenant, pid, created_at, id);
