// Table tests of the pure scheduler: fleet's scheduling scenarios, each asserting the decisions with
// their reasons, the placements once applied, and that a second pass over the result changes nothing.

import test from 'ava';
import type { Assignment } from '../../src/cluster/types.js';
import type { ClusterView } from '../../src/cluster/view.js';
import { isSettled, planChanges } from '../../src/scheduler/plan.js';
import { schedule } from '../../src/scheduler/schedule.js';
import { assigned, lines, machine, pass, placements, unit, view } from './_cluster.js';

const m1 = machine('m1');
const m2 = machine('m2');
const m3 = machine('m3');
const m4 = machine('m4');
const web = (i: number) => unit(`web@${i}.unit`, { conflicts: ['web@*.unit'] });

interface Case {
  readonly title: string;
  readonly view: ClusterView;
  readonly plan: readonly string[];
  /** unit → machines after the plan is applied (units left out are unplaced). */
  readonly after: Readonly<Record<string, readonly string[]>>;
}

const cases: Case[] = [
  {
    title: 'spreads 3 conflicting units over 3 hosts',
    view: view([m1, m2, m3], [web(1), web(2), web(3)]),
    plan: [
      'assign web@1.unit m1: machine m1 has the fewest units (0)',
      'assign web@2.unit m2: machine m2 has the fewest units (0) of the 2 machines that fit',
      'assign web@3.unit m3: machine m3 is the only one of 3 that fits',
    ],
    after: { 'web@1.unit': ['m1'], 'web@2.unit': ['m2'], 'web@3.unit': ['m3'] },
  },
  {
    title: 'least-loaded counts units placed earlier in the same pass, ties by machine id',
    view: view(
      [m2, m1],
      [unit('a.unit'), unit('b.unit'), unit('c.unit'), unit('x.unit')],
      [assigned('x.unit', 'm1')],
    ),
    plan: [
      'assign a.unit m2: machine m2 has the fewest units (0)',
      'assign b.unit m1: machine m1 has the fewest units (1)',
      'assign c.unit m2: machine m2 has the fewest units (1)',
    ],
    after: { 'a.unit': ['m2'], 'b.unit': ['m1'], 'c.unit': ['m2'], 'x.unit': ['m1'] },
  },
  {
    title: 'inactive units are not placed and lose their assignments',
    view: view(
      [m1],
      [unit('a.unit', {}, 'inactive'), unit('b.unit', {}, 'inactive')],
      [assigned('a.unit', 'm1')],
    ),
    plan: ['unassign a.unit m1: target state is inactive'],
    after: {},
  },
  {
    title: 'a target or file change updates the assignment in place',
    view: view(
      [m1, m2],
      [unit('a.unit', {}, 'loaded'), unit('b.unit', {}, 'launched', 'h-new')],
      [assigned('a.unit', 'm2', 'launched'), assigned('b.unit', 'm2', 'launched', 'h-old')],
    ),
    plan: [
      'update a.unit m2: target launched → loaded',
      'update b.unit m2: unit file changed (h-old → h-new)',
    ],
    after: { 'a.unit': ['m2'], 'b.unit': ['m2'] },
  },
  {
    title: 'MachineID pins a unit even to the most loaded machine',
    view: view([m1, m2], [unit('pin.unit', { machineId: 'm2' })], [assigned('x.unit', 'm2')]),
    plan: [
      'assign pin.unit m2: pinned to machine m2 (MachineID=m2)',
      'unassign x.unit m2: unit was destroyed',
    ],
    after: { 'pin.unit': ['m2'] },
  },
  {
    title: 'MachineID accepts a unique prefix of the machine id',
    view: view([machine('abc123'), machine('def456')], [unit('pin.unit', { machineId: 'abc' })]),
    plan: ['assign pin.unit abc123: pinned to machine abc123 (MachineID=abc)'],
    after: { 'pin.unit': ['abc123'] },
  },
  {
    title: 'MachineID with an ambiguous prefix is unschedulable',
    view: view([machine('ab1'), machine('ab2')], [unit('pin.unit', { machineId: 'ab' })]),
    plan: ['unschedulable pin.unit: MachineID=ab matches several machines (ab1, ab2); give the full id'],
    after: {},
  },
  {
    title: 'a unit pinned to a gone machine waits for it and is never moved elsewhere',
    view: view([m1, m2], [unit('pin.unit', { machineId: 'm9' })], [assigned('pin.unit', 'm9')]),
    plan: [
      'unassign pin.unit m9: machine m9 is gone (lease expired)',
      'unschedulable pin.unit: waits for machine m9 (MachineID=m9), which is not registered',
    ],
    after: {},
  },
  {
    title: 'MachineMetadata: values of a key are ORed, keys ANDed',
    view: view(
      [
        machine('m1', { region: 'us-east', disk: 'ssd' }),
        machine('m2', { region: 'eu', disk: 'hdd' }),
        machine('m3', { region: 'ap', disk: 'ssd' }),
        machine('m4', { region: 'eu', disk: 'ssd' }),
      ],
      [
        unit('db.unit', { machineMetadata: { region: ['eu', 'ap'], disk: ['ssd'] } }),
        unit('db2.unit', { machineMetadata: { region: ['eu', 'ap'], disk: ['ssd'] } }),
      ],
    ),
    plan: [
      'assign db.unit m3: machine m3 has the fewest units (0) of the 2 machines that fit',
      'assign db2.unit m4: machine m4 has the fewest units (0) of the 2 machines that fit',
    ],
    after: { 'db.unit': ['m3'], 'db2.unit': ['m4'] },
  },
  {
    title: 'metadata values derived from specifiers (web@1) match literally',
    view: view(
      [machine('m1', { serves: 'web@2' }), machine('m2', { serves: 'web@1' })],
      [unit('web@1.unit', { machineMetadata: { serves: ['web@1'] } })],
    ),
    plan: ['assign web@1.unit m2: machine m2 is the only one of 2 that fits'],
    after: { 'web@1.unit': ['m2'] },
  },
  {
    title: 'a unit whose machine metadata changed moves, with the reason',
    view: view(
      [machine('m1', { region: 'us-east' }), machine('m2', { region: 'eu' })],
      [unit('db.unit', { machineMetadata: { region: ['eu'] } })],
      [assigned('db.unit', 'm1')],
    ),
    plan: [
      'unassign db.unit m1: metadata region=us-east does not match region=eu',
      'assign db.unit m2: machine m2 is the only one of 2 that fits',
    ],
    after: { 'db.unit': ['m2'] },
  },
  {
    title: 'MachineOf places followers with their leader, along a chain',
    view: view(
      [m1, m2],
      [
        unit('side.unit', { machineOf: ['web.unit'] }),
        unit('log.unit', { machineOf: ['side.unit'] }),
        unit('other.unit'),
        unit('web.unit'),
      ],
      [assigned('web.unit', 'm2')],
    ),
    plan: [
      'assign log.unit m2: placed with side.unit on m2 (MachineOf=side.unit)',
      'assign other.unit m1: machine m1 has the fewest units (0)',
      'assign side.unit m2: placed with web.unit on m2 (MachineOf=web.unit)',
    ],
    after: { 'log.unit': ['m2'], 'other.unit': ['m1'], 'side.unit': ['m2'], 'web.unit': ['m2'] },
  },
  {
    title: 'MachineOf followers move with their leader',
    view: view(
      [machine('m1', { role: 'old' }), machine('m2', { role: 'web' })],
      [
        unit('web.unit', { machineMetadata: { role: ['web'] } }),
        unit('side.unit', { machineOf: ['web.unit'] }),
      ],
      [assigned('web.unit', 'm1'), assigned('side.unit', 'm1')],
    ),
    plan: [
      'unassign side.unit m1: moves with web.unit (MachineOf=web.unit)',
      'assign side.unit m2: placed with web.unit on m2 (MachineOf=web.unit)',
      'unassign web.unit m1: metadata role=old does not match role=web',
      'assign web.unit m2: machine m2 is the only one of 2 that fits',
    ],
    after: { 'side.unit': ['m2'], 'web.unit': ['m2'] },
  },
  {
    title: 'MachineOf of a missing, inactive or unplaceable leader, and MachineOf cycles',
    view: view(
      [m1],
      [
        unit('a.unit', { machineOf: ['nope.unit'] }),
        unit('b.unit', { machineOf: ['off.unit'] }),
        unit('off.unit', {}, 'inactive'),
        unit('x.unit', { machineOf: ['y.unit'] }),
        unit('y.unit', { machineOf: ['x.unit'] }),
        unit('z.unit', { machineOf: ['x.unit'] }),
      ],
    ),
    plan: [
      'unschedulable a.unit: waits for nope.unit (MachineOf=nope.unit), which is not submitted',
      'unschedulable b.unit: waits for off.unit (MachineOf=off.unit), whose target state is inactive',
      'unschedulable x.unit: MachineOf forms a cycle (x.unit, y.unit)',
      'unschedulable y.unit: MachineOf forms a cycle (x.unit, y.unit)',
      'unschedulable z.unit: waits for x.unit (MachineOf=x.unit), which is not placed',
    ],
    after: {},
  },
  {
    title: 'a follower whose leaders are on different machines is unschedulable',
    view: view(
      [m1, m2],
      [unit('a.unit'), unit('b.unit'), unit('f.unit', { machineOf: ['a.unit', 'b.unit'] })],
      [assigned('a.unit', 'm1'), assigned('b.unit', 'm2')],
    ),
    plan: ['unschedulable f.unit: MachineOf units are on different machines (a.unit on m1; b.unit on m2)'],
    after: { 'a.unit': ['m1'], 'b.unit': ['m2'] },
  },
  {
    title: 'one-way conflicts hold in both directions of placement',
    view: view(
      [m1, m2],
      [
        unit('a.unit', { conflicts: ['b.unit'] }),
        unit('b.unit'),
        unit('c.unit', { conflicts: ['d.unit'] }),
        unit('d.unit'),
      ],
      [assigned('b.unit', 'm1'), assigned('c.unit', 'm2')],
    ),
    plan: [
      'assign a.unit m2: machine m2 is the only one of 2 that fits',
      'assign d.unit m1: machine m1 is the only one of 2 that fits',
    ],
    after: { 'a.unit': ['m2'], 'b.unit': ['m1'], 'c.unit': ['m2'], 'd.unit': ['m1'] },
  },
  {
    title: 'a unit conflicting with a unit already there, after the fact, moves (the later by name)',
    view: view(
      [m1, m2],
      [unit('a.unit'), unit('b.unit', { conflicts: ['a.unit'] })],
      [assigned('a.unit', 'm1'), assigned('b.unit', 'm1')],
    ),
    plan: [
      'unassign b.unit m1: conflicts with a.unit on m1 (Conflicts=a.unit)',
      'assign b.unit m2: machine m2 is the only one of 2 that fits',
    ],
    after: { 'a.unit': ['m1'], 'b.unit': ['m2'] },
  },
  {
    title: 'two new conflicting units: the first by name is placed, the second respects it',
    view: view([m1], [unit('z.unit', { conflicts: ['a.unit'] }), unit('a.unit')]),
    plan: [
      'assign a.unit m1: machine m1 has the fewest units (0)',
      'unschedulable z.unit: no machine fits (rejected by conflicts on 1 machine)',
    ],
    after: { 'a.unit': ['m1'] },
  },
  {
    title: 'Replaces pushes the replaced unit to the other host',
    view: view(
      [machine('m1', { role: 'api' }), m2],
      [
        unit('api-v1.unit'),
        unit('api-v2.unit', { replaces: ['api-v1.unit'], machineMetadata: { role: ['api'] } }),
      ],
      [assigned('api-v1.unit', 'm1')],
    ),
    plan: [
      'unassign api-v1.unit m1: displaced by api-v2.unit (Replaces=api-v1.unit)',
      'assign api-v1.unit m2: machine m2 is the only one of 2 that fits',
      'assign api-v2.unit m1: machine m1 is the only one of 2 that fits; displaces api-v1.unit (Replaces=api-v1.unit)',
    ],
    after: { 'api-v1.unit': ['m2'], 'api-v2.unit': ['m1'] },
  },
  {
    title: 'Replaces does not displace when a machine fits without, even a busier one',
    view: view(
      [m1, m2],
      [unit('old.unit'), unit('new.unit', { replaces: ['old.unit'] }), unit('x.unit'), unit('y.unit')],
      [assigned('old.unit', 'm1'), assigned('x.unit', 'm2'), assigned('y.unit', 'm2')],
    ),
    plan: ['assign new.unit m2: machine m2 is the only one that fits without displacing anything'],
    after: { 'new.unit': ['m2'], 'old.unit': ['m1'], 'x.unit': ['m2'], 'y.unit': ['m2'] },
  },
  {
    title: 'a replaced unit with nowhere else to go is unschedulable, saying who replaced it',
    view: view(
      [m1],
      [unit('old.unit'), unit('new.unit', { replaces: ['old.unit'] })],
      [assigned('old.unit', 'm1')],
    ),
    plan: [
      'assign new.unit m1: machine m1 has the fewest units (1); displaces old.unit (Replaces=old.unit)',
      'unassign old.unit m1: displaced by new.unit (Replaces=old.unit)',
      'unschedulable old.unit: no machine fits (rejected by Replaces on 1 machine)',
    ],
    after: { 'new.unit': ['m1'] },
  },
  {
    title: 'circular Replaces: neither displaces the other, they only conflict',
    view: view(
      [m1],
      [unit('a.unit', { replaces: ['b.unit'] }), unit('b.unit', { replaces: ['a.unit'] })],
      [assigned('b.unit', 'm1')],
    ),
    plan: ['unschedulable a.unit: no machine fits (rejected by Replaces on 1 machine)'],
    after: { 'b.unit': ['m1'] },
  },
  {
    title: 'global units go on every machine that matches, not beside a conflicting unit',
    view: view(
      [machine('m1', { role: 'web' }), machine('m2', { role: 'web' }), machine('m3', { role: 'db' }), m4],
      [
        unit('mon.unit', {
          global: true,
          machineMetadata: { role: ['web', 'db'] },
          conflicts: ['legacy.unit'],
        }),
        unit('legacy.unit', { machineId: 'm2' }),
      ],
    ),
    plan: [
      'assign legacy.unit m2: pinned to machine m2 (MachineID=m2)',
      'assign mon.unit m1: global unit: machine m1 fits',
      'assign mon.unit m3: global unit: machine m3 fits',
    ],
    after: { 'legacy.unit': ['m2'], 'mon.unit': ['m1', 'm3'] },
  },
  {
    title: 'a global unit follows machines: added on a new one, removed where it stopped matching',
    view: view(
      [machine('m1', { role: 'db' }), machine('m2', { role: 'web' }), machine('m3', { role: 'web' })],
      [unit('mon.unit', { global: true, machineMetadata: { role: ['web'] } })],
      [assigned('mon.unit', 'm1'), assigned('mon.unit', 'm2'), assigned('mon.unit', 'm9')],
    ),
    plan: [
      'unassign mon.unit m1: metadata role=db does not match role=web',
      'unassign mon.unit m9: machine m9 is gone (lease expired)',
      'assign mon.unit m3: global unit: machine m3 fits',
    ],
    after: { 'mon.unit': ['m2', 'm3'] },
  },
  {
    title: 'global units that conflict with each other share no machine',
    view: view(
      [m1, m2],
      [unit('a.unit', { global: true, conflicts: ['b.unit'] }), unit('b.unit', { global: true })],
    ),
    plan: [
      'assign a.unit m1: global unit: machine m1 fits',
      'assign a.unit m2: global unit: machine m2 fits',
      'unschedulable b.unit: no machine fits (rejected by conflicts on 2 machines)',
    ],
    after: { 'a.unit': ['m1', 'm2'] },
  },
  {
    title: 'the units of a gone machine are re-placed; the others stay',
    view: view(
      [m1, m2],
      [unit('a.unit'), unit('b.unit'), unit('c.unit')],
      [assigned('a.unit', 'm1'), assigned('b.unit', 'm3'), assigned('c.unit', 'm2')],
    ),
    plan: [
      'unassign b.unit m3: machine m3 is gone (lease expired)',
      'assign b.unit m1: machine m1 has the fewest units (1)',
    ],
    after: { 'a.unit': ['m1'], 'b.unit': ['m1'], 'c.unit': ['m2'] },
  },
  {
    title: 'a duplicate assignment of a non-global unit is removed',
    view: view([m1, m2], [unit('a.unit')], [assigned('a.unit', 'm2'), assigned('a.unit', 'm1')]),
    plan: ['unassign a.unit m2: duplicate assignment: the unit stays on m1'],
    after: { 'a.unit': ['m1'] },
  },
  {
    title: 'no machines at all',
    view: view([], [unit('a.unit')], [assigned('a.unit', 'm1')]),
    plan: [
      'unassign a.unit m1: machine m1 is gone (lease expired)',
      'unschedulable a.unit: no machines are registered',
    ],
    after: {},
  },
];

