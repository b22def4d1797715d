// The whole hosting cluster of `npm run demo -- --hosting`, end to end, with its steps
// (src/demo/hosting-services.ts): the web farm, a 3-member Galera cluster and FTP on three hosts of
// a dev cluster; the FTP host powered off (every service heals, its MySQL member waits for a host
// of its own) and powered on again (the member is started afresh there and rejoins with the rows).
// The tests run in order on one cluster with its own state dir, shared path and CLI context.
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { systemClock } from '../../src/lib/clock.js';
import { HOSTING_SERVICES, HostingServices, type HostOutage } from '../../src/demo/hosting-services.js';
import { WebFarmDemo } from '../../src/demo/web-farm-demo.js';
import { ensureWebPackages } from '../helpers/web.js';

let root = '';
let farm: WebFarmDemo | undefined;
let services: HostingServices | undefined;
let outage: HostOutage | undefined;

function up(): { farm: WebFarmDemo; services: HostingServices } {
  if (farm === undefined || services === undefined)
    throw new Error('the hosting cluster did not come up (see the first failure)');
  return { farm, services };
}

async function bootstraps(f: WebFarmDemo): Promise<string[]> {
  const r = await f.fleetts([
    'galera',
    'bootstraps',
    '--etcd-endpoints',
    f.plan.etcd.endpoints.join(','),
    '--json',
  ]);
  if (r.code !== 0) throw new Error(`fleetts galera bootstraps failed: ${r.stderr}`);
  return r.stdout.split('\n').filter((l) => l !== '');
}

test.before(async (t) => {
  t.timeout(420_000);
  if (process.getuid?.() !== 0)
    throw new Error('the hosting e2e test needs root (network namespaces, mounts, PAM); run it as root');
  await ensureWebPackages();
  root = await mkdtemp(join(tmpdir(), 'fleetts-hosting-'));
  // Apache's children, the FTP guest account and mariadbd (as mysql) walk paths under here.
  await chmod(root, 0o755);
  farm = new WebFarmDemo({
    clock: systemClock,
    progress: () => undefined,
    stateDir: join(root, 'state'),
    contextFile: join(root, 'context.json'),
    services: HOSTING_SERVICES,
  });
  // etcd outside the hosts: these faults test fleetts; with a member per host (the dev default)
  // a partitioned or dead member stalls the etcd client (docs/dev-cluster.md).
  await farm.up({ nodes: 3, leaseTtlMs: 4_000, sharedPath: join(root, 'shared'), etcd: 'external' });
  await farm.installFleetts();
  await farm.prepareSharedStorage();
  await farm.deploy([1, 2, 3]);
  await farm.waitForFarm(120_000);
  services = new HostingServices({ farm, clock: systemClock });
  await services.prepare();
  await services.deploy();
  await services.waitForServices(240_000);
});

test.after.always(async () => {
  await farm?.close({ down: true }).catch((err: unknown) => console.error('close failed:', err));
  await services?.removeData().catch(() => undefined);
  if (root !== '') await rm(root, { recursive: true, force: true });
});

test.serial('web, MySQL and FTP together: three members, one bootstrap, one row everywhere', async (t) => {
  t.timeout(120_000);
  const { farm: f, services: s } = up();
  const members = [...s.members()].sort();
  t.is(members.length, 3);
  const hosts = members.map(([, address]) => f.timeline.hostOfAddress(address));
  t.deepEqual([...new Set(hosts)].sort(), ['host1', 'host2', 'host3'], 'one member per host');
  t.is((await bootstraps(f)).length, 1, 'exactly one member bootstrapped the cluster');
  const [first] = members;
  await s.writeRow(first?.[1] ?? '', 1, 'before the power-off');
  for (const [unit, address] of members)
    t.deepEqual(await s.rows(address), ['1: before the power-off'], `${unit} serves the row`);
  await s.ftpUpload('backup.bin', Buffer.from(Array.from({ length: 200_000 }, (_, i) => i % 251)));
  t.deepEqual([...f.timeline.servers].sort(), f.expectedBackends(), 'the upstream lists the three backends');
});

test.serial(
  'power off the FTP host: every service heals, its MySQL member waits with a reason',
  async (t) => {
    t.timeout(180_000);
    const { farm: f, services: s } = up();
    const ftpAt = s.ftpAddress();
    t.truthy(ftpAt);
    const host = f.timeline.hostOfAddress(ftpAt ?? '');
    outage = await s.powerOff(host);
    // powerOff() resolves only once each holds; the figures say when (ms after the power-off).
    t.true(Number.isFinite(outage.mysqlServedMs), 'a row was written and read through the two survivors');
    t.true(outage.webWholeMs > 0 && outage.ftpBackMs > 0);
    t.not(outage.ftpHost, host, 'the FTP server runs on another host, serving the uploaded file');
    t.truthy(outage.mysqlWaiting, `the FTP host ran a member: ${outage.unitsOnHost.join(', ')}`);
    const row = outage.unitFiles.split('\n').find((l) => l.startsWith(`${outage?.mysqlWaiting ?? '?'} `));
    t.regex(row ?? '', /unplaceable: .*conflicts/, 'list-unit-files says why the member waits');
    const members = s.members();
    t.is(members.size, 2);
    t.false([...members.values()].some((a) => f.timeline.hostOfAddress(a) === host));
  },
);

test.serial('power it on: its member is started there afresh and rejoins with every row', async (t) => {
  t.timeout(240_000);
  const { farm: f, services: s } = up();
  if (outage === undefined) throw new Error('the power-off test did not run');
  const rejoin = await s.powerOn(outage.host);
  t.deepEqual(rejoin.rows, ['1: before the power-off', '2: written while a host was off']);
  t.is(f.hostOf(outage.mysqlWaiting ?? ''), outage.host, 'the member came back to its host');
  t.is((await bootstraps(f)).length, 1, 'the rejoin was a join, not a second bootstrap');
  for (const address of s.members().values())
    t.deepEqual(await s.rows(address), rejoin.rows, `${address} serves the same rows`);
});
