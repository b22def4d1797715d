// What only the in-memory registry offers: scripted faults for the simulation.
import test from 'ava';
import { asMachineId } from '../../src/cluster/types.js';
import { FakeClock } from '../../src/lib/clock.js';
import { MemoryEtcd, MemoryRegistry } from '../../src/registry/memory-registry.js';
import { isRegistryError } from '../../src/registry/registry-error.js';
import type { Wake } from '../../src/registry/registry.js';

const machine = {
  id: asMachineId('m1'),
  ip: '10.0.0.1',
  metadata: {},
  version: '0.1.0',
  startedAt: '2026-01-01T00:00:00.000Z',
};

function setup(): { clock: FakeClock; store: MemoryEtcd; a: MemoryRegistry; b: MemoryRegistry } {
  const clock = new FakeClock();
  const store = new MemoryEtcd({ clock });
  return { clock, store, a: new MemoryRegistry({ store }), b: new MemoryRegistry({ store }) };
}

test('an unavailable client fails with a recoverable error; others are unaffected', async (t) => {
  const { a, b } = setup();
  a.setFaults({ unavailable: true });
  const error = await t.throwsAsync(a.listMachines());
  t.true(isRegistryError(error, 'unavailable'));
  t.true(isRegistryError(error) && error.recoverable);
  t.deepEqual((await b.listMachines()).items, []);
});

test('watch events are held while unreachable and delivered on healing, in order', async (t) => {
  const { clock, a, b } = setup();
  const start = await a.snapshot();
  const wakes: Wake[] = [];
  a.watchCluster(['machines'], start.revision, (w) => wakes.push(w));
  a.setFaults({ unavailable: true });
  const m = await b.register(machine, { ttlMs: 5000 });
  await clock.advance(100);
  t.is(wakes.length, 0);
  a.setFaults({});
  await clock.advance(0);
  t.deepEqual(
    wakes.flatMap((w) => w.reasons),
    [{ kind: 'machine_joined', machine: machine.id }],
  );
  await m.close();
});

test('self-fencing: renewedAt stops moving when keepalives are dropped, before etcd expires the key', async (t) => {
  const { clock, a, b } = setup();
  const m = await a.register(machine, { ttlMs: 5000, keepaliveMs: 1000 });
  await clock.advance(3000);
  const lastRenewal = m.renewedAt();
  t.true(lastRenewal >= 2000, `renewed at ${lastRenewal}`);
  a.setFaults({ dropKeepalives: true });
  await clock.advance(3500);
  t.is(m.renewedAt(), lastRenewal, 'no acknowledgement arrives');
  // A fencing deadline of 3.5 s after the last renewal has passed; etcd still holds the key.
  t.is((await b.listMachines()).items.length, 1);
  await clock.advance(2000);
  t.is((await b.listMachines()).items.length, 0, 'gone one TTL after the last keepalive reached etcd');
  t.true(m.signal.aborted);
});

test('latency delays calls on the store clock', async (t) => {
  const { clock, a } = setup();
  a.setFaults({ latencyMs: 300 });
  let done = false;
  const p = a.listMachines().then(() => (done = true));
  await clock.advance(299);
  t.false(done);
  await clock.advance(1);
  await p;
  t.true(done);
});

test('etcd down for everyone: every client fails; no lease expires meanwhile; those past their TTL go when it is back', async (t) => {
  const { clock, store, a, b } = setup();
  const m = await a.register(machine, { ttlMs: 5000, keepaliveMs: 1000 });
  const other = await b.register({ ...machine, id: asMachineId('m2') }, { ttlMs: 5000, keepaliveMs: 1000 });
  const start = await b.snapshot();
  const wakes: Wake[] = [];
  b.watchCluster(['machines'], start.revision, (w) => wakes.push(w));
  store.setDown(true);
  for (const r of [a, b]) t.true(isRegistryError(await t.throwsAsync(r.listMachines()), 'unavailable'));
  await clock.advance(8000);
  t.is(store.range('', '\uffff').kvs.length, 2, 'both machine keys outlive their TTL while etcd is down');
  store.setDown(false);
  await clock.advance(0);
  t.deepEqual((await a.listMachines()).items, [], 'revoked at once when etcd is back');
  t.deepEqual(
    wakes.flatMap((w) => w.reasons.map((r) => r.kind)),
    ['machine_left', 'machine_left'],
    'the watch saw the revocations after etcd came back',
  );
  t.true(m.signal.aborted && other.signal.aborted, 'both holders lost their lease');
});

test('a new etcd leader extends every lease by its TTL, kept alive or not', async (t) => {
  const { clock, store } = setup();
  const lease = store.leaseGrant(5);
  store.txn({ compare: [], success: [{ kind: 'put', key: 'k', value: 'v', lease }] });
  await clock.advance(4000); // never kept alive: 1 s left
  store.extendLeases();
  await clock.advance(4500); // past its old expiry, within the extended one
  t.is(store.range('k', undefined).kvs.length, 1);
  t.deepEqual(store.leases(), [lease]);
  await clock.advance(1000);
  t.deepEqual(store.range('k', undefined).kvs, [], 'it expires one TTL after the extension');
});
