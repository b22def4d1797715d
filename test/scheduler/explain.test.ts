// `explainUnit`: the per-machine feasibility table behind `fleetts plan UNIT`.

import test from 'ava';
import { asUnitName } from '../../src/cluster/types.js';
import { UsageError } from '../../src/lib/errors.js';
import { explainUnit } from '../../src/scheduler/explain.js';
import { assigned, machine, unit, view } from './_cluster.js';

const cluster = view(
  [
    machine('m1', { zone: 'a' }),
    machine('m2', { zone: 'b' }),
    machine('m3', { zone: 'a' }),
    machine('m4', { zone: 'a' }),
  ],
  [
    unit('web@1.unit', { conflicts: ['web@*.unit'], machineMetadata: { zone: ['a'] } }),
    unit('web@2.unit', { conflicts: ['web@*.unit'] }),
    unit('old.unit'),
    unit('x.unit'),
    unit('y.unit'),
    unit('new.unit', { replaces: ['old.unit'], machineMetadata: { zone: ['a'] } }),
  ],
  [
    assigned('web@2.unit', 'm3'),
    assigned('old.unit', 'm4'),
    assigned('x.unit', 'm1'),
    assigned('y.unit', 'm1'),
  ],
);

test('explains every machine: why not, or its scores and rank', (t) => {
  const e = explainUnit(cluster, asUnitName('web@1.unit'));
  t.deepEqual(e.placedOn, ['m4']);
  t.deepEqual(
    e.decisions.map((d) => (d.kind === 'unschedulable' ? d.summary : `${d.kind} ${d.machine}: ${d.reason}`)),
    ['assign m4: machine m4 has the fewest units (1) of the 2 machines that fit'],
  );
  t.deepEqual(
    e.machines.map((m) => [m.machine, m.fits, m.reason, m.rank ?? null]),
    [
      ['m1', true, 'fits (2 units)', 2],
      ['m2', false, 'metadata zone=b does not match zone=a', null],
      ['m3', false, 'conflicts with web@2.unit on m3 (Conflicts=web@*.unit)', null],
      ['m4', true, 'fits (1 unit)', 1],
    ],
  );
  t.is(e.machines[1]?.rejectedBy, 'metadata');
  t.deepEqual(e.machines[3]?.scores, { displaces: 0, units: 1 });
});

test('shows what a Replaces= unit would displace where', (t) => {
  const e = explainUnit(cluster, asUnitName('new.unit'));
  t.deepEqual(e.placedOn, ['m3']);
  t.deepEqual(
    e.machines.map((m) => [m.machine, m.reason, m.rank ?? null]),
    [
      ['m1', 'fits (2 units)', 2],
      ['m2', 'metadata zone=b does not match zone=a', null],
      ['m3', 'fits (1 unit)', 1],
      ['m4', 'fits (2 units; would displace old.unit)', 3],
    ],
  );
});

test('reports a blocker that holds on every machine', (t) => {
  const e = explainUnit(
    view([machine('m1')], [unit('pin.unit', { machineId: 'm7' })]),
    asUnitName('pin.unit'),
  );
  t.is(e.blocker, 'waits for machine m7 (MachineID=m7), which is not registered');
  t.deepEqual(
    e.machines.map((m) => m.reason),
    ['MachineID=m7 pins it to another machine'],
  );
});

test('an inactive unit is explained as not placed; an unknown one is a usage error', (t) => {
  const v = view([machine('m1')], [unit('off.unit', {}, 'inactive')]);
  t.like(explainUnit(v, asUnitName('off.unit')), {
    blocker: 'target state is inactive: the unit is not placed',
    machines: [],
  });
  const error = t.throws(() => explainUnit(v, asUnitName('nope.unit')), { instanceOf: UsageError });
  t.is(error?.message, 'unit nope.unit is not submitted');
});