for (const c of cases) {
  test(c.title, (t) => {
    const { plan, assignments, next } = pass(c.view);
    t.deepEqual(lines(plan), c.plan);
    t.deepEqual(placements(assignments), c.after);
    t.deepEqual(planChanges(schedule(next)), [], 'a second pass changes nothing');
  });
}

test('assign decisions of a move name the machine moved from', (t) => {
  const plan = schedule(view([m1], [unit('a.unit')], [assigned('a.unit', 'm9')]));
  t.like(plan.decisions[1], {
    kind: 'assign',
    unit: 'a.unit',
    machine: 'm1',
    movedFrom: 'm9',
    target: 'launched',
  });
  t.deepEqual(plan.summary, { assign: 1, unassign: 1, update: 0, unschedulable: 0, unchanged: 0 });
});

test('5 conflicting units on 3 hosts leave exactly 2 unplaced, with a reason per machine', (t) => {
  const plan = schedule(view([m1, m2, m3], [1, 2, 3, 4, 5].map(web)));
  const unplaced = plan.decisions.filter((d) => d.kind === 'unschedulable');
  t.deepEqual(
    unplaced.map((d) => [d.unit, d.summary, d.reasons]),
    ['web@4.unit', 'web@5.unit'].map((name) => [
      name,
      'no machine fits (rejected by conflicts on 3 machines)',
      {
        m1: 'conflicts with web@1.unit on m1 (Conflicts=web@*.unit)',
        m2: 'conflicts with web@2.unit on m2 (Conflicts=web@*.unit)',
        m3: 'conflicts with web@3.unit on m3 (Conflicts=web@*.unit)',
      },
    ]),
  );
  t.is(plan.summary.assign, 3);
});

