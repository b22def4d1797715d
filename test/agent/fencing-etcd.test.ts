// Self-fencing per unit (docs/fencing.md) with the real parts: a real etcd that each test freezes
// (SIGSTOP) or cuts off from one host (a TCP proxy that stops forwarding), real unit processes,
// and real fleetd processes asking each other GET /v1/self/lease over the TCP API with a token.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { Agent, type AgentMembership } from '../../src/agent/agent.js';
import type { SelfLeaseReport } from '../../src/agent/peer-check.js';
import { parseEndpoint, readText, sendRequest } from '../../src/api/http-transport.js';
import { asMachineId, asUnitName, type UnitStatus } from '../../src/cluster/types.js';
import { systemClock } from '../../src/lib/clock.js';
import { silentLogger } from '../../src/lib/logger.js';
import { createEtcdRegistry, type EtcdRegistry } from '../../src/registry/etcd-registry.js';
import type { Membership } from '../../src/registry/registry.js';
import { unitHash } from '../../src/unit/hash.js';
import { ROOT } from '../helpers/cli.js';
import { randomPrefix, startEtcd, type RunningEtcd } from '../helpers/etcd.js';
import { cleanupHosts, newRuntime, pidAlive, waitFor } from '../runtime/helpers.js';

const LEASE = { ttlMs: 5000, keepaliveMs: 1000 };
const TOKEN = 'fencing-test-token-0123456789';
const dirs: string[] = [];
const closers: (() => Promise<unknown>)[] = [];

test.after.always(async () => {
  for (const close of closers.reverse()) await close().catch(() => undefined);
  await cleanupHosts();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'fleetts-fencing-'));
  dirs.push(d);
  return d;
}

/** A directory for units' pid files; whatever they name still runs at the end is killed. */
function unitsDir(): string {
  const d = tempDir();
  closers.unshift(() => {
    for (const name of ['plain', 'once']) {
      const pid = pidOf(d, name);
      if (pid !== undefined && pidAlive(pid)) process.kill(pid, 'SIGKILL');
    }
    return Promise.resolve();
  });
  return d;
}

async function ownEtcd(): Promise<RunningEtcd> {
  const e = await startEtcd();
  closers.push(() => e.kill());
  return e;
}

/** A unit that writes its pid to `<out>/<name>.pid` and sleeps (`$$$$` is the shell's `$$`). */
const pidUnit = (out: string, name: string, xFleet: string): string =>
  `[Service]\nExecStart=/bin/sh -c "echo $$$$ > ${out}/${name}.pid; exec sleep 1000"\nTimeoutStopSec=1s\n[X-Fleet]\n${xFleet}\n`;

