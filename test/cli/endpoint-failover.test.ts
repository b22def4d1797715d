// The real `fleetts` binary with a list of endpoints against two real fleetd processes on a real
// etcd: a dead endpoint first is skipped, commands keep working after host1's fleetd is killed (as
// `fleetts dev power-off host1` does), and with every endpoint dead the error names each one.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { createEtcdRegistry, type EtcdRegistry } from '../../src/registry/etcd-registry.js';
import { ROOT, runBin, type RunResult } from '../helpers/cli.js';
import { randomPrefix, useEtcd } from '../helpers/etcd.js';
import { freePort } from '../helpers/ports.js';
import { waitFor } from '../helpers/wait.js';

const TOKEN = 'failover-test-token-0123456789';

interface Host {
  readonly id: string;
  readonly socket: string;
  readonly url: string;
  readonly process: ChildProcess;
  readonly exited: Promise<unknown>;
}

interface Cluster {
  readonly dir: string;
  readonly registry: EtcdRegistry;
  readonly host1: Host;
  readonly host2: Host;
}

let cluster: Promise<Cluster> | undefined;

// Registered before useEtcd's hooks, so that the fleetds stop before etcd does.
test.after.always(async () => {
  const c = await cluster?.catch(() => undefined);
  if (c === undefined) return;
  for (const h of [c.host1, c.host2]) {
    if (h.process.exitCode === null && h.process.signalCode === null) h.process.kill('SIGTERM');
    await h.exited;
  }
  await c.registry.close();
  await rm(c.dir, { recursive: true, force: true });
});
const etcd = useEtcd(test);

