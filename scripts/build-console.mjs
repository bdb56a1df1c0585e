// `npm run build:console`: bundle the web console (console/) into build/assets/console/, the
// directory wrangler.toml's [assets] serves at /console/. esbuild (pinned in devDependencies, the
// same version wrangler bundles the Worker with) compiles the TSX with Preact's JSX runtime and
// bundles Preact, uPlot and the SSE parser into one ES module; the HTML and CSS are copied as they are.
//
// The output is git-ignored and rebuilt by `npm start`, `npm test` (vitest.config.ts calls
// buildConsole, so `npx vitest run one.test.ts` works too) and `npm run deploy`: a build takes
// ~100 ms, and a generated bundle in git would conflict on every merge and could go stale.
//
// Usage: node scripts/build-console.mjs
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SRC = path.join(ROOT, 'console');
/** wrangler.toml [assets].directory; files below it are served at their path, so this is /console/. */
export const ASSETS_DIR = path.join(ROOT, 'build', 'assets');
const OUT = path.join(ASSETS_DIR, 'console');

/** @param {{ quiet?: boolean }} [opts] */
export async function buildConsole({ quiet = false } = {}) {
  const esbuild = await import('esbuild');
  rmSync(OUT, { recursive: true, force: true });
  mkdirSync(OUT, { recursive: true });
  for (const f of ['index.html', 'style.css']) copyFileSync(path.join(SRC, f), path.join(OUT, f));
  copyFileSync(path.join(ROOT, 'node_modules', 'uplot', 'dist', 'uPlot.min.css'), path.join(OUT, 'uplot.css'));
  await esbuild.build({
    entryPoints: [path.join(SRC, 'src', 'main.tsx')],
    outfile: path.join(OUT, 'app.js'),
    bundle: true,
    format: 'esm',
    target: 'es2022',
    jsx: 'automatic',
    jsxImportSource: 'preact',
    minify: true,
    sourcemap: 'linked',
    legalComments: 'linked',
    logLevel: quiet ? 'error' : 'info',
  });
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await buildConsole();
}
