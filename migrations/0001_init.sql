-- The global process table: lets `ps` list processes without waking every Durable Object.
-- Each process mirrors its PCB here through its outbox; `version` fences out stale, late writes.
CREATE TABLE IF NOT EXISTS processes (
  pid TEXT PRIMARY KEY,
  ppid TEXT,
  name TEXT NOT NULL,
  image TEXT NOT NULL,
  state TEXT NOT NULL,
  priority INTEGER NOT NULL,
  exit_code TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  version INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS processes_by_state ON processes (state, created_at);
CREATE INDEX IF NOT EXISTS processes_by_parent ON processes (ppid, created_at);
CREATE INDEX IF NOT EXISTS processes_by_created ON processes (created_at, pid);

-- The audit log: append-only; ids are <pid>:<n> so redelivery is idempotent.
CREATE TABLE IF NOT EXISTS audit (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  pid TEXT NOT NULL,
  at INTEGER NOT NULL,
  kind TEXT NOT NULL,
  action TEXT NOT NULL,
  outcome TEXT NOT NULL,
  code TEXT,
  detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_by_pid ON audit (pid, seq);
