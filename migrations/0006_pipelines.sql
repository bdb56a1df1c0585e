-- Pipelines (docs/pipelines.md): runs of a DAG of stages on Cloudflare Workflows. The Workflow
-- instance is the engine; these tables are what the API reads (tenant-scoped) and lists.

-- Named specs, per tenant: POST /v1/pipelines {name} runs the stored spec.
CREATE TABLE IF NOT EXISTS pipeline_specs (
  tenant TEXT NOT NULL,
  name TEXT NOT NULL,
  spec TEXT NOT NULL,
  version INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  updated_by TEXT NOT NULL,
  PRIMARY KEY (tenant, name)
);

-- One row per run; `id` is the Workflow instance id.
CREATE TABLE IF NOT EXISTS pipelines (
  id TEXT PRIMARY KEY,
  tenant TEXT NOT NULL,
  name TEXT,
  spec TEXT NOT NULL,
  input TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'complete', 'failed', 'cancelled')),
  error TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  ended_at INTEGER,
  created_by TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS pipelines_by_tenant ON pipelines (tenant, created_at, id);
CREATE INDEX IF NOT EXISTS pipelines_by_status ON pipelines (tenant, status, created_at, id);

-- A stage of a run: its status, item count, approval (gates) and error; results live on tasks.
CREATE TABLE IF NOT EXISTS pipeline_stages (
  pipeline TEXT NOT NULL,
  stage TEXT NOT NULL,
  status TEXT NOT NULL,
  items INTEGER,
  approval_id TEXT,
  result TEXT,
  error TEXT,
  started_at INTEGER,
  ended_at INTEGER,
  PRIMARY KEY (pipeline, stage)
);

-- One process of a stage: (item, attempt) names it, and its pid is derived from them.
CREATE TABLE IF NOT EXISTS pipeline_tasks (
  pipeline TEXT NOT NULL,
  stage TEXT NOT NULL,
  item INTEGER NOT NULL,
  attempt INTEGER NOT NULL,
  pid TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('running', 'complete', 'failed', 'cancelled')),
  exit_code TEXT,
  result TEXT,
  error TEXT,
  started_at INTEGER NOT NULL,
  ended_at INTEGER,
  PRIMARY KEY (pipeline, stage, item, attempt)
);
CREATE INDEX IF NOT EXISTS pipeline_tasks_live ON pipeline_tasks (pipeline, status);

-- A human gate of a pipeline is an approval like a process's: decided through /v1/approvals.
ALTER TABLE approvals ADD COLUMN pipeline TEXT;

-- Webhook routes may start a pipeline from a named spec (the payload is its input). SQLite cannot
-- change a CHECK constraint in place, so the table is rebuilt with the new action and column.
CREATE TABLE webhooks_new (
  name TEXT PRIMARY KEY,
  tenant TEXT NOT NULL,
  action TEXT NOT NULL CHECK (action IN ('deliver', 'spawn', 'pipeline')),
  pid TEXT,
  image TEXT,
  pipeline TEXT,
  secret TEXT,
  created_at INTEGER NOT NULL,
  created_by TEXT NOT NULL
);
INSERT INTO webhooks_new (name, tenant, action, pid, image, secret, created_at, created_by)
  SELECT name, tenant, action, pid, image, secret, created_at, created_by FROM webhooks;
DROP TABLE webhooks;
ALTER TABLE webhooks_new RENAME TO webhooks;
CREATE INDEX IF NOT EXISTS webhooks_by_tenant ON webhooks (tenant, name);
