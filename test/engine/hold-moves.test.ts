// The reconnect grace (docs/control-plane-faults.md): the REAL engine on the in-memory etcd with a
// fake clock. After an etcd outage the engine keeps units on machines whose lease the outage took,
// until its own connection has been healthy for the grace; a machine that dies while etcd is
// healthy is failed over in the pass its expiry wakes, grace or not.
import test, { type ExecutionContext } from 'ava';
import pino from 'pino';
import { asMachineId, asUnitName, type MachineId, type Unit } from '../../src/cluster/types.js';
import type { ClusterView } from '../../src/cluster/view.js';
import { DEFAULT_RECONNECT_GRACE_MS, Engine } from '../../src/engine/engine.js';
import { holdMovesOffAbsentMachines } from '../../src/engine/hold-moves.js';
import { FakeClock } from '../../src/lib/clock.js';
import { createRandom } from '../../src/lib/random.js';
import { MemoryEtcd, MemoryRegistry } from '../../src/registry/memory-registry.js';
import type { Membership } from '../../src/registry/registry.js';
import { NO_PLACEMENT } from '../../src/cluster/types.js';
import { unitHash } from '../../src/unit/hash.js';

const LEASE = { ttlMs: 5_000, keepaliveMs: 1_000 };
const STEP_MS = 100;
/** Placed one per machine at first (the scheduler spreads), free to share one after a move. */
const TEXT = '[Service]\nExecStart=/bin/sleep 1000\n';

interface Cluster {
  clock: FakeClock;
  store: MemoryEtcd;
  /** Reads the store; never faulted. */
  observer: MemoryRegistry;
  hosts: Map<string, { registry: MemoryRegistry; membership: Membership | undefined }>;
  engines: Map<string, { registry: MemoryRegistry; engine: Engine }>;
  logs: { event?: string; leftMs?: number; units?: number }[];
}

function machine(id: string) {
  return {
    id: asMachineId(id),
    ip: '10.0.0.1',
    metadata: {},
    version: 'test',
    startedAt: '2026-01-01T00:00:00Z',
  };
}

async function cluster(hosts: string[], engines: string[]): Promise<Cluster> {
  const clock = new FakeClock();
  const store = new MemoryEtcd({ clock });
  const logs: Cluster['logs'] = [];
  const log = pino(
    { level: 'info' },
    { write: (line: string) => void logs.push(JSON.parse(line) as Cluster['logs'][number]) },
  );
  const c: Cluster = {
    clock,
    store,
    observer: new MemoryRegistry({ store }),
    hosts: new Map(),
    engines: new Map(),
    logs,
  };
  for (const id of hosts) {
    const registry = new MemoryRegistry({ store, lease: LEASE });
    c.hosts.set(id, { registry, membership: await registry.register(machine(id), LEASE) });
  }
  for (const id of engines) {
    const registry = new MemoryRegistry({ store, lease: LEASE });
    const random = createRandom(c.engines.size + 1);
    const engine = new Engine({ registry, clock, random, log, candidate: id, lease: LEASE });
    c.engines.set(id, { registry, engine });
    engine.start();
  }
  return c;
}

async function submit(c: Cluster, names: string[]): Promise<void> {
  for (const name of names) {
    const unit: Unit = { name: asUnitName(name), hash: unitHash(TEXT), target: 'launched' };
    await c.observer.createUnit(unit, TEXT);
  }
}

async function placement(c: Cluster): Promise<Map<string, MachineId>> {
  const snap = await c.observer.snapshot({ unitFiles: 'none' });
  return new Map(snap.assignments.map((a) => [a.unit, a.machine]));
}

/** Advances fake time a step at a time until `check` holds; fails after `limitMs` of fake time. */
async function until<T>(
  t: ExecutionContext,
  c: Cluster,
  what: string,
  check: () => Promise<T | undefined> | T | undefined,
  limitMs = 60_000,
): Promise<T> {
  for (let waited = 0; waited <= limitMs; waited += STEP_MS) {
    const got = await check();
    if (got !== undefined && got !== false) return got;
    await c.clock.advance(STEP_MS);
  }
  t.fail(`${what}: not within ${limitMs} ms of fake time`);
  throw new Error(what);
}

