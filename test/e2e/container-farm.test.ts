// The web farm's container form (units/: web@, web-discovery@, lb, lb-upstream, lb-discovery with the
// fleetts/apache and fleetts/nginx images) end to end on a 3-host dev cluster with the Docker
// runtime: placement one web per host, the upstream and the balancer, a powered-off backend host
// (its instance has nowhere to go) and its return. The tests run in order on one cluster.
import { readFile, writeFile, mkdtemp, rm, chmod, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { systemClock } from '../../src/lib/clock.js';
import { DevCluster } from '../../src/dev/dev-cluster.js';
import { netnsExists } from '../../src/dev/network.js';
import type { ClusterPlan, HostPlan } from '../../src/dev/plan.js';
import { runCommand } from '../../src/dev/system.js';
import { parseUpstreamServers } from '../../src/demo/failover-timeline.js';
import { LB_UNITS, unitTextFor, WEB_TEMPLATES } from '../../src/demo/farm-files.js';
import { REPO_ROOT, WebFarmDemo } from '../../src/demo/web-farm-demo.js';
import { runBin } from '../helpers/cli.js';
import { ensureDockerImages } from '../helpers/docker.js';
import { waitFor } from '../helpers/wait.js';

const IMAGES = ['fleetts/apache:latest', 'fleetts/nginx:latest'];
const INSTANCES = [1, 2, 3] as const;
const WEB_PORT = 8080;

let root = '';
let dev: DevCluster | undefined;
let plan: ClusterPlan | undefined;
let unitsDir = '';
let upstreamFile = '';
const figures: string[] = [];

function cluster(): ClusterPlan {
  if (plan === undefined) throw new Error('the cluster did not come up (see the first failure)');
  return plan;
}

/** The CLI against the first host that is on (every host's fleetd serves the API). */
async function fleetts(
  args: readonly string[],
  options: { off?: string; timeoutMs?: number } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const host = cluster().hosts.find((h) => h.name !== options.off);
  return runBin('fleetts', args, {
    env: { FLEETTS_ENDPOINT: `unix://${host?.apiSocket ?? ''}` },
    cwd: unitsDir,
    timeoutMs: options.timeoutMs ?? 60_000,
  });
}

interface Row {
  readonly unit: string;
  readonly machine: string | null;
  readonly active: string;
}

async function unitRows(off?: string): Promise<Row[]> {
  const r = await fleetts(['list-units', '-o', 'json', '--fields', 'unit,machine,active'], {
    ...(off === undefined ? {} : { off }),
  });
  if (r.code !== 0) throw new Error(`fleetts list-units failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as Row[];
}

/** The host an active unit runs on. */
function hostOf(rows: readonly Row[], unit: string): HostPlan | undefined {
  const row = rows.find((r) => r.unit === unit && r.active === 'active');
  return cluster().hosts.find((h) => h.machineId === row?.machine);
}

/** The backends in the rendered upstream (not the same servers as backups, nor its 503 fallback). */
async function upstreamServers(): Promise<string[]> {
  return parseUpstreamServers(await readFile(upstreamFile, 'utf8').catch(() => '')).sort();
}

/** GETs through the balancer: which web@ instances answered, and the failures. */
async function probe(
  lb: string,
  n: number,
): Promise<{ by: Map<string, number>; where: Map<string, string>; failed: string[] }> {
  const by = new Map<string, number>();
  const where = new Map<string, string>();
  const failed: string[] = [];
  for (let i = 0; i < n; i++) {
    try {
      const res = await fetch(`http://${lb}/`, { signal: AbortSignal.timeout(3_000) });
      const body = await res.text();
      const who = /Hello from (web@\d+\.unit)/.exec(body)?.[1];
      if (res.status !== 200 || who === undefined) failed.push(`${res.status}: ${body.slice(0, 80)}`);
      else {
        by.set(who, (by.get(who) ?? 0) + 1);
        // The farm page (shared storage) names the address from FLEETTS_MACHINE_IP and WEB_PORT.
        where.set(who, /at (\S*:\d*)<\/p>/.exec(body)?.[1] ?? body);
      }
    } catch (err) {
      failed.push((err as Error).message);
    }
  }
  return { by, where, failed };
}

