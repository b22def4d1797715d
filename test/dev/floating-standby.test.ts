// `fleetts floating-address --track` for real: a balancer on every host (lb.unit, Global=true: an
// HTTP server on port 80 whose /health fails while a "sick" file names its machine) and the
// sidekick on every host (vip.unit, Global=true, --track http://127.0.0.1/health), on a 3-host dev
// cluster (namespaces on a bridge, etcd outside the hosts) with real `ip` and `arping`. A sampler
// reads `ip -n <host> addr` of every host all along: the address must never be up on two hosts,
// through a failing balancer, a power-off of the holder's host and a partition of the next holder.
// Needs root and a built dist/ (`npm run build`): fleetd and the sidekick run from bin/.
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import type { HostPlan } from '../../src/dev/plan.js';
import { ROOT } from '../helpers/cli.js';
import { FloatingCluster, getThrough } from '../helpers/floating.js';
import { waitFor } from '../helpers/wait.js';

let c: FloatingCluster | undefined;
let vip = '';
let root = '';

function cluster(): FloatingCluster {
  if (c === undefined) throw new Error('the dev cluster did not come up (see the first failure)');
  return c;
}

/** The one host holding the address now (waits until exactly one does). */
async function holder(not?: string): Promise<HostPlan> {
  const { plan, sampler } = cluster();
  const name = await waitFor(
    `${vip} up on exactly one host${not === undefined ? '' : ` other than ${not}`}`,
    () => {
      const c = sampler.current;
      return c.length === 1 && c[0] !== not ? c[0] : undefined;
    },
    { timeoutMs: 60_000 },
  );
  const host = plan.hosts.find((h) => h.name === name);
  if (host === undefined) throw new Error(`no host ${name}`);
  return host;
}

/** A GET through the address answered by `host`'s balancer. */
async function answeredBy(host: HostPlan): Promise<string> {
  return waitFor(
    `a GET through ${vip} answered by ${host.name}`,
    async () => {
      const b = await getThrough(vip);
      return b === host.machineId ? b : undefined;
    },
    { intervalMs: 200 },
  );
}

const sick = (h: HostPlan): string => join(root, `sick-${h.machineId}`);

test.before(async () => {
  c = await FloatingCluster.up('standby', async (dir, address) => {
    const server = join(dir, 'lb-server.cjs');
    await writeFile(
      server,
      `const fs = require('fs');
const me = process.env.FLEETTS_MACHINE_ID;
require('http').createServer((q, r) => {
  if (q.url === '/health' && fs.existsSync(${JSON.stringify(dir)} + '/sick-' + me)) r.statusCode = 503;
  r.end(me);
}).listen(80);
`,
      { mode: 0o644 },
    );
    return {
      'lb.unit': `[Service]\nExecStart=${process.execPath} ${server}\nRestart=always\nRestartSec=1s\n\n[X-Fleet]\nGlobal=true\n`,
      'vip.unit':
        `[Service]\nExecStart=${process.execPath} ${join(ROOT, 'bin', 'fleetts.js')} floating-address ` +
        `--address ${address}/24 --interface eth0 --track http://127.0.0.1:80/health --track-interval 500ms\n` +
        `Restart=always\nRestartSec=1s\nTimeoutStopSec=1s\n\n[X-Fleet]\nGlobal=true\n`,
    };
  });
  vip = c.vip;
  root = c.root;
});

test.after.always(async () => {
  await c?.down();
});

test.serial(
  'a balancer on every host; the address is up on exactly one of them and answers there',
  async (t) => {
    const { sampler } = cluster();
    await waitFor(
      'lb.unit and vip.unit active on all 3 hosts',
      async () => {
        const lb = await cluster().activeHosts('lb.unit');
        const v = await cluster().activeHosts('vip.unit');
        return lb.length === 3 && v.length === 3 ? true : undefined;
      },
      { timeoutMs: 90_000 },
    );
    const h = await holder();
    t.is(await answeredBy(h), h.machineId);
    t.deepEqual(sampler.overlaps, []);
  },
);

test.serial(
  "the holder's balancer fails its check: the address goes to a healthy host at once, never on two",
  async (t) => {
    const { sampler } = cluster();
    const old = await holder();
    const sampled = sampler.mark();
    const t0 = Date.now();
    await writeFile(sick(old), '');
    const next = await holder(old.name);
    const upAt = sampler.changes.at(-1)?.at ?? 0;
    await answeredBy(next);
    t.deepEqual(sampler.overlaps, [], 'never up on two hosts');
    // The move takes a few hundred ms: a loaded machine samples it only a few times.
    t.true(sampled() >= 3, `${sampled()} samples during the move`);
    t.log(
      `${old.name}'s balancer failing → ${next.name}: address up there +${upAt - t0} ms; ${sampler.history(t0)}`,
    );
    await rm(sick(old));
  },
);

test.serial(
  "the holder's host powered off: a standby takes the address once the holder's lease expires, never on two",
  async (t) => {
    const { dev, sampler } = cluster();
    const old = await holder();
    const sampled = sampler.mark();
    const t0 = Date.now();
    await dev.powerOff(old.name);
    const next = await holder(old.name);
    const upAt = sampler.changes.at(-1)?.at ?? 0;
    await answeredBy(next);
    const answeredAt = Date.now();
    t.deepEqual(sampler.overlaps, [], 'never up on two hosts');
    t.true(sampled() > 10, `${sampled()} samples during the move`);
    t.log(
      `${old.name} powered off → ${next.name}: address up +${upAt - t0} ms, first answer +${answeredAt - t0} ms; ${sampler.history(t0)}`,
    );
    await dev.powerOn(old.name, { timeoutMs: 60_000 });
    t.deepEqual(sampler.overlaps, []);
  },
);

test.serial(
  "the holder's host cut off: its sidekick takes the address down itself before a standby brings it up",
  async (t) => {
    const { dev, sampler } = cluster();
    const old = await holder();
    const t0 = Date.now();
    const from = sampler.changes.length;
    await dev.partition(old.name);
    const next = await holder(old.name);
    const upAt = sampler.changes.at(-1)?.at ?? 0;
    const moved = sampler.changes.slice(from).map((c) => c.hosts.join('+') || '-');
    t.deepEqual(moved, ['-', next.name], 'down on the cut-off host first, then up elsewhere');
    t.deepEqual(sampler.overlaps, [], 'never up on two hosts');
    await answeredBy(next);
    t.log(`partition of ${old.name} → ${next.name}: address up +${upAt - t0} ms; ${sampler.history(t0)}`);
    await dev.heal(old.name);
    t.deepEqual(sampler.overlaps, []);
  },
);
