import test from 'ava';
import {
  asMachineId,
  asUnitHash,
  asUnitName,
  NO_PLACEMENT,
  type ActiveState,
  type UnitStatus,
} from '../../src/cluster/types.js';
import { holdUnsafeStarts } from '../../src/engine/hold-starts.js';
import type { MachineRecord } from '../../src/registry/registry.js';
import { makePlan, type Decision } from '../../src/scheduler/plan.js';

const H = asUnitHash('h');
const live = new Map(['m1', 'm2'].map((m) => [asMachineId(m), {} as MachineRecord]));
const status = (unit: string, machine: string, active: ActiveState): UnitStatus => ({
  unit: asUnitName(unit),
  machine: asMachineId(machine),
  hash: H,
  load: 'loaded',
  active,
  sub: 'running',
  since: '2026-01-01T00:00:00Z',
});
const assign = (unit: string, machine: string, target: 'launched' | 'loaded' = 'launched'): Decision => ({
  kind: 'assign',
  unit: asUnitName(unit),
  machine: asMachineId(machine),
  hash: H,
  target,
  reason: 'r',
});
const unit = (name: string, global = false) => ({
  name: asUnitName(name),
  hash: H,
  target: 'launched' as const,
  placement: { ...NO_PLACEMENT, global },
});

const cases: [string, UnitStatus[], Decision, boolean, boolean?][] = [
  [
    'still active on another live machine: held',
    [status('a.unit', 'm1', 'active')],
    assign('a.unit', 'm2'),
    true,
  ],
  ['deactivating elsewhere: held', [status('a.unit', 'm1', 'deactivating')], assign('a.unit', 'm2'), true],
  ['activating elsewhere: held', [status('a.unit', 'm1', 'activating')], assign('a.unit', 'm2'), true],
  ['stopped elsewhere: goes', [status('a.unit', 'm1', 'inactive')], assign('a.unit', 'm2'), false],
  ['failed elsewhere: goes', [status('a.unit', 'm1', 'failed')], assign('a.unit', 'm2'), false],
  [
    'active on a machine that is gone: goes',
    [status('a.unit', 'm9', 'active')],
    assign('a.unit', 'm2'),
    false,
  ],
  ['active on the same machine: goes', [status('a.unit', 'm2', 'active')], assign('a.unit', 'm2'), false],
  [
    'loaded target does not start anything: goes',
    [status('a.unit', 'm1', 'active')],
    assign('a.unit', 'm2', 'loaded'),
    false,
  ],
  [
    'global units run everywhere: goes',
    [status('a.unit', 'm1', 'active')],
    assign('a.unit', 'm2'),
    false,
    true,
  ],
];

for (const [title, statuses, decision, held, global] of cases) {
  test(`holdUnsafeStarts: ${title}`, (t) => {
    const unassign: Decision = {
      kind: 'unassign',
      unit: asUnitName('a.unit'),
      machine: asMachineId('m1'),
      reason: 'moved',
    };
    const plan = makePlan([unassign, decision], 0);
    const out = holdUnsafeStarts(plan, { machines: live, statuses }, { units: [unit('a.unit', global)] });
    t.is(out.held.length, held ? 1 : 0);
    t.deepEqual(
      out.plan.decisions.map((d) => d.kind),
      held ? ['unassign'] : ['unassign', 'assign'],
      'the unassignment always goes ahead',
    );
    if (held) t.deepEqual(out.held[0]?.runningOn, [asMachineId('m1')]);
  });
}
