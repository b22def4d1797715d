// Scripted faults on the deterministic cluster simulation (harness.ts): the real engine and light
// agents on the in-memory registry and a fake clock; every invariant is checked after every step.
import test, { type ExecutionContext } from 'ava';
import { MEMBERSHIP_RETRY } from '../../src/registry/kept-lease.js';
import { Simulation, type HostSpec } from './harness.js';
import { unitText } from './units.js';

const TTL = 5000;
/** Failover bound (simulated time): the lease TTL plus a little for the pass and the clock step. */
const FAILOVER_BOUND_MS = TTL + 1000;

const HOSTS: HostSpec[] = [
  { id: 'h1', metadata: { zone: 'a' } },
  { id: 'h2', metadata: { zone: 'a' } },
  { id: 'h3', metadata: { zone: 'b' } },
];

async function cluster(hosts: HostSpec[] = HOSTS): Promise<Simulation> {
  const sim = new Simulation({ hosts, ttlMs: TTL });
  await sim.start();
  return sim;
}

/**
 * No invariant broke (but those in `known`, named by a known-issues.test.ts bug); on failure, the
 * whole trace is in the message so that it reads alone.
 */
function assertClean(t: ExecutionContext, sim: Simulation, known: readonly string[] = []): void {
  const broken = sim.violations
    .filter((v) => !known.includes(v.invariant))
    .map((v) => `${(v.at / 1000).toFixed(1)}s ${v.invariant}: ${v.message}`);
  t.deepEqual(broken, [], `invariants broken; trace:\n${sim.trace.join('\n')}`);
}

/** Submits `names` (plain units unless `text` says otherwise) and waits until each runs once. */
async function launch(sim: Simulation, names: string[], text = unitText()): Promise<void> {
  for (const name of names) await sim.submit(name, text);
  await sim.until(() => names.every((n) => sim.runningOn(n).length === 1), 3000);
}

function unitsOn(sim: Simulation, host: string, names: string[]): string[] {
  return names.filter((n) => sim.assignedTo(n).includes(host as never));
}

test('kill a host: its units are placed elsewhere within TTL + 1 s and run exactly once', async (t) => {
  const sim = await cluster();
  const names = ['a.service', 'b.service', 'c.service', 'd.service', 'e.service', 'f.service'];
  await launch(sim, names);
  const leader = sim.leaders()[0];
  const victim = ['h1', 'h2', 'h3'].find((h) => h !== leader && unitsOn(sim, h, names).length > 0) ?? 'h3';
  const moved = unitsOn(sim, victim, names);
  t.true(moved.length > 0, 'the victim runs something');
  sim.kill(victim);
  await sim.run(FAILOVER_BOUND_MS + 1000);
  t.deepEqual(
    sim.failovers.map((f) => f.unit).sort(),
    moved,
    'every unit of the dead host was placed elsewhere',
  );
  for (const f of sim.failovers) t.true(f.ms <= FAILOVER_BOUND_MS, `${f.unit} moved after ${f.ms} ms`);
  for (const n of names) t.is(sim.runningOn(n).length, 1, `${n} runs once`);
  t.log(`failover: ${sim.failovers.map((f) => `${f.unit} ${f.ms} ms`).join(', ')}`);
  sim.healAll();
  await sim.run(8000);
  t.deepEqual(sim.checkSettled(), []);
  t.deepEqual(unitsOn(sim, victim, names), [], 'the restarted host pulls nothing back');
  assertClean(t, sim);
  sim.shutdown();
});

test('kill the leader host: another engine takes over and the dead host units move', async (t) => {
  const sim = await cluster();
  const names = ['a.service', 'b.service', 'c.service', 'd.service', 'e.service', 'f.service'];
  await launch(sim, names);
  const [leader] = sim.leaders();
  t.truthy(leader);
  const moved = unitsOn(sim, leader as string, names);
  sim.kill(leader as string);
  const tookOver = await sim.until(() => sim.leaders().length === 1, FAILOVER_BOUND_MS);
  t.not(tookOver, undefined, 'a new leader is elected');
  t.true((tookOver ?? Infinity) <= TTL + 500, `new leader after ${tookOver} ms`);
  t.not(sim.leaders()[0], leader);
  await sim.run(FAILOVER_BOUND_MS);
  t.deepEqual(sim.failovers.map((f) => f.unit).sort(), moved);
  for (const f of sim.failovers) t.true(f.ms <= FAILOVER_BOUND_MS, `${f.unit} moved after ${f.ms} ms`);
  for (const n of names) t.is(sim.runningOn(n).length, 1, `${n} runs once`);
  t.true(sim.writesPerFence.size >= 2, 'two terms wrote');
  assertClean(t, sim);
  sim.shutdown();
});