/** The unit's container on a host's dockerd: its id and whether it runs. */
async function containerOn(
  host: HostPlan,
  name: string,
): Promise<{ id: string; running: boolean } | undefined> {
  if (host.docker === undefined) return undefined;
  const r = await runCommand(
    ['docker', '-H', `unix://${host.docker.socket}`, 'inspect', '-f', '{{.Id}} {{.State.Running}}', name],
    { allowFail: true },
  );
  const [id, running] = r.stdout.trim().split(' ');
  return r.code !== 0 || id === undefined ? undefined : { id, running: running === 'true' };
}

test.before(async () => {
  if (process.getuid?.() !== 0)
    throw new Error('the container farm e2e test needs root (network namespaces, dockerd); run it as root');
  let t0 = Date.now();
  await ensureDockerImages(['apache', 'nginx']);
  figures.push(`images built/checked in ${Date.now() - t0} ms`);
  root = await mkdtemp(join(tmpdir(), 'fleetts-cfarm-'));
  await chmod(root, 0o755);
  // The sidekicks' ExecStart=/usr/bin/env fleetts: the demo's wrapper running this checkout.
  await new WebFarmDemo({
    clock: systemClock,
    progress: () => undefined,
    stateDir: join(root, 'state'),
  }).installFleetts();
  dev = new DevCluster({
    stateDir: join(root, 'state'),
    clock: systemClock,
    progress: () => undefined,
    contextFile: join(root, 'context.json'),
  });
  t0 = Date.now();
  plan = (
    await dev.up({
      nodes: 3,
      runtime: 'docker',
      // etcd outside the hosts: these faults test fleetts; with a member per host (the dev default)
      // a partitioned or dead member stalls the etcd client (docs/dev-cluster.md).
      etcd: 'external',
      leaseTtlMs: 4_000,
      sharedPath: join(root, 'shared'),
      // Only the farm's two images, copied below: `up` would copy every fleetts/* image (mariadb…).
      skipImages: true,
      timeoutMs: 90_000,
    })
  ).plan;
  figures.push(`dev up (3 hosts, docker) in ${Date.now() - t0} ms`);
  t0 = Date.now();
  const tar = join(root, 'images.tar');
  await runCommand(['docker', 'save', '-o', tar, ...IMAGES], { timeoutMs: 300_000 });
  await Promise.all(
    plan.hosts.map((h) =>
      runCommand(['docker', '-H', `unix://${h.docker?.socket ?? ''}`, 'load', '-q', '-i', tar], {
        timeoutMs: 300_000,
      }),
    ),
  );
  await rm(tar, { force: true });
  figures.push(`apache + nginx images copied to 3 hosts in ${Date.now() - t0} ms`);

  // The shared files, as a user writes them on the NFS server; the container units from units/.
  const shared = plan.shared.target;
  const files = await runBin('fleetts', ['farm-files', '--out', shared, '--shared-path', shared]);
  if (files.code !== 0) throw new Error(`fleetts farm-files failed: ${files.stderr}`);
  upstreamFile = join(shared, 'lb', 'conf.d', 'upstream-web.conf');
  unitsDir = join(root, 'units');
  await mkdir(unitsDir);
  for (const name of [...WEB_TEMPLATES, ...LB_UNITS]) {
    const text = await readFile(join(REPO_ROOT, 'units', name), 'utf8');
    await writeFile(join(unitsDir, name), unitTextFor(text, shared));
  }
});

test.after.always(async () => {
  if (figures.length > 0) console.log(`container farm: ${figures.join('; ')}`);
  await dev?.down().catch((err: unknown) => console.error('dev down failed:', err));
  if (root !== '') await rm(root, { recursive: true, force: true });
});

