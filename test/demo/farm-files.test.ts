// The demo's pure pieces (shared files, upstream parsing, counts, percentiles, the timeline's
// wording), and the generated Apache and nginx configurations checked by the real apache2 -t and
// nginx -t (Debian's packages, installed if missing).
import { execFile } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { describeEvent, formatTimeline, percentiles } from '../../src/demo/demo-report.js';
import {
  FailoverTimeline,
  type FailoverTimelineDeps,
  nginxLoads,
  parseUpstreamServers,
} from '../../src/demo/failover-timeline.js';
import { farmSharedFiles, LB_FALLBACK_LISTEN, unitTextFor } from '../../src/demo/farm-files.js';
import { countRecords, type RequestRecord, SteadyClient } from '../../src/demo/steady-client.js';
import { FakeClock, systemClock } from '../../src/lib/clock.js';
import type { ServiceReader } from '../../src/registry/registry.js';
import { renderUpstream } from '../../src/discovery/render-upstream.js';
import { waitFor } from '../helpers/wait.js';
import { ensureWebPackages } from '../helpers/web.js';

const execFileP = promisify(execFile);
let dir = '';

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleetts-farm-files-'));
  await chmod(dir, 0o755);
});
test.after.always(async () => {
  if (dir !== '') await rm(dir, { recursive: true, force: true });
});

const instance = (name: string, address: string) => ({ service: 'web', instance: name, address, since: '' });

for (const [title, instances, expected] of [
  ['no backend: only the 503 fallback, which is not a backend', [], []],
  [
    'two backends; the backup fallback is left out',
    [instance('web@1.unit', '10.0.0.1:8081'), instance('web@2.unit', '10.0.0.2:8082')],
    ['10.0.0.1:8081', '10.0.0.2:8082'],
  ],
] as const) {
  test(`parseUpstreamServers: ${title}`, (t) => {
    const text = renderUpstream(instances, {
      name: 'web',
      service: 'web',
      fallbackListen: LB_FALLBACK_LISTEN,
    });
    t.deepEqual(parseUpstreamServers(text), [...expected]);
  });
}

test('unitTextFor moves the shared path only when it differs from the default', (t) => {
  const text = 'ExecStart=/usr/sbin/apache2 -f /srv/fleetts/shared/web/apache.conf\n';
  t.is(unitTextFor(text, '/srv/fleetts/shared'), text);
  t.is(unitTextFor(text, '/tmp/x/shared'), 'ExecStart=/usr/sbin/apache2 -f /tmp/x/shared/web/apache.conf\n');
});

test('countRecords separates answers, failures and requests that had no balancer to go to', (t) => {
  const records: RequestRecord[] = [
    { at: 1, ms: 2, outcome: { kind: 'answered', backend: 'web@1.unit a', lb: 'x' } },
    { at: 2, ms: 2, outcome: { kind: 'answered', backend: 'web@1.unit a', lb: 'x' } },
    { at: 3, ms: 1, outcome: { kind: 'failed', reason: 'connection refused', lb: 'x' } },
    { at: 4, ms: 0, outcome: { kind: 'no-lb' } },
  ];
  const c = countRecords(records);
  t.like(c, { sent: 3, answered: 2, failed: 1, noLb: 1 });
  t.deepEqual([...c.backends], [['web@1.unit a', 2]]);
  t.deepEqual([...c.reasons], [['connection refused', 1]]);
});

test('percentiles: nearest rank, non-finite values ignored', (t) => {
  t.deepEqual(percentiles([5, 1, 4, 2, 3, NaN]), { median: 3, p95: 5, n: 5 });
  t.deepEqual(percentiles([]), { median: NaN, p95: NaN, n: 0 });
});

test('the timeline reads in seconds after the power-off, one event per line', (t) => {
  const text = formatTimeline(
    [
      { at: 1000, event: { kind: 'power-off', host: 'host3', units: ['web@3.unit'] } },
      { at: 6110, event: { kind: 'machine-dead', host: 'host3' } },
      {
        at: 6710,
        event: { kind: 'announced', service: 'web', instance: 'web@3.unit', address: '10.0.0.12:8083' },
      },
    ],
    1000,
    () => 'host2',
  );
  t.is(
    text,
    [
      '    +0.00 s  host3 powered off (plug pulled: web@3.unit)',
      '    +5.11 s  host3 declared dead: its lease expired in etcd',
      '    +5.71 s  backend web@3.unit announced at 10.0.0.12:8083 (host2)',
    ].join('\n'),
  );
  t.is(
    describeEvent({ kind: 'placed', unit: 'lb.unit', host: 'host3', from: 'host1' }, String),
    'lb.unit placed on host3 (was on host1)',
  );
  t.is(
    describeEvent({ kind: 'address-up', host: 'host2', address: '10.213.7.250' }, String),
    'floating address 10.213.7.250 up on host2 (ip addr add, gratuitous ARP)',
  );
});