test('a host cut off from etcd but not from its peers: its AtMostOnce units stop there before they start elsewhere, its other units run on; healed, one copy of each remains', async (t) => {
  const sim = await cluster();
  const plain = ['a.service', 'b.service', 'c.service', 'd.service', 'e.service', 'f.service'];
  const once = ['s1.service', 's2.service', 's3.service', 's4.service', 's5.service', 's6.service'];
  await launch(sim, plain);
  await launch(sim, once, unitText({ atMostOnce: true }));
  const leader = sim.leaders()[0];
  const victim =
    ['h1', 'h2', 'h3'].find(
      (h) => h !== leader && unitsOn(sim, h, plain).length > 0 && unitsOn(sim, h, once).length > 0,
    ) ?? 'h3';
  const fenced = unitsOn(sim, victim, once);
  const kept = unitsOn(sim, victim, plain);
  t.true(fenced.length > 0 && kept.length > 0, `${victim} runs both kinds`);
  const renewedAt = sim.host(victim).membership?.renewedAt() ?? 0;
  const cut = sim.now;
  sim.partition(victim);
  await sim.run(FAILOVER_BOUND_MS + 1000);
  for (const unit of fenced) {
    const down = sim.activity.find(
      (e) => e.unit === unit && e.machine === victim && e.kind === 'down' && e.at >= cut,
    );
    const up = sim.activity.find(
      (e) => e.unit === unit && e.machine !== victim && e.kind === 'up' && e.at >= cut,
    );
    t.is(down?.why, 'fenced', `${unit} was fenced on ${victim}`);
    t.truthy(up, `${unit} started elsewhere`);
    t.true(
      (down?.at ?? Infinity) < (up?.at ?? 0),
      `${unit} stopped at ${down?.at}, started elsewhere at ${up?.at}`,
    );
    t.true((down?.at ?? Infinity) < renewedAt + TTL, `${unit} stopped before the lease could expire`);
  }
  for (const unit of kept) {
    t.true(sim.activeOn(unit).includes(victim as never), `${unit} still runs on ${victim}`);
    t.is(sim.assignedTo(unit).length, 1, `${unit} was moved: its copy on ${victim} is an orphan`);
  }
  t.true(sim.host(victim).agent.stats.fences >= 1);
  t.true(sim.host(victim).agent.stats.keeps === 0, 'its peers said etcd works for them');
  sim.heal(victim);
  await sim.run(10_000);
  t.deepEqual(unitsOn(sim, victim, [...plain, ...once]), [], 'the healed host gets nothing back');
  for (const unit of kept) t.is(sim.activeOn(unit).length, 1, `${unit}: one copy remains`);
  t.deepEqual(sim.checkSettled(), []);
  assertClean(t, sim);
  sim.shutdown();
});

test('partition the leader: the others elect a new one, the old one stops leading, no stale write lands', async (t) => {
  const sim = await cluster();
  const names = ['a.service', 'b.service', 'c.service', 'd.service'];
  await launch(sim, names);
  const [leader] = sim.leaders();
  sim.partition(leader as string);
  await sim.run(FAILOVER_BOUND_MS);
  const now = sim.leaders();
  t.is(now.length, 1);
  t.not(now[0], leader);
  t.false(sim.host(leader as string).engine?.stats.isLeader, 'the partitioned engine knows it lost');
  // While cut off, the old leader keeps failing to write; heal it while units change.
  await sim.submit('late.service', unitText());
  sim.heal(leader as string);
  await sim.run(8000);
  t.true(sim.maxLeaders <= 1);
  t.deepEqual(sim.checkSettled(), []);
  assertClean(t, sim);
  sim.shutdown();
});

test('a MachineID-pinned unit waits for its host and returns to it', async (t) => {
  const sim = await cluster();
  await sim.submit('pinned.service', unitText({ machineId: 'h2' }));
  await launch(sim, ['free.service']);
  await sim.until(() => sim.runningOn('pinned.service').length === 1, 2000);
  t.deepEqual(sim.runningOn('pinned.service'), ['h2']);
  sim.kill('h2');
  await sim.run(FAILOVER_BOUND_MS + 2000);
  t.deepEqual(sim.assignedTo('pinned.service'), [], 'not placed elsewhere');
  t.deepEqual(sim.activeOn('pinned.service'), []);
  t.true(sim.readState().unschedulable.has('pinned.service' as never), 'reported unschedulable');
  sim.restart('h2');
  const back = await sim.until(() => sim.runningOn('pinned.service').join() === 'h2', 10_000);
  t.not(back, undefined, 'runs on h2 again');
  t.false(sim.readState().unschedulable.has('pinned.service' as never));
  t.deepEqual(sim.checkSettled(), []);
  assertClean(t, sim);
  sim.shutdown();
});

