// The reconnect grace against a REAL etcd (docs/control-plane-faults.md): etcd frozen (SIGSTOP)
// for longer than every lease's TTL, or killed and restarted on its data dir. The hosts that come
// back re-register under their ids, as fleetd's membership loop does, and keep every unit where it
// was; the unit of a host that does not come back moves once the grace has passed.
import { Writable } from 'node:stream';
import test, { type ExecutionContext } from 'ava';
import { asMachineId, asUnitName, type MachineId, type Unit } from '../../src/cluster/types.js';
import { DEFAULT_RECONNECT_GRACE_MS, Engine } from '../../src/engine/engine.js';
import { systemClock } from '../../src/lib/clock.js';
import { createRandom } from '../../src/lib/random.js';
import { createLogger } from '../../src/lib/logger.js';
import { createEtcdRegistry } from '../../src/registry/etcd-registry.js';
import type { Membership, Registry } from '../../src/registry/registry.js';
import { unitHash } from '../../src/unit/hash.js';
import { randomPrefix, useEtcd } from '../helpers/etcd.js';
import { waitFor } from '../helpers/wait.js';

const etcd = useEtcd(test);
const LEASE = { ttlMs: 4_000, keepaliveMs: 1_000 };
const TEXT = '[Service]\nExecStart=/bin/sleep 1000\n';

/** A host's membership kept like fleetd keeps it: lost → register again (same id, same lease if alive). */
class Host {
  readonly id: MachineId;
  readonly registry: Registry;
  membership: Membership | undefined;
  /** systemClock.monotonic() of each registration after the first. */
  readonly rejoinedAt: number[] = [];
  readonly #stop = new AbortController();
  #loop: Promise<void> | undefined;

  constructor(id: string, registry: Registry) {
    this.id = asMachineId(id);
    this.registry = registry;
  }

  async join(): Promise<void> {
    this.membership = await this.#register();
    this.#loop = this.#keep();
  }

  /** Power-off as etcd sees it: keepalives stop, nothing is revoked, nothing re-registers. */
  async die(): Promise<void> {
    this.#stop.abort();
    this.membership?.release();
    await this.#loop;
  }

  async #register(): Promise<Membership> {
    const resumeLeaseId = this.membership?.leaseId;
    return this.registry.register(
      { id: this.id, ip: '127.0.0.1', metadata: {}, version: 'test', startedAt: new Date().toISOString() },
      { ...LEASE, ...(resumeLeaseId === undefined ? {} : { resumeLeaseId }) },
    );
  }

  async #keep(): Promise<void> {
    const stop = this.#stop.signal;
    while (!stop.aborted) {
      const m = this.membership;
      if (m !== undefined && !m.signal.aborted) {
        await new Promise<void>((resolve) => {
          m.signal.addEventListener('abort', () => resolve(), { once: true });
          stop.addEventListener('abort', () => resolve(), { once: true });
        });
        continue;
      }
      try {
        this.membership = await this.#register();
        this.rejoinedAt.push(systemClock.monotonic());
      } catch {
        await systemClock.sleep(250, stop).catch(() => undefined);
      }
    }
  }
}

interface Setup {
  observer: Registry;
  hosts: Host[];
  engine: Engine;
  engineRegistry: Registry;
  registries: Registry[];
  /** The engine's log lines (debug and up): a failure shows what it wrote and why. */
  engineLog: string[];
}

async function setup(ids: string[]): Promise<Setup> {
  const prefix = randomPrefix();
  const registries: Registry[] = [];
  const open = (): Registry => {
    const r = createEtcdRegistry({ endpoints: [etcd().endpoint], prefix, lease: LEASE });
    registries.push(r);
    return r;
  };
  const hosts = ids.map((id) => new Host(id, open()));
  for (const h of hosts) await h.join();
  const engineRegistry = open();
  const engineLog: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      engineLog.push(
        ...chunk
          .toString()
          .split('\n')
          .filter((l) => l !== ''),
      );
      done();
    },
  });
  const engine = new Engine({
    registry: engineRegistry,
    clock: systemClock,
    random: createRandom(1),
    log: createLogger({ level: 'debug', destination: sink }),
    candidate: 'e1',
    lease: LEASE,
  });
  engine.start();
  return { observer: open(), hosts, engine, engineRegistry, registries, engineLog };
}

async function teardown(s: Setup): Promise<void> {
  await s.engine.stop().catch(() => undefined);
  await Promise.all(s.hosts.map((h) => h.die()));
  await Promise.all(s.registries.map((r) => r.close().catch(() => undefined)));
}

async function placement(r: Registry): Promise<Map<string, MachineId>> {
  const snap = await r.snapshot({ unitFiles: 'none' });
  return new Map(snap.assignments.map((a) => [a.unit, a.machine]));
}

