// The pure half of rolling restarts and rollouts: batches, the rollout plan, and when a changed
// unit counts as back (active with its file, announced again after the change).
import test from 'ava';
import type { ServiceInstanceEntry, UnitSummary } from '../../src/api/schemas.js';
import {
  announcementsOf,
  assessReady,
  describeRolloutPlan,
  isInstanceOf,
  planBatches,
  planRollout,
} from '../../src/cli/rolling-plan.js';

const OLD = 'a'.repeat(64);
const NEW = 'b'.repeat(64);

function unit(
  name: string,
  o: {
    hash?: string;
    target?: UnitSummary['target'];
    machine?: string;
    active?: UnitSummary['statuses'][number]['active'];
    sub?: string;
    statusHash?: string;
    reason?: string;
  } = {},
): UnitSummary {
  const hash = o.hash ?? OLD;
  const target = o.target ?? 'launched';
  const machine = o.machine ?? 'm1';
  const placed = target !== 'inactive';
  return {
    name,
    hash,
    target,
    state: target,
    placements: placed
      ? [{ machine, ip: `10.0.0.${machine.slice(1)}`, target: target === 'launched' ? 'launched' : 'loaded' }]
      : [],
    statuses: placed
      ? [
          {
            unit: name,
            machine,
            hash: o.statusHash ?? hash,
            load: 'loaded',
            active: o.active ?? (target === 'launched' ? 'active' : 'inactive'),
            sub: o.sub ?? (target === 'launched' ? 'running' : 'dead'),
            since: '2026-01-01T00:00:00.000Z',
            ...(o.reason === undefined ? {} : { reason: o.reason }),
          },
        ]
      : [],
  };
}

function announced(unitName: string, revision: number, machine = 'm1'): ServiceInstanceEntry {
  return {
    service: 'web',
    instance: unitName,
    address: '10.0.0.1:8081',
    machine,
    unit: unitName,
    since: '2026-01-01T00:00:01.000Z',
    revision,
  };
}

test('planBatches: in order, n at a time, the last batch smaller; a size below 1 is a bug', (t) => {
  t.deepEqual(planBatches([1, 2, 3, 4, 5], 2), [[1, 2], [3, 4], [5]]);
  t.deepEqual(planBatches([1, 2, 3], 1), [[1], [2], [3]]);
  t.deepEqual(planBatches([1, 2], 5), [[1, 2]]);
  t.deepEqual(planBatches([], 1), []);
  t.throws(() => planBatches([1], 0), { instanceOf: RangeError });
});

test('isInstanceOf: instances of that template only', (t) => {
  t.true(isInstanceOf('web@1.unit', 'web@.unit'));
  t.true(isInstanceOf('web@blue.unit', 'web@.unit'));
  t.false(isInstanceOf('web@.unit', 'web@.unit'));
  t.false(isInstanceOf('web-discovery@1.unit', 'web@.unit'));
  t.false(isInstanceOf('web@1.service', 'web@.unit'));
  t.false(isInstanceOf('lb.unit', 'web@.unit'));
});

test('planRollout: running instances in batches by number, idle ones at once, those on the new file left out', (t) => {
  const units = [
    unit('web@.unit', { target: 'inactive' }),
    unit('web@10.unit', { machine: 'm3' }),
    unit('web@2.unit', { machine: 'm2' }),
    unit('web@1.unit', { machine: 'm1' }),
    unit('web@3.unit', { hash: NEW, machine: 'm3' }),
    unit('web@4.unit', { target: 'loaded', machine: 'm1' }),
    unit('web@5.unit', { target: 'inactive' }),
    unit('web-discovery@1.unit', { machine: 'm1' }),
  ];
  const plan = planRollout(units, 'web@.unit', NEW, 2);
  t.deepEqual(
    plan.batches.map((b) => b.map((x) => x.unit)),
    [['web@1.unit', 'web@2.unit'], ['web@10.unit']],
  );
  t.deepEqual(plan.batches[0]?.[0]?.where, ['m1/10.0.0.1']);
  t.deepEqual(
    plan.idle.map((x) => x.unit),
    ['web@4.unit', 'web@5.unit'],
  );
  t.deepEqual(
    plan.done.map((x) => x.unit),
    ['web@3.unit'],
  );
  t.deepEqual(describeRolloutPlan(plan, OLD), [
    `Rollout of web@.unit: ${OLD.slice(0, 12)} → ${NEW.slice(0, 12)}, at most 2 instances unavailable at a time`,
    '  batch 1: web@1.unit on m1/10.0.0.1; web@2.unit on m2/10.0.0.2',
    '  batch 2: web@10.unit on m3/10.0.0.3',
    '  not running, given the new file at once: web@4.unit, web@5.unit',
    '  on the new file already: web@3.unit',
  ]);
});