test('conflicting units spread; a fourth waits; a dead host leaves its unit waiting until it returns', async (t) => {
  const sim = await cluster();
  const text = unitText({ conflicts: ['web*.service'] });
  const names = ['web1.service', 'web2.service', 'web3.service'];
  await launch(sim, names, text);
  t.deepEqual(names.map((n) => sim.assignedTo(n)[0]).sort(), ['h1', 'h2', 'h3']);
  await sim.submit('web4.service', text);
  await sim.run(1000);
  t.deepEqual(sim.assignedTo('web4.service'), []);
  t.true(sim.readState().unschedulable.has('web4.service' as never));
  const victim = sim.assignedTo('web1.service')[0] as string;
  sim.kill(victim);
  await sim.run(FAILOVER_BOUND_MS);
  t.deepEqual(sim.assignedTo('web1.service'), [], 'no room: web1 waits');
  sim.restart(victim);
  await sim.run(10_000);
  const placed = [...names, 'web4.service'].filter((n) => sim.assignedTo(n).length === 1);
  t.is(placed.length, 3, 'three hosts, three conflicting units placed');
  t.deepEqual(sim.checkSettled(), []);
  assertClean(t, sim);
  sim.shutdown();
});

test('MachineOf: a follower moves with its leader when the leader host dies', async (t) => {
  const sim = await cluster();
  await launch(sim, ['lead.service']);
  await sim.submit('side.service', unitText({ machineOf: ['lead.service'] }));
  await sim.run(1000);
  const first = sim.assignedTo('lead.service')[0] as string;
  t.deepEqual(sim.assignedTo('side.service'), [first]);
  sim.kill(first);
  await sim.run(FAILOVER_BOUND_MS + 1000);
  const next = sim.assignedTo('lead.service');
  t.is(next.length, 1);
  t.not(next[0], first);
  t.deepEqual(sim.assignedTo('side.service'), next);
  t.deepEqual(sim.runningOn('side.service'), next);
  assertClean(t, sim);
  sim.shutdown();
});

test('global units run on every fitting host, including a host that joins later', async (t) => {
  const sim = await cluster();
  await sim.submit('everywhere.service', unitText({ global: true }));
  await sim.submit('zone-a.service', unitText({ global: true, metadata: ['zone=a'] }));
  await sim.run(1500);
  t.deepEqual(sim.runningOn('everywhere.service'), ['h1', 'h2', 'h3']);
  t.deepEqual(sim.runningOn('zone-a.service'), ['h1', 'h2']);
  sim.addHost({ id: 'h4', metadata: { zone: 'a' } });
  sim.addHost({ id: 'h5', metadata: { zone: 'c' } });
  await sim.run(2000);
  t.deepEqual(sim.runningOn('everywhere.service'), ['h1', 'h2', 'h3', 'h4', 'h5']);
  t.deepEqual(sim.runningOn('zone-a.service'), ['h1', 'h2', 'h4']);
  sim.kill('h1');
  await sim.run(FAILOVER_BOUND_MS);
  t.deepEqual(sim.assignedTo('everywhere.service'), ['h2', 'h3', 'h4', 'h5']);
  t.deepEqual(sim.checkSettled(), []);
  assertClean(t, sim);
  sim.shutdown();
});

test('slow etcd (400 ms per call on every host): units are placed, failover stays bounded', async (t) => {
  const sim = await cluster();
  for (const h of ['h1', 'h2', 'h3']) sim.slow(h, 400);
  const names = ['a.service', 'b.service', 'c.service', 'd.service'];
  for (const n of names) await sim.submit(n, unitText());
  await sim.until(() => names.every((n) => sim.runningOn(n).length === 1), 5000);
  for (const n of names) t.is(sim.runningOn(n).length, 1, `${n} runs`);
  const leader = sim.leaders()[0];
  const victim = ['h1', 'h2', 'h3'].find((h) => h !== leader && unitsOn(sim, h, names).length > 0) ?? 'h3';
  const moved = unitsOn(sim, victim, names);
  sim.kill(victim);
  await sim.run(FAILOVER_BOUND_MS + 2000);
  t.deepEqual(sim.failovers.map((f) => f.unit).sort(), moved);
  // A pass is a snapshot and a write: two round trips more than without latency.
  for (const f of sim.failovers) t.true(f.ms <= FAILOVER_BOUND_MS + 800, `${f.unit} moved after ${f.ms} ms`);
  t.log(`failover with 400 ms latency: ${sim.failovers.map((f) => `${f.ms} ms`).join(', ')}`);
  sim.healAll();
  await sim.run(8000);
  t.deepEqual(sim.checkSettled(), []);
  assertClean(t, sim);
  sim.shutdown();
});

