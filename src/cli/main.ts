// The `fleetts` command line: builds the commander program, runs one command, and maps every error
// to a message and an exit code in one place (no stack trace for a user's mistake).
import { Command, CommanderError } from 'commander';
import { systemClock, type Clock } from '../lib/clock.js';
import { FleetError, UsageError } from '../lib/errors.js';
import { VERSION } from '../lib/version.js';
import type { ApiClient } from './client.js';
import { EXIT_FAILED, EXIT_OK, EXIT_USAGE } from './exit-codes.js';
import { addGlobalOptions, clientFromOptions, type GlobalOptions } from './global-options.js';
import { registerListCommands } from './list-commands.js';
import { type Output, processOutput } from './output.js';
import { registerTargetCommands } from './target-commands.js';
import { registerUnitInfoCommands } from './unit-info-commands.js';
import { registerVerify } from './verify.js';
import { registerAnnounce } from './announce.js';
import { registerFloatingAddress } from './floating-address.js';
import { registerDev } from './dev.js';
import { registerUpstream } from './upstream.js';
import { registerGalera } from './galera.js';
import { registerFtp } from './ftp.js';
import { registerCloudConfig } from './cloud-config.js';
import { registerRollout } from './rollout.js';
import { registerEvents } from './events.js';
import { registerDashboard } from './dashboard.js';
import { registerDrainCommands } from './drain-commands.js';
import { DEFAULT_POLL_MS } from './wait-for-units.js';

export interface CliContext {
  readonly output: Output;
  /** Set by a command that ran but did not reach its goal. */
  exitCode: number;
  /** The API client described by the global options (built on first use). */
  client(): Promise<ApiClient>;
  readonly clock: Clock;
  /** Relative unit file paths are read from here. */
  readonly cwd: string;
  /** Aborts requests and waiting (tests; the real binary simply exits on Ctrl-C). */
  readonly signal: AbortSignal | undefined;
  /** How often blocking commands check the cluster. */
  readonly pollMs: number;
}

export interface RunOptions {
  readonly signal?: AbortSignal;
  readonly clock?: Clock;
  readonly cwd?: string;
  readonly pollMs?: number;
}

export function buildProgram(ctx: CliContext): Command {
  const program = new Command('fleetts')
    .description('fleetts: schedule systemd-style units over a cluster of hosts (fleet, on etcd)')
    .version(VERSION, '--version', 'print the fleetts version')
    .helpOption('-h, --help', 'show help for a command')
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({
      writeOut: (s) => ctx.output.out(s),
      writeErr: (s) => ctx.output.err(s),
      outputError: (s, write) => write(s),
    })
    .addHelpText(
      'after',
      `
Examples:
  fleetts start units/web@1.unit units/web@2.unit    submit, place and start; wait until running
  fleetts list-units                                 what runs where
  fleetts --endpoint http://10.0.0.2:4003,http://10.0.0.3:4003 --token "$T" status web@1.unit
  fleetts verify units/web@.unit                     check unit files without a cluster
  fleetts help start                                 help for one command

Exit codes: 0 success; 1 the cluster did not reach the state (or the request failed); 2 usage error.
Environment: FLEETTS_ENDPOINT, FLEETTS_TOKEN, FLEETTS_CA_FILE, FLEETTS_CERT_FILE, FLEETTS_KEY_FILE.`,
    );
  addGlobalOptions(program);

  program
    .command('version')
    .description('print the fleetts version')
    .action(() => ctx.output.out(VERSION));

  registerTargetCommands(program, ctx);
  registerRollout(program, ctx);
  registerListCommands(program, ctx);
  registerUnitInfoCommands(program, ctx);
  registerEvents(program, ctx);
  registerDashboard(program, ctx);
  registerVerify(program, ctx);
  registerAnnounce(program, ctx);
  registerUpstream(program, ctx);
  registerFloatingAddress(program, ctx);
  registerDev(program, ctx);
  registerGalera(program, ctx);
  registerFtp(program, ctx);
  registerCloudConfig(program, ctx);
  registerDrainCommands(program, ctx);
  return program;
}

/** Runs the CLI with `argv` (without node and script), returns the exit code. */
export async function run(
  argv: readonly string[],
  output: Output = processOutput,
  options: RunOptions = {},
): Promise<number> {
  let client: Promise<ApiClient> | undefined;
  const ctx: CliContext = {
    output,
    exitCode: EXIT_OK,
    client: () =>
      (client ??= clientFromOptions(
        program.opts<GlobalOptions>(),
        output,
        options.signal,
        program.getOptionValueSource('endpoint'),
      )),
    clock: options.clock ?? systemClock,
    cwd: options.cwd ?? process.cwd(),
    signal: options.signal,
    pollMs: options.pollMs ?? DEFAULT_POLL_MS,
  };
  const program = buildProgram(ctx);
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return ctx.exitCode;
  } catch (err) {
    return reportError(err, output);
  }
}

function reportError(err: unknown, output: Output): number {
  if (err instanceof CommanderError) {
    // help and --version end with a CommanderError too; their text was already written.
    if (err.exitCode === 0) return EXIT_OK;
    return EXIT_USAGE;
  }
  if (err instanceof UsageError) {
    output.err(`fleetts: ${err.message}`);
    return EXIT_USAGE;
  }
  if (err instanceof FleetError) {
    output.err(`fleetts: ${err.message}`);
    return EXIT_FAILED;
  }
  const detail = err instanceof Error ? (err.stack ?? err.message) : String(err);
  output.err(`fleetts: unexpected error (this is a bug in fleetts; please report it):\n${detail}`);
  return EXIT_FAILED;
}
