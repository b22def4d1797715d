// `fleetts floating-address` for real: a 3-host dev cluster (namespaces on a bridge, etcd outside
// the hosts, one fleetd each), a balancer stand-in (lb.unit: an HTTP server on port 80 that names its
// machine) and the sidekick beside it (vip.unit: MachineOf=lb.unit, AtMostOnce=true) with real `ip`
// and `arping`. A sampler reads `ip -n <host> addr` of every host all along: the address must never
// be up on two hosts, through a power-off of the balancer's host and a partition of the next one.
// Needs root and a built dist/ (`npm run build`): fleetd and the sidekick run from bin/.
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { asUnitName } from '../../src/cluster/types.js';
import { systemClock } from '../../src/lib/clock.js';
import { DevCluster } from '../../src/dev/dev-cluster.js';
import type { ClusterPlan, HostPlan } from '../../src/dev/plan.js';
import { createEtcdRegistry, type EtcdRegistry } from '../../src/registry/etcd-registry.js';
import { unitHash } from '../../src/unit/hash.js';
import { ROOT } from '../helpers/cli.js';
import { AddressSampler, getThrough } from '../helpers/floating.js';
import { waitFor } from '../helpers/wait.js';

let root = '';
let dev: DevCluster | undefined;
let plan: ClusterPlan | undefined;
let registry: EtcdRegistry | undefined;
let sampler: AddressSampler | undefined;
let vip = '';

function cluster(): { plan: ClusterPlan; dev: DevCluster; registry: EtcdRegistry; sampler: AddressSampler } {
  if (dev === undefined || plan === undefined || registry === undefined || sampler === undefined)
    throw new Error('the dev cluster did not come up (see the first failure)');
  return { dev, plan, registry, sampler };
}

/** The host where `unit` is active now (from etcd: the CLI's endpoint may be a dead host's). */
async function activeHost(unit: string, not?: string): Promise<HostPlan | undefined> {
  const { plan, registry } = cluster();
  const statuses = await registry.listStatuses(asUnitName(unit));
  const hosts = statuses.items
    .filter((s) => s.active === 'active')
    .map((s) => plan.hosts.find((h) => h.machineId === String(s.machine)))
    .filter((h): h is HostPlan => h !== undefined && h.name !== not);
  return hosts.length === 1 ? hosts[0] : undefined;
}

test.before(async () => {
  if (process.getuid?.() !== 0)
    throw new Error('the floating address test needs root (network namespaces, ip addr); run it as root');
  if (!existsSync(join(ROOT, 'dist', 'cli', 'main.js')))
    throw new Error(`run \`npm run build\` in ${ROOT} first: the hosts run bin/fleetd.js and bin/fleetts.js`);
  root = await mkdtemp(join(tmpdir(), 'fleetts-vip-'));
  await chmod(root, 0o755);
  dev = new DevCluster({
    stateDir: join(root, 'state'),
    clock: systemClock,
    progress: () => undefined,
    contextFile: join(root, 'context.json'),
  });
  // etcd outside the hosts: the faults below are the balancer's host's, not etcd's.
  const up = await dev.up({
    nodes: 3,
    leaseTtlMs: 4_000,
    sharedPath: join(root, 'shared'),
    etcd: 'external',
    timeoutMs: 60_000,
  });
  plan = up.plan;
  vip = plan.bridge.ip.replace(/\.1$/, '.250');
  registry = createEtcdRegistry({ endpoints: [...plan.etcd.endpoints], requestTimeoutMs: 2_000 });
  sampler = new AddressSampler(plan.hosts, vip);

  const server = join(root, 'lb-server.cjs');
  await writeFile(
    server,
    "require('http').createServer((q, r) => r.end(process.env.FLEETTS_MACHINE_ID)).listen(80);\n",
    { mode: 0o644 },
  );
  const units: Record<string, string> = {
    'lb.unit': `[Service]\nExecStart=${process.execPath} ${server}\nRestart=always\nRestartSec=1s\n`,
    'vip.unit':
      `[Service]\nExecStart=${process.execPath} ${join(ROOT, 'bin', 'fleetts.js')} floating-address ` +
      `--address ${vip}/24 --interface eth0\nRestart=always\nRestartSec=1s\nTimeoutStopSec=1s\n\n` +
      `[X-Fleet]\nMachineOf=lb.unit\nAtMostOnce=true\n`,
  };
  for (const [name, text] of Object.entries(units))
    await registry.createUnit({ name: asUnitName(name), hash: unitHash(text), target: 'launched' }, text);
});

