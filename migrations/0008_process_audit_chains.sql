-- Each process hash-chains its own audit records (src/audit/audit.ts): a row of a process's chain
-- has its place in that chain in pid_seq (chain_seq stays NULL); rows of the tenant's chain keep
-- chain_seq (pid_seq NULL). Verification walks the process chains in (pid, pid_seq) order.
ALTER TABLE audit ADD COLUMN pid_seq INTEGER;
CREATE UNIQUE INDEX IF NOT EXISTS audit_pid_chain ON audit (tenant, pid, pid_seq);
