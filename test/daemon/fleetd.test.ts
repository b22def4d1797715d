// Real fleetd processes against a real etcd: membership, leader handover when the leader's process
// is killed (SIGKILL), units rescheduled off a dead host, and a duplicate machine id refused.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { asMachineId, asUnitName, type Unit } from '../../src/cluster/types.js';
import { systemClock } from '../../src/lib/clock.js';
import { createEtcdRegistry } from '../../src/registry/etcd-registry.js';
import type { Registry } from '../../src/registry/registry.js';
import { unitHash } from '../../src/unit/hash.js';
import { ROOT, runBin } from '../helpers/cli.js';
import { grantLease, leaseTimeToLive, randomPrefix, useEtcd } from '../helpers/etcd.js';
import { freePort } from '../helpers/ports.js';
import { CONVERGE_MS, waitFor } from '../helpers/wait.js';

const etcd = useEtcd(test);
const TTL = 2_000;

interface Cluster {
  prefix: string;
  registry: Registry;
  procs: Map<string, ChildProcess>;
  dirs: string[];
  start(id: string, metadata?: string, ttlMs?: number): Promise<ChildProcess>;
  args(id: string, dir: string, ttlMs?: number): string[];
  close(): Promise<void>;
}

function cluster(): Cluster {
  const prefix = randomPrefix();
  const registry = createEtcdRegistry({ endpoints: [etcd().endpoint], prefix });
  const procs = new Map<string, ChildProcess>();
  const dirs: string[] = [];
  const c: Cluster = {
    prefix,
    registry,
    procs,
    dirs,
    args: (id, dir, ttlMs = TTL) => [
      '--etcd-endpoints',
      etcd().endpoint,
      '--etcd-key-prefix',
      prefix,
      '--machine-id',
      id,
      '--public-ip',
      '127.0.0.1',
      '--lease-ttl-ms',
      String(ttlMs),
      '--state-dir',
      dir,
      '--api-socket',
      join(dir, 'fleetd.sock'),
      '--runtime',
      'process',
      '--log-level',
      'warn',
    ],
    async start(id, metadata, ttlMs) {
      const dir = await mkdtemp(join(tmpdir(), `fleetd-${id}-`));
      dirs.push(dir);
      const extra = metadata === undefined ? [] : ['--metadata', metadata];
      const child = spawn(process.execPath, [`${ROOT}bin/fleetd.js`, ...c.args(id, dir, ttlMs), ...extra], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      child.stderr?.resume();
      procs.set(id, child);
      await waitFor(`${id} registered`, async () =>
        (await registry.listMachines()).items.some((m) => m.id === id) ? true : undefined,
      );
      return child;
    },
    async close() {
      for (const p of procs.values()) p.kill('SIGKILL');
      // Unit supervisors outlive a killed fleetd by design: end the ones this test started.
      // SIGTERM: each supervisor stops its unit, then exits.
      for (const d of dirs) spawnSync('pkill', ['-TERM', '-f', `supervisor-main.js ${d}`]);
      await systemClock.sleep(1_500);
      for (const d of dirs) spawnSync('pkill', ['-KILL', '-f', d]);
      await registry.close();
      await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
    },
  };
  return c;
}

async function submit(r: Registry, name: string, text: string): Promise<void> {
  const unit: Unit = { name: asUnitName(name), hash: unitHash(text), target: 'launched' };
  await r.createUnit(unit, text);
}

test("killing the leading fleetd: another takes over and the dead host's units move", async (t) => {
  const c = cluster();
  try {
    for (const id of ['host-a', 'host-b', 'host-c']) await c.start(id);
    const leader = await waitFor('a leader', async () => (await c.registry.getLeader())?.candidate);
    const text = '[Service]\nExecStart=/bin/sleep 1000\n\n[X-Fleet]\nConflicts=web@*.unit\n';
    await submit(c.registry, 'web@1.unit', text);
    await submit(c.registry, 'web@2.unit', text);
    const placed = await waitFor('both placed', async () => {
      const s = await c.registry.snapshot({ unitFiles: 'none' });
      return s.assignments.length === 2 ? s.assignments : undefined;
    });
    // Kill the leader if it holds a unit, else the host of web@1 (the test must see both effects
    // across runs; log which happened).
    const victim = placed.some((a) => a.machine === leader) ? leader : placed[0]!.machine;
    const victimUnits = placed.filter((a) => a.machine === victim).map((a) => a.unit);
    t.log(`leader ${leader}; killing ${victim} which runs ${victimUnits.join(', ')}`);
    const killedAt = Date.now();
    c.procs.get(victim)!.kill('SIGKILL');
    const moved = await waitFor('units moved off the dead host', async () => {
      const s = await c.registry.snapshot({ unitFiles: 'none' });
      const off = s.assignments.filter((a) => victimUnits.includes(a.unit) && a.machine !== victim);
      return off.length === victimUnits.length && !s.machines.has(asMachineId(victim)) ? s : undefined;
    });
    t.log(`units re-placed ${Date.now() - killedAt} ms after SIGKILL (TTL ${TTL} ms)`);
    t.is(moved.assignments.length, 2);
    t.is(new Set(moved.assignments.map((a) => a.machine)).size, 2, 'still one web per host');
    const newLeader = await waitFor('a live leader', async () => {
      const l = (await c.registry.getLeader())?.candidate;
      return l !== undefined && l !== victim ? l : undefined;
    });
    if (victim === leader) t.not(newLeader, leader);
  } finally {
    await c.close();
  }
});

test('killing the leader alone hands leadership to a follower', async (t) => {
  const c = cluster();
  try {
    for (const id of ['one', 'two']) await c.start(id);
    const leader = await waitFor('a leader', async () => (await c.registry.getLeader())?.candidate);
    c.procs.get(leader)!.kill('SIGKILL');
    const next = await waitFor('new leader', async () => {
      const l = (await c.registry.getLeader())?.candidate;
      return l !== undefined && l !== leader ? l : undefined;
    });
    t.not(next, leader);
    // The leader key and the membership have separate leases: wait for the host to be gone too.
    await waitFor('dead host gone', async () =>
      (await c.registry.listMachines()).items.some((m) => m.id === leader) ? undefined : true,
    );
    await submit(c.registry, 'after.unit', '[Service]\nExecStart=/bin/sleep 1000\n');
    const a = await waitFor('placed by the new leader', async () => {
      const s = await c.registry.snapshot({ unitFiles: 'none' });
      return s.assignments[0];
    });
    t.is(String(a.machine), next, 'only the live host can take it');
  } finally {
    await c.close();
  }
});

test('a second fleetd with a machine id already in use refuses to run', async (t) => {
  const c = cluster();
  try {
    await c.start('dup');
    const dir = await mkdtemp(join(tmpdir(), 'fleetd-dup2-'));
    c.dirs.push(dir);
    const r = await runBin('fleetd', c.args('dup', dir), { timeoutMs: 30_000 });
    t.is(r.code, 1);
    t.regex(r.stderr, /fleetd: machine id dup is used by another running fleetd; give each host its own id/);
    t.false(r.stderr.includes('    at '), 'no stack trace');
    t.is((await c.registry.listMachines()).items.length, 1, 'the first one is untouched');
  } finally {
    await c.close();
  }
});

// Serial, so before the others: their fleetds starting at the same time slow this restart down.
test.serial('a fleetd restarted within the TTL resumes its membership: nothing moves', async (t) => {
  const c = cluster();
  try {
    // The restart (a new node process) must fit in the TTL on a loaded machine, where starting
    // fleetd beside the other tests' fleetds took 7.7 s once; the test waits about one TTL.
    const ttl = 10_000;
    const first = await c.start('steady', undefined, ttl);
    await submit(c.registry, 'keep.unit', '[Service]\nExecStart=/bin/sleep 1000\n');
    await waitFor('placed', async () => (await c.registry.snapshot({ unitFiles: 'none' })).assignments[0]);
    const before = (await c.registry.listMachines()).items[0]!.createRevision;
    first.kill('SIGKILL');
    // A lease of the same TTL granted after the kill and never renewed: once etcd has expired it,
    // the membership's lease has expired too unless the restarted fleetd renewed it.
    const witness = await grantLease(etcd().endpoint, ttl / 1000);
    const dir = c.dirs[0]!;
    const again = spawn(process.execPath, [`${ROOT}bin/fleetd.js`, ...c.args('steady', dir, ttl)], {
      stdio: 'ignore',
    });
    c.procs.set('steady', again);
    await waitFor(
      'the witness lease to expire',
      async () => (await leaseTimeToLive(etcd().endpoint, witness)).ttl === -1,
      { timeoutMs: ttl + CONVERGE_MS, intervalMs: 100 },
    );
    const machines = (await c.registry.listMachines()).items;
    t.is(machines.length, 1);
    t.is(machines[0]!.createRevision, before, 'same membership key: the lease was resumed');
    const s = await c.registry.snapshot({ unitFiles: 'none' });
    t.deepEqual(
      s.assignments.map((a) => [a.unit, a.machine]),
      [['keep.unit', 'steady']],
    );
  } finally {
    await c.close();
  }
});

test('[X-Health] end to end: status shows the health, and a failing check restarts the unit', async (t) => {
  const c = cluster();
  try {
    await c.start('host-h', undefined, 5_000);
    const dir = c.dirs[0] ?? '';
    const port = await freePort();
    const sick = join(dir, 'sick');
    const server = join(dir, 'server.cjs');
    await writeFile(
      server,
      `const fs=require('fs');require('http').createServer((q,r)=>{r.statusCode=fs.existsSync(${JSON.stringify(sick)})?500:200;r.end()}).listen(${port},'127.0.0.1');\n`,
    );
    const text =
      `[Service]\nExecStart=${process.execPath} ${server}\nRestart=on-failure\nRestartSec=100ms\n\n` +
      `[X-Health]\nCheck=http://127.0.0.1:${port}/\nIntervalSec=200ms\nRetries=2\nStartPeriodSec=60\n`;
    await submit(c.registry, 'checked.service', text);
    const status = () =>
      runBin('fleetts', ['status', 'checked.service'], {
        env: { FLEETTS_ENDPOINT: `unix://${join(dir, 'fleetd.sock')}` },
      });
    const pidOf = (out: string): string | undefined => /Main PID: (\d+)/.exec(out)?.[1];
    const first = await waitFor('status shows the unit healthy', async () => {
      const r = await status();
      return r.code === 0 && r.stdout.includes('Health: healthy') ? pidOf(r.stdout) : undefined;
    });
    t.truthy(first);
    await writeFile(sick, '');
    await waitFor('the unit restarted with a new main process', async () => {
      const s = (await c.registry.snapshot({ unitFiles: 'none' })).statuses.find(
        (x) => x.unit === 'checked.service',
      );
      return s?.active === 'active' && s.pid !== undefined && String(s.pid) !== first ? true : undefined;
    });
    await rm(sick);
    const after = await waitFor('healthy again after the restart', async () => {
      const r = await status();
      return r.stdout.includes('Health: healthy') && pidOf(r.stdout) !== first ? r.stdout : undefined;
    });
    t.regex(after, /Active: active \(running\)/);
    t.log(after);
  } finally {
    await c.close();
  }
});
