#!/usr/bin/env node
/**
 * agentos: the shell of AgentOS on Workers. Every command is a call to the kernel's HTTP API through
 * the client generated from its OpenAPI document; see docs/cli.md for the commands and exit codes.
 *
 *   npx agentos spawn --name demo --task "tidy the garden" --image demo
 *   npx agentos logs -f <pid>
 */
import { Command, CommanderError } from 'commander';
import { CliError, DEFAULT_URL, EXIT } from './client.ts';
import { registerCheckpoints } from './commands/checkpoints.ts';
import { registerGovernance } from './commands/governance.ts';
import { registerLogs } from './commands/logs.ts';
import { registerPipelines } from './commands/pipelines.ts';
import { registerProcesses } from './commands/processes.ts';
import { registerTop } from './commands/top.ts';
import { errColours } from './output.ts';

const program = new Command('agentos')
  .description('the shell of AgentOS on Workers: see and steer agent processes through the kernel API')
  .version('0.1.0')
  .option('--url <url>', 'the kernel (default: AGENTOS_URL, the login file, or http://127.0.0.1:8787)')
  .option('--token <token>', 'a bearer token (default: AGENTOS_TOKEN, the login file, or the local development token)')
  .option('--json', 'print JSON for scripts instead of tables')
  .showHelpAfterError()
  .exitOverride()
  .addHelpText(
    'after',
    `
Configuration: --url/--token, else AGENTOS_URL/AGENTOS_TOKEN, else the file agentos login wrote
(AGENTOS_CONFIG, default ~/.config/agentos/config.json), else ${DEFAULT_URL} with the local
development token. Colours only on a terminal; NO_COLOR turns them off.

Exit codes:
  0 ok                 4 bad or missing token (EUNAUTH, ERATE)   8 conflict: wrong state (ESTATE, EEXIST)
  1 other error        5 not allowed (EPERM)                     9 audit verify: the chain is broken
  2 usage error        6 not found (ENOENT)                      10 try again later (EAGAIN, ETIMEDOUT)
  3 kernel unreachable 7 refused input (EINVAL, E2BIG)`,
  );

registerProcesses(program);
registerLogs(program);
registerTop(program);
registerGovernance(program);
registerPipelines(program);
registerCheckpoints(program);
for (const c of program.commands) c.exitOverride();

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) {
    // --help and --version end here too, with exit code 0; commander has already printed them.
    process.exitCode = e.exitCode === 0 ? EXIT.ok : EXIT.usage;
  } else if (e instanceof CliError) {
    if (e.message) process.stderr.write(`${errColours.red('agentos:')} ${e.message}\n`);
    process.exitCode = e.exitCode;
  } else {
    process.stderr.write(`${errColours.red('agentos: unexpected error:')} ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = EXIT.error;
  }
}
