// Peer-confirmed death in the engine, against a REAL etcd (docs/control-plane-faults.md#peer-confirmed-death):
// a machine its peers found dead is gone for the engine while its lease still lives, but only in the
// aftermath of an etcd disturbance, and never for its AtMostOnce units.
import test from 'ava';
import { asMachineId, asUnitName, type MachineId, type Unit } from '../../src/cluster/types.js';
import { Engine } from '../../src/engine/engine.js';
import { systemClock } from '../../src/lib/clock.js';
import { createLogger } from '../../src/lib/logger.js';
import { createRandom } from '../../src/lib/random.js';
import { createEtcdRegistry } from '../../src/registry/etcd-registry.js';
import type { EtcdHealth } from '../../src/registry/etcd-health.js';
import type { Membership, Registry } from '../../src/registry/registry.js';
import { unitHash } from '../../src/unit/hash.js';
import { randomPrefix, useEtcd } from '../helpers/etcd.js';
import { waitFor } from '../helpers/wait.js';

const etcd = useEtcd(test);
// Long leases: nothing expires during a test; only the peers' verdict can move a unit.
const LEASE = { ttlMs: 60_000, keepaliveMs: 5_000 };
const PLAIN = '[Service]\nExecStart=/bin/sleep 1000\n';
const FENCED = `${PLAIN}\n[X-Fleet]\nAtMostOnce=true\n`;

