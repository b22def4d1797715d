// `fleetts announce` as a real process against real etcd and a real Apache: the key exists exactly
// while the check passes, is removed at once on SIGTERM and dies with its lease on SIGKILL.
import { createServer, type Server } from 'node:http';
import test from 'ava';
import { createEtcdRegistry, type EtcdRegistry } from '../../src/registry/etcd-registry.js';
import type { ServiceInstance } from '../../src/registry/registry.js';
import { randomPrefix, useEtcd } from '../helpers/etcd.js';
import { freePort, startApache, waitFor, type RunningApache } from '../helpers/web.js';
import { type CliProcess, median, spawnCli } from './cli-process.js';

const etcd = useEtcd(test);
const cleanups: (() => Promise<unknown>)[] = [];
test.after.always(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
});

function setup(): { prefix: string; registry: EtcdRegistry } {
  const prefix = randomPrefix();
  const registry = createEtcdRegistry({ endpoints: [etcd().endpoint], prefix });
  cleanups.push(() => registry.close());
  return { prefix, registry };
}

function announce(args: readonly string[], env: NodeJS.ProcessEnv = {}): CliProcess {
  const p = spawnCli(['announce', ...args], env);
  cleanups.push(() => p.stop('SIGKILL'));
  return p;
}

async function apache(page: string): Promise<RunningApache> {
  const a = await startApache({ page });
  cleanups.push(() => a.cleanup());
  return a;
}

const instances = (registry: EtcdRegistry, service = 'web'): Promise<readonly ServiceInstance[]> =>
  registry.listServiceInstances(service).then((s) => s.items);
const present = (registry: EtcdRegistry) => async () =>
  (await instances(registry)).length > 0 ? true : undefined;
const absent = (registry: EtcdRegistry) => async () =>
  (await instances(registry)).length === 0 ? true : undefined;

test.serial('the key exists only while the check passes; SIGTERM removes it at once', async (t) => {
  const { prefix, registry } = setup();
  const web = await apache('<h1>apache one</h1>\n');
  // --fall 2: one check lost to a loaded CI machine must not flap the key this test inspects.
  const p = announce(
    ['--service', 'web', '--addr', web.address, '--check', web.url, '--interval', '300ms', '--fall', '2'],
    {
      FLEETTS_ETCD_ENDPOINTS: etcd().endpoint,
      FLEETTS_ETCD_KEY_PREFIX: prefix,
      FLEETTS_MACHINE_ID: 'm1',
      FLEETTS_UNIT: 'web@1.unit',
    },
  );
  await waitFor('the key to appear', present(registry));
  const [item] = await instances(registry);
  t.like(item, {
    service: 'web',
    instance: 'web@1.unit',
    address: web.address,
    machine: 'm1',
    unit: 'web@1.unit',
  });

  let stoppedAt = Date.now();
  await web.stopServer();
  await waitFor('the key to go after Apache stopped', absent(registry), { timeoutMs: 3000 });
  const goneMs = Date.now() - stoppedAt;
  t.true(goneMs < 1500, `withdrawn ${goneMs} ms after Apache stopped (interval 300 ms)`);
  t.true(p.running(), 'a failing check does not end the announcer');
  // The announcer logs after etcd confirmed the delete: its line may arrive after we saw the key go.
  const withdrawn = await waitFor('the withdrawn event', () => p.events('announce.withdrawn')[0], {
    timeoutMs: 3000,
  });
  t.like(withdrawn, { service: 'web', instance: 'web@1.unit' });
  // Refused once Apache is gone; reset or hung up when the check met it shutting down.
  t.regex(
    String(p.events('announce.check_failed')[0]?.['reason']),
    /^(ECONNREFUSED|ECONNRESET|socket hang up)$/,
  );

  await web.start();
  const startedAt = Date.now();
  await waitFor('the key to come back', present(registry), { timeoutMs: 3000 });
  t.log(`Apache stopped → key gone: ${goneMs} ms; Apache up → key back: ${Date.now() - startedAt} ms`);

  stoppedAt = Date.now();
  const code = await p.stop('SIGTERM');
  t.is(code, 0);
  t.deepEqual(await instances(registry), [], 'gone by the time the process has exited');
  t.log(`SIGTERM → key gone and process exited: ${Date.now() - stoppedAt} ms`);
  t.truthy(p.events('announce.stopped')[0]);
});

test.serial('the key dies with its lease when the announcer is SIGKILLed (within the TTL)', async (t) => {
  const { prefix, registry } = setup();
  const web = await apache('<h1>apache two</h1>\n');
  const p = announce([
    '--service',
    'web',
    '--addr',
    web.address,
    '--check',
    `tcp://${web.address}`,
    '--ttl',
    '2s',
    '--instance',
    'w2',
    '--etcd-endpoints',
    etcd().endpoint,
    '--etcd-key-prefix',
    prefix,
  ]);
  await waitFor('the key to appear', present(registry));
  t.like((await instances(registry))[0], { instance: 'w2', address: web.address });
  const killedAt = Date.now();
  t.is(await p.stop('SIGKILL'), 'SIGKILL');
  t.truthy((await instances(registry))[0], 'the key outlives the process until its lease expires');
  await waitFor('the lease to expire', absent(registry), { timeoutMs: 5000 });
  const ms = Date.now() - killedAt;
  t.log(`SIGKILL → key gone: ${ms} ms (TTL 2 s)`);
  t.true(ms <= 3500, `gone ${ms} ms after SIGKILL, TTL 2 s`);
});

test.serial('timing: backend up → key written, backend down → key removed (20 cycles)', async (t) => {
  const { prefix, registry } = setup();
  const port = await freePort();
  const p = announce([
    '--service',
    'timing',
    '--addr',
    `127.0.0.1:${port}`,
    '--check',
    `http://127.0.0.1:${port}/health`,
    '--interval',
    '200ms',
    '--etcd-endpoints',
    etcd().endpoint,
    '--etcd-key-prefix',
    prefix,
  ]);
  await p.waitForEvent('announce.started');
  let count = 0;
  const sub = await registry.watchServiceInstances('timing', (set) => (count = set.items.length));
  cleanups.push(() => Promise.resolve(sub.close()));
  const up: number[] = [];
  const down: number[] = [];
  // Random pauses so that backends change at random points of the announcer's check cycle.
  const pause = (): Promise<void> => new Promise((r) => setTimeout(r, Math.random() * 300));
  for (let i = 0; i < 20; i++) {
    await pause();
    const server: Server = createServer((_req, res) => res.end('ok\n'));
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
    let t0 = performance.now();
    await waitFor('the key', () => (count === 1 ? true : undefined), { timeoutMs: 3000, intervalMs: 1 });
    up.push(performance.now() - t0);
    await pause();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
    t0 = performance.now();
    await waitFor('no key', () => (count === 0 ? true : undefined), { timeoutMs: 3000, intervalMs: 1 });
    down.push(performance.now() - t0);
  }
  const fmt = (v: number[]): string =>
    `median ${median(v).toFixed(0)} ms, max ${Math.max(...v).toFixed(0)} ms`;
  t.log(`backend up → key written (down-interval 250 ms): ${fmt(up)}`);
  t.log(`backend down → key removed (interval 200 ms): ${fmt(down)}`);
  t.true(median(up) < 400, `up → key median ${median(up)} ms`);
  t.true(median(down) < 500, `down → no key median ${median(down)} ms`);
});