test('per-machine reasons name each constraint that rejected the machine', (t) => {
  const plan = schedule(
    view(
      [machine('m1', { region: 'us' }), machine('m2'), m3, m4],
      [
        unit('a.unit', { machineMetadata: { region: ['eu'] }, conflicts: ['b.unit'] }),
        unit('b.unit', { machineId: 'm3' }),
        unit('c.unit', { conflicts: ['a.unit'], machineId: 'm4' }),
      ],
    ),
  );
  const d = plan.decisions.find((x) => x.unit === 'a.unit');
  t.like(d, {
    kind: 'unschedulable',
    summary: 'no machine fits (rejected by metadata on 4 machines)',
    reasons: {
      m1: 'metadata region=us does not match region=eu',
      m2: 'metadata has no region (wants region=eu)',
      m3: 'metadata has no region (wants region=eu)',
      m4: 'metadata has no region (wants region=eu)',
    },
  });
  const e = schedule(
    view(
      [m3, m4],
      [unit('a.unit', { conflicts: ['b.unit'] }), unit('b.unit'), unit('c.unit', { conflicts: ['a.unit'] })],
      [assigned('b.unit', 'm3'), assigned('c.unit', 'm4')],
    ),
  ).decisions.find((x) => x.unit === 'a.unit');
  t.like(e, {
    kind: 'unschedulable',
    reasons: {
      m3: 'conflicts with b.unit on m3 (Conflicts=b.unit)',
      m4: 'conflicts with c.unit on m4 (c.unit has Conflicts=a.unit)',
    },
  });
});

