// The announcer's check state machine (pure): when a backend is announced and withdrawn.
import test from 'ava';
import {
  type CheckAction,
  type CheckOutcome,
  type CheckState,
  type CheckThresholds,
  INITIAL_CHECK_STATE,
  nextCheckState,
} from '../../src/discovery/check-state.js';

const P: CheckOutcome = { kind: 'pass', detail: 'HTTP 200' };
const F: CheckOutcome = { kind: 'fail', reason: 'ECONNREFUSED' };

interface Row {
  readonly name: string;
  readonly thresholds: CheckThresholds;
  readonly outcomes: readonly CheckOutcome[];
  /** The action after each outcome. */
  readonly actions: readonly CheckAction[];
  readonly final: CheckState;
}

const rows: readonly Row[] = [
  {
    name: 'defaults: one pass announces, one failure withdraws',
    thresholds: { rise: 1, fall: 1 },
    outcomes: [P, P, F, F, P],
    actions: ['announce', 'none', 'withdraw', 'none', 'announce'],
    final: { kind: 'up', failures: 0 },
  },
  {
    name: 'a first failure withdraws (a key left by a previous process must go)',
    thresholds: { rise: 1, fall: 1 },
    outcomes: [F, F, P],
    actions: ['withdraw', 'none', 'announce'],
    final: { kind: 'up', failures: 0 },
  },
  {
    name: 'fall 3: two failures are tolerated, the third withdraws',
    thresholds: { rise: 1, fall: 3 },
    outcomes: [P, F, F, P, F, F, F],
    actions: ['announce', 'none', 'none', 'none', 'none', 'none', 'withdraw'],
    final: { kind: 'down', passes: 0 },
  },
  {
    name: 'rise 2: the first pass at start does not announce but withdraws a stale key',
    thresholds: { rise: 2, fall: 1 },
    outcomes: [P, P, F, P, F, P, P],
    actions: ['withdraw', 'announce', 'withdraw', 'none', 'none', 'none', 'announce'],
    final: { kind: 'up', failures: 0 },
  },
  {
    name: 'a pass between failures resets the failure count',
    thresholds: { rise: 1, fall: 2 },
    outcomes: [P, F, P, F, P],
    actions: ['announce', 'none', 'none', 'none', 'none'],
    final: { kind: 'up', failures: 0 },
  },
];

for (const row of rows) {
  test(`check state: ${row.name}`, (t) => {
    let state: CheckState = INITIAL_CHECK_STATE;
    const actions: CheckAction[] = [];
    for (const outcome of row.outcomes) {
      const step = nextCheckState(state, outcome, row.thresholds);
      actions.push(step.action);
      state = step.state;
    }
    t.deepEqual(actions, row.actions);
    t.deepEqual(state, row.final);
  });
}
