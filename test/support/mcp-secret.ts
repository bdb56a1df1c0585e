/** The bearer secret the test MCP server (./mcp-server.ts) demands: a value that must never leak. */
export const MCP_TEST_SECRET = 'mcp-secret-7f3a9c2e41';
