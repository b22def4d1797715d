// The Announcer loop on the in-memory registry and a fake clock (no sleeps): it follows the check,
// re-announces under a new lease when its lease is lost, and cleans up when stopped.
import test from 'ava';
import { Announcer } from '../../src/discovery/announcer.js';
import type { CheckOutcome } from '../../src/discovery/check-state.js';
import { FakeClock } from '../../src/lib/clock.js';
import { silentLogger } from '../../src/lib/logger.js';
import { createMemoryRegistry, MemoryEtcd } from '../../src/registry/memory-registry.js';

function setup(): {
  clock: FakeClock;
  store: MemoryEtcd;
  keys: () => Promise<{ instance: string; address: string; since: string }[]>;
  setHealthy(v: boolean): void;
  start(): { stop(): Promise<void> };
} {
  const clock = new FakeClock();
  const store = new MemoryEtcd({ clock });
  const registry = createMemoryRegistry({ store });
  let healthy = true;
  const announcer = new Announcer({
    registry,
    clock,
    log: silentLogger,
    target: { service: 'web', instance: 'web@1.unit', address: '10.0.0.1:80' },
    check: (): Promise<CheckOutcome> =>
      Promise.resolve(
        healthy ? { kind: 'pass', detail: 'HTTP 200' } : { kind: 'fail', reason: 'ECONNREFUSED' },
      ),
    intervalMs: 1000,
    downIntervalMs: 250,
    lease: { ttlMs: 3000 },
  });
  return {
    clock,
    store,
    keys: async () =>
      (await registry.listServiceInstances('web')).items.map(({ instance, address, since }) => ({
        instance,
        address,
        since,
      })),
    setHealthy: (v) => (healthy = v),
    start() {
      const controller = new AbortController();
      const done = announcer.run(controller.signal);
      return {
        async stop() {
          controller.abort();
          await clock.advance(0);
          await done;
        },
      };
    },
  };
}

test('announces at once, withdraws within one interval of a failure, comes back within the down interval', async (t) => {
  const s = setup();
  const run = s.start();
  await s.clock.advance(0);
  t.deepEqual(await s.keys(), [
    { instance: 'web@1.unit', address: '10.0.0.1:80', since: '2026-01-01T00:00:00.000Z' },
  ]);
  s.setHealthy(false);
  await s.clock.advance(999);
  t.is((await s.keys()).length, 1, 'the next check is due after 1000 ms');
  await s.clock.advance(1);
  t.deepEqual(await s.keys(), []);
  s.setHealthy(true);
  await s.clock.advance(250);
  t.deepEqual(await s.keys(), [
    { instance: 'web@1.unit', address: '10.0.0.1:80', since: '2026-01-01T00:00:01.250Z' },
  ]);
  await run.stop();
  t.deepEqual(await s.keys(), []);
  t.deepEqual(s.store.leases(), [], 'the lease was revoked');
});

test('a lost lease (its key gone with it) is replaced and the key written again', async (t) => {
  const s = setup();
  const run = s.start();
  await s.clock.advance(0);
  const [first] = s.store.leases();
  t.truthy(first);
  s.store.leaseRevoke(first ?? '');
  t.deepEqual(await s.keys(), [], 'revoking the lease deleted the key');
  await s.clock.advance(1000); // the next keepalive learns that the lease is gone
  t.is((await s.keys()).length, 1);
  t.notDeepEqual(s.store.leases(), [first]);
  t.is(s.store.leases().length, 1);
  await run.stop();
  t.deepEqual(await s.keys(), []);
});