async function submitOnePerHost(s: Setup): Promise<Map<string, MachineId>> {
  for (const i of s.hosts.keys()) {
    const unit: Unit = { name: asUnitName(`app@${i}.unit`), hash: unitHash(TEXT), target: 'launched' };
    await s.observer.createUnit(unit, TEXT);
  }
  return waitFor('one unit per host', async () => {
    const p = await placement(s.observer);
    return new Set(p.values()).size === s.hosts.length ? p : undefined;
  });
}

/**
 * After the fault: the hosts but `dead` re-register, nothing of theirs is written, and `dead`'s
 * unit moves to one of them only once the engine's connection has been healthy for the grace.
 */
async function checkRecovery(
  t: ExecutionContext,
  s: Setup,
  before: Map<string, MachineId>,
  dead: Host,
  written: number,
): Promise<void> {
  const deadUnit = [...before].find(([, m]) => m === dead.id)?.[0];
  const live = s.hosts.filter((h) => h !== dead);
  await waitFor('the other hosts registered again', async () => {
    const machines = (await s.observer.listMachines()).items.map((m) => m.id);
    return live.every((h) => machines.includes(h.id)) ? true : undefined;
  });
  const moved = await waitFor(`${deadUnit} moved off ${dead.id}`, async () => {
    const on = (await placement(s.observer)).get(deadUnit ?? '');
    return on !== undefined && on !== dead.id ? { on, at: systemClock.monotonic() } : undefined;
  });
  const since = s.engineRegistry.health.healthySince();
  t.log(
    `engine healthy since ${since === undefined ? '-' : Math.round(since)}, moved at ${Math.round(moved.at)}; ` +
      `rejoins at ${live.map((h) => h.rejoinedAt.map(Math.round).join('/') || 'none').join(', ')}`,
  );
  if (since !== undefined && Number.isFinite(since))
    t.true(moved.at >= since + DEFAULT_RECONNECT_GRACE_MS, 'not moved within the grace');
  const after = await placement(s.observer);
  for (const [unit, machine] of before)
    if (machine !== dead.id) t.is(after.get(unit), machine, `${unit} stays on ${machine}`);
  t.true(live.some((h) => h.id === moved.on));
  const ok = s.engine.stats.moves === 1 && s.engine.stats.changesWritten - written === 2 ? true : undefined;
  if (ok === undefined) t.log(`the engine's log:\n${s.engineLog.join('\n')}`);
  t.is(s.engine.stats.moves, 1, 'one move: the unit of the host that did not come back');
  t.is(s.engine.stats.changesWritten - written, 2, 'its unassignment and assignment, nothing else');
}

test.serial(
  'etcd frozen longer than the TTL: hosts that re-register keep their units; a host that does not is moved after the grace',
  async (t) => {
    const s = await setup(['m1', 'm2', 'm3']);
    try {
      const before = await submitOnePerHost(s);
      // The observer can see the placement before the engine's write has returned and been counted:
      // the baseline is taken once the engine has counted the three assignments.
      await waitFor('the engine settled', () =>
        s.engine.stats.isLeader && s.engine.stats.changesWritten >= s.hosts.length ? true : undefined,
      );
      const written = s.engine.stats.changesWritten;
      const dead = s.hosts[2];
      if (dead === undefined) return t.fail('three hosts');
      await dead.die();
      etcd().freeze();
      // Longer than every lease's TTL (4 s): the engine's, the hosts', the dead host's.
      await systemClock.sleep(LEASE.ttlMs + 3_000);
      etcd().thaw();
      await waitFor('the engine held moves after the freeze', () =>
        s.engine.stats.movesHeld > 0 || s.engine.stats.moves > 0 ? true : undefined,
      );
      await checkRecovery(t, s, before, dead, written);
      t.true(
        s.hosts.slice(0, 2).every((h) => h.rejoinedAt.length > 0),
        'the freeze cost every lease',
      );
    } finally {
      etcd().thaw();
      await teardown(s);
    }
  },
);

test.serial(
  'etcd killed and restarted on its data dir: nothing moves but the unit of a host that is gone',
  async (t) => {
    const s = await setup(['m1', 'm2', 'm3']);
    try {
      const before = await submitOnePerHost(s);
      // The observer can see the placement before the engine's write has returned and been counted:
      // the baseline is taken once the engine has counted the three assignments.
      await waitFor('the engine settled', () =>
        s.engine.stats.isLeader && s.engine.stats.changesWritten >= s.hosts.length ? true : undefined,
      );
      const written = s.engine.stats.changesWritten;
      const dead = s.hosts[2];
      if (dead === undefined) return t.fail('three hosts');
      await dead.die();
      await etcd().restart();
      await checkRecovery(t, s, before, dead, written);
    } finally {
      await teardown(s);
    }
  },
);
