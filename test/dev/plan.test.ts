// Pure parts of `fleetts dev`: the plan, fleetd's command line, host matching, subnet choice, the
// CLI context file, and the root check (which fails before any effect).
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { systemClock } from '../../src/lib/clock.js';
import { clearDevContext, readDevContext, writeDevContext } from '../../src/dev/context.js';
import { defaultEtcdTopology, DevCluster } from '../../src/dev/dev-cluster.js';
import { DevError, type DevErrorCode } from '../../src/dev/dev-error.js';
import { FLEETD_FLAGS, fleetdArgs, fleetdEnv, parseHelpFlags } from '../../src/dev/fleetd-argv.js';
import { matchHost } from '../../src/dev/host-match.js';
import { chooseSubnetIndex, routedNetworks } from '../../src/dev/network.js';
import {
  DEV_ETCD_TIMING,
  dockerdArgv,
  etcdArgv,
  longSocketPaths,
  planCluster,
  type PlanInput,
} from '../../src/dev/plan.js';

const input: PlanInput = {
  stateDir: '/var/lib/fleetts-dev',
  tag: 'abc123',
  subnetIndex: 7,
  machineIds: ['aaaa1111', 'aaaa2222', 'bbbb3333'],
  runtime: 'process',
  leaseTtlMs: 2000,
  sharedPath: '/srv/fleetts/shared',
  etcdLoopbackPort: 23790,
};

test('the plan names every host, address and path from the inputs', (t) => {
  const plan = planCluster(input);
  t.is(plan.subnet, '10.213.7.0/24');
  t.deepEqual(plan.bridge, { name: 'ftabc123br', ip: '10.213.7.1' });
  t.is(plan.etcd.topology, 'external', 'a state file without the choice ran the external etcd');
  t.deepEqual(plan.etcd.clientUrls, ['http://10.213.7.1:2379']);
  t.deepEqual(plan.etcd.endpoints, ['http://127.0.0.1:23790']);
  t.is(plan.endpoint, 'unix:///var/lib/fleetts-dev/hosts/host1/fleetd.sock');
  t.deepEqual(plan.endpoints, [
    'unix:///var/lib/fleetts-dev/hosts/host1/fleetd.sock',
    'unix:///var/lib/fleetts-dev/hosts/host2/fleetd.sock',
    'unix:///var/lib/fleetts-dev/hosts/host3/fleetd.sock',
  ]);
  t.deepEqual(plan.shared, { source: '/var/lib/fleetts-dev/shared', target: '/srv/fleetts/shared' });
  t.deepEqual(
    plan.hosts.map((h) => [h.name, h.ip, h.machineId, h.netns, h.veth, h.metadata['hostname']]),
    [
      ['host1', '10.213.7.11', 'aaaa1111', 'fleetts-abc123-host1', 'ftabc123h1', 'host1'],
      ['host2', '10.213.7.12', 'aaaa2222', 'fleetts-abc123-host2', 'ftabc123h2', 'host2'],
      ['host3', '10.213.7.13', 'bbbb3333', 'fleetts-abc123-host3', 'ftabc123h3', 'host3'],
    ],
  );
  for (const h of plan.hosts) t.true(h.veth.length <= 15, `${h.veth} fits IFNAMSIZ`);
  t.is(plan.hosts[0]?.docker, undefined, 'no dockerd for the process runtime');
  t.is(planCluster(input).hosts[1]?.ip, plan.hosts[1]?.ip, 'the same inputs give the same plan');
});

test('the Docker runtime plans one dockerd per host with its own roots and no bridge or iptables', (t) => {
  const host = planCluster({ ...input, runtime: 'docker' }).hosts[1];
  const docker = host?.docker;
  if (docker === undefined) return t.fail('no dockerd planned');
  t.is(docker.socket, '/var/lib/fleetts-dev/hosts/host2/docker.sock');
  const argv = dockerdArgv(docker);
  for (const flag of ['--bridge=none', '--iptables=false', '--ip-masq=false'])
    t.true(argv.includes(flag), flag);
  t.deepEqual(argv.slice(0, 6), [
    '--data-root',
    '/var/lib/fleetts-dev/hosts/host2/docker/data',
    '--exec-root',
    '/var/lib/fleetts-dev/hosts/host2/docker/exec',
    '-H',
    'unix:///var/lib/fleetts-dev/hosts/host2/docker.sock',
  ]);
  t.deepEqual(host === undefined ? {} : fleetdEnv(host), {
    DOCKER_HOST: 'unix:///var/lib/fleetts-dev/hosts/host2/docker.sock',
  });
});