test.after.always(async () => {
  await sampler?.stop();
  await registry?.close().catch(() => undefined);
  await dev?.down().catch((err: unknown) => console.error('dev down failed:', err));
  if (root !== '') await rm(root, { recursive: true, force: true });
});

test.serial("the address comes up on the balancer's host, only there, and answers for it", async (t) => {
  const { sampler } = cluster();
  const lb = await waitFor('lb.unit active', () => activeHost('lb.unit'), { timeoutMs: 60_000 });
  await waitFor(`${vip} up on ${lb.name}`, () => sampler.current.join() === lb.name, { timeoutMs: 60_000 });
  const body = await waitFor(`a GET through ${vip}`, () => getThrough(vip), { intervalMs: 200 });
  t.is(body, lb.machineId, `answered by ${lb.name}`);
  t.deepEqual(sampler.overlaps, []);
});

test.serial(
  "the balancer's host powered off: the address moves with the balancer, never on two hosts",
  async (t) => {
    const { dev, sampler } = cluster();
    const old = await waitFor('lb.unit active', () => activeHost('lb.unit'));
    const sampled = sampler.mark();
    const t0 = Date.now();
    await dev.powerOff(old.name);
    const moved = await waitFor('lb.unit active on another host', () => activeHost('lb.unit', old.name), {
      timeoutMs: 60_000,
    });
    await waitFor(`${vip} up on ${moved.name}`, () => sampler.current.join() === moved.name, {
      timeoutMs: 60_000,
    });
    const upAt = sampler.changes.at(-1)?.at ?? 0;
    const body = await waitFor(`a GET through ${vip} answered by ${moved.name}`, async () => {
      const b = await getThrough(vip);
      return b === moved.machineId ? b : undefined;
    });
    const answeredAt = Date.now();
    t.is(body, moved.machineId);
    t.deepEqual(sampler.overlaps, [], 'never up on two hosts');
    t.true(sampled() > 10, `${sampled()} samples during the move`);
    t.log(
      `${old.name} → ${moved.name}: address up +${upAt - t0} ms after the power-off, first answer +${answeredAt - t0} ms; ` +
        `holders: ${sampler.changes.map((c) => `${c.at - t0}:${c.hosts.join('+') || '-'}`).join(' ')}`,
    );
    await dev.powerOn(old.name, { timeoutMs: 60_000 });
    t.deepEqual(sampler.overlaps, []);
  },
);

test.serial(
  "the balancer's host cut off: its sidekick takes the address down itself before the next host brings it up",
  async (t) => {
    const { dev, sampler } = cluster();
    const old = await waitFor('lb.unit active', () => activeHost('lb.unit'));
    await waitFor(`${vip} up on ${old.name}`, () => sampler.current.join() === old.name);
    const t0 = Date.now();
    const from = sampler.changes.length;
    await dev.partition(old.name);
    // The cut-off host keeps running everything (lb.unit too); only its sidekick's own rule (and
    // fleetd's fencing of the AtMostOnce unit) can take the address down there.
    await waitFor(`${vip} down on the cut-off ${old.name}`, () => !sampler.current.includes(old.name), {
      timeoutMs: 60_000,
    });
    const downAt = sampler.changes.at(-1)?.at ?? 0;
    const next = await waitFor(
      `${vip} up on another host`,
      () => {
        const c = sampler.current;
        return c.length === 1 && c[0] !== old.name ? c[0] : undefined;
      },
      { timeoutMs: 60_000 },
    );
    const upAt = sampler.changes.at(-1)?.at ?? 0;
    const moved = sampler.changes.slice(from).map((c) => c.hosts.join('+') || '-');
    t.deepEqual(moved, ['-', next], 'down on the cut-off host first, then up elsewhere');
    t.deepEqual(sampler.overlaps, [], 'never up on two hosts');
    const body = await waitFor(`a GET through ${vip}`, async () => {
      const b = await getThrough(vip);
      return b === cluster().plan.hosts.find((h) => h.name === next)?.machineId ? b : undefined;
    });
    t.truthy(body);
    t.log(`partition of ${old.name}: address down there +${downAt - t0} ms, up on ${next} +${upAt - t0} ms`);
    await dev.heal(old.name);
    t.deepEqual(sampler.overlaps, []);
  },
);