function leader(c: Cluster): Engine | undefined {
  return [...c.engines.values()].find((e) => e.engine.stats.isLeader)?.engine;
}

async function placed(t: ExecutionContext, c: Cluster, n: number): Promise<Map<string, MachineId>> {
  return until(t, c, `${n} units placed`, async () => {
    const p = await placement(c);
    return p.size === n ? p : undefined;
  });
}

/** etcd unreachable for every client (frozen, restarting, no quorum) for `ms`. */
async function outage(c: Cluster, ms: number): Promise<void> {
  const all = [...c.hosts.values(), ...c.engines.values()].map((x) => x.registry);
  for (const r of all) r.setFaults({ unavailable: true });
  await c.clock.advance(ms);
}

async function stopAll(c: Cluster): Promise<void> {
  for (const r of [...c.hosts.values(), ...c.engines.values()].map((x) => x.registry)) r.setFaults({});
  const stopping = Promise.all([...c.engines.values()].map((e) => e.engine.stop()));
  await c.clock.advance(10_000);
  await stopping;
}

test('pure: units on absent machines are kept out of the view; user-asked removals are not', (t) => {
  const m = (id: string) => ({ ...machine(id), metadata: {} });
  const u = (name: string, target: 'launched' | 'inactive' = 'launched', global = false) => ({
    name: asUnitName(name),
    hash: unitHash(name),
    target,
    placement: { ...NO_PLACEMENT, global },
  });
  const a = (unit: string, on: string) => ({
    unit: asUnitName(unit),
    machine: asMachineId(on),
    hash: unitHash(unit),
    target: 'launched' as const,
  });
  const view: ClusterView = {
    machines: [m('live')],
    units: [
      u('kept.unit'),
      u('stopped.unit', 'inactive'),
      u('global.unit', 'launched', true),
      u('here.unit'),
    ],
    assignments: [
      a('kept.unit', 'gone'),
      a('stopped.unit', 'gone'),
      a('destroyed.unit', 'gone'),
      a('global.unit', 'gone'),
      a('global.unit', 'live'),
      a('here.unit', 'live'),
    ],
  };
  const { view: held, held: list } = holdMovesOffAbsentMachines(view);
  t.deepEqual(
    list.map((h) => `${h.unit}@${h.machine}`),
    ['kept.unit@gone', 'global.unit@gone'],
  );
  t.deepEqual(
    held.units.map((x) => x.name),
    ['stopped.unit', 'global.unit', 'here.unit'],
    'a global unit stays in view, to be placed on machines that join',
  );
  t.deepEqual(
    held.assignments.map((x) => `${x.unit}@${x.machine}`),
    ['stopped.unit@gone', 'destroyed.unit@gone', 'global.unit@live', 'here.unit@live'],
  );
  const none = holdMovesOffAbsentMachines({ ...view, assignments: view.assignments.slice(4) });
  t.deepEqual(none.held, []);
});

