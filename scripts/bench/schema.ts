/**
 * The bench Workers' POST …/setup: apply the D1 schema run.mjs sends (lib.mjs migrationsSql(): the
 * project's migrations/*.sql, in order), as `wrangler d1 migrations apply` would.
 */

/** Statements of migration files: comments dropped, split on semicolons. */
export function statements(sql: string): string[] {
  return sql
    .split('\n')
    .map((l) => l.replace(/--.*$/, ''))
    .join('\n')
    .split(';')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

/** Apply the schema in one batch; answers how many statements ran. */
export async function applySchema(db: D1Database, request: Request): Promise<Response> {
  const stmts = statements(await request.text());
  await db.batch(stmts.map((s) => db.prepare(s)));
  return Response.json({ statements: stmts.length });
}
