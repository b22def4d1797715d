// `fleetts floating-address` for real: a 3-host dev cluster (namespaces on a bridge, etcd outside
// the hosts, one fleetd each), a balancer stand-in (lb.unit: an HTTP server on port 80 that names its
// machine) and the sidekick beside it (vip.unit: MachineOf=lb.unit, AtMostOnce=true) with real `ip`
// and `arping`. A sampler reads `ip -n <host> addr` of every host all along: the address must never
// be up on two hosts, through a power-off of the balancer's host and a partition of the next one.
// Needs root and a built dist/ (`npm run build`): fleetd and the sidekick run from bin/.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import type { HostPlan } from '../../src/dev/plan.js';
import { ROOT } from '../helpers/cli.js';
import { FloatingCluster, getThrough } from '../helpers/floating.js';
import { waitFor } from '../helpers/wait.js';

let c: FloatingCluster | undefined;
let vip = '';

function cluster(): FloatingCluster {
  if (c === undefined) throw new Error('the dev cluster did not come up (see the first failure)');
  return c;
}

/** The one host where `unit` is active now (other than `not`). */
async function activeHost(unit: string, not?: string): Promise<HostPlan | undefined> {
  const hosts = (await cluster().activeHosts(unit)).filter((h) => h.name !== not);
  return hosts.length === 1 ? hosts[0] : undefined;
}

test.before(async () => {
  c = await FloatingCluster.up('vip', async (root, address) => {
    const server = join(root, 'lb-server.cjs');
    await writeFile(
      server,
      "require('http').createServer((q, r) => r.end(process.env.FLEETTS_MACHINE_ID)).listen(80);\n",
      { mode: 0o644 },
    );
    return {
      'lb.unit': `[Service]\nExecStart=${process.execPath} ${server}\nRestart=always\nRestartSec=1s\n`,
      'vip.unit':
        `[Service]\nExecStart=${process.execPath} ${join(ROOT, 'bin', 'fleetts.js')} floating-address ` +
        `--address ${address}/24 --interface eth0\nRestart=always\nRestartSec=1s\nTimeoutStopSec=1s\n\n` +
        `[X-Fleet]\nMachineOf=lb.unit\nAtMostOnce=true\n`,
    };
  });
  vip = c.vip;
});

test.after.always(async () => {
  await c?.down();
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
