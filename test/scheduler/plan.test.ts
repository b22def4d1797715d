// Plan helpers: the stable order of decisions and applying a plan to assignments in memory.

import test from 'ava';
import { asMachineId, asUnitHash, asUnitName } from '../../src/cluster/types.js';
import { applyPlanToAssignments, isSettled, makePlan, type Decision } from '../../src/scheduler/plan.js';
import { assigned } from './_cluster.js';

const u = asUnitName;
const m = asMachineId;

const decisions: Decision[] = [
  { kind: 'unschedulable', unit: u('a.unit'), summary: 'no machines are registered', reasons: {} },
  {
    kind: 'update',
    unit: u('b.unit'),
    machine: m('m1'),
    hash: asUnitHash('h2'),
    target: 'loaded',
    reason: 'r',
  },
  {
    kind: 'assign',
    unit: u('c.unit'),
    machine: m('m2'),
    hash: asUnitHash('hc'),
    target: 'launched',
    reason: 'r',
  },
  { kind: 'unassign', unit: u('c.unit'), machine: m('m1'), reason: 'r' },
  { kind: 'unassign', unit: u('d.unit'), machine: m('m1'), reason: 'r' },
];

test('makePlan sorts by unit, then unassign before assign, and counts', (t) => {
  const plan = makePlan([...decisions].reverse(), 4);
  t.deepEqual(
    plan.decisions.map((d) => `${d.kind} ${d.unit}`),
    ['unschedulable a.unit', 'update b.unit', 'unassign c.unit', 'assign c.unit', 'unassign d.unit'],
  );
  t.deepEqual(plan.summary, { assign: 1, unassign: 2, update: 1, unschedulable: 1, unchanged: 4 });
  t.false(isSettled(plan));
  t.true(isSettled(makePlan([decisions[0] as Decision], 0)));
});

test('applyPlanToAssignments applies moves, updates and removals, sorted', (t) => {
  const before = [
    assigned('d.unit', 'm1'),
    assigned('c.unit', 'm1'),
    assigned('b.unit', 'm1', 'launched', 'h1'),
    assigned('e.unit', 'm2'),
  ];
  const after = applyPlanToAssignments(before, makePlan(decisions, 0));
  t.deepEqual(after, [
    assigned('b.unit', 'm1', 'loaded', 'h2'),
    assigned('c.unit', 'm2', 'launched', 'hc'),
    assigned('e.unit', 'm2'),
  ]);
  t.is(before.length, 4, 'the input is not modified');
});