test('a unit matching its own Conflicts pattern is not in conflict with itself', (t) => {
  const { assignments, next } = pass(view([m1], [web(1)], []));
  t.deepEqual(placements(assignments), { 'web@1.unit': ['m1'] });
  t.true(isSettled(schedule(next)));
});

test('a new host takes the unplaced unit without moving the others', (t) => {
  const { next } = pass(view([m1, m2, m3], [1, 2, 3, 4, 5].map(web)));
  const plan = schedule({ ...next, machines: [m1, m2, m3, m4] });
  t.deepEqual(lines(plan), [
    'assign web@4.unit m4: machine m4 is the only one of 4 that fits',
    'unschedulable web@5.unit: no machine fits (rejected by conflicts on 4 machines)',
  ]);
});

test('a returning host does not pull its units back', (t) => {
  const units = [unit('a.unit'), unit('b.unit')];
  const first = pass(view([m1, m2], units));
  t.deepEqual(placements(first.assignments), { 'a.unit': ['m1'], 'b.unit': ['m2'] });
  const failed = pass({ ...first.next, machines: [m2] });
  t.deepEqual(lines(failed.plan), [
    'unassign a.unit m1: machine m1 is gone (lease expired)',
    'assign a.unit m2: machine m2 has the fewest units (1)',
  ]);
  t.deepEqual(schedule({ ...failed.next, machines: [m1, m2] }).decisions, []);
});

