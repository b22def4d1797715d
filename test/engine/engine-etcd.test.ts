// The engine against a REAL etcd: placement, failover on lease expiry, leader handover, and a
// deposed leader's plan rejected by the fence.
import test from 'ava';
import { asMachineId, asUnitName, type MachineId, type Unit } from '../../src/cluster/types.js';
import { Engine } from '../../src/engine/engine.js';
import { systemClock } from '../../src/lib/clock.js';
import { createRandom } from '../../src/lib/random.js';
import { silentLogger } from '../../src/lib/logger.js';
import { createEtcdRegistry } from '../../src/registry/etcd-registry.js';
import { RegistryError } from '../../src/registry/registry-error.js';
import type { Membership, Registry } from '../../src/registry/registry.js';
import { unitHash } from '../../src/unit/hash.js';
import { randomPrefix, useEtcd } from '../helpers/etcd.js';
import { waitFor } from '../helpers/wait.js';

const etcd = useEtcd(test);
/** For the leases a test lets expire (a dead machine, a dead leader): their TTL is its wait. */
const LEASE = { ttlMs: 4_000, keepaliveMs: 1_000 };
/**
 * For the machines that must stay: a loaded machine can stall this process for seconds, and a
 * membership lost that way would not come back (nothing here re-registers).
 */
const STAY = { ttlMs: 30_000, keepaliveMs: 1_000 };

interface Env {
  prefix: string;
  opened: Registry[];
  open(): Registry;
}

function env(): Env {
  const prefix = randomPrefix();
  const opened: Registry[] = [];
  return {
    prefix,
    opened,
    open() {
      const r = createEtcdRegistry({ endpoints: [etcd().endpoint], prefix, lease: LEASE });
      opened.push(r);
      return r;
    },
  };
}

async function closeAll(e: Env, engines: Engine[]): Promise<void> {
  await Promise.all(engines.map((x) => x.stop().catch(() => undefined)));
  await Promise.all(e.opened.map((r) => r.close().catch(() => undefined)));
}

const unitText = (extra = ''): string => `[Service]\nExecStart=/bin/sleep 1000\n${extra}`;

async function submit(r: Registry, name: string, text: string): Promise<void> {
  const unit: Unit = { name: asUnitName(name), hash: unitHash(text), target: 'launched' };
  await r.createUnit(unit, text);
}

async function join(
  r: Registry,
  id: string,
  metadata: Record<string, string> = {},
  lease: typeof LEASE = STAY,
): Promise<Membership> {
  return r.register(
    { id: asMachineId(id), ip: '127.0.0.1', metadata, version: 'test', startedAt: new Date().toISOString() },
    lease,
  );
}

async function placement(r: Registry): Promise<Map<string, MachineId[]>> {
  const snap = await r.snapshot({ unitFiles: 'none' });
  const out = new Map<string, MachineId[]>();
  for (const a of snap.assignments) out.set(a.unit, [...(out.get(a.unit) ?? []), a.machine]);
  return out;
}

test('places conflicting units one per machine and explains the one that does not fit', async (t) => {
  const e = env();
  const r = e.open();
  const engine = new Engine({
    registry: e.open(),
    clock: systemClock,
    random: createRandom(1),
    log: silentLogger,
    candidate: 'e1',
    lease: LEASE,
  });
  try {
    await Promise.all(['m1', 'm2', 'm3'].map((m) => join(r, m)));
    engine.start();
    for (const i of [1, 2, 3, 4])
      await submit(r, `web@${i}.unit`, unitText('[X-Fleet]\nConflicts=web@*.unit\n'));
    const placed = await waitFor('3 placements and 1 unschedulable', async () => {
      const snap = await r.snapshot({ unitFiles: 'none' });
      return snap.assignments.length === 3 && snap.unschedulable.size === 1 ? snap : undefined;
    });
    t.deepEqual(new Set(placed.assignments.map((a) => a.machine)), new Set(['m1', 'm2', 'm3']));
    const why = placed.unschedulable.get(asUnitName('web@4.unit'));
    if (why === undefined) return t.fail('web@4.unit should be the unschedulable one');
    t.regex(why.reason, /3 machines/);
    t.regex(why.machines['m1'] ?? '', /conflicts with web@\d\.unit/);
  } finally {
    await closeAll(e, [engine]);
  }
});

test('a machine whose lease expires has its units moved in the pass the expiry wakes', async (t) => {
  const e = env();
  const r = e.open();
  const victimRegistry = e.open();
  const engine = new Engine({
    registry: e.open(),
    clock: systemClock,
    random: createRandom(2),
    log: silentLogger,
    candidate: 'e1',
    lease: LEASE,
  });
  try {
    await join(victimRegistry, 'victim', { pool: 'a' }, LEASE);
    engine.start();
    await submit(r, 'app.unit', unitText('[X-Fleet]\nMachineMetadata=pool=a\n'));
    await waitFor('app on victim', async () =>
      (await placement(r)).get('app.unit')?.[0] === 'victim' ? true : undefined,
    );
    await join(r, 'standby', { pool: 'a' });
    // Power-off: keepalives stop without a revoke; etcd expires the lease after the TTL.
    const killedAt = Date.now();
    await victimRegistry.close();
    await waitFor('app on standby', async () =>
      (await placement(r)).get('app.unit')?.[0] === 'standby' ? true : undefined,
    );
    const tookMs = Date.now() - killedAt;
    t.log(`moved ${tookMs} ms after the victim stopped renewing (TTL ${LEASE.ttlMs} ms)`);
    t.true(tookMs >= LEASE.ttlMs / 2, 'must not move before the lease can expire');
    t.deepEqual((await placement(r)).get('app.unit'), ['standby']);
  } finally {
    await closeAll(e, [engine]);
  }
});

