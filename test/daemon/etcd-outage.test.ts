// Real fleetd processes through a real etcd outage (issue 12, docs/control-plane-faults.md): etcd
// frozen (SIGSTOP) for longer than every lease's TTL, then resumed. Every lease is revoked at
// once; each fleetd re-registers under its id, the leading engine holds the moves for the
// reconnect grace, and every unit stays where it was, running, with the same pid.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { asUnitName, type Unit } from '../../src/cluster/types.js';
import { systemClock } from '../../src/lib/clock.js';
import { createEtcdRegistry } from '../../src/registry/etcd-registry.js';
import { unitHash } from '../../src/unit/hash.js';
import { ROOT } from '../helpers/cli.js';
import { randomPrefix, useEtcd } from '../helpers/etcd.js';
import { waitFor } from '../helpers/wait.js';

const etcd = useEtcd(test);
const TTL_MS = 4_000;
const HOSTS = ['h1', 'h2', 'h3'];
const TEXT = '[Service]\nExecStart=/bin/sleep 1000\n';

test.serial(
  'etcd frozen past the TTL: every fleetd re-registers, nothing moves, no unit restarts',
  async (t) => {
    const prefix = randomPrefix();
    const registry = createEtcdRegistry({ endpoints: [etcd().endpoint], prefix });
    const dirs: string[] = [];
    const procs: { id: string; child: ChildProcess; stderr: string }[] = [];
    try {
      for (const id of HOSTS) {
        const dir = await mkdtemp(join(tmpdir(), `fleetd-outage-${id}-`));
        dirs.push(dir);
        const args = [
          ...['--etcd-endpoints', etcd().endpoint, '--etcd-key-prefix', prefix, '--machine-id', id],
          ...['--public-ip', '127.0.0.1', '--lease-ttl-ms', String(TTL_MS), '--state-dir', dir],
          ...['--api-socket', join(dir, 'fleetd.sock'), '--runtime', 'process', '--log-level', 'warn'],
          // None of these units is AtMostOnce: they keep running while etcd is away (docs/fencing.md).
          ...['--fence-policy', 'keep-running'],
        ];
        const child = spawn(process.execPath, [`${ROOT}bin/fleetd.js`, ...args], {
          stdio: ['ignore', 'ignore', 'pipe'],
        });
        const proc = { id, child, stderr: '' };
        child.stderr?.on('data', (d: Buffer) => (proc.stderr += d.toString()));
        procs.push(proc);
      }
      await waitFor('every fleetd registered', async () =>
        (await registry.listMachines()).items.length === HOSTS.length ? true : undefined,
      );
      for (const i of HOSTS.keys()) {
        const unit: Unit = { name: asUnitName(`app@${i}.unit`), hash: unitHash(TEXT), target: 'launched' };
        await registry.createUnit(unit, TEXT);
      }
      const running = async (): Promise<Map<string, string> | undefined> => {
        const snap = await registry.snapshot({ unitFiles: 'none' });
        const out = new Map<string, string>();
        for (const a of snap.assignments.filter((x) => x.unit.startsWith('app@'))) {
          const s = snap.statuses.find((x) => x.unit === a.unit && x.machine === a.machine);
          if (s?.active !== 'active' || s.pid === undefined) return undefined;
          out.set(a.unit, `${a.machine} pid ${s.pid}`);
        }
        return out.size === HOSTS.length ? out : undefined;
      };
      const before = await waitFor('every unit running', running);
      const keys = new Map((await registry.listMachines()).items.map((m) => [m.id, m.createRevision]));
      etcd().freeze();
      await systemClock.sleep(TTL_MS + 3_000);
      etcd().thaw();
      const thawedAt = systemClock.monotonic();
      // Right after the thaw etcd may still list the old keys: wait for every fleetd's new one.
      await waitFor('every fleetd registered again', async () => {
        const now = (await registry.listMachines()).items;
        const renewed = now.filter((m) => keys.has(m.id) && keys.get(m.id) !== m.createRevision);
        return renewed.length === HOSTS.length ? true : undefined;
      });
      t.log(
        `every fleetd registered again ${Math.round(systemClock.monotonic() - thawedAt)} ms after the thaw`,
      );
      // A probe placed proves an engine pass after every host was back: a move, had the engine made
      // one before that, would have been written by then.
      const probe = `[Service]\nExecStart=/bin/sleep 1000\n\n[X-Fleet]\nMachineID=${HOSTS[0] ?? ''}\n`;
      await registry.createUnit(
        { name: asUnitName('probe.unit'), hash: unitHash(probe), target: 'launched' },
        probe,
      );
      await waitFor('the probe placed', async () =>
        (await registry.snapshot({ unitFiles: 'none' })).assignments.some((a) => a.unit === 'probe.unit')
          ? true
          : undefined,
      );
      const after = await waitFor('every unit running and reported again', running);
      t.deepEqual(after, before, 'same machines, same pids');
      const logs = procs.map((p) => p.stderr).join('');
      t.regex(logs, /fleetd\.membership_lost/, 'the outage cost the leases');
      t.log(
        /engine\.hold_moves/.test(logs)
          ? 'the leader held moves while hosts re-registered'
          : "every host was back before the leader's first pass",
      );
    } finally {
      etcd().thaw();
      for (const p of procs) p.child.kill('SIGKILL');
      // Unit supervisors outlive a killed fleetd by design: end the ones this test started.
      for (const d of dirs) spawnSync('pkill', ['-TERM', '-f', `supervisor-main.js ${d}`]);
      await systemClock.sleep(1_500);
      for (const d of dirs) spawnSync('pkill', ['-KILL', '-f', d]);
      await registry.close();
      await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
    }
  },
);

// A host that boots before its network, or a cluster cold start before etcd has a quorum: fleetd
// waits for etcd instead of exiting (it did, with the first registration's timeout).
test.serial('a fleetd started while etcd answers nothing waits, and registers once it does', async (t) => {
  const prefix = randomPrefix();
  const registry = createEtcdRegistry({ endpoints: [etcd().endpoint], prefix });
  const dir = await mkdtemp(join(tmpdir(), 'fleetd-outage-boot-'));
  let stderr = '';
  etcd().freeze();
  const child = spawn(
    process.execPath,
    [
      `${ROOT}bin/fleetd.js`,
      ...['--etcd-endpoints', etcd().endpoint, '--etcd-key-prefix', prefix, '--machine-id', 'boot1'],
      ...['--public-ip', '127.0.0.1', '--lease-ttl-ms', String(TTL_MS), '--state-dir', dir],
      ...['--api-socket', join(dir, 'fleetd.sock'), '--runtime', 'process', '--log-level', 'info'],
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  try {
    // Past the first registration's deadline (5 s), and a retry or two.
    await systemClock.sleep(9_000);
    t.is(child.exitCode, null, `fleetd exited while etcd was frozen: ${stderr}`);
    t.regex(stderr, /fleetd\.etcd_unreachable/);
    etcd().thaw();
    await waitFor('fleetd registered', async () =>
      (await registry.listMachines()).items.some((m) => m.id === 'boot1') ? true : undefined,
    );
  } finally {
    etcd().thaw();
    child.kill('SIGKILL');
    await registry.close();
    await rm(dir, { recursive: true, force: true });
  }
});
