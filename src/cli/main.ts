// The `fleetts` command line: builds the commander program, runs one command, and maps every error
// to a message and an exit code in one place (no stack trace for a user's mistake).
import { Command, CommanderError } from 'commander';
import { systemClock, type Clock } from '../lib/clock.js';
import { FleetError, UsageError } from '../lib/errors.js';
import { VERSION } from '../lib/version.js';
import type { ApiClient } from './client.js';
import { EXIT_FAILED, EXIT_OK, EXIT_USAGE } from './exit-codes.js';
import { addGlobalOptions, clientFromOptions, type GlobalOptions } from './global-options.js';
import { type Output, processOutput } from './output.js';
import { DEFAULT_POLL_MS } from './poll.js';

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

type Register = (program: Command, ctx: CliContext) => void;

/**
 * The command groups, in the order help lists them, each loaded on demand: a command imports only
 * its own group, not the code (and zod schemas) of the other twenty-odd commands, which took about
 * a third of a command's start (docs/memory.md#cli).
 */
const GROUPS = {
  target: async () => (await import('./target-commands.js')).registerTargetCommands,
  rollout: async () => (await import('./rollout.js')).registerRollout,
  list: async () => (await import('./list-commands.js')).registerListCommands,
  unitInfo: async () => (await import('./unit-info-commands.js')).registerUnitInfoCommands,
  events: async () => (await import('./events.js')).registerEvents,
  dashboard: async () => (await import('./dashboard.js')).registerDashboard,
  verify: async () => (await import('./verify.js')).registerVerify,
  announce: async () => (await import('./announce.js')).registerAnnounce,
  upstream: async () => (await import('./upstream.js')).registerUpstream,
  floatingAddress: async () => (await import('./floating-address.js')).registerFloatingAddress,
  dev: async () => (await import('./dev.js')).registerDev,
  galera: async () => (await import('./galera.js')).registerGalera,
  ftp: async () => (await import('./ftp.js')).registerFtp,
  cloudConfig: async () => (await import('./cloud-config.js')).registerCloudConfig,
  drain: async () => (await import('./drain-commands.js')).registerDrainCommands,
} satisfies Record<string, () => Promise<Register>>;

/** Each top-level command name and alias, and the group that defines it (a test keeps it whole). */
export const COMMAND_GROUPS: Readonly<Record<string, keyof typeof GROUPS>> = {
  submit: 'target',
  load: 'target',
  start: 'target',
  stop: 'target',
  unload: 'target',
  destroy: 'target',
  restart: 'target',
  rollout: 'rollout',
  'list-units': 'list',
  'list-unit-files': 'list',
  'list-machines': 'list',
  status: 'unitInfo',
  journal: 'unitInfo',
  cat: 'unitInfo',
  plan: 'unitInfo',
  events: 'events',
  dashboard: 'dashboard',
  verify: 'verify',
  announce: 'announce',
  upstream: 'upstream',
  'floating-address': 'floatingAddress',
  dev: 'dev',
  galera: 'galera',
  ftp: 'ftp',
  'cloud-config': 'cloudConfig',
  'farm-files': 'cloudConfig',
  drain: 'drain',
  undrain: 'drain',
};

async function loadGroups(only: string | undefined): Promise<Register[]> {
  // `version` and `--version` are the program's own.
  if (only === 'version') return [];
  const group = only === undefined ? undefined : COMMAND_GROUPS[only];
  const wanted = group === undefined ? Object.values(GROUPS) : [GROUPS[group]];
  return Promise.all(wanted.map((load) => load()));
}

/**
 * The command `argv` runs: its first word that is neither a global option nor an option's value
 * (`version` for `--version`). Undefined when there is none (help) or it is not certain: every group
 * is loaded then.
 */
export function commandWord(argv: readonly string[]): string | undefined {
  const takesValue = globalOptionValues();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--' || arg === '-') return undefined;
    if (arg === '--version' || arg === 'version') return 'version';
    if (!arg.startsWith('-')) return Object.hasOwn(COMMAND_GROUPS, arg) ? arg : undefined;
    if (arg.includes('=')) continue;
    const takes = takesValue.get(arg);
    if (takes === undefined) return undefined;
    if (takes) i++;
  }
  return undefined;
}

/** Each global option's flags, and whether it takes a value. */
function globalOptionValues(): Map<string, boolean> {
  const probe = new Command();
  addGlobalOptions(probe);
  const values = new Map<string, boolean>();
  for (const o of probe.options)
    for (const flag of [o.long, o.short]) if (flag !== undefined) values.set(flag, o.required || o.optional);
  return values;
}

export interface RunOptions {
  readonly signal?: AbortSignal;
  readonly clock?: Clock;
  readonly cwd?: string;
  readonly pollMs?: number;
}

/**
 * The program with every command, or with only the group that defines command `only` (a command
 * loads only its own code: see COMMAND_GROUPS).
 */
export async function buildProgram(ctx: CliContext, only?: string): Promise<Command> {
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

  for (const register of await loadGroups(only)) register(program, ctx);
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
  const program = await buildProgram(ctx, commandWord(argv));
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
