// The bootstrap protocol of `fleetts galera member` against a real etcd: the lock, the member keys
// and the bootstrap history, with N members deciding at the same moment (no mariadbd here: the
// e2e test runs real ones).
import test from 'ava';
import { systemClock } from '../../src/lib/clock.js';
import { asUnitName } from '../../src/cluster/types.js';
import { EtcdKv } from '../../src/registry/etcd-kv.js';
import { KvRegistry } from '../../src/registry/kv-registry.js';
import { decideStart, type StartDecision } from '../../src/galera/decide-start.js';
import { GaleraStore } from '../../src/galera/galera-store.js';
import { randomPrefix, useEtcd } from '../helpers/etcd.js';

const etcd = useEtcd(test);

interface SimMember {
  decision: StartDecision;
  close(): Promise<void>;
}

/** One member's protocol, with its own etcd client, as galera-member.ts runs it. */
async function startMember(prefix: string, n: number, holdMs: number): Promise<SimMember> {
  const kv = new EtcdKv({ endpoints: [etcd().endpoint] }, systemClock);
  const registry = new KvRegistry({ kv, clock: systemClock, prefix });
  const store = new GaleraStore({ kv, clock: systemClock, prefix, cluster: 'sim' });
  const lease = await registry.openLease({ ttlMs: 3_000 });
  const instance = `mysql@${n}.unit`;
  const address = `10.9.0.${10 + n}:3306`;
  await store.acquireLock(lease.leaseId, instance, AbortSignal.timeout(30_000));
  const [running, announced] = await Promise.all([
    store.listMembers(),
    registry.listServiceInstances('mysql'),
  ]);
  const decision = decideStart({
    self: { instance, host: `10.9.0.${10 + n}` },
    running,
    announced: announced.items.map((i) => ({ instance: i.unit ?? i.instance, address: i.address })),
  });
  const since = new Date().toISOString();
  await store.recordStart(
    lease.leaseId,
    { instance, address, role: decision.kind, since },
    decision.kind === 'bootstrap' ? { instance, address, at: since, reason: decision.reason } : undefined,
  );
  if (decision.kind === 'bootstrap') {
    // "Until Synced": the lock is held a while; joiners must wait for it.
    await systemClock.sleep(holdMs);
    await registry.announce(lease, {
      service: 'mysql',
      instance,
      address,
      unit: asUnitName(instance),
      since,
    });
  }
  await store.releaseLock(lease.leaseId);
  return {
    decision,
    close: async () => {
      await lease.close();
      await registry.close();
    },
  };
}

test('five members started at once: exactly one bootstraps, the others join it', async (t) => {
  const prefix = randomPrefix();
  const members = await Promise.all([1, 2, 3, 4, 5].map((n) => startMember(prefix, n, 400)));
  try {
    const boots = members.filter((m) => m.decision.kind === 'bootstrap');
    t.is(boots.length, 1, members.map((m) => `${m.decision.kind}: ${m.decision.reason}`).join('\n'));
    const kv = new EtcdKv({ endpoints: [etcd().endpoint] }, systemClock);
    const store = new GaleraStore({ kv, clock: systemClock, prefix, cluster: 'sim' });
    const history = await store.listBootstraps();
    t.is(history.length, 1);
    t.regex(history[0]?.reason ?? '', /no member runs/);
    const bootHost = history[0]?.address.split(':')[0] ?? '?';
    for (const m of members)
      if (m.decision.kind === 'join') t.true(m.decision.peers.includes(bootHost), m.decision.reason);
    t.is((await store.listMembers()).length, 5);
    kv.close();
  } finally {
    await Promise.all(members.map((m) => m.close()));
  }
});

test('a member that dies holding the lock frees it with its lease; its member key goes too', async (t) => {
  const prefix = randomPrefix();
  const kv = new EtcdKv({ endpoints: [etcd().endpoint] }, systemClock);
  const registry = new KvRegistry({ kv, clock: systemClock, prefix });
  const store = new GaleraStore({ kv, clock: systemClock, prefix, cluster: 'sim' });
  const dead = await registry.openLease({ ttlMs: 2_000 });
  await store.acquireLock(dead.leaseId, 'mysql@1.unit', AbortSignal.timeout(5_000));
  await store.recordStart(
    dead.leaseId,
    { instance: 'mysql@1.unit', address: '10.9.0.11:3306', role: 'bootstrap', since: 'x' },
    undefined,
  );
  const next = await registry.openLease({ ttlMs: 2_000 });
  let waitedFor = '';
  const taken = store.acquireLock(
    next.leaseId,
    'mysql@2.unit',
    AbortSignal.timeout(15_000),
    (h) => (waitedFor = h),
  );
  await systemClock.sleep(300);
  t.is(waitedFor, 'mysql@1.unit', 'the second waits and names the holder');
  dead.release(); // a power cut: no revoke, the lease expires after its TTL
  await taken;
  t.deepEqual(await store.listMembers(), [], 'the dead member key expired with its lease');
  // The lock is fenced: the dead member can no longer record anything.
  await t.throwsAsync(
    store.recordStart(
      dead.leaseId,
      { instance: 'mysql@1.unit', address: 'x', role: 'join', since: 'x' },
      undefined,
    ),
    { message: /lost the bootstrap lock/ },
  );
  await next.close();
  await registry.close();
});