test('external etcd listens on the bridge and on loopback and advertises the bridge address', (t) => {
  const plan = planCluster({ ...input, etcdTopology: 'external' });
  t.is(plan.etcd.members.length, 1);
  const [member] = plan.etcd.members;
  if (member === undefined) return t.fail();
  t.like(member, { host: undefined, processId: 'etcd' });
  const argv = etcdArgv(plan, member);
  const at = (flag: string): string | undefined => argv[argv.indexOf(flag) + 1];
  t.is(at('--listen-client-urls'), 'http://10.213.7.1:2379,http://127.0.0.1:23790');
  t.is(at('--advertise-client-urls'), 'http://10.213.7.1:2379');
  t.is(at('--data-dir'), '/var/lib/fleetts-dev/etcd');
  t.is(at('--initial-cluster'), 'fleetts-dev=http://10.213.7.1:2380');
  t.false(argv.includes('--election-timeout'), "today's external etcd keeps etcd's defaults");
  t.is(at('--auto-compaction-mode'), 'periodic', 'history is compacted: statuses and leases write often');
  t.is(at('--auto-compaction-retention'), '1h');
});

test('hosts topology: a member in each of the first three hosts, on its address, static bootstrap', (t) => {
  const plan = planCluster({
    ...input,
    machineIds: [...input.machineIds, 'cccc4444'],
    etcdTopology: 'hosts',
  });
  t.deepEqual(
    plan.etcd.members.map((m) => [m.name, m.host, m.processId, m.clientUrl, m.peerUrl, m.dataDir]),
    [1, 2, 3].map((n) => [
      `host${n}`,
      `host${n}`,
      `host${n}/etcd`,
      `http://10.213.7.${10 + n}:2379`,
      `http://10.213.7.${10 + n}:2380`,
      `/var/lib/fleetts-dev/hosts/host${n}/etcd`,
    ]),
    'host4 runs no member',
  );
  t.deepEqual(plan.etcd.endpoints, plan.etcd.clientUrls, 'this machine reaches the members on the bridge');
  const host4 = plan.hosts[3];
  if (host4 === undefined) return t.fail();
  const fleetd = fleetdArgs(plan, host4, new Set());
  t.is(
    fleetd[fleetd.indexOf('--etcd-endpoints') + 1],
    'http://10.213.7.11:2379,http://10.213.7.12:2379,http://10.213.7.13:2379',
    'every fleetd gets all three members',
  );
  const member = plan.etcd.members[1];
  if (member === undefined) return t.fail();
  const argv = etcdArgv(plan, member);
  const at = (flag: string): string | undefined => argv[argv.indexOf(flag) + 1];
  t.is(at('--name'), 'host2');
  t.is(at('--listen-client-urls'), 'http://10.213.7.12:2379,http://127.0.0.1:2379');
  t.is(at('--listen-peer-urls'), 'http://10.213.7.12:2380');
  t.is(
    at('--initial-cluster'),
    'host1=http://10.213.7.11:2380,host2=http://10.213.7.12:2380,host3=http://10.213.7.13:2380',
  );
  t.is(at('--initial-cluster-token'), 'fleetts-dev-abc123');
  t.is(at('--election-timeout'), String(DEV_ETCD_TIMING.electionMs));
  t.is(at('--heartbeat-interval'), String(DEV_ETCD_TIMING.heartbeatMs));
  t.true(argv.includes('--pre-vote=true'));
});

test('the default topology: etcd on the hosts from three hosts up, outside them below', (t) => {
  t.deepEqual([1, 2, 3, 5].map(defaultEtcdTopology), ['external', 'external', 'hosts', 'hosts']);
});

