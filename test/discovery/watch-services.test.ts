// watchServiceInstances on a real etcd: level-triggered (the full set on every change) and lists
// then watches from the list's revision, so that a change between the two is never missed (confd's
// list-then-watch-from-now loses it).
import test from 'ava';
import { systemClock } from '../../src/lib/clock.js';
import { createRandom } from '../../src/lib/random.js';
import { EtcdKv } from '../../src/registry/etcd-kv.js';
import { createEtcdRegistry } from '../../src/registry/etcd-registry.js';
import { KvRegistry } from '../../src/registry/kv-registry.js';
import type { ServiceInstance, WatchedSet } from '../../src/registry/registry.js';
import { randomPrefix, useEtcd } from '../helpers/etcd.js';
import { waitFor } from '../helpers/wait.js';

const etcd = useEtcd(test);
const since = '2026-01-01T00:00:00.000Z';
const inst = (instance: string, port: number): ServiceInstance => ({
  service: 'web',
  instance,
  address: `127.0.0.1:${port}`,
  since,
});
const names = (set: WatchedSet<ServiceInstance> | undefined): string[] =>
  (set?.items ?? []).map((i) => i.instance);

test('a change made after the list and before the watch starts is delivered', async (t) => {
  const prefix = randomPrefix();
  const writer = createEtcdRegistry({ endpoints: [etcd().endpoint], prefix });
  const kv = new EtcdKv({ endpoints: [etcd().endpoint] }, systemClock);
  const watcher = new KvRegistry({ kv, clock: systemClock, random: createRandom(1), prefix });
  const lease = await writer.openLease({ ttlMs: 5000 });
  await writer.announce(lease, inst('a', 1001));
  // The list returns; before watchServiceInstances can open its watch, another client announces b.
  const list = kv.range.bind(kv);
  let injectedAt = 0;
  kv.range = async (key, end) => {
    const res = await list(key, end);
    if (injectedAt === 0 && key.startsWith(`${prefix}services/web/`))
      injectedAt = await writer.announce(lease, inst('b', 1002));
    return res;
  };
  let last: WatchedSet<ServiceInstance> | undefined;
  const calls: string[][] = [];
  const sub = await watcher.watchServiceInstances('web', (set) => {
    last = set;
    calls.push(names(set));
  });
  t.teardown(async () => {
    sub.close();
    await lease.close();
    await watcher.close();
    await writer.close();
  });
  t.deepEqual(calls[0], ['a'], 'the first call is the listed set, without b');
  t.true(injectedAt > 0);
  await waitFor('b to reach the watcher', () => (names(last).includes('b') ? true : undefined));
  t.deepEqual(names(last), ['a', 'b']);
  t.true((last?.revision ?? 0) >= injectedAt);
});

test('level-triggered: every change hands over the whole set, including removal by lease expiry', async (t) => {
  const prefix = randomPrefix();
  const registry = createEtcdRegistry({ endpoints: [etcd().endpoint], prefix });
  const lease = await registry.openLease({ ttlMs: 2000 });
  const sets: string[][] = [];
  const sub = await registry.watchServiceInstances('web', (set) => sets.push(names(set)));
  t.teardown(async () => {
    sub.close();
    await registry.close();
  });
  t.deepEqual(sets, [[]]);
  for (let i = 0; i < 5; i++) await registry.announce(lease, inst(`i${i}`, 2000 + i));
  // (etcd may hand over several revisions in one watch response: wait before the next change.)
  await waitFor('all five', () => (sets.at(-1)?.length === 5 ? true : undefined));
  await registry.withdraw('web', 'i2');
  await waitFor('the withdraw', () => (sets.at(-1)?.length === 4 ? true : undefined));
  t.deepEqual(sets.at(-1), ['i0', 'i1', 'i3', 'i4']);
  // Every call is a whole sorted set (never a delta): while announcing, each holds the one before.
  const growing = sets.slice(0, sets.findIndex((s) => s.length === 5) + 1);
  t.deepEqual(growing.at(-1), ['i0', 'i1', 'i2', 'i3', 'i4']);
  for (let i = 1; i < growing.length; i++) {
    t.deepEqual(growing[i]?.slice(0, growing[i - 1]?.length), growing[i - 1]);
    t.deepEqual(growing[i], [...(growing[i] ?? [])].sort());
  }
  lease.release(); // stop keepalives: the keys die with the lease, as with a killed announcer
  await waitFor('the lease to expire', () => (sets.at(-1)?.length === 0 ? true : undefined));
  t.deepEqual(await registry.listServiceInstances('web').then((s) => names(s)), []);
});
