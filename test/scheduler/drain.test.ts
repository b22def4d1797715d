// A drained machine (`fleetts drain`) in the pure scheduler: no new placements; only the units the
// engine releases leave it, each under its own constraints; `plan` explains it as drained.
import test from 'ava';
import { asMachineId, asUnitName, type MachineId, type UnitName } from '../../src/cluster/types.js';
import type { ClusterView } from '../../src/cluster/view.js';
import { explainUnit } from '../../src/scheduler/explain.js';
import { schedule } from '../../src/scheduler/schedule.js';
import { assigned, lines, machine, pass, placements, unit, view } from './_cluster.js';

const M = [machine('m1'), machine('m2'), machine('m3')];

function drained(v: ClusterView, id: string, released: string[] = []): ClusterView {
  const drains = new Map<MachineId, ReadonlySet<UnitName>>([
    [asMachineId(id), new Set(released.map((n) => asUnitName(n)))],
  ]);
  return { ...v, drains };
}

test('a drained machine takes no new placements, and keeps what it has until released', (t) => {
  const names = ['a.unit', 'b.unit', 'c.unit', 'd.unit', 'e.unit'];
  const base = view(M, [...names.map((n) => unit(n)), unit('old.unit')], [assigned('old.unit', 'm3')]);
  const { plan, assignments } = pass(drained(base, 'm3'));
  const on = placements(assignments);
  t.deepEqual(on['old.unit'], ['m3'], 'old.unit stays on m3');
  t.deepEqual(
    names.filter((n) => on[n]?.includes('m3') === true),
    [],
    'nothing new is placed on m3',
  );
  t.is(plan.summary.assign, names.length);
  // Without the drain, m3 takes its share.
  const free = placements(pass(base).assignments);
  t.true(names.some((n) => free[n]?.includes('m3') === true));
});

test('a released unit moves off the drained machine under its own constraints, its sidekick with it', (t) => {
  const v = drained(
    view(
      M,
      [
        unit('web@1.unit', { conflicts: ['web@*.unit'] }),
        unit('web@2.unit', { conflicts: ['web@*.unit'] }),
        unit('side@1.unit', { machineOf: ['web@1.unit'] }),
        unit('other.unit'),
      ],
      [
        assigned('web@1.unit', 'm3'),
        assigned('side@1.unit', 'm3'),
        assigned('web@2.unit', 'm1'),
        assigned('other.unit', 'm3'),
      ],
    ),
    'm3',
    ['web@1.unit'],
  );
  const plan = schedule(v);
  t.deepEqual(lines(plan), [
    'unassign side@1.unit m3: moves with web@1.unit (MachineOf=web@1.unit)',
    'assign side@1.unit m2: placed with web@1.unit on m2 (MachineOf=web@1.unit)',
    'unassign web@1.unit m3: machine m3 is drained (fleetts drain): the unit moves off it',
    'assign web@1.unit m2: machine m2 is the only one of 3 that fits',
  ]);
  const moved = plan.decisions.find((d) => d.kind === 'assign' && d.unit === 'web@1.unit');
  t.like(moved, { movedFrom: 'm3' });
});

test('a released global unit stops on the drained machine and is not placed there again', (t) => {
  const units = [unit('mon.unit', { global: true }), unit('new-global.unit', { global: true })];
  const v = drained(
    view(M, units, [assigned('mon.unit', 'm1'), assigned('mon.unit', 'm2'), assigned('mon.unit', 'm3')]),
    'm3',
    ['mon.unit'],
  );
  const { plan, assignments } = pass(v);
  t.deepEqual(placements(assignments), {
    'mon.unit': ['m1', 'm2'],
    'new-global.unit': ['m1', 'm2'],
  });
  t.true(
    lines(plan).includes(
      'unassign mon.unit m3: machine m3 is drained (fleetts drain): a global unit stops there',
    ),
  );
  // Not yet released: it stays.
  t.deepEqual(placements(pass(drained(v, 'm3')).assignments)['mon.unit'], ['m1', 'm2', 'm3']);
});

test('a released unit pinned to the drained machine waits, unplaced, and says why', (t) => {
  const v = drained(view(M, [unit('pin.unit', { machineId: 'm3' })], [assigned('pin.unit', 'm3')]), 'm3', [
    'pin.unit',
  ]);
  t.deepEqual(lines(schedule(v)), [
    'unassign pin.unit m3: machine m3 is drained (fleetts drain): the unit moves off it',
    'unschedulable pin.unit: waits for machine m3 (MachineID=m3), which is drained (fleetts undrain m3)',
  ]);
});

test('a released unit that fits no other machine is unschedulable, with drained among the reasons', (t) => {
  const v = drained(
    view(
      M,
      [
        unit('x@1.unit', { conflicts: ['x@*'] }),
        unit('x@2.unit', { conflicts: ['x@*'] }),
        unit('x@3.unit', { conflicts: ['x@*'] }),
      ],
      [assigned('x@1.unit', 'm1'), assigned('x@2.unit', 'm2'), assigned('x@3.unit', 'm3')],
    ),
    'm3',
    ['x@3.unit'],
  );
  const plan = schedule(v);
  const report = plan.decisions.find((d) => d.kind === 'unschedulable');
  t.like(report, {
    unit: 'x@3.unit',
    summary: 'no machine fits (rejected by drained on 1 machine, conflicts on 2 machines)',
  });
  t.is(
    report?.kind === 'unschedulable' ? report.reasons.m3 : undefined,
    'machine m3 is drained (fleetts drain): it takes no new placements',
  );
});

test('plan explains a drained machine as drained, also for a unit still on it', (t) => {
  const v = drained(view(M, [unit('a.unit')], [assigned('a.unit', 'm3')]), 'm3');
  const e = explainUnit(v, asUnitName('a.unit'));
  t.deepEqual(e.placedOn, ['m3']);
  t.deepEqual(
    e.machines.map((m) => [m.machine, m.fits, m.reason, m.rejectedBy ?? null]),
    [
      ['m1', true, 'fits (0 units)', null],
      ['m2', true, 'fits (0 units)', null],
      ['m3', false, 'machine m3 is drained (fleetts drain): it takes no new placements', 'drained'],
    ],
  );
});