test('the steady client with a fixed (floating) address sends there and never reads services/lb', async (t) => {
  const server = createServer((_req, res) => {
    res.setHeader('X-Backend', 'web@1.unit 10.0.0.1:8081');
    res.end('ok');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const registry = {
    watchServiceInstances: () => Promise.reject(new Error('the client must not watch services/lb')),
  } as unknown as ServiceReader;
  const client = new SteadyClient({ registry, clock: systemClock, rate: 50, address: `127.0.0.1:${port}` });
  try {
    await client.start();
    t.is(client.lb, `127.0.0.1:${port}`);
    await waitFor('three answers', () => client.counts().answered >= 3);
  } finally {
    await client.stop();
    server.close();
  }
  const counts = client.counts();
  t.is(counts.failed, 0);
  t.is(counts.noLb, 0);
  t.deepEqual([...counts.backends.keys()], ['web@1.unit 10.0.0.1:8081']);
});

test('the generated Apache and nginx configurations pass apache2 -t and nginx -t', async (t) => {
  await ensureWebPackages();
  const shared = join(dir, 'shared');
  for (const [rel, text] of Object.entries(farmSharedFiles(shared))) {
    await mkdir(dirname(join(shared, rel)), { recursive: true });
    await writeFile(join(shared, rel), text);
  }
  const run = join(dir, 'run');
  await mkdir(run);
  const apache = await execFileP('apache2', ['-t', '-f', join(shared, 'web/apache.conf')], {
    env: {
      ...process.env,
      FLEETTS_MACHINE_IP: '127.0.0.1',
      FLEETTS_UNIT: 'web@1.unit',
      FLEETTS_MACHINE_ID: 'm1',
      WEB_PORT: '8081',
      WEB_RUN_DIR: run,
    },
  });
  t.regex(apache.stderr, /Syntax OK/);
  const nginx = await execFileP('nginx', [
    '-t',
    '-e',
    'stderr',
    '-p',
    `${run}/`,
    '-c',
    join(shared, 'lb/nginx.conf'),
  ]);
  t.regex(nginx.stderr, /test is successful/);
});

// `until` re-runs its check between events: a failover's last condition (the client's first answer
// at the balancer's new address) is not an event of the timeline, and waiting for one that never
// came timed out the CI run of stop 19 with the farm whole.
function bareTimeline(clock: FakeClock): FailoverTimeline {
  const registry = {} as FailoverTimelineDeps['registry'];
  return new FailoverTimeline({
    registry,
    clock,
    hosts: [],
    upstreamFile: () => '/nonexistent',
    nginxErrorLog: () => '',
  });
}

test('timeline until: a check that depends on something outside the timeline is re-run', async (t) => {
  const clock = new FakeClock();
  const timeline = bareTimeline(clock);
  let answered = false;
  let resolved: string | undefined;
  void timeline
    .until('an answer', () => (answered ? 'yes' : undefined), 10_000)
    .then((v) => {
      resolved = v;
    });
  await clock.advance(1_000);
  t.is(resolved, undefined);
  answered = true;
  await clock.advance(1_000);
  t.is(resolved, 'yes');
  t.is(clock.pending, 0, 'no timer is left behind once it resolved');
});

test('timeline until: a timeout names what it still waited for', async (t) => {
  const clock = new FakeClock();
  const timeline = bareTimeline(clock);
  let step = 'the first thing';
  const p = timeline.until('the farm', (pending) => pending(`still ${step}`), 5_000);
  const failed = t.throwsAsync(p);
  await clock.advance(2_000);
  step = 'the second thing';
  await clock.advance(4_000);
  const err = await failed;
  t.is(err?.message, 'timed out after 5000 ms waiting for the farm (still waiting: still the second thing)');
  t.is(clock.pending, 0);
});

// A balancer that moved starts nginx with the upstream already written: that start is a load of the
// upstream as much as a reload is (the CI run of stop 19 waited for a reload that never came).
test("nginxLoads reads a real nginx's starts and reloads from its error log", async (t) => {
  await ensureWebPackages();
  const prefix = join(dir, 'nginx-loads');
  await mkdir(join(prefix, 'logs'), { recursive: true });
  const conf = join(prefix, 'nginx.conf');
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  await writeFile(
    conf,
    `pid ${prefix}/nginx.pid;\nerror_log ${prefix}/error.log notice;\nevents {}\n` +
      `http { access_log off; server { listen 127.0.0.1:${port}; } }\n`,
  );
  const nginx = (...args: string[]) => execFileP('nginx', ['-p', `${prefix}/`, '-c', conf, ...args]);
  const log = () => readFile(join(prefix, 'error.log'), 'utf8').catch(() => '');
  await nginx();
  try {
    await waitFor('nginx started', async () => (nginxLoads(await log()).length === 1 ? true : undefined));
    await nginx('-s', 'reload');
    await waitFor('nginx reloaded', async () => (nginxLoads(await log()).length === 2 ? true : undefined));
    await nginx('-s', 'reload');
    const loads = await waitFor('nginx reloaded again', async () => {
      const l = nginxLoads(await log());
      return l.length === 3 ? l : undefined;
    });
    t.deepEqual(loads, ['started', 'reloaded', 'reloaded']);
  } finally {
    await nginx('-s', 'quit').catch(() => undefined);
  }
});
