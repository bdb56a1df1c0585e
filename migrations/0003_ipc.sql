-- IPC: topic subscriptions, webhook routes and dead letters (docs/ipc.md).

-- The topic registry: who receives a copy of what is published to a topic. Written by each process
-- through its outbox (subscribe/unsubscribe; all of a process's rows go when it exits).
CREATE TABLE IF NOT EXISTS subscriptions (
  tenant TEXT NOT NULL,
  topic TEXT NOT NULL,
  pid TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (tenant, topic, pid)
);
CREATE INDEX IF NOT EXISTS subscriptions_by_pid ON subscriptions (tenant, pid);

-- Messages that could not be delivered (unknown or exited recipient, poison payload, retries
-- exhausted). Keyed by message id, so a redelivered failure is recorded once.
CREATE TABLE IF NOT EXISTS dead_letters (
  id TEXT PRIMARY KEY,
  tenant TEXT NOT NULL,
  sender TEXT,
  recipient TEXT,
  code TEXT NOT NULL,
  reason TEXT NOT NULL,
  message TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_by_tenant ON dead_letters (tenant, created_at, id);

-- Webhook routes: POST /v1/hooks/:name delivers its payload to a process's mailbox or spawns a
-- process from an image with the payload as its task. `secret` (HMAC-SHA256 key) is optional; a
-- route without one is called with a bearer token of its tenant instead.
CREATE TABLE IF NOT EXISTS webhooks (
  name TEXT PRIMARY KEY,
  tenant TEXT NOT NULL,
  action TEXT NOT NULL CHECK (action IN ('deliver', 'spawn')),
  pid TEXT,
  image TEXT,
  secret TEXT,
  created_at INTEGER NOT NULL,
  created_by TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS webhooks_by_tenant ON webhooks (tenant, name);
