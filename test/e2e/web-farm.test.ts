// The web farm end to end, with the demo's steps (src/demo/web-farm-demo.ts): a 3-host dev cluster
// (namespaces, etcd, one fleetd each), the [Service] farm of examples/process with real Apache and
// nginx, a steady client through the balancer, a dead Apache, a powered-off host, and `dev down`.
// The tests run in order on one cluster; it has its own state dir, shared path and CLI context.
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { systemClock } from '../../src/lib/clock.js';
import { netnsExists, linkExists } from '../../src/dev/network.js';
import { mountTargets } from '../../src/dev/system.js';
import { machineRunDir, webPort } from '../../src/demo/farm-files.js';
import { WebFarmDemo } from '../../src/demo/web-farm-demo.js';
import { ensureWebPackages } from '../helpers/web.js';

let root = '';
let demo: WebFarmDemo | undefined;
let closed = false;

function farm(): WebFarmDemo {
  if (demo === undefined) throw new Error('the farm did not come up (see the first failure)');
  return demo;
}

test.before(async () => {
  if (process.getuid?.() !== 0)
    throw new Error('the web farm e2e test needs root (network namespaces, mounts); run it as root');
  await ensureWebPackages();
  root = await mkdtemp(join(tmpdir(), 'fleetts-farm-'));
  // Apache's children (www-data) read the site on the shared path under here.
  await chmod(root, 0o755);
  demo = new WebFarmDemo({
    clock: systemClock,
    progress: () => undefined,
    stateDir: join(root, 'state'),
    contextFile: join(root, 'context.json'),
  });
  await demo.up({ nodes: 3, leaseTtlMs: 4_000, sharedPath: join(root, 'shared') });
  await demo.installFleetts();
  await demo.prepareSharedStorage();
  await demo.deploy([1, 2, 3]);
  await demo.waitForFarm(120_000);
});

test.after.always(async () => {
  if (!closed) await demo?.close({ down: true }).catch((err: unknown) => console.error('close failed:', err));
  if (root !== '') await rm(root, { recursive: true, force: true });
});

test.serial('three backends spread over three hosts, all answering through the balancer', async (t) => {
  const d = farm();
  const hosts = [1, 2, 3].map((i) => d.hostOf(`web@${i}.unit`));
  t.deepEqual([...new Set(hosts)].sort(), ['host1', 'host2', 'host3'], `web@1..3 on ${hosts.join(', ')}`);
  for (const i of [1, 2, 3])
    t.is(d.hostOf(`web-discovery@${i}.unit`), hosts[i - 1], `sidekick ${i} beside its web`);
  t.deepEqual([...d.timeline.servers].sort(), d.expectedBackends());
  const counts = await d.probe(12);
  t.is(counts.failed, 0, [...counts.reasons].join('; '));
  t.is(counts.backends.size, 3, `answered by ${[...counts.backends.keys()].join(', ')}`);
});

test.serial(
  'a backend whose Apache dies leaves the upstream while its unit restarts, then returns',
  async (t) => {
    const d = farm();
    const listed = await d.fleetts(['list-units', '-o', 'json', '--fields', 'unit,pid']);
    t.is(listed.code, 0, listed.stderr);
    const rows = JSON.parse(listed.stdout) as { unit: string; pid: number | string }[];
    const pid = Number(rows.find((r) => r.unit === 'web@2.unit')?.pid);
    t.true(pid > 0, `web@2.unit's pid in ${listed.stdout}`);
    const host = d.plan.hosts.find((h) => h.name === d.hostOf('web@2.unit'));
    const address = `${host?.ip ?? '?'}:${webPort(2)}`;
    t.true(d.timeline.servers.includes(address));
    process.kill(pid, 'SIGKILL');
    await d.timeline.until(
      `${address} out of the upstream`,
      () => (d.timeline.servers.includes(address) ? undefined : true),
      20_000,
    );
    t.deepEqual(
      [...d.timeline.servers].sort(),
      d.expectedBackends().filter((a) => a !== address),
    );
    await d.timeline.until(
      `${address} back in the upstream`,
      () => (d.timeline.servers.includes(address) ? true : undefined),
      30_000,
    );
    t.is(d.hostOf('web@2.unit'), host?.name, 'restarted in place, not moved');
  },
);

test.serial(
  'a powered-off backend host: its instance is replaced and the client sees no failed GET',
  async (t) => {
    const d = farm();
    const victim = d.backendOnlyHost();
    if (victim === undefined) return t.fail('every backend shares the balancer’s host');
    const result = await d.failover(victim, { timeoutMs: 60_000 });
    const web = result.moved.find((m) => m.unit.startsWith('web@'));
    t.truthy(web, `a web unit was on ${victim}: ${result.unitsOnHost.join(', ')}`);
    t.not(web?.to, victim);
    t.true(
      result.deadMs > 0 && result.deadMs <= result.upstreamMs,
      `dead ${result.deadMs} ms, upstream ${result.upstreamMs} ms`,
    );
    t.deepEqual([...d.timeline.servers].sort(), d.expectedBackends());
    t.is(result.client.failed, 0, [...result.client.reasons].map(([r, n]) => `${n} × ${r}`).join('; '));
    t.true(result.client.answered > 50, `${result.client.answered} answered`);
    t.log(
      `dead ${result.deadMs} ms, upstream updated ${result.upstreamMs} ms, ${result.client.answered} answered`,
    );

    const back = await d.powerOn(victim, { settleMs: 3_000 });
    t.deepEqual(back.movedBack, [], 'nothing moves back');
    t.deepEqual(back.unitsOnHost, []);
    t.is(back.client.failed, 0);
  },
);

test.serial('dev down leaves no namespace, link, mount or run dir behind', async (t) => {
  const d = farm();
  const plan = d.plan;
  closed = true;
  await d.close({ down: true });
  for (const h of plan.hosts) {
    t.false(await netnsExists(h.netns), h.netns);
    t.false(await linkExists(h.veth), h.veth);
    t.false(existsSync(machineRunDir(h.machineId)), machineRunDir(h.machineId));
  }
  t.false(await linkExists(plan.bridge.name), plan.bridge.name);
  t.false((await mountTargets()).includes(plan.shared.target), plan.shared.target);
});
