-- LLM scheduler pools that have been used: GET /v1/scheduler lists these (with the pools named in
-- SCHEDULER_POOLS) and asks each pool's scheduler objects for their numbers.
CREATE TABLE IF NOT EXISTS scheduler_pools (
  pool TEXT PRIMARY KEY,
  shards INTEGER NOT NULL,
  created_at INTEGER NOT NULL
);
