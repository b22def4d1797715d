// The `fleetts` command line: builds the commander program, runs one command, and maps every error
// to a message and an exit code in one place (no stack trace for a user's mistake).
import { Command, CommanderError } from 'commander';
import { FleetError, UsageError } from '../lib/errors.js';
import { VERSION } from '../lib/version.js';
import { EXIT_FAILED, EXIT_OK, EXIT_USAGE } from './exit-codes.js';
import { type Output, processOutput } from './output.js';
import { registerVerify } from './verify.js';

export interface CliContext {
  readonly output: Output;
  /** Set by a command that ran but did not reach its goal. */
  exitCode: number;
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
  fleetts verify units/web@.unit      check unit files without a cluster
  fleetts help verify                 help for one command`,
    );

  program
    .command('version')
    .description('print the fleetts version')
    .action(() => ctx.output.out(VERSION));

  registerVerify(program, ctx);
  return program;
}

/** Runs the CLI with `argv` (without node and script), returns the exit code. */
export async function run(argv: readonly string[], output: Output = processOutput): Promise<number> {
  const ctx: CliContext = { output, exitCode: EXIT_OK };
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
