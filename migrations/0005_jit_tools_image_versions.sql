-- JIT tools published into images (src/tools/images.ts). Each publish appends a version: the full
-- set of tool definitions (name, description, JSON Schema, TypeScript source) as JSON. The head row
-- says which version processes spawned from the image inherit; restoring an older version appends
-- a copy of it as a new version and moves the head, so history is never rewritten.
CREATE TABLE IF NOT EXISTS image_tool_versions (
  tenant TEXT NOT NULL,
  image TEXT NOT NULL,
  version INTEGER NOT NULL,
  tools TEXT NOT NULL,
  tool_count INTEGER NOT NULL,
  source_pid TEXT,
  restored_from INTEGER,
  created_at INTEGER NOT NULL,
  created_by TEXT NOT NULL,
  PRIMARY KEY (tenant, image, version)
);

CREATE TABLE IF NOT EXISTS image_tool_heads (
  tenant TEXT NOT NULL,
  image TEXT NOT NULL,
  version INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (tenant, image)
);