test('30 hosts (`dev up --nodes 30`): three etcd members, the rest clients; one address, namespace and link name each', (t) => {
  const machineIds = Array.from({ length: 30 }, (_, i) => `m${String(i + 1).padStart(2, '0')}`);
  const plan = planCluster({
    ...input,
    stateDir: '/tmp/dev30',
    machineIds,
    etcdTopology: defaultEtcdTopology(machineIds.length),
  });
  t.is(plan.hosts.length, 30);
  t.deepEqual(
    plan.etcd.members.map((m) => m.host),
    ['host1', 'host2', 'host3'],
  );
  t.deepEqual(
    plan.etcd.clientUrls,
    ['11', '12', '13'].map((o) => `http://10.213.7.${o}:2379`),
  );
  t.deepEqual([plan.hosts[0]?.ip, plan.hosts[29]?.ip], ['10.213.7.11', '10.213.7.40']);
  for (const key of ['ip', 'netns', 'veth', 'apiSocket', 'machineId'] as const)
    t.is(new Set(plan.hosts.map((h) => h[key])).size, 30, `${key} unique`);
  // IFNAMSIZ: a link name has at most 15 characters.
  t.true(
    plan.hosts.every((h) => h.veth.length <= 15),
    plan.hosts.at(-1)?.veth,
  );
  t.deepEqual(longSocketPaths(plan), []);
  // Every host, client or member, is given the three members.
  const host30 = plan.hosts[29];
  if (host30 === undefined) return t.fail();
  const args = fleetdArgs(plan, host30, parseHelpFlags('--api-socket --runtime'));
  t.is(args[args.indexOf('--etcd-endpoints') + 1], plan.etcd.clientUrls.join(','));
});

const fleetdCases: { name: string; help: string; has: string[]; lacks: string[] }[] = [
  {
    name: 'a fleetd without an API flag gets only the flags it knows',
    help: '  --etcd-endpoints <value>\n  --machine-id <value>\n',
    has: ['--etcd-endpoints', '--machine-id', '--public-ip', '--metadata', '--state-dir', '--lease-ttl-ms'],
    lacks: ['--api-socket', '--runtime'],
  },
  {
    name: 'a fleetd that lists --api-socket and --runtime gets them',
    help: '  --api-socket <path>  the API socket\n  --runtime <kind>\n',
    has: ['--api-socket', '--runtime'],
    lacks: ['--docker-host'],
  },
];
for (const c of fleetdCases) {
  test(`fleetd argv: ${c.name}`, (t) => {
    const plan = planCluster(input);
    const host = plan.hosts[1];
    if (host === undefined) return t.fail();
    const args = fleetdArgs(plan, host, parseHelpFlags(c.help));
    for (const f of c.has) t.true(args.includes(f), f);
    for (const f of c.lacks) t.false(args.includes(f), f);
    const at = (flag: string): string | undefined =>
      args.includes(flag) ? args[args.indexOf(flag) + 1] : undefined;
    t.is(at('--machine-id'), 'aaaa2222');
    t.is(at('--public-ip'), '10.213.7.12');
    t.is(at('--metadata'), 'hostname=host2');
    t.is(at('--etcd-endpoints'), 'http://10.213.7.1:2379');
    if (args.includes('--api-socket'))
      t.is(at('--api-socket'), '/var/lib/fleetts-dev/hosts/host2/fleetd.sock');
  });
}

test('the fleetd flag table is data: a lead can add a flag without touching the code', (t) => {
  const plan = planCluster(input);
  const host = plan.hosts[0];
  if (host === undefined) return t.fail();
  const extra = [...FLEETD_FLAGS, { flag: '--log-level', value: () => 'debug' }];
  t.deepEqual(fleetdArgs(plan, host, new Set(), extra).slice(-2), ['--log-level', 'debug']);
});

const hosts = [
  { name: 'host1', machineId: 'aaaa1111' },
  { name: 'host2', machineId: 'aaaa2222' },
  { name: 'host3', machineId: 'bbbb3333' },
];
const matchCases: { query: string; want?: string; error?: { code: DevErrorCode; message: RegExp } }[] = [
  { query: 'host2', want: 'host2' },
  { query: 'aaaa2222', want: 'host2' },
  { query: 'aaaa1', want: 'host1' },
  { query: 'b', want: 'host3' },
  { query: ' host3 ', want: 'host3' },
  {
    query: 'aaaa',
    error: { code: 'dev_ambiguous_host', message: /"aaaa" matches the machine ids of host1, host2/ },
  },
  {
    query: 'host9',
    error: { code: 'dev_unknown_host', message: /no dev host "host9"; the hosts are: host1 \(aaaa1111\)/ },
  },
  { query: '', error: { code: 'dev_unknown_host', message: /no host given/ } },
];
for (const c of matchCases) {
  test(`HOST "${c.query}" → ${c.want ?? c.error?.code ?? ''}`, (t) => {
    if (c.want !== undefined) return t.is(matchHost(hosts, c.query).name, c.want);
    const err = t.throws(() => matchHost(hosts, c.query), { instanceOf: DevError });
    t.is(String(err?.code), String(c.error?.code));
    t.regex(err?.message ?? '', c.error?.message ?? /^$/);
  });
}