async function steadyAnswers(
  t: ExecutionContext,
  lb: string,
  expected: readonly string[],
): Promise<Map<string, string>> {
  // nginx leaves a backend out for fail_timeout after a failed try: poll until all answer.
  let last = await probe(lb, 12);
  const deadline = Date.now() + 60_000;
  while ((last.failed.length > 0 || last.by.size !== expected.length) && Date.now() < deadline) {
    await systemClock.sleep(1_000);
    last = await probe(lb, 12);
  }
  t.deepEqual(last.failed, [], 'every GET through the balancer answered 200 from a web instance');
  t.deepEqual(
    [...last.by.keys()].sort(),
    [...expected].sort(),
    `answered by ${[...last.by.keys()].join(', ')}`,
  );
  return last.where;
}

test.serial(
  'the container farm starts from units/: one web per host, three backends behind nginx',
  async (t) => {
    t.timeout(180_000);
    const t0 = Date.now();
    const webs = INSTANCES.flatMap((i) => [`web@${i}.unit`, `web-discovery@${i}.unit`]);
    const startedWebs = await fleetts(['start', ...webs], { timeoutMs: 120_000 });
    t.is(startedWebs.code, 0, startedWebs.stderr);
    const startedLb = await fleetts(['start', ...LB_UNITS], { timeoutMs: 120_000 });
    t.is(startedLb.code, 0, startedLb.stderr);

    const all = [...webs, ...LB_UNITS];
    const rows = await waitFor(
      'every farm unit active',
      async () => {
        const r = await unitRows();
        return all.every((u) => r.some((x) => x.unit === u && x.active === 'active')) ? r : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 500 },
    ).catch(async (err: unknown) => {
      const r = await fleetts(['list-units']);
      throw new Error(`${(err as Error).message}\n${r.stdout}`);
    });
    const hosts = INSTANCES.map((i) => hostOf(rows, `web@${i}.unit`)?.name);
    t.deepEqual([...new Set(hosts)].sort(), ['host1', 'host2', 'host3'], `web@1..3 on ${hosts.join(', ')}`);
    for (const i of INSTANCES)
      t.is(hostOf(rows, `web-discovery@${i}.unit`)?.name, hosts[i - 1], `web-discovery@${i} beside web@${i}`);
    const lbHost = hostOf(rows, 'lb.unit');
    if (lbHost === undefined) return t.fail('lb.unit has no host');
    for (const u of ['lb-upstream.unit', 'lb-discovery.unit']) t.is(hostOf(rows, u)?.name, lbHost.name, u);
    for (const i of INSTANCES) {
      const host = cluster().hosts.find((h) => h.name === hosts[i - 1]);
      t.true((await containerOn(host!, `web-${i}`))?.running, `container web-${i} runs on ${host?.name}`);
    }

    const expected = INSTANCES.map((i) => `${hostOf(rows, `web@${i}.unit`)?.ip ?? '?'}:${WEB_PORT}`).sort();
    const servers = await waitFor(
      'the three backends in the upstream',
      async () => {
        const s = await upstreamServers();
        return s.join(' ') === expected.join(' ') ? s : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 500 },
    ).catch(async (err: unknown) => {
      throw new Error(`${(err as Error).message}; upstream file:\n${await readFile(upstreamFile, 'utf8')}`);
    });
    t.deepEqual(servers, expected);
    const where = await steadyAnswers(
      t,
      `${lbHost.ip}:80`,
      INSTANCES.map((i) => `web@${i}.unit`),
    );
    for (const i of INSTANCES)
      t.is(
        where.get(`web@${i}.unit`),
        `${hostOf(rows, `web@${i}.unit`)?.ip ?? '?'}:${WEB_PORT}`,
        `web@${i}'s page`,
      );
    figures.push(`farm up and answering in ${Date.now() - t0} ms`);
  },
);