test('a displaced unit is moved later when its replacer leaves room again', (t) => {
  const { next } = pass(
    view(
      [m1],
      [unit('old.unit'), unit('new.unit', { replaces: ['old.unit'] })],
      [assigned('old.unit', 'm1')],
    ),
  );
  t.deepEqual(lines(schedule({ ...next, machines: [m1, m2] })), [
    'assign old.unit m2: machine m2 is the only one of 2 that fits',
  ]);
});

test('the plan does not depend on the order of its input', (t) => {
  const machines = [machine('m1', { r: 'a' }), machine('m2', { r: 'b' }), m3, m4];
  const units = [
    ...[1, 2, 3, 4, 5].map(web),
    unit('side.unit', { machineOf: ['web@2.unit'] }),
    unit('g.unit', { global: true, conflicts: ['web@1.unit'] }),
    unit('pin.unit', { machineId: 'm3' }),
    unit('new.unit', { replaces: ['pin.unit'], machineMetadata: { r: ['a', 'b'] } }),
  ];
  const assignments: Assignment[] = [
    assigned('web@3.unit', 'm2'),
    assigned('pin.unit', 'm4'),
    assigned('gone.unit', 'm1'),
  ];
  const expected = schedule(view(machines, units, assignments));
  const rotate = <T>(xs: readonly T[], k: number): T[] => [
    ...xs.slice(k % xs.length),
    ...xs.slice(0, k % xs.length),
  ];
  for (let k = 1; k < 7; k++) {
    const shuffled = view(
      rotate(machines, k).reverse(),
      rotate(units, k * 3),
      rotate(assignments, k).reverse(),
    );
    t.deepEqual(schedule(shuffled), expected);
  }
});
