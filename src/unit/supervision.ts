// How fleetts supervises a unit's main process or container: restart policy, rate limit and
// timeouts, with systemd's keys and defaults. Shared by [Service] (service.ts) and [Container]
// (container.ts); StartLimit* are also read from [Unit], where current systemd puts them.

import type { UnitEntry } from './unit-file.js';
import {
  checkValue,
  enumSchema,
  integerValue,
  timeSpanValue,
  valueSchema,
  ValueProblem,
  type SectionContext,
} from './section-values.js';

export const RESTART_POLICIES = [
  'no',
  'on-success',
  'on-failure',
  'on-abnormal',
  'on-abort',
  'on-watchdog',
  'always',
] as const;
export type RestartPolicy = (typeof RESTART_POLICIES)[number];

/** Times are in milliseconds; Infinity means "no timeout". */
export interface Supervision {
  /** Restart=: when the main process (or container) is restarted after it exits. */
  readonly restart: RestartPolicy;
  /** RestartSec=: the pause before a restart. */
  readonly restartMs: number;
  /** StartLimitBurst=: starts allowed within startLimitIntervalMs before the unit is failed. */
  readonly startLimitBurst: number;
  /** StartLimitIntervalSec=: the rate-limit window; 0 disables rate limiting (as systemd). */
  readonly startLimitIntervalMs: number;
  /** TimeoutStartSec=: how long starting may take (Infinity for TimeoutStartSec=0/infinity). */
  readonly timeoutStartMs: number;
  /** TimeoutStopSec=: how long after the stop signal before SIGKILL. */
  readonly timeoutStopMs: number;
}

/** systemd's defaults (DefaultTimeoutStartSec=90s, DefaultRestartSec=100ms, 5 starts per 10s…). */
export const DEFAULT_SUPERVISION: Supervision = {
  restart: 'no',
  restartMs: 100,
  startLimitBurst: 5,
  startLimitIntervalMs: 10_000,
  timeoutStartMs: 90_000,
  timeoutStopMs: 90_000,
};

/** Keys read into Supervision from the [Service] or [Container] section. */
export const SUPERVISION_KEYS = [
  'Restart',
  'RestartSec',
  'StartLimitBurst',
  'StartLimitIntervalSec',
  'StartLimitInterval',
  'TimeoutStartSec',
  'TimeoutStopSec',
  'TimeoutSec',
] as const;

/** Keys read into Supervision from [Unit]; systemd moved them there, and still accepts both. */
export const UNIT_SUPERVISION_KEYS = ['StartLimitBurst', 'StartLimitIntervalSec', 'StartLimitInterval'];

const restartValue = enumSchema(RESTART_POLICIES);
const restartSecValue = timeSpanValue({ allowInfinity: false });
const timeoutValue = timeSpanValue({ zeroIsInfinity: true });
const intervalValue = timeSpanValue({ allowInfinity: false });
const burstValue = integerValue(0, 1_000_000);

/**
 * The supervision settings from entries of [Unit] (StartLimit* only) and of the run section,
 * applied in file order so that the last assignment wins wherever it is. An empty value resets
 * the setting to its default.
 */
export function parseSupervision(
  ctx: SectionContext,
  unitEntries: readonly UnitEntry[],
  sectionEntries: readonly UnitEntry[],
): Supervision {
  const entries = [
    ...unitEntries.filter((e) => UNIT_SUPERVISION_KEYS.includes(e.key)),
    ...sectionEntries.filter((e) => (SUPERVISION_KEYS as readonly string[]).includes(e.key)),
  ].sort((a, b) => a.line - b.line);
  let s: Supervision = DEFAULT_SUPERVISION;
  for (const entry of entries) {
    const reset = entry.value === '';
    switch (entry.key) {
      case 'Restart':
        s = { ...s, restart: reset ? DEFAULT_SUPERVISION.restart : checkValue(ctx, entry, restartValue) };
        break;
      case 'RestartSec':
        s = {
          ...s,
          restartMs: reset ? DEFAULT_SUPERVISION.restartMs : checkValue(ctx, entry, restartSecValue),
        };
        break;
      case 'StartLimitBurst':
        s = {
          ...s,
          startLimitBurst: reset ? DEFAULT_SUPERVISION.startLimitBurst : checkValue(ctx, entry, burstValue),
        };
        break;
      case 'StartLimitIntervalSec':
      case 'StartLimitInterval':
        s = {
          ...s,
          startLimitIntervalMs: reset
            ? DEFAULT_SUPERVISION.startLimitIntervalMs
            : checkValue(ctx, entry, intervalValue),
        };
        break;
      case 'TimeoutStartSec':
        s = {
          ...s,
          timeoutStartMs: reset ? DEFAULT_SUPERVISION.timeoutStartMs : checkValue(ctx, entry, timeoutValue),
        };
        break;
      case 'TimeoutStopSec':
        s = {
          ...s,
          timeoutStopMs: reset ? DEFAULT_SUPERVISION.timeoutStopMs : checkValue(ctx, entry, timeoutValue),
        };
        break;
      case 'TimeoutSec': {
        // systemd: TimeoutSec= sets both TimeoutStartSec= and TimeoutStopSec=.
        const start = reset ? DEFAULT_SUPERVISION.timeoutStartMs : checkValue(ctx, entry, timeoutValue);
        const stop = reset ? DEFAULT_SUPERVISION.timeoutStopMs : start;
        s = { ...s, timeoutStartMs: start, timeoutStopMs: stop };
        break;
      }
    }
  }
  return s;
}

/** Linux signal numbers (x86/arm), as systemd's signal_from_string reads names and numbers. */
const SIGNALS: readonly (readonly [string, number])[] = [
  ['SIGHUP', 1],
  ['SIGINT', 2],
  ['SIGQUIT', 3],
  ['SIGILL', 4],
  ['SIGTRAP', 5],
  ['SIGABRT', 6],
  ['SIGBUS', 7],
  ['SIGFPE', 8],
  ['SIGKILL', 9],
  ['SIGUSR1', 10],
  ['SIGSEGV', 11],
  ['SIGUSR2', 12],
  ['SIGPIPE', 13],
  ['SIGALRM', 14],
  ['SIGTERM', 15],
  ['SIGSTKFLT', 16],
  ['SIGCHLD', 17],
  ['SIGCONT', 18],
  ['SIGSTOP', 19],
  ['SIGTSTP', 20],
  ['SIGTTIN', 21],
  ['SIGTTOU', 22],
  ['SIGURG', 23],
  ['SIGXCPU', 24],
  ['SIGXFSZ', 25],
  ['SIGVTALRM', 26],
  ['SIGPROF', 27],
  ['SIGWINCH', 28],
  ['SIGIO', 29],
  ['SIGPWR', 30],
  ['SIGSYS', 31],
];

/** A signal as `SIGTERM`, `TERM` or `15` (any case) → its canonical name, `SIGTERM`; else undefined. */
export function signalName(value: string): string | undefined {
  const upper = value.toUpperCase();
  const named = upper.startsWith('SIG') ? upper : `SIG${upper}`;
  const found = SIGNALS.find(([name, number]) => name === named || String(number) === value);
  return found?.[0];
}

export const signalValue = valueSchema((value) => {
  const name = signalName(value);
  if (name === undefined) {
    throw new ValueProblem('not a signal; use a name such as SIGTERM (or TERM) or a number such as 15');
  }
  return name;
});