test('a leader whose keepalives stop is deposed; its in-flight plan is refused by the fence', async (t) => {
  const sim = await cluster();
  await launch(sim, ['a.service', 'b.service']);
  const leader = sim.leaders()[0] as string;
  // Its other calls still reach etcd, slowly: a pass started before its lease expires writes after.
  sim.dropKeepalives(leader);
  sim.slow(leader, 2000);
  await sim.run(2500);
  await sim.submit('c.service', unitText());
  await sim.run(10_000);
  t.true(sim.store.staleFencesRefused >= 1, `stale writes refused: ${sim.store.staleFencesRefused}`);
  t.is(sim.leaders().length, 1);
  t.not(sim.leaders()[0], leader);
  t.is(sim.assignedTo('c.service').length, 1, 'the new leader placed the unit');
  sim.healAll();
  await sim.run(8000);
  t.deepEqual(sim.checkSettled(), []);
  // Bug C (known-issues.test.ts): the deposed engine's stats.isLeader lags its term's end.
  assertClean(t, sim, ['2-one-leader']);
  sim.shutdown();
});

test('etcd unreachable for every host past the TTL: once it is back, each host re-registers within the 1 s retry cap', async (t) => {
  // Issue 12: after an outage the engine gives a host whose lease it took only a few seconds to come
  // back, so fleetd's membership retry is capped at 1 s (jittered) while etcd is down, not 5 s. The
  // bound is the requirement (1 s), not MEMBERSHIP_RETRY.maxMs, so that raising the cap fails here.
  const sim = await cluster();
  const ids = ['h1', 'h2', 'h3'];
  await launch(sim, ['a.service', 'b.service', 'c.service']);
  for (const id of ids) sim.partition(id);
  await sim.run(30_000);
  t.deepEqual(
    ids.filter((id) => sim.host(id).membership !== undefined),
    [],
    'every host lost its lease during the outage',
  );
  const back = sim.now;
  for (const id of ids) sim.heal(id);
  await sim.until(() => ids.every((id) => sim.host(id).membership !== undefined), 10_000);
  const after = ids.map((id) => (sim.host(id).registeredAt ?? Infinity) - back);
  for (const [i, ms] of after.entries())
    t.true(ms <= 1_000, `${ids[i]} re-registered ${ms} ms after etcd came back`);
  t.log(`re-registered ${after.join(', ')} ms after etcd came back (cap ${MEMBERSHIP_RETRY.maxMs} ms)`);
  await sim.run(10_000);
  t.deepEqual(sim.checkSettled(), []);
  assertClean(t, sim);
  sim.shutdown();
});

/** Every start and stop since `since` (simulated ms), one line each. */
function changesSince(sim: Simulation, since: number): string[] {
  return sim.activity
    .filter((e) => e.at >= since)
    .map((e) => `${e.at} ${e.machine} ${e.unit} ${e.kind} (${e.why})`);
}

function placements(sim: Simulation, names: string[]): string[] {
  return names.map((n) => `${n} → ${sim.assignedTo(n).join(',')}`);
}

const PLAIN = ['a.service', 'b.service', 'c.service', 'd.service', 'e.service', 'f.service'];
const ONCE = ['s1.service', 's2.service', 's3.service', 's4.service', 's5.service', 's6.service'];

async function mixed(): Promise<Simulation> {
  const sim = await cluster();
  await launch(sim, PLAIN);
  await launch(sim, ONCE, unitText({ atMostOnce: true }));
  return sim;
}

