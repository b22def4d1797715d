// The Docker runtime with real Docker and real containers: start/stop/replace, adoption across a
// SIGKILL of the owning process, health, a missing image, Restart= and the start limit, journal,
// and one bad container next to good ones. Needs root (dockerd); fails, never skips, without it.

import test from 'ava';
import { execFileSync, spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type Dockerode from 'dockerode';
import { asUnitHash, type UnitName } from '../../src/cluster/types.js';
import type { ContainerUnitConfig } from '../../src/runtime/docker-config.js';
import { DockerRuntime, missingImageReason } from '../../src/runtime/docker-runtime.js';
import type { ObservedContainer } from '../../src/runtime/docker-state.js';
import type { ObservedUnit } from '../../src/runtime/runtime.js';
import {
  containerConfig,
  containerUnit,
  ensureDockerAndTestImage,
  removeContainers,
  TEST_IMAGE,
  testInstance,
  waitFor,
} from '../helpers/docker.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const instances: string[] = [];
const runtimes: DockerRuntime[] = [];
let docker: Dockerode;

test.before(async () => {
  docker = await ensureDockerAndTestImage();
});

test.after.always(async () => {
  for (const r of runtimes) await r.close();
  if (docker !== undefined) await removeContainers(docker, instances);
});

function newRuntime(
  tag: string,
  instance = testInstance(tag),
  resyncMs = 1000,
): { runtime: DockerRuntime; instance: string } {
  instances.push(instance);
  const runtime = new DockerRuntime({ machine: `m-${tag}`, instance, resyncMs });
  runtimes.push(runtime);
  return { runtime, instance };
}

async function observed(runtime: DockerRuntime, unit: UnitName): Promise<ObservedContainer | undefined> {
  return (await runtime.list()).find((o) => o.unit === unit);
}

function waitState(
  runtime: DockerRuntime,
  unit: UnitName,
  pred: (o: ObservedContainer) => boolean,
  what: string,
  timeoutMs?: number,
): Promise<ObservedContainer> {
  return waitFor(
    `${unit} ${what}`,
    async () => {
      const o = await observed(runtime, unit);
      return o !== undefined && pred(o) ? o : undefined;
    },
    timeoutMs,
  );
}

async function startedAt(id: string): Promise<string> {
  return (await docker.getContainer(id).inspect()).State.StartedAt;
}

async function journal(runtime: DockerRuntime, unit: UnitName, lines = 1000): Promise<string[]> {
  const out: string[] = [];
  for await (const l of runtime.journal(unit, { lines })) out.push(l);
  return out;
}

test('start runs the container with fleetts labels; stop makes it inactive; a new hash replaces it', async (t) => {
  const { runtime, instance } = newRuntime('cycle');
  const unit = containerUnit('cycle');
  const changes: ObservedUnit[] = [];
  runtime.onChange((o) => o.unit === unit && changes.push(o));

  await runtime.start(containerConfig(unit, { env: { GREETING: 'hi' } }));
  const running = await observed(runtime, unit);
  t.like(running, { active: 'active', sub: 'running', load: 'loaded', hash: 'h1' });
  const id1 = running?.containerId ?? '';
  const info = await docker.getContainer(id1).inspect();
  t.like(info.Config.Labels, {
    'fleetts.unit': unit,
    'fleetts.hash': 'h1',
    'fleetts.machine': 'm-cycle',
    'fleetts.runtime': instance,
  });
  t.true(info.Config.Env.includes('GREETING=hi'));
  t.is(info.HostConfig.RestartPolicy?.Name, 'no');
  t.true(
    changes.some((o) => o.sub === 'running'),
    'the listener heard of the start',
  );

  // Same hash again: a no-op (same container, not restarted).
  const before = await startedAt(id1);
  await runtime.start(containerConfig(unit, { env: { GREETING: 'hi' } }));
  t.is((await observed(runtime, unit))?.containerId, id1);
  t.is(await startedAt(id1), before);

  await runtime.stop(unit);
  t.like(await observed(runtime, unit), { active: 'inactive', sub: 'dead', containerId: id1 });
  t.false((await docker.getContainer(id1).inspect()).State.Running);

  await runtime.start(containerConfig(unit, { hash: asUnitHash('h2') }));
  const replaced = await observed(runtime, unit);
  t.like(replaced, { active: 'active', sub: 'running', hash: 'h2' });
  t.not(replaced?.containerId, id1, 'a new container');
  await t.throwsAsync(
    docker.getContainer(id1).inspect(),
    { message: /no such container/i },
    'the old one is removed',
  );

  await runtime.remove(unit);
  t.deepEqual(
    (await runtime.list()).map((o) => o.unit),
    [],
  );
  await t.throwsAsync(docker.getContainer(replaced?.containerId ?? '').inspect(), {
    message: /no such container/i,
  });
});

test('a container survives a SIGKILL of the process that owns the runtime and is adopted, not restarted', async (t) => {
  const instance = testInstance('adopt');
  instances.push(instance);
  const unit = containerUnit('adopt');
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(here, 'fixtures', 'docker-adopt-host.ts'), instance, unit],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const first = await new Promise<ObservedUnit>((resolve, reject) => {
    let buf = '';
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      const nl = buf.indexOf('\n');
      if (nl >= 0) resolve(JSON.parse(buf.slice(0, nl)) as ObservedUnit);
    });
    child.once('exit', (code) => reject(new Error(`the adopt host exited (${code}) before its unit ran`)));
  });
  const id = first.containerId ?? '';
  const started = await startedAt(id);
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));

  const { runtime } = newRuntime('adopt', instance);
  const adopted = await runtime.adopt();
  t.is(adopted.length, 1);
  t.like(adopted[0], { unit, active: 'active', sub: 'running', containerId: id, hash: 'h1' });
  t.is(await startedAt(id), started, 'not restarted');
  // Still watched: a stop through the new runtime works, and Restart=always does not undo it.
  await runtime.stop(unit);
  t.like(await observed(runtime, unit), { active: 'inactive', sub: 'dead' });
  t.false((await docker.getContainer(id).inspect()).State.Running);
});

