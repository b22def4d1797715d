// The announcer's health state as a pure state machine: health-check outcomes in, whether to
// announce or withdraw out. haproxy's rise/fall counts; the defaults (1/1) favour fast failover.

export type CheckOutcome =
  { readonly kind: 'pass'; readonly detail: string } | { readonly kind: 'fail'; readonly reason: string };

/**
 * `unknown`: no check has completed yet (a key from a previous process may still exist).
 * `up`: announced; `failures` consecutive failed checks so far (fewer than `fall`).
 * `down`: not announced; `passes` consecutive passed checks so far (fewer than `rise`).
 */
export type CheckState =
  | { readonly kind: 'unknown' }
  | { readonly kind: 'up'; readonly failures: number }
  | { readonly kind: 'down'; readonly passes: number };

export interface CheckThresholds {
  /** Consecutive passes that make a down backend up (announce). At least 1. */
  readonly rise: number;
  /** Consecutive failures that make an up backend down (withdraw). At least 1. */
  readonly fall: number;
}

export const DEFAULT_THRESHOLDS: CheckThresholds = { rise: 1, fall: 1 };

export type CheckAction = 'announce' | 'withdraw' | 'none';

export interface CheckStep {
  readonly state: CheckState;
  /** What the announcer must do now. `withdraw` from `unknown` clears a stale key at start. */
  readonly action: CheckAction;
}

export const INITIAL_CHECK_STATE: CheckState = { kind: 'unknown' };

export function nextCheckState(
  state: CheckState,
  outcome: CheckOutcome,
  thresholds: CheckThresholds = DEFAULT_THRESHOLDS,
): CheckStep {
  const pass = outcome.kind === 'pass';
  switch (state.kind) {
    case 'unknown':
      if (pass && thresholds.rise <= 1) return { state: { kind: 'up', failures: 0 }, action: 'announce' };
      return { state: { kind: 'down', passes: pass ? 1 : 0 }, action: 'withdraw' };
    case 'up':
      if (pass) return { state: { kind: 'up', failures: 0 }, action: 'none' };
      if (state.failures + 1 >= thresholds.fall)
        return { state: { kind: 'down', passes: 0 }, action: 'withdraw' };
      return { state: { kind: 'up', failures: state.failures + 1 }, action: 'none' };
    case 'down':
      if (!pass) return { state: { kind: 'down', passes: 0 }, action: 'none' };
      if (state.passes + 1 >= thresholds.rise)
        return { state: { kind: 'up', failures: 0 }, action: 'announce' };
      return { state: { kind: 'down', passes: state.passes + 1 }, action: 'none' };
  }
}
