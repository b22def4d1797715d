// One randomized run of the cluster simulation (harness.ts) per seed: a random sequence of user
// actions (submit/start/stop/unload/destroy units with random constraints from a small name space)
// and faults (kill/restart hosts, partition/heal, latency, a host joining; etcd down for everyone, an
// etcd leader change, a host's peer network cut), then everything healed
// and a settling period. Every choice comes from one seeded `Random` and the simulation is
// deterministic, so a seed replays a run exactly (randomized.test.ts, docs/simulation.md).
import { createRandom, type Random } from '../../src/lib/random.js';
import type { TargetState } from '../../src/cluster/types.js';
import { parseUnitSpec } from '../../src/unit/unit-spec.js';
import { Simulation, type HostSpec } from './harness.js';
import { unitText, type UnitOptions } from './units.js';

export const RUN_MS = 60_000;
export const SETTLE_MS = 25_000;

const HOSTS: HostSpec[] = [
  { id: 'h1', metadata: { zone: 'a' } },
  { id: 'h2', metadata: { zone: 'a' } },
  { id: 'h3', metadata: { zone: 'b' } },
  { id: 'h4', metadata: { zone: 'b' } },
];
const LATE_HOSTS: HostSpec[] = [
  { id: 'h5', metadata: { zone: 'a' } },
  { id: 'h6', metadata: { zone: 'c' } },
];
const UNITS = ['u0', 'u1', 'u2', 'u3', 'u4', 'u5', 'u6', 'u7'].map((n) => `${n}.service`);
const GLOBALS = ['g0.service', 'g1.service'];
const CONFLICTS = ['u*.service', 'u1.service', 'u[0-3].service', 'u[4-7].service', 'g1.service'];
const TARGETS: TargetState[] = ['launched', 'launched', 'launched', 'loaded', 'inactive'];

/** A random unit file for `name`; constraints that parseUnitSpec rejects together are dropped. */
export function randomUnit(rnd: Random, name: string, hosts: readonly string[]): string {
  const o: { -readonly [K in keyof UnitOptions]: UnitOptions[K] } = { tag: `v${rnd.int(3)}` };
  if (name.startsWith('g')) {
    o.global = true;
    if (rnd.chance(0.4)) o.metadata = [`zone=${rnd.pick(['a', 'b'])}`];
  } else {
    if (rnd.chance(0.35)) o.conflicts = [rnd.pick(CONFLICTS)];
    if (rnd.chance(0.2)) o.machineOf = [rnd.pick(UNITS.filter((u) => u !== name))];
    else if (rnd.chance(0.15)) o.machineId = rnd.pick(hosts);
    if (rnd.chance(0.2)) o.metadata = [`zone=${rnd.pick(['a', 'b', 'c'])}`];
    if (rnd.chance(0.4)) o.atMostOnce = true;
  }
  const text = unitText(o);
  try {
    parseUnitSpec(text, name);
    return text;
  } catch {
    return unitText({
      ...(o.tag === undefined ? {} : { tag: o.tag }),
      ...(o.global === true ? { global: true } : {}),
    });
  }
}

/** One random action on the current state of `sim` (deterministic given the generator's state). */
export async function randomAction(rnd: Random, sim: Simulation): Promise<void> {
  const hosts = [...sim.hosts.values()];
  const up = hosts.filter((h) => h.up);
  const healthy = up.filter((h) => !h.faults.partitioned);
  const units = [...sim.readState().units.keys()] as string[];
  if (sim.store.down ? rnd.chance(0.3) : rnd.chance(0.1)) return controlPlaneFault(rnd, sim);
  const r = rnd.next();
  if (r < 0.3) {
    const free = [...UNITS, ...GLOBALS].filter((n) => !units.includes(n));
    if (free.length === 0) return void (await sim.destroy(rnd.pick(units)));
    const name = rnd.pick(free);
    await sim.submit(
      name,
      randomUnit(
        rnd,
        name,
        hosts.map((h) => h.id),
      ),
      rnd.pick(TARGETS),
    );
  } else if (r < 0.52) {
    if (units.length > 0) await sim.setTarget(rnd.pick(units), rnd.pick(TARGETS));
  } else if (r < 0.6) {
    if (units.length > 0) await sim.destroy(rnd.pick(units));
  } else if (r < 0.67) {
    if (up.length > 2) sim.kill(rnd.pick(up).id);
  } else if (r < 0.76) {
    const down = hosts.filter((h) => !h.up);
    if (down.length > 0) sim.restart(rnd.pick(down).id);
  } else if (r < 0.83) {
    if (healthy.length > 2) sim.partition(rnd.pick(healthy).id);
  } else if (r < 0.91) {
    const cut = hosts.filter((h) => h.faults.partitioned);
    if (cut.length > 0) sim.heal(rnd.pick(cut).id);
  } else if (r < 0.98) {
    sim.slow(rnd.pick(hosts).id, rnd.pick([0, 0, 100, 300, 800]));
  } else {
    const next = LATE_HOSTS.find((h) => !sim.hosts.has(h.id as never));
    if (next !== undefined) sim.addHost(next);
  }
}

/** etcd down for everyone (or back), an etcd leader change, a host's peer network cut or healed. */
function controlPlaneFault(rnd: Random, sim: Simulation): void {
  if (sim.store.down) return sim.etcdUp();
  const up = [...sim.hosts.values()].filter((h) => h.up);
  const r = rnd.next();
  if (r < 0.3) sim.etcdDown();
  else if (r < 0.6) sim.etcdLeaderChange(rnd.pick([500, 1500, 3000, 6000]));
  else if (r < 0.8) {
    if (up.length > 0) sim.cutPeers(rnd.pick(up).id);
  } else {
    const cut = up.filter((h) => h.faults.peersCut);
    if (cut.length > 0) sim.cutPeers(rnd.pick(cut).id, false);
  }
}

/** Runs one seed to the end (faults healed, liveness checked); the caller reads `violations`. */
export async function runSeed(seed: number): Promise<Simulation> {
  const rnd = createRandom(seed);
  const sim = new Simulation({ hosts: HOSTS, seed });
  sim.note(`seed ${seed}`);
  await sim.start();
  while (sim.now < RUN_MS) {
    await randomAction(rnd, sim);
    await sim.run(rnd.pick([100, 300, 500, 1000, 2000, 4000]));
  }
  sim.note('heal everything');
  sim.healAll();
  await sim.run(SETTLE_MS);
  sim.checkSettled();
  sim.shutdown();
  return sim;
}