test('health: a passing HealthCmd reports healthy, a failing one unhealthy with the reason while it still runs', async (t) => {
  // No resync within the test: changes can only arrive through Docker's event stream.
  const { runtime } = newRuntime('health', testInstance('health'), 600_000);
  const unit = containerUnit('health');
  const seen: ObservedContainer[] = [];
  runtime.onChange((o) => o.unit === unit && seen.push(o));
  await runtime.start(
    containerConfig(unit, {
      cmd: ['/bin/sh', '-c', "touch /tmp/ok; trap 'exit 0' TERM; while :; do sleep 0.1; done"],
      health: {
        kind: 'command',
        command: 'test -f /tmp/ok || { echo no ok file; exit 1; }',
        intervalMs: 200,
        // Generous: under a CPU hog a `docker exec` took over 2 s, and a timed-out check is
        // reported unhealthy with another reason (CI run of stop 18).
        timeoutMs: 20_000,
        startPeriodMs: 0,
        retries: 1,
      },
    }),
  );
  const healthy = await waitFor('a healthy change event', () => seen.find((o) => o.health === 'healthy'));
  t.like(healthy, { active: 'active', sub: 'running' });
  t.is(healthy.reason, undefined);

  const id = healthy.containerId ?? '';
  execFileSync('docker', ['exec', id, 'rm', '/tmp/ok']);
  // Reported from Docker's event stream: no list() polling, no resync.
  const unhealthy = await waitFor('an unhealthy change event', () =>
    seen.find((o) => o.health === 'unhealthy'),
  );
  t.like(unhealthy, { active: 'active', sub: 'running' });
  const NO_OK = 'unhealthy: the health check exited with status 1: no ok file';
  // On a loaded machine (CI run of stop 20) a `docker exec` took over 20 s, so the check that
  // turned the container unhealthy may be one that timed out; Docker sends no new event while it
  // stays unhealthy. The reason is then read again from the container's health log.
  if (unhealthy.reason !== NO_OK) {
    t.regex(
      unhealthy.reason ?? '',
      /^unhealthy: the health check exited with status -1: Health check exceeded timeout/,
    );
    const later = await waitState(
      runtime,
      unit,
      (o) => o.reason === NO_OK,
      "the check's own output as reason",
      120_000,
    );
    t.like(later, { active: 'active', sub: 'running', health: 'unhealthy' });
  }
});

