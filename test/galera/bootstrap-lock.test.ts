// The bootstrap protocol of `fleetts galera member` against a real etcd: the lock, the member keys
// and the bootstrap history, with N members deciding at the same moment, and the restart after a
// whole-cluster outage from published positions (no mariadbd here: the e2e test runs real ones).
import test from 'ava';
import { systemClock } from '../../src/lib/clock.js';
import { createRandom } from '../../src/lib/random.js';
import { asUnitName } from '../../src/cluster/types.js';
import { EtcdKv } from '../../src/registry/etcd-kv.js';
import { KvRegistry } from '../../src/registry/kv-registry.js';
import { decideStart, type StartDecision } from '../../src/galera/decide-start.js';
import { GaleraStore } from '../../src/galera/galera-store.js';
import type { DataPosition } from '../../src/galera/choose-bootstrap.js';
import { decideUnderLock } from '../../src/galera/decide-under-lock.js';
import { silentLogger } from '../../src/lib/logger.js';
import { randomPrefix, useEtcd } from '../helpers/etcd.js';
import { waitFor } from '../helpers/wait.js';

const etcd = useEtcd(test);

interface SimMember {
  decision: StartDecision;
  close(): Promise<void>;
}

/** One member's protocol, with its own etcd client, as galera-member.ts runs it. */
async function startMember(prefix: string, n: number, holdMs: number): Promise<SimMember> {
  const kv = new EtcdKv({ endpoints: [etcd().endpoint] }, systemClock);
  const registry = new KvRegistry({ kv, clock: systemClock, random: createRandom(n), prefix });
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
  const registry = new KvRegistry({ kv, clock: systemClock, random: createRandom(1), prefix });
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
  await waitFor('the second to report whom it waits for', () => waitedFor !== '');
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

/** An earlier life of the cluster: mysql@1 bootstrapped it, the others joined; then every host lost power. */
async function earlierLife(prefix: string, members: readonly number[]): Promise<void> {
  const kv = new EtcdKv({ endpoints: [etcd().endpoint] }, systemClock);
  const registry = new KvRegistry({ kv, clock: systemClock, random: createRandom(1), prefix });
  const store = new GaleraStore({ kv, clock: systemClock, prefix, cluster: 'sim' });
  const lease = await registry.openLease({ ttlMs: 3_000 });
  await store.acquireLock(lease.leaseId, 'setup', AbortSignal.timeout(5_000));
  for (const n of members) {
    const instance = `mysql@${n}.unit`;
    const address = `10.9.0.${10 + n}:3306`;
    const role = n === members[0] ? 'bootstrap' : 'join';
    await store.recordStart(
      lease.leaseId,
      { instance, address, role, since: 'then' },
      role === 'bootstrap' ? { instance, address, at: 'then', reason: 'a new cluster' } : undefined,
    );
  }
  await lease.close(); // the outage: every member key goes
  await registry.close();
}

interface Restarted {
  decision: StartDecision | undefined;
  decidedAfterMs: number;
  close(): Promise<void>;
}

/** One member after the outage, running the real decision loop with its published position. */
async function restart(
  prefix: string,
  n: number,
  position: DataPosition,
  options: { delayMs?: number; recoveryWaitMs?: number } = {},
): Promise<Restarted> {
  await systemClock.sleep(options.delayMs ?? 0);
  const started = Date.now();
  const kv = new EtcdKv({ endpoints: [etcd().endpoint] }, systemClock);
  const registry = new KvRegistry({ kv, clock: systemClock, random: createRandom(n), prefix });
  const store = new GaleraStore({ kv, clock: systemClock, prefix, cluster: 'sim' });
  const lease = await registry.openLease({ ttlMs: 3_000 });
  const instance = `mysql@${n}.unit`;
  const address = `10.9.0.${10 + n}:3306`;
  const decision = await decideUnderLock(
    { store, registry, clock: systemClock, log: silentLogger },
    {
      lease: lease.leaseId,
      instance,
      host: `10.9.0.${10 + n}`,
      cluster: 'sim',
      service: 'mysql',
      position,
      recoveryWaitMs: options.recoveryWaitMs ?? 20_000,
      retryMs: 150,
    },
    AbortSignal.timeout(30_000),
  );
  const decidedAfterMs = Date.now() - started;
  if (decision !== undefined) {
    const since = new Date().toISOString();
    await store.recordStart(
      lease.leaseId,
      { instance, address, role: decision.kind, since },
      decision.kind === 'bootstrap' ? { instance, address, at: since, reason: decision.reason } : undefined,
    );
    if (decision.kind === 'bootstrap') await systemClock.sleep(300); // "until Synced"
    await store.releaseLock(lease.leaseId);
  }
  return {
    decision,
    decidedAfterMs,
    close: async () => {
      await lease.close();
      await registry.close();
    },
  };
}

const U = '8871c134-e758-11ee-8000-000000000001';
const at = (seqno: number): DataPosition => ({ kind: 'data', uuid: U, seqno });

test('whole-cluster restart: the most advanced member bootstraps even when it starts last; the others join it', async (t) => {
  const prefix = randomPrefix();
  await earlierLife(prefix, [1, 2, 3]);
  const members = await Promise.all([
    restart(prefix, 1, at(5)),
    restart(prefix, 3, at(7)),
    restart(prefix, 4, { kind: 'empty' }), // a member re-placed on a new host just before the outage
    restart(prefix, 2, at(9), { delayMs: 1_500 }),
  ]);
  try {
    const text = members.map((m) => `${m.decision?.kind}: ${m.decision?.reason}`).join('\n');
    const [m1, m3, m4, m2] = members;
    t.is(m2?.decision?.kind, 'bootstrap', text);
    t.regex(m2?.decision?.reason ?? '', new RegExp(`the most advanced data: ${U}:9 `));
    for (const m of [m1, m3, m4]) {
      t.is(m?.decision?.kind, 'join', text);
      if (m?.decision?.kind === 'join') t.deepEqual(m.decision.peers.includes('10.9.0.12'), true, text);
    }
    const kv = new EtcdKv({ endpoints: [etcd().endpoint] }, systemClock);
    const store = new GaleraStore({ kv, clock: systemClock, prefix, cluster: 'sim' });
    const history = await store.listBootstraps();
    t.deepEqual(
      history.map((h) => h.instance),
      ['mysql@1.unit', 'mysql@2.unit'],
      'one bootstrap for the restart, by the member with seqno 9',
    );
    t.deepEqual(await store.listPositions(), [], 'the bootstrap cleared the outage positions');
    t.deepEqual((await store.listKnown()).sort(), [
      'mysql@1.unit',
      'mysql@2.unit',
      'mysql@3.unit',
      'mysql@4.unit',
    ]);
    kv.close();
  } finally {
    await Promise.all(members.map((m) => m.close()));
  }
});

test('whole-cluster restart: a known member that never comes back delays the bootstrap by the recovery wait only; force-bootstrap overrides the positions', async (t) => {
  const prefix = randomPrefix();
  await earlierLife(prefix, [1, 2, 3]);
  // mysql@3 (whatever it holds) stays down.
  const [m1, m2] = await Promise.all([
    restart(prefix, 1, at(4), { recoveryWaitMs: 1_500 }),
    restart(prefix, 2, at(6), { recoveryWaitMs: 1_500 }),
  ]);
  try {
    t.is(m2?.decision?.kind, 'bootstrap', m2?.decision?.reason);
    t.regex(m2?.decision?.reason ?? '', /mysql@3.unit published nothing within 2 s/);
    t.true((m2?.decidedAfterMs ?? 0) >= 1_400, `decided after ${m2?.decidedAfterMs} ms`);
    t.is(m1?.decision?.kind, 'join', m1?.decision?.reason);
  } finally {
    await Promise.all([m1?.close(), m2?.close()]);
  }
  // Next outage: the operator names mysql@3 (say, the others' disks are suspect).
  const kv = new EtcdKv({ endpoints: [etcd().endpoint] }, systemClock);
  const store = new GaleraStore({ kv, clock: systemClock, prefix, cluster: 'sim' });
  await store.forceBootstrap('mysql@3.unit');
  const after = await Promise.all([restart(prefix, 2, at(50)), restart(prefix, 3, at(1), { delayMs: 500 })]);
  try {
    t.is(after[0]?.decision?.kind, 'join', after[0]?.decision?.reason);
    t.is(after[1]?.decision?.kind, 'bootstrap');
    t.regex(after[1]?.decision?.reason ?? '', /forced by the operator/);
    t.is(await store.forcedBootstrap(), undefined, 'the forced record is used once');
  } finally {
    await Promise.all(after.map((m) => m.close()));
    kv.close();
  }
});