test('after an outage longer than the TTL, units stay on a machine that re-registers, and move off one that does not only after the grace', async (t) => {
  const c = await cluster(['m1', 'm2'], ['e1']);
  try {
    await submit(c, ['app@1.unit', 'app@2.unit']);
    const before = await placed(t, c, 2);
    const gone = before.get('app@1.unit');
    const back = before.get('app@2.unit');
    if (gone === undefined || back === undefined) return t.fail('both placed');
    await outage(c, LEASE.ttlMs + 3_000);
    t.deepEqual((await c.observer.listMachines()).items, [], 'every lease expired');
    // etcd is back; the host that comes back re-registers, the other stays cut off.
    const e1 = c.engines.get('e1');
    const returning = c.hosts.get(back);
    if (e1 === undefined || returning === undefined) return t.fail('set up');
    e1.registry.setFaults({});
    returning.registry.setFaults({});
    await until(t, c, 'the engine holds the moves', () => (e1.engine.stats.movesHeld > 0 ? true : undefined));
    const healthySince = e1.registry.health.healthySince();
    if (healthySince === undefined) return t.fail('healthy again');
    returning.membership = await returning.registry.register(machine(back), LEASE);
    await until(t, c, 'a pass that saw the returning host', () =>
      e1.engine.stats.movesHeld === 1 ? true : undefined,
    );
    t.deepEqual(await placement(c), before, 'nothing moved or was deleted during the grace');
    t.is(e1.engine.stats.moves, 0);
    const holds = c.logs.filter((l) => l.event === 'engine.hold_moves');
    t.is(holds.length, 1, 'the hold is logged once');
    t.is(holds[0]?.units, 2, 'when first logged, both hosts were absent');

    const movedAt = await until(t, c, 'app@1 moved to the returned host', async () =>
      (await placement(c)).get('app@1.unit') === back ? c.clock.monotonic() : undefined,
    );
    t.true(
      movedAt >= healthySince + DEFAULT_RECONNECT_GRACE_MS,
      `moved at ${movedAt}, healthy since ${healthySince}`,
    );
    t.true(
      movedAt <= healthySince + DEFAULT_RECONNECT_GRACE_MS + STEP_MS,
      'the engine woke when the grace ended',
    );
    t.is((await placement(c)).get('app@2.unit'), back, 'the unit on the returned host never moved');
    t.is(e1.engine.stats.moves, 1);
    t.is(e1.engine.stats.movesHeld, 0);
  } finally {
    await stopAll(c);
  }
});

test('a machine that dies while etcd is healthy is failed over in the pass its expiry wakes', async (t) => {
  const c = await cluster(['m1', 'm2'], ['e1']);
  try {
    await submit(c, ['app@1.unit']);
    const before = await placed(t, c, 1);
    // A cluster up for a while: past the grace a just-started engine keeps (bug E).
    await c.clock.advance(DEFAULT_RECONNECT_GRACE_MS);
    const victim = before.get('app@1.unit');
    const host = victim === undefined ? undefined : c.hosts.get(victim);
    if (host === undefined) return t.fail('placed');
    // Power-off: keepalives stop; etcd expires the lease after its TTL.
    host.registry.setFaults({ unavailable: true });
    let maxHeld = 0;
    const goneAt = await until(t, c, 'the victim is gone', async () =>
      (await c.observer.listMachines()).items.some((m) => m.id === victim) ? undefined : c.clock.monotonic(),
    );
    const movedAt = await until(t, c, 'app@1 moved', async () => {
      maxHeld = Math.max(maxHeld, leader(c)?.stats.movesHeld ?? 0);
      const on = (await placement(c)).get('app@1.unit');
      return on !== undefined && on !== victim ? c.clock.monotonic() : undefined;
    });
    t.is(maxHeld, 0);
    t.true(movedAt - goneAt <= STEP_MS, `moved ${movedAt - goneAt} ms after the lease expired`);
    t.false(c.logs.some((l) => l.event === 'engine.hold_moves'));
  } finally {
    await stopAll(c);
  }
});

