-- MCP servers registered per tenant (src/mcp/registry.ts). Header values (API keys, bearer tokens)
-- are stored only as AES-GCM ciphertext under a key from the MCP_SECRET_KEY Worker secret, bound to
-- the row's tenant and name; header_names says which headers are set without revealing them. The
-- tool list is cached with the time it was fetched, refreshed after a TTL or a list_changed notice.
CREATE TABLE IF NOT EXISTS mcp_servers (
  tenant TEXT NOT NULL,
  name TEXT NOT NULL,
  url TEXT NOT NULL,
  header_names TEXT NOT NULL,
  headers_enc TEXT,
  tools TEXT,
  tools_fetched_at INTEGER,
  created_at INTEGER NOT NULL,
  created_by TEXT NOT NULL,
  PRIMARY KEY (tenant, name)
);