test('the subnet is the first 10.213.X.0/24 no route covers, starting at the preferred one', (t) => {
  const routes = routedNetworks(
    [
      'default via 192.0.2.1 dev eth0',
      '10.213.5.0/24 dev ft1 proto kernel scope link src 10.213.5.1',
      '10.213.6.0/23 dev ft2',
      '172.17.0.0/16 dev docker0',
      'local 127.0.0.1 dev lo table local',
    ].join('\n'),
  );
  t.deepEqual(routes, ['10.213.5.0/24', '10.213.6.0/23', '172.17.0.0/16']);
  t.is(chooseSubnetIndex(routes, 5), 8);
  t.is(chooseSubnetIndex(routes, 0), 0);
  t.is(chooseSubnetIndex(['10.0.0.0/8'], 3), undefined, 'a /8 covers every dev subnet');
  t.is(chooseSubnetIndex(['10.213.255.0/24'], 255), 0, 'wraps around');
});

test('the CLI context: written by up, read by fleetts, removed only by its own cluster', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'fleetts-ctx-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'sub', 'context.json');
  t.deepEqual(readDevContext(file), [], 'no file, no context');
  await writeDevContext(file, {
    endpoint: 'unix:///x/h1/fleetd.sock',
    endpoints: ['unix:///x/h1/fleetd.sock', 'unix:///x/h2/fleetd.sock'],
    stateDir: '/x',
  });
  t.deepEqual(readDevContext(file), ['unix:///x/h1/fleetd.sock', 'unix:///x/h2/fleetd.sock']);
  await clearDevContext(file, '/other');
  t.deepEqual(readDevContext(file).length, 2, "another cluster's down leaves it");
  await clearDevContext(file, '/x');
  t.deepEqual(readDevContext(file), []);
  await writeFile(file, '{"nope": 1}');
  t.deepEqual(readDevContext(file), [], 'a malformed file is no context');
  t.is(await readFile(file, 'utf8'), '{"nope": 1}');
});

test('without root, every changing command says what it needs and touches nothing', async (t) => {
  const stateDir = join(tmpdir(), `fleetts-dev-noroot-${process.pid}`);
  const dev = new DevCluster({ stateDir, clock: systemClock, progress: () => undefined, getuid: () => 1000 });
  const calls: [string, () => Promise<unknown>][] = [
    ['up', () => dev.up({ nodes: 2 })],
    ['down', () => dev.down()],
    ['power-off', () => dev.powerOff('host1')],
    ['power-on', () => dev.powerOn('host1')],
    ['partition', () => dev.partition('host1')],
    ['heal', () => dev.heal('host1')],
  ];
  for (const [verb, call] of calls) {
    const err = await t.throwsAsync(call, { instanceOf: DevError });
    t.is(err?.code, 'dev_needs_root');
    t.regex(err?.message ?? '', new RegExp(`^fleetts dev ${verb} needs root: it creates network namespaces`));
    t.regex(err?.message ?? '', new RegExp(`sudo fleetts dev ${verb}$`));
  }
  await t.throwsAsync(readFile(join(stateDir, 'cluster.json')), { code: 'ENOENT' }, 'no state written');
});

test('socket paths longer than a unix socket allows are found before anything starts', (t) => {
  t.deepEqual(longSocketPaths(planCluster({ ...input, runtime: 'docker' })), []);
  const deep = '/tmp/' + 'd'.repeat(60);
  const long = longSocketPaths(planCluster({ ...input, stateDir: deep, runtime: 'docker' }));
  t.true(long.length > 0);
  t.true(long.every((p) => p.startsWith(deep) && p.length > 107));
  t.is(long[0], `${deep}/hosts/host1/docker/exec/containerd/containerd.sock.ttrpc`);
});
