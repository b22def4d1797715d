// Property tests of the scheduler on random small clusters: after one pass every hard constraint
// holds, a second pass changes nothing, the plan ignores input order, and growing the cluster
// (a machine, more units) never moves a placement that was valid.

import test from 'ava';
import fc from 'fast-check';
import type { Assignment, Machine, TargetState } from '../../src/cluster/types.js';
import type { ClusterView, SchedulableUnit } from '../../src/cluster/view.js';
import { globMatch } from '../../src/lib/glob.js';
import { planChanges } from '../../src/scheduler/plan.js';
import { schedule } from '../../src/scheduler/schedule.js';
import { assigned, machine, pass, unit, view } from './_cluster.js';

const MACHINE_IDS = ['m1', 'm2', 'm3', 'm4', 'm5'];
const UNIT_NAMES = ['a.unit', 'b.unit', 'c.unit', 'db.unit', 'web@1.unit', 'web@2.unit', 'web@3.unit'];
const PATTERNS = ['web@*.unit', 'a.unit', 'b.unit', 'db.unit', '*.unit', 'c.*', 'web@[12].unit'];

const machineArb: fc.Arbitrary<Machine> = fc
  .record({
    id: fc.constantFrom(...MACHINE_IDS),
    zone: fc.option(fc.constantFrom('a', 'b'), { nil: undefined }),
  })
  .map(({ id, zone }) => machine(id, zone === undefined ? {} : { zone }));

const unitArb = (name: string, extraUnits: readonly string[]): fc.Arbitrary<SchedulableUnit> =>
  fc
    .record({
      target: fc.constantFrom<TargetState>('inactive', 'loaded', 'launched', 'launched', 'launched'),
      machineId: fc.oneof(
        { weight: 6, arbitrary: fc.constant(undefined) },
        { weight: 1, arbitrary: fc.constantFrom('m1', 'm2', 'm9') },
      ),
      machineOf: fc.oneof(
        { weight: 2, arbitrary: fc.constant<string[]>([]) },
        { weight: 1, arbitrary: fc.subarray([...UNIT_NAMES, ...extraUnits], { maxLength: 2 }) },
      ),
      zones: fc.oneof(
        { weight: 3, arbitrary: fc.constant<string[]>([]) },
        { weight: 1, arbitrary: fc.subarray(['a', 'b'], { minLength: 1 }) },
      ),
      conflicts: fc.oneof(
        { weight: 2, arbitrary: fc.constant<string[]>([]) },
        { weight: 1, arbitrary: fc.subarray(PATTERNS, { maxLength: 2 }) },
      ),
      replaces: fc.oneof(
        { weight: 2, arbitrary: fc.constant<string[]>([]) },
        { weight: 1, arbitrary: fc.subarray(PATTERNS, { maxLength: 2 }) },
      ),
      global: fc.integer({ min: 0, max: 7 }).map((n) => n === 0),
    })
    .map((r) =>
      unit(
        name,
        {
          ...(r.machineId === undefined ? {} : { machineId: r.machineId }),
          machineOf: r.machineOf,
          machineMetadata: r.zones.length === 0 ? {} : { zone: r.zones },
          conflicts: r.conflicts,
          replaces: r.replaces,
          global: r.global,
        },
        r.target,
      ),
    );

const clusterArb: fc.Arbitrary<ClusterView> = fc
  .record({
    machines: fc.uniqueArray(machineArb, { selector: (m) => m.id, minLength: 1, maxLength: 4 }),
    names: fc.subarray(UNIT_NAMES, { minLength: 1 }),
    // One assignment per (unit, machine), as etcd keys guarantee.
    stale: fc.uniqueArray(
      fc.record({
        unit: fc.constantFrom(...UNIT_NAMES, 'gone.unit'),
        machine: fc.constantFrom(...MACHINE_IDS, 'm9'),
        target: fc.constantFrom<'loaded' | 'launched'>('loaded', 'launched'),
      }),
      { maxLength: 8, selector: (s) => `${s.unit} ${s.machine}` },
    ),
  })
  .chain(({ machines, names, stale }) =>
    fc.tuple(...names.map((n) => unitArb(n, []))).map((units) =>
      view(
        machines,
        units,
        stale.map((s) => assigned(s.unit, s.machine, s.target)),
      ),
    ),
  );