async function startCluster(): Promise<Cluster> {
  const dir = await mkdtemp(join(tmpdir(), 'fleetts-failover-'));
  const prefix = randomPrefix();
  const registry = createEtcdRegistry({ endpoints: [etcd().endpoint], prefix });
  const start = async (id: string): Promise<Host> => {
    const stateDir = join(dir, id);
    const socket = join(stateDir, 'fleetd.sock');
    const port = await freePort();
    // prettier-ignore
    const args = [
      '--etcd-endpoints', etcd().endpoint, '--etcd-key-prefix', prefix, '--machine-id', id,
      '--public-ip', '127.0.0.1', '--lease-ttl-ms', '2000', '--state-dir', stateDir,
      '--api-socket', socket, '--api-listen', `127.0.0.1:${port}`, '--api-token', TOKEN,
      '--runtime', 'process', '--log-level', 'warn',
    ];
    const child = spawn(process.execPath, [`${ROOT}bin/fleetd.js`, ...args], {
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    return { id, socket: `unix://${socket}`, url: `http://127.0.0.1:${port}`, process: child, exited };
  };
  const [host1, host2] = [await start('host1'), await start('host2')];
  await waitFor(
    'both fleetds registered',
    async () => (await registry.listMachines()).items.length === 2,
    60_000,
  );
  return { dir, registry, host1, host2 };
}

function cl(): Promise<Cluster> {
  return (cluster ??= startCluster());
}

function fleetts(args: readonly string[], endpoints: readonly string[], cwd?: string): Promise<RunResult> {
  return runBin('fleetts', args, {
    env: { FLEETTS_ENDPOINT: endpoints.join(','), FLEETTS_TOKEN: TOKEN },
    timeoutMs: 90_000,
    ...(cwd === undefined ? {} : { cwd }),
  });
}

/** The endpoints a --debug run sent requests to, one entry per request. */
function requestsTo(stderr: string): string[] {
  return [...stderr.matchAll(/^debug: → [A-Z]+ (\S+?)\/v1\//gm)].map((m) => m[1] ?? '');
}

test.serial('a dead endpoint first, then a socket and a URL: the command succeeds', async (t) => {
  const { dir, host1, host2 } = await cl();
  const nobody = `unix://${join(dir, 'nobody.sock')}`;
  const r = await fleetts(['--debug', 'list-machines', '--no-legend'], [nobody, host1.socket, host2.url]);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /^host1\s/m);
  t.regex(r.stdout, /^host2\s/m);
  t.deepEqual(requestsTo(r.stderr).slice(0, 2), [nobody, host1.socket]);
  t.true(r.stderr.includes(`debug: ✗ ${nobody}: no such socket; trying the next endpoint\n`), r.stderr);
});

test.serial("host1's fleetd killed: start works through host2, host1 tried once per command", async (t) => {
  const { dir, registry, host1, host2 } = await cl();
  host1.process.kill('SIGKILL');
  await host1.exited;
  // Its socket file stays behind and refuses, as after `fleetts dev power-off host1`.
  await waitFor(
    'host1 gone from the cluster',
    async () => !(await registry.listMachines()).items.some((m) => m.id === 'host1'),
    60_000,
  );
  await writeFile(join(dir, 'web.unit'), '[Service]\nExecStart=/bin/sleep 1000\n');
  const endpoints = [host1.socket, host2.url];
  const started = await fleetts(['--debug', 'start', 'web.unit'], endpoints, dir);
  t.is(started.code, 0, started.stderr);
  t.regex(started.stdout, /^Unit web\.unit launched on host2\//m);
  const requests = requestsTo(started.stderr);
  t.deepEqual(
    requests.filter((e) => e === host1.socket),
    [host1.socket],
    'the dead endpoint is tried by the first request only',
  );
  t.true(requests.filter((e) => e === host2.url).length >= 2, 'every request went to host2');
  t.regex(
    started.stderr,
    /debug: ✗ unix:\/\/\S+\/host1\/fleetd\.sock: connection refused; trying the next endpoint/,
  );

  const destroyed = await fleetts(['destroy', 'web.unit'], endpoints);
  t.is(destroyed.code, 0, destroyed.stderr);
});

test.serial('every endpoint dead: exit 1 and one message naming each endpoint and why', async (t) => {
  const { dir, host1 } = await cl();
  const nobody = `unix://${join(dir, 'nobody.sock')}`;
  const closed = `http://127.0.0.1:${await freePort()}`;
  const r = await fleetts(['list-units'], [nobody, host1.socket, closed]);
  t.is(r.code, 1);
  t.is(
    r.stderr,
    [
      'fleetts: no fleetd answered at any of the 3 endpoints:',
      `  ${nobody}: no such socket`,
      `  ${host1.socket}: connection refused`,
      `  ${closed}: connection refused`,
      'Is fleetd running there? Set --endpoint or FLEETTS_ENDPOINT to live fleetds.',
      '',
    ].join('\n'),
  );
  t.is(r.stdout, '');
});

test('a malformed list is a usage error: exit 2, one line saying where and how to fix it', async (t) => {
  const env = await runBin('fleetts', ['list-units'], {
    env: { FLEETTS_ENDPOINT: 'unix:///run/a.sock,,http://h:4003' },
  });
  t.is(env.code, 2);
  t.is(
    env.stderr,
    'fleetts: empty endpoint (item 2 of FLEETTS_ENDPOINT "unix:///run/a.sock,,http://h:4003"): separate ' +
      'endpoints by single commas, with none at either end, e.g. unix:///run/fleetts/fleetd.sock,http://10.0.0.2:4003\n',
  );
  const flag = await runBin('fleetts', ['--endpoint', 'unix:///run/a.sock,gopher://h:70', 'list-units']);
  t.is(flag.code, 2);
  t.regex(
    flag.stderr,
    /^fleetts: bad endpoint "gopher:\/\/h:70" \(item 2 of --endpoint "unix:\/\/\/run\/a\.sock,gopher:\/\/h:70"\): scheme gopher: is not supported; use unix:\/\/\/path\/to\/fleetd\.sock or http\(s\):\/\/host:port\n$/,
  );
});
