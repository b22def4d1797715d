// The typed [Service] section: a process the runtime supervises systemd-style. parseUnitSpec
// (unit-spec.ts) calls parseServiceSection once at submit; the process runtime reads only ServiceSpec.

import { parseEnvironmentAssignments, parseExecLines, type ExecCommand } from './exec.js';
import {
  accountValue,
  booleanValue,
  checkValue,
  enumSchema,
  lineError,
  optionalPathValue,
  rethrowAsEntryError,
  unknownKeyMessage,
  valueSchema,
  ValueProblem,
  wordsOf,
  entryError,
  type OptionalPath,
  type SectionContext,
} from './section-values.js';
import {
  parseSupervision,
  signalName,
  signalValue,
  SUPERVISION_KEYS,
  type Supervision,
} from './supervision.js';
import type { UnitEntry } from './unit-file.js';

export const SERVICE_TYPES = ['simple', 'exec', 'oneshot'] as const;
export type ServiceType = (typeof SERVICE_TYPES)[number];

export const KILL_MODES = ['control-group', 'process', 'mixed', 'none'] as const;
export type KillMode = (typeof KILL_MODES)[number];

export const EXEC_KEYS = [
  'ExecStartPre',
  'ExecStart',
  'ExecStartPost',
  'ExecStop',
  'ExecStopPost',
  'ExecReload',
] as const;
type ExecKey = (typeof EXEC_KEYS)[number];

/**
 * A [Service] unit, validated. Exec commands keep their `%` specifiers and `$VAR` references: the
 * runtime expands them on the host (where %H, %m and FLEETTS_MACHINE_IP are known).
 */
export interface ServiceSpec extends Supervision {
  /** Type=; systemd's default: simple when there is an ExecStart=, else oneshot. */
  readonly type: ServiceType;
  readonly execStartPre: readonly ExecCommand[];
  /** Exactly one for simple/exec; none or several (run in order) for oneshot. */
  readonly execStart: readonly ExecCommand[];
  readonly execStartPost: readonly ExecCommand[];
  readonly execStop: readonly ExecCommand[];
  readonly execStopPost: readonly ExecCommand[];
  readonly execReload: readonly ExecCommand[];
  /** KillSignal=, canonical (`SIGTERM`). */
  readonly killSignal: string;
  readonly killMode: KillMode;
  /** Environment=, all lines merged, later assignments win. */
  readonly environment: Readonly<Record<string, string>>;
  /** EnvironmentFile=, in order (read at start; later files win over earlier ones and Environment=). */
  readonly environmentFiles: readonly OptionalPath[];
  /** WorkingDirectory=: an absolute path or `~` (the user's home). */
  readonly workingDirectory?: OptionalPath;
  readonly user?: string;
  readonly group?: string;
  readonly remainAfterExit: boolean;
  /** SuccessExitStatus=: exit codes and signals counted as a clean exit besides 0 and SIGHUP/INT/TERM/PIPE. */
  readonly successExitStatus: { readonly codes: readonly number[]; readonly signals: readonly string[] };
}

const OTHER_KEYS = [
  'Type',
  'KillSignal',
  'KillMode',
  'Environment',
  'EnvironmentFile',
  'WorkingDirectory',
  'User',
  'Group',
  'RemainAfterExit',
  'SuccessExitStatus',
] as const;

/** Every key [Service] accepts, for messages and for other layers' documentation. */
export const SERVICE_KEYS: readonly string[] = [
  'Type',
  ...EXEC_KEYS,
  ...SUPERVISION_KEYS,
  ...OTHER_KEYS.filter((k) => k !== 'Type'),
];

/** systemd [Service]/[Exec]/[Kill] keys that users bring over and fleetts does not implement. */
const SYSTEMD_ONLY_KEYS = new Set([
  'PIDFile',
  'BusName',
  'NotifyAccess',
  'Sockets',
  'GuessMainPID',
  'WatchdogSec',
  'RuntimeMaxSec',
  'TimeoutAbortSec',
  'RestartPreventExitStatus',
  'RestartForceExitStatus',
  'RestartKillSignal',
  'RestartSteps',
  'RestartMaxDelaySec',
  'ExecCondition',
  'PermissionsStartOnly',
  'RootDirectory',
  'RootDirectoryStartOnly',
  'NonBlocking',
  'FileDescriptorStoreMax',
  'OOMPolicy',
  'OOMScoreAdjust',
  'Nice',
  'UMask',
  'LimitNOFILE',
  'LimitNPROC',
  'LimitCORE',
  'LimitMEMLOCK',
  'LimitAS',
  'CPUQuota',
  'CPUShares',
  'CPUWeight',
  'MemoryLimit',
  'MemoryMax',
  'MemoryHigh',
  'TasksMax',
  'Slice',
  'Delegate',
  'StandardInput',
  'StandardOutput',
  'StandardError',
  'SyslogIdentifier',
  'PrivateTmp',
  'PrivateDevices',
  'PrivateNetwork',
  'ProtectSystem',
  'ProtectHome',
  'NoNewPrivileges',
  'CapabilityBoundingSet',
  'AmbientCapabilities',
  'DynamicUser',
  'RuntimeDirectory',
  'StateDirectory',
  'LogsDirectory',
  'CacheDirectory',
  'SendSIGKILL',
  'SendSIGHUP',
  'FinalKillSignal',
  'SupplementaryGroups',
  'PassEnvironment',
  'UnsetEnvironment',
  'EnvironmentFiles',
]);

