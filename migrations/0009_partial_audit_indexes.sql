-- Fewer D1 rows written per audit record: every row belongs to exactly one chain, the tenant's
-- (chain_seq set, pid_seq NULL) or its process's (pid_seq set, chain_seq NULL), and each chain's
-- unique index needs only that chain's rows. Before, every row was also written into the other
-- chain's index under a NULL key (one index row per record for nothing). Partial unique indexes
-- keep the same guarantee (NULLs never conflicted) and are used by the same queries
-- (`chain_seq > ?` and `pid_seq IS NOT NULL` imply the index's condition).
DROP INDEX IF EXISTS audit_chain;
CREATE UNIQUE INDEX IF NOT EXISTS audit_chain ON audit (tenant, chain_seq) WHERE chain_seq IS NOT NULL;
DROP INDEX IF EXISTS audit_pid_chain;
CREATE UNIQUE INDEX IF NOT EXISTS audit_pid_chain ON audit (tenant, pid, pid_seq) WHERE pid_seq IS NOT NULL;
