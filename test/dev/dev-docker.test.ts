// `fleetts dev up --runtime docker`: one dockerd per host, inside the host's namespace with its own
// roots; power-off kills it with everything else and leaves no mounts; down leaves nothing.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { systemClock } from '../../src/lib/clock.js';
import { DevCluster } from '../../src/dev/dev-cluster.js';
import { netnsExists } from '../../src/dev/network.js';
import type { ClusterPlan } from '../../src/dev/plan.js';
import { readState } from '../../src/dev/state.js';
import { isRunning, mountsUnder, netnsPids, runCommand } from '../../src/dev/system.js';
import { runBin } from '../helpers/cli.js';
import { ensureDockerAndTestImage, TEST_IMAGE } from '../helpers/docker.js';

let root = '';
let dev: DevCluster | undefined;
let plan: ClusterPlan | undefined;

test.before(async () => {
  if (process.getuid?.() !== 0)
    throw new Error('the dev cluster tests need root (network namespaces); run them as root');
  await ensureDockerAndTestImage();
  root = await mkdtemp(join(tmpdir(), 'fleetts-devd-'));
  dev = new DevCluster({
    stateDir: join(root, 'state'),
    clock: systemClock,
    progress: () => undefined,
    contextFile: join(root, 'context.json'),
  });
  plan = (
    await dev.up({
      nodes: 1,
      runtime: 'docker',
      leaseTtlMs: 2_000,
      sharedPath: join(root, 'shared'),
      skipImages: true,
      timeoutMs: 60_000,
    })
  ).plan;
});

test.after.always(async () => {
  await dev?.down().catch((err: unknown) => console.error('dev down failed:', err));
  if (root !== '') await rm(root, { recursive: true, force: true });
});

const docker = (
  socket: string,
  ...args: string[]
): Promise<{ code: number; stdout: string; stderr: string }> =>
  runCommand(['docker', '-H', `unix://${socket}`, ...args], { allowFail: true });

test.serial("units reach their host's dockerd: DOCKER_HOST is in their environment", async (t) => {
  const host = plan?.hosts[0];
  if (host?.docker === undefined) return t.fail('the cluster did not come up');
  await writeFile(
    join(root, 'docker-env.unit'),
    '[Service]\nExecStart=/bin/sh -c \'echo "docker=$DOCKER_HOST"; exec sleep 600\'\n',
  );
  const env = { FLEETTS_ENDPOINT: `unix://${host.apiSocket}` };
  const started = await runBin('fleetts', ['start', 'docker-env.unit'], {
    env,
    cwd: root,
    timeoutMs: 60_000,
  });
  t.is(started.code, 0, started.stderr);
  let journal = '';
  for (let i = 0; i < 50 && !journal.includes('docker='); i++) {
    journal = (await runBin('fleetts', ['journal', '-n', '5', 'docker-env.unit'], { env, cwd: root })).stdout;
    if (!journal.includes('docker=')) await systemClock.sleep(200);
  }
  t.regex(journal, new RegExp(`docker=unix://${host.docker.socket.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
  const destroyed = await runBin('fleetts', ['destroy', 'docker-env.unit'], {
    env,
    cwd: root,
    timeoutMs: 60_000,
  });
  t.is(destroyed.code, 0, destroyed.stderr);
});

test.serial(
  'each host has its own dockerd in its namespace; power-off kills it and unmounts what it left',
  async (t) => {
    const host = plan?.hosts[0];
    if (dev === undefined || host?.docker === undefined) return t.fail('the cluster did not come up');
    // A container unit runs on the host when the plug is pulled (the test image, copied over).
    const copied = await runCommand(
      ['sh', '-c', `docker save ${TEST_IMAGE} | docker -H unix://${host.docker.socket} load -q`],
      { allowFail: true },
    );
    t.is(copied.code, 0, copied.stderr);
    await writeFile(
      join(root, 'box.unit'),
      `[Container]\nImage=${TEST_IMAGE}\nPull=never\nNetwork=host\nRestart=no\n`,
    );
    const env = { FLEETTS_ENDPOINT: `unix://${host.apiSocket}` };
    const started = await runBin('fleetts', ['start', 'box.unit'], { env, cwd: root, timeoutMs: 60_000 });
    t.is(started.code, 0, started.stderr);
    // `fleetts status`: "Active: active (running) since <time>".
    const containerOf = async (): Promise<{ active: string; since: string } | undefined> => {
      const r = await runBin('fleetts', ['status', '-n', '0', 'box.unit'], { env, cwd: root });
      const m = /Active: (\S+) .*since (\S+)/.exec(r.stdout);
      return m === null ? undefined : { active: m[1] ?? '', since: m[2] ?? '' };
    };
    const before = await containerOf();
    t.is(before?.active, 'active');
    const info = await docker(host.docker.socket, 'info', '--format', '{{.DockerRootDir}}');
    t.is(info.code, 0, info.stderr);
    t.is(info.stdout.trim(), host.docker.dataRoot);
    const state = await readState(dev.stateDir);
    const dockerd = state?.processes.find((p) => p.id === 'host1/dockerd');
    if (dockerd === undefined) return t.fail('dockerd not recorded');
    t.true((await netnsPids(host.netns)).includes(dockerd.pid), 'dockerd runs in the host namespace');
    t.true((await mountsUnder(host.stateDir)).length > 0, 'dockerd mounted its data root');

    await dev.powerOff('host1');
    t.false(await isRunning(dockerd));
    t.deepEqual(await netnsPids(host.netns), [], 'dockerd, containerd and fleetd are all gone');
    t.deepEqual(await mountsUnder(host.stateDir), [], 'no mounts left under the host');
    t.not((await docker(host.docker.socket, 'info')).code, 0, 'the host dockerd no longer answers');

    await dev.powerOn('host1');
    const again = await docker(host.docker.socket, 'info', '--format', '{{.DockerRootDir}}');
    t.is(again.code, 0, again.stderr);
    const after = (await readState(dev.stateDir))?.processes.find((p) => p.id === 'host1/dockerd');
    t.not(after?.pid, dockerd.pid, 'a new dockerd after power-on');
    // Its container died with the daemon (Docker records exit 255): the new fleetd starts the unit
    // again rather than leaving it failed.
    let now = await containerOf();
    for (let i = 0; i < 100 && !(now?.active === 'active' && now.since !== before?.since); i++) {
      await systemClock.sleep(200);
      now = await containerOf();
    }
    t.is(now?.active, 'active', `box.unit after the power-on: ${JSON.stringify(now)}`);
    t.not(now?.since, before?.since, 'started again after the power-on');
    const destroyed = await runBin('fleetts', ['destroy', 'box.unit'], { env, cwd: root, timeoutMs: 60_000 });
    t.is(destroyed.code, 0, destroyed.stderr);
  },
);

test.serial('down removes the namespace, mounts and every dockerd', async (t) => {
  const host = plan?.hosts[0];
  if (dev === undefined || host === undefined) return t.fail('the cluster did not come up');
  const processes = (await readState(dev.stateDir))?.processes ?? [];
  await dev.down();
  t.false(await netnsExists(host.netns));
  t.deepEqual(await mountsUnder(root), []);
  for (const p of processes) t.false(await isRunning(p), `${p.id} stopped`);
});
