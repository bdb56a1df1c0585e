-- Tenants, API tokens, approvals, and a hash-chained audit log.

-- Every process and audit row belongs to a tenant; nothing is listed across tenants.
ALTER TABLE processes ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';
CREATE INDEX IF NOT EXISTS processes_by_tenant ON processes (tenant, created_at, pid);

-- The audit log becomes a hash chain per tenant: each row stores the previous row's hash and the
-- hash of (previous hash + its own canonical content). Rows are appended by the tenant's
-- AuditChain Durable Object, which serialises appends and keeps the chain's head as an anchor.
ALTER TABLE audit ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';
ALTER TABLE audit ADD COLUMN chain_seq INTEGER;
ALTER TABLE audit ADD COLUMN prev_hash TEXT;
ALTER TABLE audit ADD COLUMN hash TEXT;
CREATE UNIQUE INDEX IF NOT EXISTS audit_chain ON audit (tenant, chain_seq);
CREATE INDEX IF NOT EXISTS audit_by_tenant ON audit (tenant, seq);

-- API tokens: the secret is stored only as a SHA-256 hash. Presented as "aos_<id>.<secret>".
CREATE TABLE IF NOT EXISTS tokens (
  id TEXT PRIMARY KEY,
  tenant TEXT NOT NULL,
  role TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'reader')),
  name TEXT NOT NULL,
  secret_hash TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  created_by TEXT NOT NULL,
  revoked_at INTEGER
);
CREATE INDEX IF NOT EXISTS tokens_by_tenant ON tokens (tenant, created_at);

-- Failed authentication attempts per client and minute, for rate limiting.
CREATE TABLE IF NOT EXISTS auth_failures (
  key TEXT PRIMARY KEY,
  count INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
);

-- Human approvals: bound to one journal entry of one process and the hash of its canonical call.
CREATE TABLE IF NOT EXISTS approvals (
  id TEXT PRIMARY KEY,
  tenant TEXT NOT NULL,
  pid TEXT NOT NULL,
  step INTEGER NOT NULL,
  idx INTEGER NOT NULL,
  syscall TEXT NOT NULL,
  args TEXT NOT NULL,
  args_hash TEXT NOT NULL,
  capability TEXT NOT NULL,
  reason TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'expired')),
  grant_kind TEXT,
  note TEXT,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  decided_at INTEGER,
  decided_by TEXT
);
CREATE INDEX IF NOT EXISTS approvals_by_tenant ON approvals (tenant, status, created_at);
