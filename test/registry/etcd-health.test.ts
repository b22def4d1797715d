// The connection health tracker (registry/etcd-health.ts), fed by every registry call and by the
// keepalives of its leases, on the in-memory etcd with scripted faults and a fake clock.
import test from 'ava';
import { asMachineId } from '../../src/cluster/types.js';
import { FakeClock } from '../../src/lib/clock.js';
import { MemoryEtcd, MemoryRegistry } from '../../src/registry/memory-registry.js';

const machine = {
  id: asMachineId('m1'),
  ip: '10.0.0.1',
  metadata: {},
  version: '0.1.0',
  startedAt: '2026-01-01T00:00:00.000Z',
};

function setup(): { clock: FakeClock; registry: MemoryRegistry } {
  const clock = new FakeClock();
  const store = new MemoryEtcd({ clock });
  return { clock, registry: new MemoryRegistry({ store }) };
}

test('a connection that never failed has been healthy forever', async (t) => {
  const { registry } = setup();
  await registry.listMachines();
  t.is(registry.health.healthySince(), Number.NEGATIVE_INFINITY);
  t.is(registry.health.lastFailureAt(), undefined);
});

test('a failed request starts an outage; the first success after it is when health returns', async (t) => {
  const { clock, registry } = setup();
  await clock.advance(1000);
  registry.setFaults({ unavailable: true });
  await t.throwsAsync(registry.listMachines());
  t.is(registry.health.healthySince(), undefined);
  t.is(registry.health.lastFailureAt(), 1000);
  await clock.advance(2000);
  await t.throwsAsync(registry.snapshot());
  t.is(registry.health.lastFailureAt(), 3000);
  registry.setFaults({});
  await clock.advance(500);
  await registry.listMachines();
  t.is(registry.health.healthySince(), 3500);
  await clock.advance(500);
  await registry.listMachines();
  t.is(registry.health.healthySince(), 3500, 'later successes do not move it');
});

test('an answer that refuses (the machine id is taken) is a success of the connection', async (t) => {
  const clock = new FakeClock();
  const store = new MemoryEtcd({ clock });
  const holder = new MemoryRegistry({ store });
  const other = new MemoryRegistry({ store });
  await holder.register(machine, { ttlMs: 5000 });
  other.setFaults({ unavailable: true });
  await t.throwsAsync(other.listMachines());
  other.setFaults({});
  await clock.advance(100);
  const error = await t.throwsAsync(other.register(machine, { ttlMs: 5000 }));
  t.is((error as { code?: string }).code, 'machine_id_taken');
  t.is(other.health.healthySince(), 100);
});

test('keepalives alone feed it: dropped keepalives are an outage, acknowledged ones end it', async (t) => {
  const { clock, registry } = setup();
  const m = await registry.register(machine, { ttlMs: 5000, keepaliveMs: 1000 });
  await clock.advance(3000);
  t.is(registry.health.healthySince(), Number.NEGATIVE_INFINITY);
  registry.setFaults({ dropKeepalives: true });
  await clock.advance(2500);
  t.is(registry.health.healthySince(), undefined, 'a keepalive timed out');
  const failedAt = registry.health.lastFailureAt();
  t.true(failedAt !== undefined && failedAt > 3000);
  registry.setFaults({});
  await clock.advance(1000);
  const since = registry.health.healthySince();
  t.true(since !== undefined && since > 5000 && since <= 6500, `healthy since ${since}`);
  await m.close();
});