test('planRollout: no instances, or all done, says so', (t) => {
  t.deepEqual(describeRolloutPlan(planRollout([], 'web@.unit', NEW, 1), undefined).slice(1), [
    '  no instances of web@.unit',
  ]);
  const done = planRollout([unit('web@1.unit', { hash: NEW })], 'web@.unit', NEW, 1);
  t.deepEqual(describeRolloutPlan(done, undefined).slice(1), [
    '  on the new file already: web@1.unit',
    '  nothing to do',
  ]);
});

test('announcementsOf: the keys that name the unit', (t) => {
  const list = [
    announced('web@1.unit', 5),
    announced('web@2.unit', 6),
    { ...announced('x', 7), unit: undefined },
  ];
  t.deepEqual(announcementsOf('web@1.unit', list), [{ service: 'web', instance: 'web@1.unit' }]);
  t.deepEqual(announcementsOf('lb.unit', list), []);
});

test('assessReady: active with the new file and, where it was announced, announced after the change', (t) => {
  const expect = [{ service: 'web', instance: 'web@1.unit' }];
  // Still the old file on its host.
  const stale = assessReady(unit('web@1.unit', { hash: NEW, statusHash: OLD }), expect, [], 100);
  t.is(stale.kind, 'waiting');
  // Active, but its key is the one written before the change (the announcer had not noticed).
  const old = assessReady(unit('web@1.unit', { hash: NEW }), expect, [announced('web@1.unit', 90)], 100);
  t.deepEqual(old, { kind: 'waiting', detail: 'active, not announced again yet as services/web/web@1.unit' });
  // Gone from the services (withdrawn while it restarted).
  t.is(assessReady(unit('web@1.unit', { hash: NEW }), expect, [], 100).kind, 'waiting');
  // Announced by a key on another machine.
  const elsewhere = assessReady(
    unit('web@1.unit', { hash: NEW }),
    expect,
    [announced('web@1.unit', 120, 'm9')],
    100,
  );
  t.deepEqual(elsewhere, { kind: 'waiting', detail: 'active, services/web/web@1.unit names machine m9' });
  const back = assessReady(unit('web@1.unit', { hash: NEW }), expect, [announced('web@1.unit', 120)], 100);
  t.deepEqual(back, {
    kind: 'reached',
    where: 'm1/10.0.0.1, announced as services/web/web@1.unit (10.0.0.1:8081)',
  });
  // Never announced before: active is enough.
  t.deepEqual(assessReady(unit('lb.unit'), [], [], 100), { kind: 'reached', where: 'm1/10.0.0.1' });
});

test('assessReady: failed, or restarting after a failure, is a failure with the reason', (t) => {
  const failed = assessReady(
    unit('web@1.unit', { hash: NEW, active: 'failed', sub: 'failed', reason: 'exit code 1' }),
    [],
    [],
    100,
  );
  t.deepEqual(failed, { kind: 'failed', reason: 'failed on m1: exit code 1' });
  const looping = assessReady(
    unit('web@1.unit', {
      hash: NEW,
      active: 'activating',
      sub: 'auto-restart',
      reason: 'ExecStart=/usr/sbin/apache2 exited with code 1',
    }),
    [{ service: 'web', instance: 'web@1.unit' }],
    [],
    100,
  );
  t.deepEqual(looping, {
    kind: 'failed',
    reason: 'failed on m1 and is restarting: ExecStart=/usr/sbin/apache2 exited with code 1',
  });
  // The old file restarting on its host is not the new one failing.
  const oldLooping = assessReady(
    unit('web@1.unit', { hash: NEW, statusHash: OLD, active: 'activating', sub: 'auto-restart' }),
    [],
    [],
    100,
  );
  t.is(oldLooping.kind, 'waiting');
  t.deepEqual(assessReady(undefined, [], [], 100), { kind: 'failed', reason: 'it was destroyed meanwhile' });
});
