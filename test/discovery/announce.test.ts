// `fleetts announce` as a real process against real etcd and a real Apache: the key exists exactly
// while the check passes, is removed at once on SIGTERM and dies with its lease on SIGKILL.
import { createServer, type Server } from 'node:http';
import test from 'ava';
import { createEtcdRegistry, type EtcdRegistry } from '../../src/registry/etcd-registry.js';
import type { ServiceInstance } from '../../src/registry/registry.js';
import { leaseTimeToLive, randomPrefix, useEtcd } from '../helpers/etcd.js';
import { freePort, startApache, waitFor, type RunningApache } from '../helpers/web.js';
import { type CliProcess, spawnCli } from './cli-process.js';

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

  const fromStop = p.logs.length;
  await web.stopServer();
  await waitFor('the key to go after Apache stopped', absent(registry));
  t.true(p.running(), 'a failing check does not end the announcer');
  // The announcer logs after etcd confirmed the delete: its line may arrive after we saw the key go.
  const withdrawn = await p.waitForEvent('announce.withdrawn');
  t.like(withdrawn, { service: 'web', instance: 'web@1.unit' });
  // Withdrawn at the check that made it down (the second failure in a row: --fall 2), not later;
  // the checks' pace (--interval) is the fake-clock tests' business (announcer.test.ts), not a
  // stopwatch's. (One failure may precede the stop on a loaded machine: then one after it is down.)
  const afterStop = p.logs
    .slice(fromStop)
    .filter((l) => l.event?.startsWith('announce.check_') === true || l.event === 'announce.withdrawn')
    .map((l) => `${l.event ?? ''} ${(l['state'] as { kind?: string } | undefined)?.kind ?? ''}`.trim());
  t.deepEqual(
    afterStop.slice(-2),
    ['announce.check_failed down', 'announce.withdrawn'],
    afterStop.join(', '),
  );
  t.true(
    afterStop.length <= 3 && afterStop.slice(0, -2).every((e) => e === 'announce.check_failed up'),
    afterStop.join(', '),
  );
  // Refused once Apache is gone; reset or hung up when the check met it shutting down.
  t.regex(
    String(p.events('announce.check_failed')[0]?.['reason']),
    /^(ECONNREFUSED|ECONNRESET|socket hang up)$/,
  );

  await web.start();
  await waitFor('the key to come back', present(registry));

  const code = await p.stop('SIGTERM');
  t.is(code, 0);
  t.deepEqual(await instances(registry), [], 'gone by the time the process has exited');
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
  const lease = String((await p.waitForEvent('announce.announced'))['lease']);
  // --ttl reached etcd: the key's lease expires 2 s after its last keepalive, not the default 10 s.
  t.is((await leaseTimeToLive(etcd().endpoint, lease)).grantedTtl, 2, `lease ${lease}`);
  const killedAt = Date.now();
  t.is(await p.stop('SIGKILL'), 'SIGKILL');
  t.truthy((await instances(registry))[0], 'the key outlives the process until its lease expires');
  await waitFor('the lease to expire', absent(registry));
  t.log(`SIGKILL → key gone: ${Date.now() - killedAt} ms (TTL 2 s)`);
  // Nothing deleted it: its lease expired (a revoked or expired lease reads as TTL -1).
  t.is((await leaseTimeToLive(etcd().endpoint, lease)).ttl, -1, 'the key went with its lease');
});

test.serial(
  'the key follows a backend that comes and goes at random points of the check cycle',
  async (t) => {
    // The latency of each change is measured by `npm run bench -- discovery`, not asserted here.
    const { prefix, registry } = setup();
    const port = await freePort();
    const p = announce([
      '--service',
      'cycles',
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
    const sub = await registry.watchServiceInstances('cycles', (set) => (count = set.items.length));
    cleanups.push(() => Promise.resolve(sub.close()));
    // Random pauses so that backends change at random points of the announcer's check cycle.
    const pause = (): Promise<void> => new Promise((r) => setTimeout(r, Math.random() * 300));
    for (let i = 0; i < 5; i++) {
      await pause();
      const server: Server = createServer((_req, res) => res.end('ok\n'));
      await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
      await waitFor(`the key (cycle ${i + 1})`, () => count === 1);
      await pause();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await waitFor(`no key (cycle ${i + 1})`, () => count === 0);
    }
    await p.waitForEvent('announce.withdrawn', { n: 5 });
    t.true(p.running(), 'coming and going backends do not end the announcer');
  },
);
