import { applyD1Migrations } from 'cloudflare:test';
import { env } from 'cloudflare:workers';

// Each test file gets fresh storage; give its D1 the schema from migrations/.
await applyD1Migrations(env.DB, env.TEST_MIGRATIONS);