// An image whose own HEALTHCHECK passes while /tmp/ok exists; its command creates the file at start.
const HEALTH_IMAGE = 'fleetts-test-healthcheck:latest';
const HEALTH_DOCKERFILE = `FROM ${TEST_IMAGE}
LABEL org.fleetts.test=1
HEALTHCHECK --interval=1s --timeout=20s --retries=2 CMD test -f /tmp/ok || { echo no ok file; exit 1; }
CMD ["/bin/sh", "-c", "touch /tmp/ok; echo run; trap 'exit 0' TERM; while :; do sleep 0.1; done"]
`;

test('an image HEALTHCHECK gone unhealthy restarts the container under Restart=on-failure; healthy again after', async (t) => {
  execFileSync('docker', ['build', '-q', '-t', HEALTH_IMAGE, '-'], { input: HEALTH_DOCKERFILE });
  const { runtime } = newRuntime('unhealthy');
  const unit = containerUnit('unhealthy');
  const seen: ObservedContainer[] = [];
  runtime.onChange((o) => o.unit === unit && seen.push(o));
  await runtime.start(
    containerConfig(unit, { image: HEALTH_IMAGE, restart: 'on-failure', restartSecMs: 100 }),
  );
  const healthy = await waitState(runtime, unit, (o) => o.health === 'healthy', 'healthy', 90_000);
  const id = healthy.containerId ?? '';
  const firstStart = await startedAt(id);
  execFileSync('docker', ['exec', id, 'rm', '/tmp/ok']);
  const again = await waitFor(
    'the container restarted and healthy again',
    async () => {
      const o = await observed(runtime, unit);
      return o?.health === 'healthy' && (await startedAt(id)) !== firstStart ? o : undefined;
    },
    90_000,
  );
  t.like(again, { active: 'active', sub: 'running', containerId: id });
  t.is(again.reason, undefined);
  const unhealthyAt = seen.findIndex((o) => o.health === 'unhealthy');
  t.true(unhealthyAt >= 0, 'reported unhealthy before the restart');
  t.like(seen[unhealthyAt], { reason: 'unhealthy: the health check exited with status 1: no ok file' });
  t.true(
    seen.slice(unhealthyAt).some((o) => o.sub === 'auto-restart'),
    `went through auto-restart: ${seen.map((o) => o.sub).join(' ')}`,
  );
  t.is((await journal(runtime, unit)).filter((l) => l.endsWith(': run')).length, 2, 'started twice');
});

test('an unhealthy container under Restart=no is stopped and left failed with the reason', async (t) => {
  const { runtime } = newRuntime('unhealthy-no');
  const unit = containerUnit('unhealthy-no');
  await runtime.start(
    containerConfig(unit, {
      cmd: ['/bin/sh', '-c', "touch /tmp/ok; trap 'exit 0' TERM; while :; do sleep 0.1; done"],
      health: {
        kind: 'command',
        command: 'test -f /tmp/ok || { echo no ok file; exit 1; }',
        intervalMs: 200,
        timeoutMs: 20_000,
        startPeriodMs: 0,
        retries: 1,
      },
      restart: 'no',
    }),
  );
  const healthy = await waitState(runtime, unit, (o) => o.health === 'healthy', 'healthy', 90_000);
  execFileSync('docker', ['exec', healthy.containerId ?? '', 'rm', '/tmp/ok']);
  const failed = await waitState(runtime, unit, (o) => o.active === 'failed', 'failed', 90_000);
  t.like(failed, {
    sub: 'failed',
    reason: 'unhealthy: the health check exited with status 1: no ok file',
    containerId: healthy.containerId,
  });
  t.false((await docker.getContainer(healthy.containerId ?? '').inspect()).State.Running);
});