for (const outageMs of [3_000, 10_000, 60_000]) {
  test(`etcd down for everyone for ${outageMs / 1000} s: no unit stops, restarts or moves, AtMostOnce ones included`, async (t) => {
    const sim = await mixed();
    const before = placements(sim, [...PLAIN, ...ONCE]);
    const leases = ['h1', 'h2', 'h3'].map((h) => sim.host(h).membership?.leaseId);
    const since = sim.now;
    sim.etcdDown();
    await sim.run(outageMs);
    t.deepEqual(changesSince(sim, since), [], 'nothing stopped during the outage');
    const keeping = ['h1', 'h2', 'h3'].filter((h) => unitsOn(sim, h, ONCE).length > 0);
    if (outageMs > 4_000)
      for (const h of keeping) t.true(sim.host(h).agent.stats.keeps > 0, `${h}'s peers vouched`);
    sim.etcdUp();
    await sim.run(15_000);
    const plainChanges = changesSince(sim, since).filter((l) => PLAIN.some((u) => l.includes(` ${u} `)));
    t.deepEqual(plainChanges, [], 'no plain unit stopped or started after it');
    t.deepEqual(placements(sim, [...PLAIN, ...ONCE]), before, 'nothing moved');
    const after = ['h1', 'h2', 'h3'].map((h) => sim.host(h).membership?.leaseId);
    if (outageMs > TTL)
      t.true(
        after.every((l, i) => l !== undefined && l !== leases[i]),
        're-registered',
      );
    else t.deepEqual(after, leases, 'every lease outlived the outage');
    t.deepEqual(sim.checkSettled(), []);
    // Known bug D (regressions.test.ts): an AtMostOnce unit may be fenced and started again on its
    // host right after etcd is back, when a peer renews first. Every other stop would break an invariant.
    const d = sim.violations.filter((v) => v.invariant === '7-fenced-on-return');
    if (d.length > 0) t.log(`known bug D: ${d.map((v) => v.message).join('; ')}`);
    assertClean(t, sim, ['7-fenced-on-return']);
    sim.shutdown();
  });
}

for (const electionMs of [1_500, 3_000, 4_500]) {
  test(`etcd leader change (election ${electionMs / 1000} s): every lease is extended, nothing stops, restarts or moves`, async (t) => {
    const sim = await mixed();
    const before = placements(sim, [...PLAIN, ...ONCE]);
    const leases = ['h1', 'h2', 'h3'].map((h) => sim.host(h).membership?.leaseId);
    const since = sim.now;
    sim.etcdLeaderChange(electionMs);
    await sim.run(15_000);
    t.false(sim.store.down);
    t.deepEqual(
      changesSince(sim, since).filter((l) => PLAIN.some((u) => l.includes(` ${u} `))),
      [],
      'no plain unit stopped or started',
    );
    t.deepEqual(placements(sim, [...PLAIN, ...ONCE]), before);
    const after = ['h1', 'h2', 'h3'].map((h) => sim.host(h).membership?.leaseId);
    // An election of a TTL less a keepalive or more outlasts the holders' patience: each gives its
    // lease up (and revokes it, though the new leader extended it) and registers again (finding F).
    if (electionMs < TTL - 1_000) t.deepEqual(after, leases, 'no lease lost: the new leader extended them');
    t.deepEqual(sim.checkSettled(), []);
    const d = sim.violations.filter((v) => v.invariant === '7-fenced-on-return');
    if (d.length > 0) t.log(`known bug D: ${d.map((v) => v.message).join('; ')}`);
    assertClean(t, sim, ['7-fenced-on-return']);
    sim.shutdown();
  });
}

test('a host that reaches etcd but not its peers: nothing stops, restarts or moves', async (t) => {
  const sim = await mixed();
  const before = placements(sim, [...PLAIN, ...ONCE]);
  const since = sim.now;
  sim.cutPeers('h2');
  await sim.run(20_000);
  t.deepEqual(changesSince(sim, since), []);
  t.deepEqual(placements(sim, [...PLAIN, ...ONCE]), before);
  sim.cutPeers('h2', false);
  await sim.run(2_000);
  t.deepEqual(sim.checkSettled(), []);
  assertClean(t, sim);
  sim.shutdown();
});

test('etcd down for everyone while one host cannot reach its peers: nobody can vouch, so every AtMostOnce unit stops and no plain one; back, each runs once again', async (t) => {
  const sim = await mixed();
  const before = placements(sim, [...PLAIN, ...ONCE]);
  const since = sim.now;
  sim.cutPeers('h3');
  sim.etcdDown();
  await sim.run(10_000);
  const stopped = changesSince(sim, since);
  t.true(
    stopped.every((l) => l.includes(' down (fenced)') && ONCE.some((u) => l.includes(u))),
    stopped.join('\n'),
  );
  for (const u of ONCE) t.deepEqual(sim.activeOn(u), [], `${u} stopped everywhere`);
  for (const u of PLAIN) t.is(sim.activeOn(u).length, 1, `${u} runs on`);
  sim.etcdUp();
  sim.cutPeers('h3', false);
  await sim.run(15_000);
  for (const u of [...PLAIN, ...ONCE]) t.is(sim.runningOn(u).length, 1, `${u} runs once`);
  t.deepEqual(placements(sim, PLAIN), before.slice(0, PLAIN.length), 'plain units did not move');
  t.deepEqual(sim.checkSettled(), []);
  assertClean(t, sim);
  sim.shutdown();
});
