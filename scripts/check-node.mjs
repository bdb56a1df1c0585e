// Fails fast when a script runs on a Node older than wrangler needs. npm scripts put
// node_modules/.bin first on PATH, so `node` here is the Node 22 the `node` package installed.
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 12)) {
  console.error(`Node ${process.versions.node} is too old: wrangler needs >= 22.12. Run the project's scripts through npm (npm test, npm start) so they use the Node from node_modules.`);
  process.exit(1);
}