test('a missing image fails the unit with a reason that names the image and the build script', async (t) => {
  const { runtime } = newRuntime('noimage');
  const unit = containerUnit('noimage');
  await runtime.start(containerConfig(unit, { image: 'fleetts/no-such-image:latest' }));
  const o = await observed(runtime, unit);
  t.like(o, {
    load: 'loaded',
    active: 'failed',
    sub: 'failed',
    reason: missingImageReason('fleetts/no-such-image:latest'),
  });
  t.is(
    o?.reason,
    'image fleetts/no-such-image:latest is not present on this host; build it with scripts/build-images.sh (there is no registry to pull from)',
  );
  t.is(o?.containerId, undefined);
});

const badStarts: { title: string; over: Partial<ContainerUnitConfig>; reason: RegExp }[] = [
  {
    title: 'Pull=always',
    over: { pull: 'always' },
    reason: /^Pull=always cannot work: fleetts hosts have no registry to pull fleetts-test-image:latest from/,
  },
  {
    title: 'a command not in the image',
    over: { cmd: ['/nope'] },
    reason: /^cannot start container .*: .*\/nope.*no such file or directory/i,
  },
];

for (const c of badStarts) {
  test(`a bad container (${c.title}) fails with a reason and does not disturb a running one`, async (t) => {
    const { runtime } = newRuntime('bad');
    const good = containerUnit('good');
    const bad = containerUnit('bad');
    await runtime.start(containerConfig(good));
    const goodBefore = await observed(runtime, good);
    const goodStarted = await startedAt(goodBefore?.containerId ?? '');
    await runtime.start(containerConfig(bad, c.over));
    const o = await observed(runtime, bad);
    t.like(o, { active: 'failed', sub: 'failed' });
    t.regex(o?.reason ?? '', c.reason);
    const goodAfter = await observed(runtime, good);
    t.like(goodAfter, { active: 'active', sub: 'running', containerId: goodBefore?.containerId });
    t.is(await startedAt(goodBefore?.containerId ?? ''), goodStarted);
  });
}

test('Restart=on-failure restarts a failing container after RestartSec, then the start limit fails it', async (t) => {
  const { runtime } = newRuntime('restart');
  const unit = containerUnit('restart');
  const subs: string[] = [];
  runtime.onChange((o) => o.unit === unit && subs.push(o.sub));
  await runtime.start(
    containerConfig(unit, {
      cmd: ['/bin/sh', '-c', 'echo run; sleep 0.2; exit 3'],
      restart: 'on-failure',
      restartSecMs: 100,
      startLimitBurst: 3,
      // Wide enough that four container starts fit in it on a loaded machine (each is a Docker
      // create and start: seconds under a CPU hog); with 30 s they could spread past it and never
      // hit the limit.
      startLimitIntervalMs: 300_000,
    }),
  );
  const failed = await waitState(runtime, unit, (o) => o.active === 'failed', 'failed', 90_000);
  t.is(
    failed.reason,
    'start-limit-hit: restarted 3 times within 300s (StartLimitBurst=, StartLimitIntervalSec=); the last exit: the container exited with status 3',
  );
  t.like(failed.lastExit, { code: 3 });
  t.true(subs.includes('auto-restart'), `went through auto-restart: ${subs.join(' ')}`);
  t.is(
    (await journal(runtime, unit)).filter((l) => l.endsWith(': run')).length,
    4,
    'the first start and 3 restarts',
  );
  // A clean exit is not restarted by on-failure.
  const clean = containerUnit('clean');
  await runtime.start(
    containerConfig(clean, { cmd: ['/bin/true'], restart: 'on-failure', restartSecMs: 50 }),
  );
  const done = await waitState(runtime, clean, (o) => o.active === 'inactive', 'inactive');
  t.like(done, { sub: 'dead', lastExit: { code: 0 } });
});