/** The registry as the engine sees it, with its connection health replaced by `health`. */
function withHealth(
  registry: Registry,
  health: Pick<EtcdHealth, 'healthySince' | 'lastFailureAt'>,
): Registry {
  return new Proxy(registry, {
    get(target, prop, receiver) {
      if (prop === 'health') return health;
      const value: unknown = Reflect.get(target, prop, receiver);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

async function setup(disturbed: boolean, reconnectGraceMs?: number) {
  const prefix = randomPrefix();
  const registries: Registry[] = [];
  const open = (): Registry => {
    const r = createEtcdRegistry({ endpoints: [etcd().endpoint], prefix, lease: LEASE });
    registries.push(r);
    return r;
  };
  const observer = open();
  const memberships: Membership[] = [];
  for (const id of ['m1', 'm2', 'm3'])
    memberships.push(
      await open().register(
        {
          id: asMachineId(id),
          ip: '127.0.0.1',
          metadata: {},
          version: 'test',
          startedAt: new Date().toISOString(),
        },
        LEASE,
      ),
    );
  const dead = new Map<MachineId, number | undefined>();
  const engineRegistry = open();
  // "etcd failed this engine a moment ago", kept a moment ago for the whole test.
  const health = disturbed
    ? { healthySince: () => Number.NEGATIVE_INFINITY, lastFailureAt: () => systemClock.monotonic() - 1_000 }
    : { healthySince: () => Number.NEGATIVE_INFINITY, lastFailureAt: () => undefined };
  const engine = new Engine({
    registry: withHealth(engineRegistry, health),
    clock: systemClock,
    random: createRandom(7),
    log: createLogger({ level: 'silent' }),
    candidate: 'e1',
    lease: { ttlMs: 4_000, keepaliveMs: 1_000 },
    deadMachines: () => dead,
    ...(reconnectGraceMs === undefined ? {} : { reconnectGraceMs }),
  });
  engine.start();
  const close = async (): Promise<void> => {
    await engine.stop().catch(() => undefined);
    for (const m of memberships) m.release();
    await Promise.all(registries.map((r) => r.close().catch(() => undefined)));
  };
  return { observer, engine, dead, memberships, close };
}

async function placement(r: Registry): Promise<Map<string, MachineId>> {
  const snap = await r.snapshot({ unitFiles: 'none' });
  return new Map(snap.assignments.map((a) => [a.unit, a.machine]));
}

/** Six units, two per machine: plain-0..2 and fenced-0..2 (AtMostOnce). */
async function submit(observer: Registry): Promise<Map<string, MachineId>> {
  for (let i = 0; i < 3; i++)
    for (const [name, text] of [
      [`plain-${i}.service`, PLAIN],
      [`fenced-${i}.service`, FENCED],
    ] as const) {
      const unit: Unit = { name: asUnitName(name), hash: unitHash(text), target: 'launched' };
      await observer.createUnit(unit, text);
    }
  return waitFor('six units placed', async () => {
    const p = await placement(observer);
    return p.size === 6 ? p : undefined;
  });
}

test.serial(
  'after an etcd disturbance, a machine its peers found dead loses its plain units at once; its AtMostOnce ones wait for its lease',
  async (t) => {
    const s = await setup(true);
    try {
      const before = await submit(s.observer);
      const victim = asMachineId('m3');
      const onVictim = [...before].filter(([, m]) => m === victim).map(([u]) => u);
      t.true(onVictim.length > 0, `m3 runs something: ${JSON.stringify([...before])}`);
      // m3 runs them: it holds their run claims, on its lease, which outlives it.
      const m3 = s.memberships[2];
      const m1 = s.memberships[0];
      if (m3 === undefined || m1 === undefined) return t.fail('three memberships');
      for (const u of onVictim) t.like(await s.observer.claimUnit(m3, asUnitName(u), victim), { ok: true });
      const record = (await s.observer.listMachines()).items.find((m) => m.id === victim);
      s.dead.set(victim, record?.createRevision);
      s.engine.peersChanged();
      const after = await waitFor('the plain units of m3 moved', async () => {
        const p = await placement(s.observer);
        return onVictim.every(
          (u) => u.startsWith('fenced-') || (p.get(u) !== undefined && p.get(u) !== victim),
        )
          ? p
          : undefined;
      });
      for (const u of onVictim)
        if (u.startsWith('fenced-'))
          t.is(after.get(u), victim, `${u} (AtMostOnce) stays on m3 until its lease expires`);
        else t.not(after.get(u), victim, `${u} moved`);
      for (const [u, m] of before) if (m !== victim) t.is(after.get(u), m, `${u} stays on ${m}`);
      t.true(
        (await s.observer.listMachines()).items.some((m) => m.id === victim),
        "m3's lease is still alive",
      );
      // The engine released the claims of the units it moved, so their new hosts start them at
      // once; the AtMostOnce units' claims stay with m3.
      for (const u of onVictim) {
        const unit = asUnitName(u);
        if (u.startsWith('fenced-'))
          t.deepEqual(await s.observer.claimUnit(m1, unit, asMachineId('m1')), { ok: false, holder: victim });
        else
          await waitFor(`the claim of ${u} released`, async () =>
            (await s.observer.claimUnit(m1, unit, asMachineId('m1'))).ok ? true : undefined,
          );
      }
    } finally {
      await s.close();
    }
  },
);

test.serial('while etcd is healthy, the lease decides: a machine found dead keeps its units', async (t) => {
  const s = await setup(false);
  try {
    const before = await submit(s.observer);
    const passes = s.engine.stats.passes;
    s.dead.set(asMachineId('m3'), undefined);
    s.engine.peersChanged();
    await waitFor('a pass after the verdict', () => (s.engine.stats.passes > passes ? true : undefined));
    t.deepEqual(await placement(s.observer), before, 'nothing moved');
    t.is(s.engine.stats.moves, 0);
  } finally {
    await s.close();
  }
});

test.serial(
  'a machine found dead in an earlier registration (it rebooted since) keeps its units',
  async (t) => {
    const s = await setup(true);
    try {
      const before = await submit(s.observer);
      const record = (await s.observer.listMachines()).items.find((m) => m.id === asMachineId('m3'));
      if (record === undefined) return t.fail('m3 registered');
      const passes = s.engine.stats.passes;
      s.dead.set(asMachineId('m3'), record.createRevision - 1);
      s.engine.peersChanged();
      await waitFor('a pass after the verdict', () => (s.engine.stats.passes > passes ? true : undefined));
      t.deepEqual(await placement(s.observer), before, 'nothing moved');
    } finally {
      await s.close();
    }
  },
);

for (const peersSayDead of [true, false])
  test.serial(
    `a machine whose lease is gone during the reconnect grace: its units ${peersSayDead ? 'move at once when its peers found it dead' : 'wait, as it may be re-registering'}`,
    async (t) => {
      // A long grace, running from the engine's election: a host without a lease may only be
      // re-registering, unless its peers found it dead (the etcd leader's host, powered off).
      const s = await setup(true, 600_000);
      try {
        const before = await submit(s.observer);
        const victim = asMachineId('m3');
        const onVictim = [...before].filter(([, m]) => m === victim).map(([u]) => u);
        const plain = onVictim.filter((u) => u.startsWith('plain-'));
        t.true(plain.length > 0, `m3 runs a plain unit: ${JSON.stringify([...before])}`);
        if (peersSayDead) s.dead.set(victim, undefined);
        await s.memberships[2]?.close(); // its lease ends: m3 is no longer registered
        await waitFor('m3 gone from the machines', async () =>
          (await s.observer.listMachines()).items.some((m) => m.id === victim) ? undefined : true,
        );
        const passes = s.engine.stats.passes;
        s.engine.peersChanged();
        await waitFor('a pass after m3 left', () => (s.engine.stats.passes > passes ? true : undefined));
        const after = await placement(s.observer);
        if (peersSayDead) {
          await waitFor('its plain units moved', async () => {
            const p = await placement(s.observer);
            return plain.every((u) => p.get(u) !== undefined && p.get(u) !== victim) ? true : undefined;
          });
          t.is(s.engine.stats.movesHeld, 0);
        } else {
          for (const u of plain) t.is(after.get(u), victim, `${u} kept on m3 during the grace`);
          t.true(s.engine.stats.movesHeld > 0);
        }
      } finally {
        await s.close();
      }
    },
  );
