// After a partition heals (docs/control-plane-faults.md): a host cut off from etcd kept its units
// running (fencing policy keep-running: none of them is AtMostOnce), its lease expired, and the
// engine, healthy all along, moved one of them away. When the host re-registers under a new lease,
// its agent re-reads its assignments fresh: it stops the copy no longer assigned to it and leaves
// the unit still assigned to it running, unrestarted.
import { Writable } from 'node:stream';
import test from 'ava';
import { Agent, type AgentMembership } from '../../src/agent/agent.js';
import { asMachineId, asUnitName } from '../../src/cluster/types.js';
import { FakeClock } from '../../src/lib/clock.js';
import { createLogger } from '../../src/lib/logger.js';
import { MemoryEtcd, MemoryRegistry } from '../../src/registry/memory-registry.js';
import type { Membership } from '../../src/registry/registry.js';
import { unitHash } from '../../src/unit/hash.js';
import { FakeRuntime } from './fake-runtime.js';

const M1 = asMachineId('m1');
const LEASE = { ttlMs: 5000, keepaliveMs: 1000 };
const SERVICE = '[Service]\nExecStart=/bin/sleep 1000\n';

test('healed after a partition, the agent stops the moved copy and keeps the unit still assigned to it', async (t) => {
  const clock = new FakeClock();
  const store = new MemoryEtcd({ clock });
  const host = new MemoryRegistry({ store, lease: LEASE });
  const engine = new MemoryRegistry({ store, lease: LEASE });
  const term = await engine.leadership({ candidate: 'engine', ...LEASE }).campaign();
  const runtime = new FakeRuntime(clock);
  let membership: Membership | undefined;
  const register = async (): Promise<Membership> =>
    (membership = await host.register(
      { id: M1, ip: '10.0.0.1', metadata: {}, version: '0', startedAt: '2026-01-01T00:00:00.000Z' },
      LEASE,
    ));
  const until = async (what: string, cond: () => boolean): Promise<void> => {
    for (let waited = 0; !cond(); waited += 10) {
      if (waited > 30_000)
        throw new Error(`${what}: not within 30 s of fake time; calls: ${runtime.calls.join(', ')}`);
      await clock.advance(10);
    }
  };
  const agent = new Agent({
    registry: host,
    runtimes: { process: runtime },
    machine: { id: M1, ip: '10.0.0.1', metadata: {} },
    getMembership: (): AgentMembership | undefined => membership,
    clock,
    log: createLogger({ level: 'silent', destination: new Writable({ write: (_c, _e, done) => done() }) }),
    fencing: { policy: 'keep-running', deadlineMs: 3500 },
    resyncMs: 1000,
    hostname: 'host-a',
    bootId: 'b00t',
    readFile: () => undefined,
  });
  const m = await register();
  await agent.start();
  const basis = await engine.snapshot({ unitFiles: 'none' });
  const hash = unitHash(SERVICE);
  for (const name of ['web.unit', 'db.unit'])
    await engine.createUnit({ name: asUnitName(name), hash, target: 'launched' }, SERVICE);
  await engine.writeAssignments(
    term.fence,
    ['web.unit', 'db.unit'].map((name) => ({
      kind: 'assign' as const,
      assignment: { unit: asUnitName(name), machine: M1, hash, target: 'launched' as const },
    })),
    { ...basis, units: (await engine.snapshot({ unitFiles: 'none' })).units },
  );
  await until('both started', () => runtime.calls.length === 2);

  // Partition: the host's lease expires in etcd; its units keep running.
  host.setFaults({ unavailable: true });
  await until('the lease is lost', () => m.signal.aborted);
  await clock.advance(LEASE.ttlMs);
  t.deepEqual((await engine.listMachines()).items, [], 'etcd expired the membership');
  t.deepEqual(runtime.calls.slice().sort(), ['start db.unit', 'start web.unit']);
  // The engine moves web.unit away (db.unit is pinned here, say, and waits for its host).
  await engine.writeAssignments(
    term.fence,
    [{ kind: 'unassign', unit: asUnitName('web.unit'), machine: M1 }],
    await engine.snapshot({ unitFiles: 'none' }),
  );

  // Heal: fleetd re-registers under a new lease.
  host.setFaults({});
  await register();
  await until('the moved copy is removed', () => runtime.calls.includes('remove web.unit'));
  const passes = agent.stats.passes;
  await until('more agent passes', () => agent.stats.passes >= passes + 3);
  t.is(runtime.calls.filter((c) => c === 'start db.unit').length, 1, 'db.unit was not restarted');
  t.false(runtime.calls.includes('stop db.unit'));
  t.like(runtime.units.get('db.unit'), { active: 'active' });
  t.false(runtime.units.has('web.unit') && runtime.units.get('web.unit')?.active === 'active');
  await agent.stop();
});