test('journal returns the container output, follows new lines, and names the unit and container', async (t) => {
  const { runtime } = newRuntime('journal');
  const unit = containerUnit('journal');
  await runtime.start(
    containerConfig(unit, {
      cmd: [
        '/bin/sh',
        '-c',
        "for i in 1 2 3; do echo out $i; done; echo err 1 >&2; trap 'exit 0' TERM; i=0; while :; do sleep 0.2; i=$((i+1)); echo tick $i; done",
      ],
    }),
  );
  const id = (await observed(runtime, unit))?.containerId ?? '';
  // stdout and stderr are copied by separate pipes: their relative order is not kept.
  const text = (l: string): string => l.slice(l.indexOf(']: ') + 3);
  const lines = await waitFor('the first lines', async () => {
    const l = await journal(runtime, unit);
    if (l.filter((x) => !/ tick \d+$/.test(x)).length >= 4) return l;
    // Thrown, so that a timeout names what the journal did give.
    throw new Error(`the journal has ${l.length} lines: ${l.slice(0, 8).join(' | ')}`);
  });
  const outLine = lines.find((l) => l.endsWith(': out 1')) ?? '';
  t.regex(
    outLine,
    new RegExp(
      `^\\d{4}-\\d\\d-\\d\\dT[0-9:.]+Z ${unit.replace(/[.]/g, '\\.')}\\[${id.slice(0, 12)}\\]: out 1$`,
    ),
  );
  t.deepEqual(
    lines
      .map(text)
      .filter((x) => !x.startsWith('tick '))
      .sort(),
    ['err 1', 'out 1', 'out 2', 'out 3'],
  );
  t.deepEqual(
    lines.map(text).filter((x) => x.startsWith('out ')),
    ['out 1', 'out 2', 'out 3'],
    'one stream keeps its order',
  );
  t.deepEqual(await journal(runtime, unit, 0), []);

  const ac = new AbortController();
  const followed: string[] = [];
  // Lines that arrived in the same chunk may still be yielded after the abort: stop reading at 2.
  for await (const l of runtime.journal(unit, { lines: 0, follow: true, signal: ac.signal })) {
    followed.push(l);
    if (followed.length === 2) {
      ac.abort();
      break;
    }
  }
  t.is(followed.length, 2);
  t.true(
    followed.every((l) => / tick \d+$/.test(l)),
    followed.join('\n'),
  );
  t.throws(() => runtime.journal('nope.unit' as UnitName), {
    message: "unit nope.unit is not known to this host's Docker runtime",
  });
});

test('start() is followed by a running change, start after start (remove forgets each)', async (t) => {
  // How long that takes: `npm run bench -- runtime`, not asserted here.
  const { runtime } = newRuntime('repeat');
  for (let i = 0; i < 3; i++) {
    const unit = containerUnit('repeat');
    const seen: string[] = [];
    const running = new Promise<void>((resolve) => {
      const off = runtime.onChange((o) => {
        if (o.unit !== unit) return;
        seen.push(`${o.active}/${o.sub}`);
        if (o.sub === 'running') {
          off();
          resolve();
        }
      });
    });
    await runtime.start(containerConfig(unit));
    await running;
    t.is(seen.at(-1), 'active/running', `start ${i + 1}: ${seen.join(' → ')}`);
    t.like(await observed(runtime, unit), { active: 'active', sub: 'running' });
    await runtime.remove(unit);
    t.is(await observed(runtime, unit), undefined, `start ${i + 1}: removed`);
  }
});
