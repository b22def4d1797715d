// ServiceSpec (parsed at submit, host-independent) → ProcessUnitConfig (final, for this host): the
// host's specifiers (%H %m %b), EnvironmentFile= read now, `$VAR` expansion in Exec lines. The agent
// calls this just before `runtime.start`; a problem becomes the unit's failure reason.

import {
  buildUnitEnvironment,
  type RuntimeConfigInput,
  type RuntimeConfigResult,
} from './unit-environment.js';
import { expandExecArgs, type ExecCommand } from '../unit/exec.js';
import type { ServiceSpec } from '../unit/service.js';
import { expandSpecifiers } from '../unit/specifiers.js';
import type { ExecStep, ProcessUnitConfig, RestartPolicy } from './runtime.js';

export type ProcessConfigInput = RuntimeConfigInput<ServiceSpec>;

export type ProcessConfigResult = RuntimeConfigResult<ProcessUnitConfig>;

/** Builds the runtime config; a missing EnvironmentFile= or a bad specifier is an `error` with a reason. */
export function processConfigFromServiceSpec(input: ProcessConfigInput): ProcessConfigResult {
  const { spec, specifiers } = input;
  const warnings: string[] = [];
  try {
    const built = buildUnitEnvironment(input, warnings);
    if (built.kind === 'error') return built;
    const env = built.env;
    const steps = (key: string, commands: readonly ExecCommand[]): ExecStep[] =>
      commands.map((cmd) => {
        const expanded: ExecCommand = {
          ...cmd,
          path: expandSpecifiers(cmd.path, specifiers, { where: `${key}=` }),
          argv: cmd.argv.map((w) => expandSpecifiers(w, specifiers, { where: `${key}=` })),
        };
        // $MAINPID exists once the main process does (as in systemd: ExecStartPost=, ExecReload=,
        // ExecStop=, ExecStopPost=): such a line is expanded by the supervisor when it runs.
        if (RUNTIME_VAR_STEPS.has(key) && !cmd.noExpand && refersToMainPid(expanded.argv))
          return {
            path: expanded.path,
            argv: expanded.argv,
            ignoreFailure: cmd.ignoreFailure,
            privileged: cmd.privileged,
            expandAtLaunch: true,
          };
        return {
          path: expanded.path,
          argv: expandExecArgs(expanded, env),
          ignoreFailure: cmd.ignoreFailure,
          privileged: cmd.privileged,
        };
      });
    const wd = spec.workingDirectory;
    const config: ProcessUnitConfig = {
      kind: 'process',
      unit: input.unit,
      hash: input.hash,
      type: spec.type,
      execStartPre: steps('ExecStartPre', spec.execStartPre),
      execStart: steps('ExecStart', spec.execStart),
      execStartPost: steps('ExecStartPost', spec.execStartPost),
      execStop: steps('ExecStop', spec.execStop),
      execStopPost: steps('ExecStopPost', spec.execStopPost),
      execReload: steps('ExecReload', spec.execReload),
      // fleetts has no watchdog, so on-watchdog never fires.
      restart: spec.restart === 'on-watchdog' ? 'no' : (spec.restart satisfies RestartPolicy | 'on-watchdog'),
      restartSecMs: spec.restartMs,
      startLimitBurst: spec.startLimitBurst,
      startLimitIntervalMs: spec.startLimitIntervalMs,
      timeoutStartMs: finiteOrZero(spec.timeoutStartMs),
      timeoutStopMs: finiteOrZero(spec.timeoutStopMs),
      killSignal: spec.killSignal,
      killMode: spec.killMode,
      env,
      remainAfterExit: spec.remainAfterExit,
      successExitStatus: spec.successExitStatus,
      ...(wd === undefined
        ? {}
        : {
            workingDirectory: {
              path: expandSpecifiers(wd.path, specifiers, { where: 'WorkingDirectory=' }),
              optional: wd.optional,
            },
          }),
      ...(spec.user === undefined
        ? {}
        : { user: expandSpecifiers(spec.user, specifiers, { where: 'User=' }) }),
      ...(spec.group === undefined
        ? {}
        : { group: expandSpecifiers(spec.group, specifiers, { where: 'Group=' }) }),
    };
    return { kind: 'ok', config, warnings };
  } catch (err) {
    return { kind: 'error', reason: err instanceof Error ? err.message : String(err) };
  }
}

const RUNTIME_VAR_STEPS = new Set(['ExecStartPost', 'ExecReload', 'ExecStop', 'ExecStopPost']);

/** Pure: whether some word refers to $MAINPID or ${MAINPID} (not to $$MAINPID, a literal). */
function refersToMainPid(argv: readonly string[]): boolean {
  return argv.some((w) => /(?:^|[^$])(?:\$\$)*\$(?:MAINPID\b|\{MAINPID\})/.test(w));
}

/** The runtime's "no timeout" is 0; the parser's is Infinity (which JSON cannot carry). */
function finiteOrZero(ms: number): number {
  return Number.isFinite(ms) ? ms : 0;
}