const pidOf = (out: string, name: string): number | undefined => {
  try {
    const pid = Number(readFileSync(join(out, `${name}.pid`), 'utf8').trim());
    return pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
};

const running = (s: UnitStatus | undefined): number | false =>
  s !== undefined && s.active === 'active' && s.sub === 'running' && s.pid !== undefined ? s.pid : false;

test('etcd frozen: a plain unit keeps its pid throughout and after; an AtMostOnce unit with no peer is fenced', async (t) => {
  const own = await ownEtcd();
  const prefix = randomPrefix();
  const options = { endpoints: [own.endpoint], prefix, lease: LEASE, requestTimeoutMs: 1000 };
  const registry = createEtcdRegistry(options);
  const engine = createEtcdRegistry(options);
  closers.push(
    () => registry.close(),
    () => engine.close(),
  );
  const term = await engine.leadership({ candidate: 'engine', ...LEASE }).campaign();
  const M1 = asMachineId('m1');
  const machine = { id: M1, ip: '10.1.2.3', metadata: {}, version: '0', startedAt: new Date().toISOString() };
  let membership: Membership = await registry.register(machine, LEASE);
  // What fleetd does: register again whenever the lease is lost.
  const stop = new AbortController();
  const rejoin = (async () => {
    while (!stop.signal.aborted) {
      if (!membership.signal.aborted) {
        await systemClock.sleep(100, stop.signal).catch(() => undefined);
        continue;
      }
      try {
        membership = await registry.register(machine, LEASE);
      } catch {
        await systemClock.sleep(250, stop.signal).catch(() => undefined);
      }
    }
  })();
  closers.push(async () => {
    stop.abort();
    await rejoin;
  });

  const { runtime } = newRuntime();
  const agent = new Agent({
    registry,
    runtimes: { process: runtime },
    machine: { id: M1, ip: '10.1.2.3', metadata: {} },
    getMembership: (): AgentMembership | undefined => (membership.signal.aborted ? undefined : membership),
    clock: systemClock,
    log: silentLogger,
    fencing: { policy: 'per-unit', deadlineMs: 3500 },
    hostname: 'host-a',
    bootId: 'b00t',
  });
  closers.push(() => agent.stop());
  await agent.start();
  const out = unitsDir();
  for (const [name, x] of [
    ['plain', ''],
    ['once', 'AtMostOnce=true'],
  ] as const) {
    const text = pidUnit(out, name, x);
    const unit = asUnitName(`${name}.unit`);
    await engine.createUnit({ name: unit, hash: unitHash(text), target: 'launched' }, text);
    const basis = await engine.snapshot({ unitFiles: 'none' });
    await engine.writeAssignments(
      term.fence,
      [{ kind: 'assign', assignment: { unit, machine: M1, hash: unitHash(text), target: 'launched' } }],
      basis,
    );
  }
  const status = async (unit: string): Promise<UnitStatus | undefined> =>
    (await engine.listStatuses(asUnitName(unit))).items[0];
  const plain = await waitFor('plain running', async () => running(await status('plain.unit')));
  const once = await waitFor('once running', async () => running(await status('once.unit')));
  const first = membership;

  own.freeze();
  try {
    await waitFor('the AtMostOnce unit fenced', () => !pidAlive(once));
    // Its supervisor and the agent race to stop it (both watch the same deadline); the agent is fenced.
    await waitFor('the agent to be fenced', () => agent.fenced);
    t.true(pidAlive(plain), 'the plain unit runs on when the AtMostOnce one is fenced');
    // A whole TTL without renewal: the lease is lost, as far as this host can tell.
    await waitFor('the lease lost', () => first.signal.aborted);
    t.true(pidAlive(plain), 'the plain unit runs on past the lease');
  } finally {
    own.thaw();
  }
  await waitFor('the agent to resume under a new lease', () => !agent.fenced && membership !== first);
  const again = await waitFor('once running again', async () => {
    const pid = running(await status('once.unit'));
    return pid !== false && pid !== once ? pid : undefined;
  });
  t.not(again, once);
  t.is(
    await waitFor('plain reported under the new lease', async () => running(await status('plain.unit'))),
    plain,
  );
  t.true(pidAlive(plain));
  t.is(pidOf(out, 'plain'), plain, 'started once: its pid file was never rewritten');
});

// ——— real fleetd processes ———

interface Fleetd {
  readonly id: string;
  readonly dir: string;
  readonly proc: ChildProcess;
  readonly logs: { event?: string; reason?: string; verdict?: string; machines?: number }[];
  lease(): Promise<SelfLeaseReport>;
}

async function startFleetd(id: string, etcdEndpoint: string, prefix: string): Promise<Fleetd> {
  const dir = tempDir();
  const args = [
    '--etcd-endpoints',
    etcdEndpoint,
    '--etcd-key-prefix',
    prefix,
    '--machine-id',
    id,
    '--public-ip',
    '127.0.0.1',
    '--lease-ttl-ms',
    String(LEASE.ttlMs),
    '--state-dir',
    dir,
    '--api-socket',
    join(dir, 'fleetd.sock'),
    '--api-listen',
    '127.0.0.1:0',
    '--api-token',
    TOKEN,
    '--runtime',
    'process',
    '--log-level',
    'debug',
  ];
  const proc = spawn(process.execPath, [`${ROOT}bin/fleetd.js`, ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const logs: Fleetd['logs'] = [];
  let partial = '';
  proc.stderr?.on('data', (chunk: Buffer) => {
    const lines = (partial + chunk.toString()).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      try {
        logs.push(JSON.parse(line) as Fleetd['logs'][number]);
      } catch {
        // not a log line
      }
    }
  });
  closers.push(async () => {
    proc.kill('SIGKILL');
    // Unit supervisors outlive a killed fleetd by design: end the ones this fleetd started
    // (SIGTERM: each stops its unit, then exits).
    spawnSync('pkill', ['-TERM', '-f', `supervisor-main.js ${dir}`]);
    await systemClock.sleep(1_500);
    spawnSync('pkill', ['-KILL', '-f', `supervisor-main.js ${dir}`]);
  });
  const endpoint = parseEndpoint(`unix://${join(dir, 'fleetd.sock')}`);
  const f: Fleetd = {
    id,
    dir,
    proc,
    logs,
    async lease() {
      const res = await sendRequest(endpoint, { method: 'GET', path: '/v1/self/lease', timeoutMs: 5000 });
      return JSON.parse(await readText(res)) as SelfLeaseReport;
    },
  };
  await waitFor(`${id} registered`, async () =>
    (await f.lease().catch(() => undefined))?.leaseAlive ? true : undefined,
  );
  return f;
}

/** A TCP proxy to etcd for one host; `cut()` stops forwarding (connections hang, as in a partition). */
async function etcdProxy(target: string): Promise<{ endpoint: string; cut(): void }> {
  const url = new URL(target);
  let cut = false;
  const pairs: [Socket, Socket][] = [];
  const held: Socket[] = [];
  const server = createServer((client) => {
    client.on('error', () => undefined);
    held.push(client);
    if (cut) return; // held open, never answered
    const upstream = connect(Number(url.port), url.hostname);
    upstream.on('error', () => client.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
    pairs.push([client, upstream]);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(async () => {
    for (const [a, b] of pairs) {
      a.destroy();
      b.destroy();
    }
    for (const c of held) c.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    cut() {
      cut = true;
      for (const [a, b] of pairs) {
        a.unpipe(b);
        b.unpipe(a);
        a.pause();
        b.pause();
      }
    },
  };
}

const agentLog = (f: Fleetd): string =>
  f.logs
    .filter((l) => l.event?.startsWith('agent.') === true)
    .map((l) => `${(l as { time?: number }).time} ${l.event} ${l.verdict ?? ''} ${l.reason ?? ''}`)
    .join('\n');

async function submitPinned(r: EtcdRegistry, name: string, text: string): Promise<void> {
  await r.createUnit({ name: asUnitName(name), hash: unitHash(text), target: 'launched' }, text);
}

test('fleetd: cut off while a peer reaches etcd → the AtMostOnce unit stops before the lease can expire; the plain one runs on', async (t) => {
  const own = await ownEtcd();
  const prefix = randomPrefix();
  const registry = createEtcdRegistry({ endpoints: [own.endpoint], prefix });
  closers.push(() => registry.close());
  const proxy = await etcdProxy(own.endpoint);
  const b = await startFleetd('host-b', own.endpoint, prefix);
  const a = await startFleetd('host-a', proxy.endpoint, prefix);
  const out = unitsDir();
  await submitPinned(registry, 'plain.unit', pidUnit(out, 'plain', 'MachineID=host-a'));
  await submitPinned(registry, 'once.unit', pidUnit(out, 'once', 'MachineID=host-a\nAtMostOnce=true'));
  const plain = await waitFor('plain running', () => pidOf(out, 'plain'));
  const once = await waitFor('once running', () => pidOf(out, 'once'));
  await waitFor('host-a to know its peer', () =>
    a.logs.some((l) => l.event === 'agent.peers_read' && (l.machines ?? 0) >= 2),
  );

  proxy.cut();
  // Read host-a's own lease just before each look at the unit: when it is found gone, the lease
  // had been unrenewed for at most what that report said.
  const last = await waitFor('the AtMostOnce unit fenced', async () => {
    const report = await a.lease();
    return pidAlive(once) ? undefined : report;
  });
  t.log(`stopped at most ${last.renewedAgoMs} ms after host-a's last renewal (TTL ${LEASE.ttlMs} ms)`);
  if (last.renewedAgoMs === null || last.renewedAgoMs >= LEASE.ttlMs) t.log(agentLog(a));
  t.not(last.renewedAgoMs, null, 'host-a still held its lease');
  t.true((last.renewedAgoMs ?? Infinity) < LEASE.ttlMs, 'before the lease could expire');
  // Its supervisor (at the lease's deadline) and the agent (at its verdict) race to stop it.
  const fenced = await waitFor('host-a’s agent to fence', () =>
    a.logs.find((l) => l.event === 'agent.fenced'),
  );
  t.regex(fenced.reason ?? '', /; peer host-b has a live lease \(etcd works for it\)/);
  t.true((await b.lease()).leaseAlive);
  await waitFor('host-a’s lease lost', async () =>
    (await a.lease()).renewedAgoMs === null ? true : undefined,
  );
  t.true(pidAlive(plain), 'the plain unit runs on past the lease');
  t.is(pidOf(out, 'plain'), plain);
});

test('fleetd: etcd frozen for everyone → the AtMostOnce unit keeps running past the lease, asking the peer every second', async (t) => {
  const own = await ownEtcd();
  const prefix = randomPrefix();
  const registry = createEtcdRegistry({ endpoints: [own.endpoint], prefix });
  closers.push(() => registry.close());
  const b = await startFleetd('host-b', own.endpoint, prefix);
  const a = await startFleetd('host-a', own.endpoint, prefix);
  const out = unitsDir();
  await submitPinned(registry, 'once.unit', pidUnit(out, 'once', 'MachineID=host-a\nAtMostOnce=true'));
  const once = await waitFor('once running', () => pidOf(out, 'once'));
  await waitFor('host-a to know its peer', () =>
    a.logs.some((l) => l.event === 'agent.peers_read' && (l.machines ?? 0) >= 2),
  );

  own.freeze();
  try {
    await waitFor('host-a’s lease lost', async () =>
      (await a.lease()).renewedAgoMs === null ? true : undefined,
    );
    t.false((await b.lease()).leaseAlive, 'the peer lost etcd too');
    // Past the lease, and then several re-checks (each one a second apart), all saying keep.
    const keepsAtLoss = a.logs.filter((l) => l.event === 'agent.peer_check' && l.verdict === 'keep').length;
    await waitFor(
      '5 more re-checks',
      () =>
        a.logs.filter((l) => l.event === 'agent.peer_check' && l.verdict === 'keep').length >=
        keepsAtLoss + 5,
    );
    if (!pidAlive(once)) t.log(agentLog(a));
    t.true(pidAlive(once), 'the AtMostOnce unit runs on');
    t.is(pidOf(out, 'once'), once);
    t.false(
      a.logs.some((l) => l.event === 'agent.fenced'),
      'never fenced',
    );
    t.regex(
      a.logs.find((l) => l.event === 'agent.fence_kept')?.reason ?? '',
      /^all 1 peer\(s\) have lost etcd too/,
    );
  } finally {
    own.thaw();
  }
  await waitFor('host-a registered again', async () => ((await a.lease()).leaseAlive ? true : undefined));
});
