// `fleetts drain` on the deterministic simulation (harness.ts): the real engine and agents on the
// in-memory registry. A drained host's units move off it one group at a time (a unit with its
// MachineOf sidekick), each only once the previous one runs elsewhere; an AtMostOnce unit (every
// non-global unit, in fact) stops before it starts elsewhere; a global unit stops there; a pinned
// one waits unplaced. The drain is in etcd: a new engine leader goes on with it; undrain ends it.
import test, { type ExecutionContext } from 'ava';
import type { UnitName } from '../../src/cluster/types.js';
import { Simulation, type ActivityRecord } from './harness.js';
import { unitText } from './units.js';

function assertClean(t: ExecutionContext, sim: Simulation): void {
  const broken = sim.violations.map((v) => `${(v.at / 1000).toFixed(1)}s ${v.invariant}: ${v.message}`);
  t.deepEqual(broken, [], `invariants broken; trace:\n${sim.trace.join('\n')}`);
}

const PLAIN = ['a.service', 'b.service', 'c.service', 'd.service', 'e.service', 'f.service'];
const WEB = [1, 2, 3].map((i) => `web@${i}.service`);
const SIDE = [1, 2, 3].map((i) => `side@${i}.service`);

async function farm(): Promise<Simulation> {
  const sim = new Simulation({ hosts: HOSTS.map((id) => ({ id, metadata: { host: id } })) });
  await sim.start();
  for (const n of PLAIN) await sim.submit(n, unitText());
  for (const n of WEB) await sim.submit(n, unitText({ conflicts: ['web@*.service'] }));
  for (const [i, n] of SIDE.entries()) await sim.submit(n, unitText({ machineOf: [WEB[i] as string] }));
  await sim.submit('mon.service', unitText({ global: true }));
  const all = [...PLAIN, ...WEB, ...SIDE];
  await sim.until(() => all.every((n) => sim.runningOn(n).length === 1), 5000);
  return sim;
}

/** When `unit` first went down on `host` / first came up elsewhere, after `from`. */
function moveTimes(
  activity: readonly ActivityRecord[],
  unit: string,
  host: string,
  from: number,
): { down: number | undefined; up: number | undefined } {
  const after = activity.filter((a) => a.at >= from && a.unit === unit);
  return {
    down: after.find((a) => a.kind === 'down' && a.machine === host)?.at,
    up: after.find((a) => a.kind === 'up' && a.machine !== host)?.at,
  };
}

const HOSTS = ['h1', 'h2', 'h3', 'h4'];

const groupOf = (unit: string): string => unit.replace(/^side@/, 'web@');