test('the leader host powered off: the next leader, healthy throughout, moves its units at once', async (t) => {
  const c = await cluster(['m1', 'm2'], ['e1', 'e2']);
  try {
    await submit(c, ['app@1.unit', 'app@2.unit']);
    const before = await placed(t, c, 2);
    // A cluster up for a while: past the grace a just-started engine keeps (bug E).
    await c.clock.advance(DEFAULT_RECONNECT_GRACE_MS);
    const first = await until(t, c, 'a leader', () =>
      [...c.engines.entries()].find(([, e]) => e.engine.stats.isLeader),
    );
    // The leader's fleetd and its host m1 (or m2) go together.
    const [leaderId, lead] = first;
    const victim = before.get('app@1.unit');
    const host = victim === undefined ? undefined : c.hosts.get(victim);
    if (host === undefined) return t.fail('placed');
    lead.registry.setFaults({ unavailable: true });
    host.registry.setFaults({ unavailable: true });
    const next = [...c.engines.entries()].find(([id]) => id !== leaderId)?.[1];
    if (next === undefined) return t.fail('two engines');
    await until(t, c, 'app@1 moved', async () => {
      const on = (await placement(c)).get('app@1.unit');
      return on !== undefined && on !== victim ? true : undefined;
    });
    t.true(next.engine.stats.isLeader);
    t.is(next.engine.stats.moves, 1);
    t.false(
      c.logs.some((l) => l.event === 'engine.hold_moves'),
      'no hold: etcd was healthy for the new leader',
    );
  } finally {
    await stopAll(c);
  }
});

test('a term that starts right after an outage holds; after a clean handover the next leader does not', async (t) => {
  const c = await cluster(['m1', 'm2', 'm3'], ['e1', 'e2']);
  try {
    await submit(c, ['app@1.unit', 'app@2.unit', 'app@3.unit']);
    const before = await placed(t, c, 3);
    await outage(c, LEASE.ttlMs + 3_000);
    t.false(c.engines.get('e1')?.engine.stats.isLeader ?? true);
    t.false(c.engines.get('e2')?.engine.stats.isLeader ?? true);
    // etcd is back for both engines and two hosts; the third host (m3's, say) stays cut off.
    const gone = 'm3';
    for (const [id, h] of c.hosts) if (id !== gone) h.registry.setFaults({});
    for (const e of c.engines.values()) e.registry.setFaults({});
    const elected = await until(t, c, 'a new term', () => leader(c));
    const termAt = c.clock.monotonic();
    for (const [id, h] of c.hosts)
      if (id !== gone) h.membership = await h.registry.register(machine(id), LEASE);
    await until(t, c, 'the new leader holds the moves', () =>
      elected.stats.movesHeld === 1 ? true : undefined,
    );
    t.deepEqual(await placement(c), before);
    const movedAt = await until(t, c, 'the unit of the host still gone moved', async () => {
      const p = await placement(c);
      return [...p.values()].includes(asMachineId(gone)) ? undefined : c.clock.monotonic();
    });
    t.true(
      movedAt >= termAt + DEFAULT_RECONNECT_GRACE_MS - STEP_MS,
      `moved at ${movedAt}, term at ${termAt}`,
    );
    t.is(elected.stats.moves, 1);

    // A clean handover long after: the leader resigns and the leader's host leaves with it.
    const logsBefore = c.logs.filter((l) => l.event === 'engine.hold_moves').length;
    const [oldId, old] = [...c.engines.entries()].find(([, e]) => e.engine === elected) ?? [];
    const successor = [...c.engines.entries()].find(([id]) => id !== oldId)?.[1];
    if (old === undefined || successor === undefined) return t.fail('two engines');
    const p = await placement(c);
    const leaving = [...c.hosts.keys()].find(
      (id) => id !== gone && [...p.values()].includes(asMachineId(id)),
    );
    const leavingHost = leaving === undefined ? undefined : c.hosts.get(leaving);
    if (leavingHost?.membership === undefined) return t.fail('a host with units');
    const stopping = old.engine.stop();
    await leavingHost.membership.close();
    await until(t, c, 'the successor leads', () => (successor.engine.stats.isLeader ? true : undefined));
    await stopping;
    await until(t, c, 'units moved off the leaving host', async () => {
      const now = await placement(c);
      return [...now.values()].includes(asMachineId(leaving ?? '')) ? undefined : true;
    });
    t.is(c.logs.filter((l) => l.event === 'engine.hold_moves').length, logsBefore, 'no new hold');
  } finally {
    await stopAll(c);
  }
});