/** Every hard constraint of the placements, checked independently of the scheduler's own indexes. */
function violations(v: ClusterView, assignments: readonly Assignment[]): string[] {
  const out: string[] = [];
  const units = new Map<string, SchedulableUnit>(v.units.map((u) => [u.name, u]));
  const machines = new Map<string, Machine>(v.machines.map((m) => [m.id, m]));
  const on = new Map<string, string[]>();
  const where = new Map<string, Set<string>>();
  for (const a of assignments) {
    (on.get(a.machine) ?? on.set(a.machine, []).get(a.machine))?.push(a.unit);
    (where.get(a.unit) ?? where.set(a.unit, new Set()).get(a.unit))?.add(a.machine);
  }
  const replaces = (x: SchedulableUnit, y: string): boolean =>
    x.placement.replaces.some((p) => globMatch(p, y));
  for (const a of assignments) {
    const u = units.get(a.unit);
    const m = machines.get(a.machine);
    if (u === undefined || u.target === 'inactive') out.push(`${a.unit} placed but not active`);
    if (m === undefined) out.push(`${a.unit} on unregistered ${a.machine}`);
    if (u === undefined || m === undefined) continue;
    if (u.target !== a.target) out.push(`${a.unit} target ${a.target} ≠ ${u.target}`);
    if (!u.placement.global && (where.get(a.unit)?.size ?? 0) > 1) out.push(`${a.unit} on several machines`);
    const pin = u.placement.machineId;
    if (pin !== undefined && a.machine !== pin && !(a.machine.startsWith(pin) && !machines.has(pin))) {
      out.push(`${a.unit} on ${a.machine} despite MachineID=${pin}`);
    }
    for (const [k, values] of Object.entries(u.placement.machineMetadata)) {
      const actual = m.metadata[k];
      if (values.length > 0 && (actual === undefined || !values.includes(actual)))
        out.push(`${a.unit} metadata`);
    }
    for (const leader of u.placement.machineOf) {
      if (leader !== a.unit && !(where.get(leader)?.has(a.machine) ?? false)) {
        out.push(`${a.unit} on ${a.machine} without its leader ${leader}`);
      }
    }
    for (const other of on.get(a.machine) ?? []) {
      if (other === a.unit) continue;
      if (u.placement.conflicts.some((p) => globMatch(p, other)))
        out.push(`${a.unit} conflicts with ${other}`);
      const o = units.get(other);
      if (o !== undefined && (replaces(u, other) || replaces(o, a.unit))) {
        out.push(`${a.unit} and ${other} co-located despite Replaces`);
      }
    }
  }
  return out;
}

const params = { numRuns: 500, seed: 20240601 };

/** Fails the property (so fast-check shrinks it) with the problems as the message. */
function expectNone(problems: readonly string[]): void {
  if (problems.length > 0) throw new Error(problems.join('\n'));
}

test('after one pass every hard constraint holds and every unplaced unit says why', (t) => {
  fc.assert(
    fc.property(clusterArb, (v) => {
      const { plan, assignments } = pass(v);
      const problems = violations(v, assignments);
      const placed = new Set(assignments.map((a) => a.unit));
      for (const u of v.units) {
        if (u.target === 'inactive' || placed.has(u.name)) continue;
        const d = plan.decisions.find((x) => x.kind === 'unschedulable' && x.unit === u.name);
        if (d === undefined || d.kind !== 'unschedulable')
          problems.push(`${u.name} unplaced without a report`);
        else if (Object.keys(d.reasons).length !== v.machines.length)
          problems.push(`${u.name} lacks reasons`);
      }
      expectNone(problems);
    }),
    params,
  );
  t.pass();
});

test('a second pass over the result changes nothing', (t) => {
  fc.assert(
    fc.property(clusterArb, (v) => {
      const { next } = pass(v);
      expectNone(planChanges(schedule(next)).map((d) => `${d.kind} ${d.unit} ${d.machine}: ${d.reason}`));
    }),
    params,
  );
  t.pass();
});

test('the plan does not depend on input order', (t) => {
  fc.assert(
    fc.property(clusterArb, fc.integer({ min: 1, max: 50 }), (v, k) => {
      const rot = <T>(xs: readonly T[]): T[] =>
        xs.length === 0 ? [] : [...xs.slice(k % xs.length), ...xs.slice(0, k % xs.length)];
      const shuffled = view(rot(v.machines).reverse(), rot(v.units).reverse(), rot(v.assignments));
      if (JSON.stringify(schedule(shuffled)) !== JSON.stringify(schedule(v))) throw new Error('plans differ');
    }),
    params,
  );
  t.pass();
});

const extraUnitsArb = fc
  .subarray(['x.unit', 'y.unit', 'web@9.unit'])
  .chain((names) => fc.tuple(...names.map((n) => unitArb(n, []))))
  // New units that replace nothing: Replaces= is the one way a new unit may push a placed one off.
  .map((us) => us.map((u) => unit(u.name, { ...u.placement, replaces: [] }, u.target)));

test('a new machine or new units (replacing nothing) never move a valid placement', (t) => {
  fc.assert(
    fc.property(clusterArb, fc.boolean(), extraUnitsArb, (v, addMachine, extra) => {
      const { next } = pass(v);
      const free = MACHINE_IDS.find((id) => !next.machines.some((m) => m.id === id));
      const machines =
        addMachine && free !== undefined ? [...next.machines, machine(free, { zone: 'a' })] : next.machines;
      const plan = schedule({ ...next, machines, units: [...next.units, ...extra] });
      expectNone(
        plan.decisions.filter((d) => d.kind === 'unassign').map((d) => `${d.unit} ${d.machine}: ${d.reason}`),
      );
    }),
    params,
  );
  t.pass();
});