test('drain moves a host’s units one group at a time, stop before start; undrain takes placements again', async (t) => {
  const sim = await farm();
  const victim = sim.assignedTo('web@1.service')[0] ?? 'h1';
  const other = HOSTS.find((h) => h !== victim && !sim.assignedTo('web@2.service').includes(h as never));
  // An AtMostOnce unit on the drained host (it may go to one other host), and one pinned there.
  await sim.submit(
    'amo.service',
    unitText({ atMostOnce: true, metadata: [`host=${victim}`, `host=${other}`] }),
  );
  await sim.submit('pin.service', unitText({ machineId: victim }));
  await sim.until(() => ['amo.service', 'pin.service'].every((n) => sim.runningOn(n).length === 1), 3000);
  t.deepEqual(sim.assignedTo('amo.service'), [victim]);
  const movable = [...PLAIN, ...WEB, ...SIDE, 'amo.service'].filter((n) =>
    sim.assignedTo(n).includes(victim as never),
  );
  t.true(movable.length >= 3, `the drained host runs several units (${movable.join(', ')})`);

  const from = sim.now;
  await sim.drain(victim);
  const took = await sim.until(() => sim.readState().assignments.every((a) => a.machine !== victim), 120_000);
  t.not(took, undefined, `the host ends empty; trace:\n${sim.trace.join('\n')}`);
  await sim.until(() => movable.every((n) => sim.runningOn(n).length === 1), 5000);

  const times = new Map(movable.map((n) => [n, moveTimes(sim.activity, n, victim, from)]));
  for (const [n, { down, up }] of times) {
    t.not(down, undefined, `${n} stopped on ${victim}`);
    t.not(up, undefined, `${n} started elsewhere`);
    t.true((up ?? 0) >= (down ?? Infinity), `${n} stopped on ${victim} before it started elsewhere`);
    t.deepEqual(sim.runningOn(n).length, 1, `${n} runs once`);
  }
  t.deepEqual(sim.assignedTo('amo.service'), [other]);
  t.deepEqual(sim.assignedTo('side@1.service'), sim.assignedTo('web@1.service'), 'the sidekick followed');
  // One group at a time: a group stops on the drained host only once the previous one is up elsewhere.
  const groups = new Map<string, { down: number; up: number }>();
  for (const [n, { down = 0, up = 0 }] of times) {
    const g = groups.get(groupOf(n));
    groups.set(
      groupOf(n),
      g === undefined ? { down, up } : { down: Math.min(g.down, down), up: Math.max(g.up, up) },
    );
  }
  const ordered = [...groups.entries()].sort((a, b) => a[1].down - b[1].down);
  for (let i = 1; i < ordered.length; i++) {
    const [prev, p] = ordered[i - 1] as [string, { up: number }];
    const [next, n] = ordered[i] as [string, { down: number }];
    t.true(n.down >= p.up, `${next} stopped (${n.down} ms) after ${prev} was up elsewhere (${p.up} ms)`);
  }
  t.log(
    ordered
      .map(
        ([g, x]) =>
          `${g} down ${((x.down - from) / 1000).toFixed(1)}s up ${((x.up - from) / 1000).toFixed(1)}s`,
      )
      .join('; '),
  );

  // The global unit stopped there and runs on the others; the pinned one waits, unplaced.
  t.false(sim.assignedTo('mon.service').includes(victim as never));
  t.is(sim.assignedTo('mon.service').length, 3);
  t.deepEqual(sim.assignedTo('pin.service'), []);
  t.true(sim.readState().unschedulable.has('pin.service' as UnitName));

  // New units avoid the drained host until undrain; then it takes placements again.
  await sim.submit('new1.service', unitText());
  await sim.until(() => sim.runningOn('new1.service').length === 1, 3000);
  t.false(sim.assignedTo('new1.service').includes(victim as never));
  await sim.undrain(victim);
  await sim.until(() => sim.runningOn('pin.service').length === 1, 5000);
  t.deepEqual(sim.assignedTo('pin.service'), [victim], 'the pinned unit is back on its machine');
  t.true(sim.assignedTo('mon.service').includes(victim as never), 'the global unit runs there again');
  await sim.submit('new2.service', unitText());
  await sim.until(() => sim.runningOn('new2.service').length === 1, 3000);
  t.deepEqual(sim.assignedTo('new2.service'), [victim], 'the emptiest host, no longer drained, takes it');
  t.true(
    movable.every((n) => !sim.assignedTo(n).includes(victim as never)),
    'nothing moves back',
  );
  assertClean(t, sim);
  sim.shutdown();
});

test('a drain goes on under a new engine leader', async (t) => {
  const sim = await farm();
  await sim.submit('amo.service', unitText({ atMostOnce: true }));
  const leader = sim.leaders()[0] ?? 'h1';
  const victim = ['h1', 'h2', 'h3', 'h4'].find((h) => h !== leader) ?? 'h2';
  await sim.drain(victim);
  // Let the first group move, then kill the leader host.
  await sim.until(() => sim.activity.some((a) => a.kind === 'down' && a.machine === victim), 10_000);
  sim.kill(leader);
  const took = await sim.until(
    () =>
      sim.leaders().length === 1 &&
      sim
        .readState()
        .assignments.every((a) => a.machine !== victim || !sim.readState().machines.has(a.machine)),
    120_000,
  );
  t.not(took, undefined, `the host ends empty; trace:\n${sim.trace.join('\n')}`);
  t.not(sim.leaders()[0], leader);
  assertClean(t, sim);
  sim.shutdown();
});
