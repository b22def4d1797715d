// `fleetts dev up` with its default topology for 3 hosts: an etcd member inside each host, so that
// pulling the plug on the host holding the etcd leader hits etcd too. Real namespaces, etcd members
// and fleetds; the tests run in order on one cluster.
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { asUnitName, type UnitName, type UnitStatus } from '../../src/cluster/types.js';
import { systemClock } from '../../src/lib/clock.js';
import { DevCluster } from '../../src/dev/dev-cluster.js';
import { etcdLeader, etcdMemberStatuses, type EtcdMemberStatus } from '../../src/dev/etcd-members.js';
import type { ClusterPlan, HostPlan } from '../../src/dev/plan.js';
import { readState } from '../../src/dev/state.js';
import { createEtcdRegistry, type EtcdRegistry } from '../../src/registry/etcd-registry.js';
import { unitHash } from '../../src/unit/hash.js';
import { waitFor } from '../helpers/wait.js';

let root = '';
let dev: DevCluster | undefined;
let plan: ClusterPlan | undefined;
let registry: EtcdRegistry | undefined;
/** The host powered off by the second test (the one that held the etcd leader). */
let victim: HostPlan | undefined;

const loop = `[Service]\nExecStart=/bin/sh -c 'while :; do sleep 1; done'\n`;

function cluster(): { dev: DevCluster; plan: ClusterPlan; registry: EtcdRegistry } {
  if (dev === undefined || plan === undefined || registry === undefined)
    throw new Error('the dev cluster did not come up (see the first failure)');
  return { dev, plan, registry };
}

test.before(async () => {
  if (process.getuid?.() !== 0)
    throw new Error('the dev cluster tests need root (network namespaces); run them as root');
  root = await mkdtemp(join(tmpdir(), 'fleetts-dev-etcd-'));
  dev = new DevCluster({
    stateDir: join(root, 'state'),
    clock: systemClock,
    progress: () => undefined,
    contextFile: join(root, 'context.json'),
  });
  plan = (await dev.up({ nodes: 3, sharedPath: join(root, 'srv-shared') })).plan;
  registry = createEtcdRegistry({ endpoints: [...plan.etcd.endpoints], requestTimeoutMs: 2_000 });
});

test.after.always(async () => {
  await registry?.close().catch(() => undefined);
  await dev?.down().catch((err: unknown) => console.error('dev down failed:', err));
  if (root !== '') await rm(root, { recursive: true, force: true });
});

const members = (p: ClusterPlan): Promise<EtcdMemberStatus[]> =>
  etcdMemberStatuses(p.etcd.members, systemClock);

async function runningUnits(r: EtcdRegistry): Promise<Map<UnitName, UnitStatus>> {
  const set = await r.listStatuses();
  return new Map(set.items.filter((s) => s.active === 'active').map((s) => [s.unit, s]));
}

async function launch(r: EtcdRegistry, names: readonly UnitName[]): Promise<void> {
  await r.createUnits(
    names.map((name) => ({ unit: { name, hash: unitHash(loop), target: 'launched' }, text: loop })),
  );
}

test.serial('up with 3 hosts: a healthy etcd member in each, every fleetd given all three', async (t) => {
  const { dev, plan } = cluster();
  t.is(plan.etcd.topology, 'hosts', 'the default with 3 hosts');
  t.deepEqual(
    plan.etcd.members.map((m) => m.host),
    ['host1', 'host2', 'host3'],
  );
  const statuses = await waitFor('one leader among 3 answering members', async () => {
    const s = await members(plan);
    return s.every((m) => m.state !== 'down') && s.filter((m) => m.state === 'leader').length === 1
      ? s
      : undefined;
  });
  t.is(new Set(statuses.map((s) => s.memberId)).size, 3, 'three distinct members');
  const state = await readState(dev.stateDir);
  for (const h of plan.hosts) {
    const fleetd = state?.processes.find((p) => p.id === `${h.name}/fleetd`);
    const etcd = state?.processes.find((p) => p.id === `${h.name}/etcd`);
    t.not(etcd, undefined, `${h.name} runs a member`);
    const argv = (await readFile(`/proc/${fleetd?.pid ?? 0}/cmdline`, 'utf8')).split('\0');
    t.is(
      argv[argv.indexOf('--etcd-endpoints') + 1],
      plan.etcd.clientUrls.join(','),
      `${h.name}'s fleetd lists every member`,
    );
  }
  t.is(plan.etcd.clientUrls.length, 3);
  const status = await dev.status();
  const leader = etcdLeader(statuses);
  t.deepEqual(
    status.hosts.map((h) => h.etcd),
    plan.hosts.map((h) => (h.name === leader?.host ? 'leader' : 'follower')),
    'status names the leader',
  );
});

test.serial(
  "power-off of the etcd leader's host: a new leader, the cluster keeps working, its units move",
  async (t) => {
    const { dev, plan, registry } = cluster();
    const names = [1, 2, 3, 4, 5, 6].map((i) => asUnitName(`loop-${i}.service`));
    await launch(registry, names);
    const before = await waitFor('6 units active', async () => {
      const r = await runningUnits(registry);
      return names.every((n) => r.has(n)) ? r : undefined;
    });
    const leader = etcdLeader(await members(plan));
    victim = plan.hosts.find((h) => h.name === leader?.host);
    if (victim === undefined) return t.fail('no etcd leader');
    const off = victim;
    const moving = names.filter((n) => String(before.get(n)?.machine) === off.machineId);
    t.true(moving.length > 0, `the units spread over the hosts, ${off.name} included`);

    await dev.powerOff(off.name);
    const newLeader = await waitFor('a new etcd leader', async () => etcdLeader(await members(plan)), 60_000);
    t.not(newLeader.host, off.name);
    t.true(
      plan.hosts.some((h) => h.name === newLeader.host && h.name !== off.name),
      'elected among the other two',
    );
    await waitFor(
      `${off.name}'s units active on the other hosts`,
      async () => {
        const r = await runningUnits(registry);
        return moving.every((n) => {
          const s = r.get(n);
          return s !== undefined && String(s.machine) !== off.machineId;
        });
      },
      60_000,
    );
    const extra = asUnitName('loop-after.service');
    await launch(registry, [extra]);
    const started = await waitFor(
      'a unit started after the power-off',
      async () => (await runningUnits(registry)).get(extra),
      60_000,
    );
    t.not(String(started.machine), off.machineId);
    const status = await dev.status();
    t.like(
      status.hosts.find((h) => h.name === off.name),
      { power: 'off', etcd: 'down' },
    );
  },
);

test.serial('power-on: the member rejoins on its data dir, three members healthy again', async (t) => {
  const { dev, plan } = cluster();
  if (victim === undefined) return t.fail('the power-off test did not run');
  const host = victim;
  const dataDir = plan.etcd.members.find((m) => m.host === host.name)?.dataDir ?? '';
  const memberBefore = await readFile(join(dataDir, 'member', 'snap', 'db')).then(
    () => true,
    () => false,
  );
  t.true(memberBefore, 'its data dir survived the power-off');
  await dev.powerOn(host.name);
  const statuses = await waitFor(
    '3 members answering, one leader',
    async () => {
      const s = await members(plan);
      return s.every((m) => m.state !== 'down') && etcdLeader(s) !== undefined ? s : undefined;
    },
    60_000,
  );
  t.not(statuses.find((s) => s.host === host.name)?.state, 'down', 'its member answers again');
  t.like(
    (await dev.status()).hosts.find((h) => h.name === host.name),
    { power: 'on', registered: 'yes' },
  );
});