const UNSUPPORTED_TYPES: Readonly<Record<string, string>> = {
  forking:
    'not supported by fleetts: it supervises the main process directly; run the daemon in the foreground (e.g. apache2 -DFOREGROUND, nginx -g "daemon off;") with Type=simple',
  notify:
    'not supported by fleetts (it has no sd_notify socket); use Type=simple, or Type=exec to fail the start when the program cannot be executed',
  'notify-reload': 'not supported by fleetts (it has no sd_notify socket); use Type=simple with ExecReload=',
  dbus: 'not supported by fleetts (it does not watch the D-Bus); use Type=simple',
  idle: 'not supported by fleetts; use Type=simple',
};

const typeValue = valueSchema((value): ServiceType => {
  const unsupported = UNSUPPORTED_TYPES[value];
  if (unsupported !== undefined) throw new ValueProblem(unsupported);
  if ((SERVICE_TYPES as readonly string[]).includes(value)) return value as ServiceType;
  throw new ValueProblem(`invalid value; expected one of ${SERVICE_TYPES.join(', ')}`);
});
const killModeValue = enumSchema(KILL_MODES);
const workingDirectoryValue = valueSchema((value): OptionalPath => {
  const optional = value.startsWith('-');
  const path = optional ? value.slice(1) : value;
  if (path !== '~' && !path.startsWith('/')) {
    throw new ValueProblem('not an absolute path; use /path/to/dir, ~ for the home directory, or a - prefix');
  }
  return { path, optional };
});

/**
 * The [Service] section (all `[Service]` sections merged) of the unit. `unitEntries` are the
 * [Unit] entries (for StartLimit*); `headerLine` is the line of the first [Service] header, for
 * errors about what is missing. Throws UnitFileError naming file, line and key.
 */