test('leader handover: when the leading engine dies, a follower takes over and keeps scheduling', async (t) => {
  const e = env();
  const r = e.open();
  const reg1 = e.open();
  const e1 = new Engine({
    registry: reg1,
    clock: systemClock,
    random: createRandom(3),
    log: silentLogger,
    candidate: 'e1',
    lease: LEASE,
  });
  const e2 = new Engine({
    registry: e.open(),
    clock: systemClock,
    random: createRandom(4),
    log: silentLogger,
    candidate: 'e2',
    lease: LEASE,
  });
  try {
    await join(r, 'm1');
    e1.start();
    await waitFor('e1 leads', async () => ((await r.getLeader())?.candidate === 'e1' ? true : undefined));
    e2.start();
    await submit(r, 'a.unit', unitText());
    await waitFor('a placed', async () => ((await placement(r)).has('a.unit') ? true : undefined));
    t.false(e2.stats.isLeader);
    // Crash e1's process: its connection (and keepalives) stop, nothing is resigned.
    await reg1.close();
    await waitFor('e2 leads', async () => ((await r.getLeader())?.candidate === 'e2' ? true : undefined));
    await submit(r, 'b.unit', unitText());
    await waitFor('b placed by e2', async () => ((await placement(r)).has('b.unit') ? true : undefined));
    // e1 cannot write any more (its connection is closed): b's placement is e2's plan. Polled, not
    // read once: on a loaded machine e2's stats may trail the write it just made.
    await waitFor('e2 leading, with a plan applied', () =>
      Promise.resolve(e2.stats.isLeader && e2.stats.plansApplied >= 1 ? true : undefined),
    );
    t.true(e2.stats.plansApplied >= 1);
  } finally {
    await closeAll(e, [e1, e2]);
  }
});

test("a deposed leader's plan does not land", async (t) => {
  const e = env();
  const r = e.open();
  const reg = e.open();
  const stale = new Engine({
    registry: reg,
    clock: systemClock,
    random: createRandom(5),
    log: silentLogger,
    candidate: 'old',
    lease: LEASE,
  });
  try {
    await join(r, 'm1');
    const term = await reg.leadership({ candidate: 'old', ...LEASE }).campaign();
    const snapshotBefore = await reg.snapshot();
    await term.resign();
    const successor = await r.leadership({ candidate: 'new', ...LEASE }).campaign();
    await submit(r, 'late.unit', unitText());
    const snap = await reg.snapshot();
    t.truthy(snapshotBefore);
    const err = await t.throwsAsync(stale.runPass(snap, term));
    t.true(err instanceof RegistryError);
    t.is((err as RegistryError).code, 'fenced');
    t.false((await placement(r)).has('late.unit'), 'the deposed leader wrote nothing');
    await successor.resign();
  } finally {
    await closeAll(e, [stale]);
  }
});

// Serial: the etcd of this file is shared, and the revision counts every test's writes.
test.serial('steady state: a settled engine writes nothing to etcd', async (t) => {
  const e = env();
  const r = e.open();
  const engine = new Engine({
    registry: e.open(),
    clock: systemClock,
    random: createRandom(6),
    log: silentLogger,
    candidate: 'e1',
    lease: LEASE,
    resyncMs: 200,
  });
  try {
    await Promise.all(['m1', 'm2'].map((m) => join(r, m)));
    engine.start();
    for (const i of [1, 2, 3]) await submit(r, `s${i}.unit`, unitText());
    await submit(r, 'never.unit', unitText('[X-Fleet]\nMachineID=nowhere\n'));
    await waitFor('settled', async () => {
      const snap = await r.snapshot({ unitFiles: 'none' });
      return snap.assignments.length === 3 && snap.unschedulable.size === 1 ? true : undefined;
    });
    // A pass counts itself when it starts, and passes run one after another: once the count is
    // two past a reading, the pass that began after that reading has finished (and written).
    const passesDone = (n: number): Promise<true> =>
      waitFor(`${n} engine passes`, () => engine.stats.passes >= n + 1, { intervalMs: 5 });
    // A pass that began after the settled state was seen has ended: its writes, if any, are in.
    await passesDone(engine.stats.passes + 1);
    const before = (await r.snapshot({ unitFiles: 'none' })).revision;
    const passesBefore = engine.stats.passes;
    await passesDone(passesBefore + 5); // several whole resync passes after `before`
    const after = (await r.snapshot({ unitFiles: 'none' })).revision;
    t.true(engine.stats.passes > passesBefore, 'the engine kept running passes');
    t.is(after, before, 'no etcd write in steady state (keepalives do not change the revision)');
  } finally {
    await closeAll(e, [engine]);
  }
});
