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
