// planDrainSteps: what a drain releases in one pass, and what it waits for (pure).
import test from 'ava';
import {
  asMachineId,
  asUnitHash,
  asUnitName,
  type ActiveState,
  type UnitStatus,
} from '../../src/cluster/types.js';
import { planDrainSteps } from '../../src/engine/drain-step.js';
import type { DrainMove, DrainRecord, ServiceInstance, Unschedulable } from '../../src/registry/registry.js';
import { assigned, machine, unit, view } from '../scheduler/_cluster.js';

const M3 = asMachineId('m3');
const drain = (moving: DrainMove[] = []): DrainRecord => ({
  machine: M3,
  since: '2026-01-01T00:00:00Z',
  moving,
  modRevision: 7,
});
const move = (name: string, services: string[] = []): DrainMove => ({ unit: asUnitName(name), services });
const status = (name: string, on: string, active: ActiveState = 'active'): UnitStatus => ({
  unit: asUnitName(name),
  machine: asMachineId(on),
  hash: asUnitHash(`h-${name}`),
  load: 'loaded',
  active,
  sub: active === 'active' ? 'running' : 'dead',
  since: '2026-01-01T00:00:00Z',
});
const web = (i: number, on: string) => [assigned(`web@${i}.unit`, on), assigned(`side@${i}.unit`, on)];
const units = [1, 2].flatMap((i) => [
  unit(`web@${i}.unit`),
  unit(`side@${i}.unit`, { machineOf: [`web@${i}.unit`] }),
]);
const M = [machine('m1'), machine('m2'), machine('m3')];

function steps(
  record: DrainRecord,
  assignments: ReturnType<typeof assigned>[],
  o: {
    statuses?: UnitStatus[];
    services?: ServiceInstance[];
    unschedulable?: Unschedulable[];
    extra?: ReturnType<typeof unit>[];
  } = {},
) {
  return planDrainSteps(
    {
      drains: new Map([[M3, record]]),
      statuses: o.statuses ?? [],
      services: o.services ?? [],
      unschedulable: new Map((o.unschedulable ?? []).map((u) => [u.unit, u])),
    },
    view(M, [...units, ...(o.extra ?? [])], assignments),
  );
}

const announced = (name: string, on: string): ServiceInstance => ({
  service: 'web',
  instance: name,
  address: '10.0.0.1:8080',
  machine: asMachineId(on),
  unit: asUnitName(name),
  since: '2026-01-01T00:00:00Z',
});

test('releases one unit with its sidekick, and records the services it is announced under', (t) => {
  const s = steps(drain(), [...web(1, 'm3'), ...web(2, 'm3')], { services: [announced('web@1.unit', 'm3')] });
  t.deepEqual([...(s.drains.get(M3) ?? [])], ['side@1.unit', 'web@1.unit']);
  t.deepEqual(s.changes, [
    { kind: 'drain_moving', drain: drain(), moving: [move('side@1.unit'), move('web@1.unit', ['web'])] },
  ]);
});

test('waits until the moved unit is active elsewhere and announced there, then releases the next', (t) => {
  const moving = [move('side@1.unit'), move('web@1.unit', ['web'])];
  const placed = [...web(1, 'm1'), ...web(2, 'm3')];
  const stages: [string, UnitStatus[], ServiceInstance[], string | undefined][] = [
    ['stopping', [status('web@1.unit', 'm3', 'deactivating')], [], 'stopping on m3 (deactivating)'],
    ['starting', [], [], 'starting on m1'],
    ['activating', [status('web@1.unit', 'm1', 'activating')], [], 'activating (dead) on m1'],
    [
      'active',
      [status('web@1.unit', 'm1'), status('side@1.unit', 'm1')],
      [],
      'active on m1, not yet announced under services/web',
    ],
    [
      'announced elsewhere',
      [status('web@1.unit', 'm1'), status('side@1.unit', 'm1')],
      [announced('web@1.unit', 'm3')],
      'active on m1, not yet announced under services/web',
    ],
    [
      'announced',
      [status('web@1.unit', 'm1'), status('side@1.unit', 'm1')],
      [announced('web@1.unit', 'm1')],
      undefined,
    ],
  ];
  for (const [stage, statuses, services, why] of stages) {
    const s = steps(drain(moving), placed, { statuses, services });
    if (why === undefined) {
      t.deepEqual([...(s.drains.get(M3) ?? [])], ['side@2.unit', 'web@2.unit'], stage);
      t.deepEqual(s.waiting.size, 0, stage);
    } else {
      t.deepEqual([...(s.drains.get(M3) ?? [])], ['side@1.unit', 'web@1.unit'], stage);
      t.deepEqual(s.changes, [], stage);
      t.true(s.waiting.has(asUnitName('web@1.unit')), stage);
      t.true(s.waitsForServices, stage);
      t.deepEqual(
        s.notes
          .filter((n) => n.kind === 'waiting' && n.unit === 'web@1.unit')
          .map((n) => (n.kind === 'waiting' ? n.why : '')),
        [why],
        stage,
      );
    }
  }
});

test('a released unit that fits nowhere counts once the scheduler reported it; global and pinned units go last', (t) => {
  const extra = [
    unit('mon.unit', { global: true }),
    unit('pin.unit', { machineId: 'm3' }),
    unit('lone.unit'),
  ];
  const on = [assigned('mon.unit', 'm3'), assigned('pin.unit', 'm3'), assigned('lone.unit', 'm3')];
  t.deepEqual([...(steps(drain(), on, { extra }).drains.get(M3) ?? [])], ['lone.unit']);
  const waiting = steps(drain([move('lone.unit')]), on.slice(0, 2), { extra });
  t.deepEqual(
    waiting.notes.map((n) => n.kind === 'waiting' && n.why),
    ['waiting to be placed'],
  );
  const report: Unschedulable = {
    unit: asUnitName('lone.unit'),
    hash: asUnitHash('h-lone.unit'),
    reason: 'no machine fits',
    machines: {},
  };
  const next = steps(drain([move('lone.unit')]), on.slice(0, 2), { extra, unschedulable: [report] });
  t.deepEqual([...(next.drains.get(M3) ?? [])], ['mon.unit']);
  // The host is empty: the record's step is cleared once, then nothing is written.
  const done = steps(drain([move('mon.unit')]), [], { extra });
  t.deepEqual(done.changes, [{ kind: 'drain_moving', drain: drain([move('mon.unit')]), moving: [] }]);
  t.deepEqual(steps(drain(), [], { extra }).changes, []);
});