export function parseServiceSection(
  ctx: SectionContext,
  entries: readonly UnitEntry[],
  unitEntries: readonly UnitEntry[],
  headerLine: number,
): ServiceSpec {
  const exec: Record<ExecKey, { command: ExecCommand; entry: UnitEntry }[]> = {
    ExecStartPre: [],
    ExecStart: [],
    ExecStartPost: [],
    ExecStop: [],
    ExecStopPost: [],
    ExecReload: [],
  };
  let type: ServiceType | undefined;
  let killSignal = 'SIGTERM';
  let killMode: KillMode = 'control-group';
  const environment = new Map<string, string>();
  let environmentFiles: OptionalPath[] = [];
  let workingDirectory: OptionalPath | undefined;
  let user: string | undefined;
  let group: string | undefined;
  let remainAfterExit = false;
  let codes: number[] = [];
  let signals: string[] = [];

  for (const entry of entries) {
    const { key, value } = entry;
    const reset = value === '';
    if (isExecKey(key)) {
      if (reset) exec[key] = [];
      else for (const command of execCommands(ctx, entry)) exec[key].push({ command, entry });
      continue;
    }
    if ((SUPERVISION_KEYS as readonly string[]).includes(key)) continue; // parseSupervision's
    switch (key) {
      case 'Type':
        type = reset ? undefined : checkValue(ctx, entry, typeValue);
        break;
      case 'KillSignal':
        killSignal = reset ? 'SIGTERM' : checkValue(ctx, entry, signalValue);
        break;
      case 'KillMode':
        killMode = reset ? 'control-group' : checkValue(ctx, entry, killModeValue);
        break;
      case 'Environment':
        if (reset) environment.clear();
        else for (const [name, v] of Object.entries(environmentOf(ctx, entry))) environment.set(name, v);
        break;
      case 'EnvironmentFile':
        if (reset) environmentFiles = [];
        else environmentFiles.push(checkValue(ctx, entry, optionalPathValue));
        break;
      case 'WorkingDirectory':
        workingDirectory = reset ? undefined : checkValue(ctx, entry, workingDirectoryValue);
        break;
      case 'User':
        user = reset ? undefined : checkValue(ctx, entry, accountValue);
        break;
      case 'Group':
        group = reset ? undefined : checkValue(ctx, entry, accountValue);
        break;
      case 'RemainAfterExit':
        remainAfterExit = reset ? false : checkValue(ctx, entry, booleanValue);
        break;
      case 'SuccessExitStatus':
        if (reset) {
          codes = [];
          signals = [];
        } else {
          for (const word of wordsOf(ctx, entry)) {
            if (/^[0-9]+$/.test(word) && Number(word) <= 255) codes.push(Number(word));
            else {
              const signal = signalName(word);
              if (signal === undefined || /^[0-9]+$/.test(word)) {
                throw entryError(
                  ctx,
                  entry,
                  `"${word}" is neither an exit code (0…255) nor a signal name; use e.g. SuccessExitStatus=143 SIGTERM`,
                );
              }
              signals.push(signal);
            }
          }
        }
        break;
      default:
        throw lineError(ctx, entry.line, unknownServiceKey(key));
    }
  }

  const resolvedType: ServiceType = type ?? (exec.ExecStart.length > 0 ? 'simple' : 'oneshot');
  checkExecStart(ctx, resolvedType, exec, headerLine);

  const commands = (key: ExecKey): ExecCommand[] => exec[key].map((c) => c.command);
  return {
    ...parseSupervision(ctx, unitEntries, entries),
    type: resolvedType,
    execStartPre: commands('ExecStartPre'),
    execStart: commands('ExecStart'),
    execStartPost: commands('ExecStartPost'),
    execStop: commands('ExecStop'),
    execStopPost: commands('ExecStopPost'),
    execReload: commands('ExecReload'),
    killSignal,
    killMode,
    environment: Object.fromEntries(environment),
    environmentFiles,
    ...(workingDirectory === undefined ? {} : { workingDirectory }),
    ...(user === undefined ? {} : { user }),
    ...(group === undefined ? {} : { group }),
    remainAfterExit,
    successExitStatus: { codes: [...new Set(codes)], signals: [...new Set(signals)] },
  };
}

/** systemd's rules on the number of ExecStart= lines per Type=. */
function checkExecStart(
  ctx: SectionContext,
  type: ServiceType,
  exec: Record<ExecKey, { entry: UnitEntry }[]>,
  headerLine: number,
): void {
  const starts = exec.ExecStart;
  if (type === 'oneshot') {
    if (starts.length === 0 && exec.ExecStop.length === 0) {
      throw lineError(
        ctx,
        headerLine,
        '[Service] has neither ExecStart= nor ExecStop=; add ExecStart=/absolute/path/to/program',
      );
    }
    return;
  }
  if (starts.length === 0) {
    throw lineError(
      ctx,
      headerLine,
      `[Service] has no ExecStart=; Type=${type} needs exactly one ExecStart= (Type=oneshot allows none or several)`,
    );
  }
  const second = starts[1];
  if (second !== undefined) {
    throw lineError(
      ctx,
      second.entry.line,
      `ExecStart= gives ${starts.length} commands; Type=${type} allows exactly one (use Type=oneshot to run several commands in turn, or ExecStartPre=/ExecStartPost=)`,
    );
  }
}

function unknownServiceKey(key: string): string {
  const known = [...SERVICE_KEYS];
  if (SYSTEMD_ONLY_KEYS.has(key)) {
    return unknownKeyMessage('Service', key, known, {
      unsupported: `systemd key "${key}" is not supported by fleetts`,
    });
  }
  if (key === 'Image' || key === 'PublishPort' || key === 'Volume') {
    return unknownKeyMessage('Service', key, known, {
      unsupported: `"${key}" is a [Container] key, not a [Service] key; run a container with a [Container] section instead of [Service]`,
    });
  }
  return unknownKeyMessage('Service', key, known).replace('; known keys:', '; supported keys:');
}

function isExecKey(key: string): key is ExecKey {
  return (EXEC_KEYS as readonly string[]).includes(key);
}

/** One Exec line's commands (several when separated by a `;` word, as systemd allows). */
function execCommands(ctx: SectionContext, entry: UnitEntry): ExecCommand[] {
  try {
    return parseExecLines(entry.value);
  } catch (error) {
    throw rethrowAsEntryError(ctx, entry, error);
  }
}

/** Environment= assignments of one line; a bad one names the entry. */
export function environmentOf(ctx: SectionContext, entry: UnitEntry): Record<string, string> {
  try {
    return parseEnvironmentAssignments(entry.value);
  } catch (error) {
    throw rethrowAsEntryError(ctx, entry, error);
  }
}