test.serial(
  'a powered-off backend host: its web@ waits unplaced, the balancer keeps answering; power-on brings it back',
  async (t) => {
    t.timeout(180_000);
    const rows = await unitRows();
    const lbHost = hostOf(rows, 'lb.unit');
    if (lbHost === undefined) return t.fail('lb.unit has no host');
    const instance = INSTANCES.find((i) => hostOf(rows, `web@${i}.unit`)?.name !== lbHost.name);
    const victim = instance === undefined ? undefined : hostOf(rows, `web@${instance}.unit`);
    if (instance === undefined || victim === undefined) return t.fail('every web shares the balancer’s host');
    const unit = `web@${instance}.unit`;
    const lb = `${lbHost.ip}:80`;
    const address = `${victim.ip}:${WEB_PORT}`;
    const before = await containerOn(victim, `web-${instance}`);
    t.true(before?.running, `web-${instance} runs on ${victim.name}`);

    let t0 = Date.now();
    await dev!.powerOff(victim.name);
    await waitFor(
      `${address} out of the upstream`,
      async () => ((await upstreamServers()).includes(address) ? undefined : true),
      { timeoutMs: 60_000, intervalMs: 500 },
    );
    figures.push(`backend dropped from the upstream ${Date.now() - t0} ms after power-off`);
    const others = INSTANCES.filter((i) => i !== instance).map((i) => `web@${i}.unit`);
    t.deepEqual(
      await upstreamServers(),
      INSTANCES.filter((i) => i !== instance)
        .map((i) => `${hostOf(rows, `web@${i}.unit`)?.ip ?? '?'}:${WEB_PORT}`)
        .sort(),
    );
    await steadyAnswers(t, lb, others);

    // Conflicts=web@*.unit and two hosts left, each with a web: nowhere to go, and it says why.
    const reason = await waitFor(
      `a reason for ${unit} in list-unit-files`,
      async () => {
        const r = await fleetts(['list-unit-files', '-o', 'json', '--fields', 'unit,reason'], {
          off: victim.name,
        });
        const row = (JSON.parse(r.stdout) as { unit: string; reason: string | null }[]).find(
          (x) => x.unit === unit,
        );
        return row?.reason ?? undefined;
      },
      { timeoutMs: 60_000, intervalMs: 500 },
    );
    t.regex(reason, /conflict/i, `${unit}: ${reason}`);
    t.log(`${unit} while ${victim.name} is off: ${reason}`);
    const during = await unitRows(victim.name);
    t.false(
      during.some((r) => r.unit === unit && r.active === 'active'),
      `${unit} runs nowhere while ${victim.name} is off`,
    );

    t0 = Date.now();
    await dev!.powerOn(victim.name);
    await waitFor(
      `${unit} active on ${victim.name} again`,
      async () => (hostOf(await unitRows(), unit)?.name === victim.name ? true : undefined),
      { timeoutMs: 60_000, intervalMs: 500 },
    );
    await waitFor(
      `${address} back in the upstream`,
      async () => ((await upstreamServers()).includes(address) ? true : undefined),
      { timeoutMs: 60_000, intervalMs: 500 },
    );
    figures.push(`back in the upstream ${Date.now() - t0} ms after power-on`);
    const after = await containerOn(victim, `web-${instance}`);
    t.true(after?.running, `web-${instance} runs on ${victim.name} again`);
    t.is(after?.id, before?.id, 'the same container, started again by the agent');
    t.is((await upstreamServers()).length, 3);
    await steadyAnswers(
      t,
      lb,
      INSTANCES.map((i) => `web@${i}.unit`),
    );
  },
);

test.serial('dev down removes the cluster', async (t) => {
  if (dev === undefined) return t.fail('the cluster did not come up');
  const hosts = cluster().hosts;
  await dev.down();
  for (const h of hosts) {
    t.false(await netnsExists(h.netns), h.netns);
    t.is(await containerOn(h, 'web-1'), undefined, `${h.name}'s dockerd is gone`);
  }
});
