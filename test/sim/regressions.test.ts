// Engine/registry bugs the simulation found, reduced to scripts (docs/simulation.md, "Findings"),
// kept as regression tests of their fixes. Also: the harness catches a broken agent.
import test from 'ava';
import { Simulation, type HostSpec } from './harness.js';
import { unitText } from './units.js';

const HOSTS: HostSpec[] = [{ id: 'h1' }, { id: 'h2' }, { id: 'h3' }];

function broken(sim: Simulation, invariant: string): string[] {
  return sim.violations
    .filter((v) => v.invariant.startsWith(invariant))
    .map((v) => `${v.at} ms: ${v.message}`);
}

test('the harness catches an agent that does not fence: a partitioned host keeps running its units', async (t) => {
  const sim = new Simulation({ hosts: HOSTS, fenceAfterMs: 60_000 });
  await sim.start();
  for (const n of ['a.service', 'b.service', 'c.service']) await sim.submit(n, unitText());
  await sim.run(2000);
  const leader = sim.leaders()[0];
  const victim = HOSTS.map((h) => h.id).find((h) => h !== leader) as string;
  t.true(sim.host(victim).agent.active().length > 0);
  sim.partition(victim);
  await sim.run(8000);
  t.true(broken(sim, '1-single-active').length > 0, sim.trace.join('\n'));
  sim.shutdown();
});

// Bug A — a stale plan lands after its machine came back. The leader computed "machine M is gone:
// move its units" from a snapshot; before its write landed, M re-registered (a quick reboot, a
// healed partition) and its agent started the units it is still assigned. writeAssignments compares
// only the units' revisions, not the machines the plan judged gone, so the move lands anyway: M's
// units move off a live machine (invariant 4) while M is still running them (invariant 1).
test('bug A: a plan computed while a machine was gone must not land after it re-registered', async (t) => {
  const sim = new Simulation({ hosts: HOSTS });
  await sim.start();
  const names = ['a.service', 'b.service', 'c.service', 'd.service', 'e.service', 'f.service'];
  for (const n of names) await sim.submit(n, unitText());
  await sim.run(2000);
  const leader = sim.leaders()[0] as string;
  const victim = HOSTS.map((h) => h.id).find((h) => h !== leader) as string;
  t.true(sim.host(victim).agent.active().length > 0);
  // A slow leader: each pass reads its snapshot 1.5 s after asking and writes 1.5 s after that.
  sim.slow(leader, 1500);
  sim.kill(victim);
  await sim.until(() => !sim.readState().machines.has(victim as never), 6000);
  await sim.run(2000); // the leader has read "victim is gone"; its write is on its way
  sim.restart(victim);
  await sim.run(6000);
  t.deepEqual(broken(sim, '4-no-churn'), [], sim.trace.join('\n'));
  t.deepEqual(broken(sim, '1-single'), [], sim.trace.join('\n'));
  sim.shutdown();
});

// Bug B — a move between two LIVE machines has no stop handshake. The engine assigns the unit to
// its new machine as soon as it is off the old one (same pass, or the next), and the new host
// starts it at once, while the old host is still stopping it (a real stop takes up to
// TimeoutStopSec). Reached by destroy + submit elsewhere (here), a MachineOf leader that moves,
// Replaces=, and bug A.
test('bug B: a unit moved off a live machine must not start elsewhere before it stopped there', async (t) => {
  const sim = new Simulation({ hosts: HOSTS, stopDelayMs: 2000 });
  await sim.start();
  await sim.submit('web.service', unitText({ machineId: 'h1' }));
  await sim.run(1000);
  t.deepEqual(sim.runningOn('web.service'), ['h1']);
  await sim.destroy('web.service');
  await sim.submit('web.service', unitText({ machineId: 'h2' }));
  await sim.run(4000);
  t.deepEqual(sim.runningOn('web.service'), ['h2']);
  t.deepEqual(broken(sim, '1-single-active'), [], sim.trace.join('\n'));
  sim.shutdown();
});

// Bug C — a deposed engine still says it leads while its last call is in flight. Engine sets
// `stats.isLeader = false` only when #lead returns, i.e. after the registry call in progress when
// the term ended comes back (here a 2 s write, which the fence then refuses). Safety holds (the
// write is refused), but anything reading stats (status, metrics, logs) sees two leaders.
test('bug C: an engine stops believing it leads as soon as its term ends', async (t) => {
  const sim = new Simulation({ hosts: HOSTS });
  await sim.start();
  await sim.submit('a.service', unitText());
  await sim.run(1000);
  const leader = sim.leaders()[0] as string;
  sim.dropKeepalives(leader);
  sim.slow(leader, 2000);
  await sim.run(2500);
  await sim.submit('b.service', unitText());
  await sim.run(8000);
  t.true(sim.store.staleFencesRefused >= 1, 'the deposed engine tried to write');
  t.deepEqual(broken(sim, '2-one-leader'), [], sim.trace.join('\n'));
  sim.shutdown();
});
