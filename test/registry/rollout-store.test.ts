// Rollout records and the service listing against a REAL etcd: a rollout's first step gives the
// template its new file and keeps the previous one in one transaction; resuming leaves the record
// alone; destroying the unit removes it; the previous file survives unit-file collection.
import test from 'ava';
import { asMachineId, asUnitName } from '../../src/cluster/types.js';
import { createEtcdRegistry, type EtcdRegistry } from '../../src/registry/etcd-registry.js';
import { isRegistryError } from '../../src/registry/registry-error.js';
import { unitHash } from '../../src/unit/hash.js';
import { randomPrefix, useEtcd } from '../helpers/etcd.js';

const registries: EtcdRegistry[] = [];
test.after.always(async () => {
  for (const r of registries) await r.close();
});
const etcd = useEtcd(test);

function registry(): EtcdRegistry {
  const r = createEtcdRegistry({ endpoints: [etcd().endpoint], prefix: randomPrefix() });
  registries.push(r);
  return r;
}

const V1 = '[Service]\nExecStart=/bin/sleep 1\n';
const V2 = '[Service]\nExecStart=/bin/sleep 2\n';
const V3 = '[Service]\nExecStart=/bin/sleep 3\n';
const T = asUnitName('web@.unit');

test('beginRollout: new file and the previous one in one step; resumed, the record stays; a rollback flips it', async (t) => {
  const r = registry();
  const created = await r.createUnit({ name: T, hash: unitHash(V1), target: 'inactive' }, V1);
  t.is(await r.getRollout(T), undefined);

  const first = await r.beginRollout(created, V1, V2, '2026-12-06T02:00:00.000Z');
  t.is(first.unit.hash, unitHash(V2));
  t.true(first.unit.modRevision > created.modRevision);
  const record = {
    unit: T,
    hash: unitHash(V2),
    previousHash: unitHash(V1),
    previousText: V1,
    startedAt: '2026-12-06T02:00:00.000Z',
  };
  t.deepEqual(first.rollout, record);
  t.deepEqual(await r.getRollout(T), record);
  t.is(await r.getUnitFile(unitHash(V2)), V2);
  t.deepEqual(await r.getUnit(T), {
    name: T,
    hash: unitHash(V2),
    target: 'inactive',
    modRevision: first.unit.modRevision,
  });

  // The same file again (a rollout resumed after a crash): nothing written, the record kept.
  const again = await r.beginRollout(first.unit, V2, V2, '2026-12-06T03:00:00.000Z');
  t.is(again.unit.modRevision, first.unit.modRevision);
  t.deepEqual(again.rollout, record);

  // A stale read of the unit is refused.
  const stale = await t.throwsAsync(r.beginRollout(created, V1, V3, '2026-12-06T03:00:00.000Z'));
  t.true(isRegistryError(stale, 'conflict'));
  // A previous text that is not the unit's file is a bug of the caller.
  const wrong = await t.throwsAsync(r.beginRollout(first.unit, V3, V1, '2026-12-06T03:00:00.000Z'));
  t.true(isRegistryError(wrong, 'invalid'));

  // Rolling back is a rollout to the previous file: the record now keeps V2.
  const back = await r.beginRollout(first.unit, V2, V1, '2026-12-06T04:00:00.000Z');
  t.is(back.unit.hash, unitHash(V1));
  t.is((await r.getRollout(T))?.previousText, V2);
});

test('the previous file outlives unit-file collection (it is kept in the record); destroy removes the record', async (t) => {
  const r = registry();
  const created = await r.createUnit({ name: T, hash: unitHash(V1), target: 'inactive' }, V1);
  await r.beginRollout(created, V1, V2, '2026-12-06T02:00:00.000Z');
  // No unit references V1 any more: its unit-files/ key is collected.
  await r.collectUnitFiles();
  t.is(await r.getUnitFile(unitHash(V1)), undefined);
  t.is((await r.getRollout(T))?.previousText, V1);
  t.true(await r.deleteUnit(T));
  t.is(await r.getRollout(T), undefined);
  // A unit submitted again under the name starts without a record.
  await r.createUnit({ name: T, hash: unitHash(V3), target: 'inactive' }, V3);
  t.is(await r.getRollout(T), undefined);
});

test('listAllServiceInstances: every service, each key with the revision it was written at', async (t) => {
  const r = registry();
  const lease = await r.openLease({ ttlMs: 5_000 });
  try {
    const rev1 = await r.announce(lease, {
      service: 'web',
      instance: 'web@1.unit',
      address: '10.0.0.1:8081',
      machine: asMachineId('m1'),
      unit: asUnitName('web@1.unit'),
      since: '2026-12-06T02:00:00.000Z',
    });
    const rev2 = await r.announce(lease, {
      service: 'lb',
      instance: 'lb.unit',
      address: '10.0.0.2:80',
      since: '2026-12-06T02:00:01.000Z',
    });
    const set = await r.listAllServiceInstances();
    t.deepEqual(set.problems, []);
    t.true(set.revision >= rev2);
    t.deepEqual(
      set.items.map((i) => [i.service, i.instance, i.unit, i.modRevision]),
      [
        ['lb', 'lb.unit', undefined, rev2],
        ['web', 'web@1.unit', 'web@1.unit', rev1],
      ],
    );
    // Written again (re-announced): a later revision.
    const rev3 = await r.announce(lease, {
      service: 'web',
      instance: 'web@1.unit',
      address: '10.0.0.1:8081',
      since: '2026-12-06T02:00:05.000Z',
    });
    const after = await r.listAllServiceInstances();
    t.is(after.items.find((i) => i.service === 'web')?.modRevision, rev3);
    t.true(rev3 > rev1);
  } finally {
    await lease.close();
  }
});
