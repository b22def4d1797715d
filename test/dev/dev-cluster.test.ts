// `fleetts dev` for real: network namespaces, a bridge, etcd and one fleetd per host (2 hosts, a
// 2 s lease). The tests run in order on one cluster and end with `down`, which must leave nothing.
import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { buildProgram, run as runCli, type CliContext } from '../../src/cli/main.js';
import { registerDev } from '../../src/cli/dev.js';
import { BufferOutput } from '../../src/cli/output.js';
import { systemClock } from '../../src/lib/clock.js';
import { readDevContext } from '../../src/dev/context.js';
import { DevCluster } from '../../src/dev/dev-cluster.js';
import type { ClusterPlan, HostPlan } from '../../src/dev/plan.js';
import { readState } from '../../src/dev/state.js';
import { forwardRule, iptablesRuleExists, linkExists, netnsExists } from '../../src/dev/network.js';
import { isRunning, mountTargets, netnsPids, processStartTime } from '../../src/dev/system.js';
import { createEtcdRegistry } from '../../src/registry/etcd-registry.js';
import { chooseTracking, defaultCgroupRoot } from '../../src/runtime/process-tree.js';
import { waitFor } from '../helpers/wait.js';

const LEASE_TTL_MS = 2_000;
let root = '';
let dev: DevCluster | undefined;
let plan: ClusterPlan | undefined;
let contextFile = '';
let sharedPath = '';

function cluster(): { dev: DevCluster; plan: ClusterPlan; host1: HostPlan; host2: HostPlan } {
  const [host1, host2] = plan?.hosts ?? [];
  if (dev === undefined || plan === undefined || host1 === undefined || host2 === undefined)
    throw new Error('the dev cluster did not come up (see the first failure)');
  return { dev, plan, host1, host2 };
}

test.before(async () => {
  if (process.getuid?.() !== 0)
    throw new Error('the dev cluster tests need root (network namespaces); run them as root');
  root = await mkdtemp(join(tmpdir(), 'fleetts-dev-'));
  contextFile = join(root, 'context.json');
  sharedPath = join(root, 'srv-shared');
  dev = new DevCluster({
    stateDir: join(root, 'state'),
    clock: systemClock,
    progress: () => undefined,
    contextFile,
  });
  const result = await dev.up({ nodes: 2, leaseTtlMs: LEASE_TTL_MS, sharedPath, timeoutMs: 30_000 });
  plan = result.plan;
});

test.after.always(async () => {
  await dev?.down().catch((err: unknown) => console.error('dev down failed:', err));
  if (root !== '') await rm(root, { recursive: true, force: true });
});

async function machines(p: ClusterPlan): Promise<Map<string, { ip: string; hostname: string | undefined }>> {
  const registry = createEtcdRegistry({ endpoints: [...p.etcd.endpoints], requestTimeoutMs: 2_000 });
  try {
    const set = await registry.listMachines();
    return new Map(set.items.map((m) => [String(m.id), { ip: m.ip, hostname: m.metadata['hostname'] }]));
  } finally {
    await registry.close();
  }
}

/** Runs a node script inside the host's network namespace; resolves with its stdout and exit code. */
function inHost(host: HostPlan, script: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(
      'nsenter',
      [`--net=/var/run/netns/${host.netns}`, '--', process.execPath, '-e', script],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('close', (code) => resolve({ code, out }));
  });
}

const connectScript = (ip: string, port: number): string =>
  `const s=require('net').connect({host:'${ip}',port:${port},timeout:1000});` +
  `s.on('connect',()=>{console.log('connected');s.end()});s.on('data',d=>process.stdout.write(String(d)));` +
  `s.on('timeout',()=>{console.log('timeout');process.exit(3)});s.on('error',e=>{console.log(e.code);process.exit(2)})`;

/** A long-running process inside the host (as a unit would be): a TCP server on `port`. */
async function startServer(host: HostPlan, port: number): Promise<{ pid: number; startTime: string }> {
  const child = spawn(
    'nsenter',
    [
      `--net=/var/run/netns/${host.netns}`,
      '--',
      process.execPath,
      '-e',
      // A client that hangs up at once must not crash it: socket errors are ignored.
      `require('net').createServer(s=>{s.on('error',()=>{});s.end('hello from ${host.name}')}).listen(${port},'0.0.0.0')`,
    ],
    { detached: true, stdio: 'ignore' },
  );
  child.unref();
  const pid = child.pid ?? 0;
  const startTime = await processStartTime(pid);
  if (startTime === undefined) throw new Error('server did not start');
  const p = { pid, startTime };
  await waitFor(
    `${host.name}:${port} listens`,
    async () => (await inHost(host, connectScript(host.ip, port))).code === 0,
    { intervalMs: 100 },
  );
  return p;
}

test.serial('up: every host registered in etcd with its IP and hostname metadata', async (t) => {
  const { plan, host1, host2 } = cluster();
  const live = await machines(plan);
  t.deepEqual(live.get(host1.machineId), { ip: host1.ip, hostname: 'host1' });
  t.deepEqual(live.get(host2.machineId), { ip: host2.ip, hostname: 'host2' });
  t.is(live.size, 2);
  t.is(readDevContext(contextFile)[0], plan.endpoint, 'up points the CLI at the cluster');
  t.is(readDevContext(contextFile).length, 2, 'and names every host, for when host1 is off');
  t.regex(plan.endpoint, /^unix:\/\/.*\/hosts\/host1\/fleetd\.sock$/);
});

test.serial('hosts reach each other and etcd over the bridge, and share one directory', async (t) => {
  const { plan, host1, host2 } = cluster();
  const server = await startServer(host2, 7070);
  t.teardown(() => {
    try {
      process.kill(server.pid, 'SIGKILL');
    } catch {
      // gone with its host
    }
  });
  const toHost2 = await inHost(host1, connectScript(host2.ip, 7070));
  t.is(toHost2.code, 0, toHost2.out);
  t.regex(toHost2.out, /hello from host2/);
  const toEtcd = await inHost(host1, connectScript(plan.bridge.ip, 2379));
  t.is(toEtcd.code, 0, toEtcd.out);

  t.true((await mountTargets()).includes(sharedPath), 'the shared directory is mounted');
  await writeFile(join(plan.shared.source, 'hello.txt'), 'shared');
  const read = await inHost(
    host2,
    `process.stdout.write(require('fs').readFileSync('${sharedPath}/hello.txt','utf8'))`,
  );
  t.is(read.out, 'shared', 'a host sees the shared files at the shared path');
});

test.serial(
  'power-off: the machine disappears after the lease TTL and none of its processes remain',
  async (t) => {
    const { dev, plan, host2 } = cluster();
    const unit = await startServer(host2, 7071);
    const before = await netnsPids(host2.netns);
    t.true(before.length >= 2, 'fleetd and the unit run in host2');
    const off = await dev.powerOff('host2');
    t.is(off.name, 'host2');
    t.deepEqual(await netnsPids(host2.netns), [], 'nothing left in the namespace');
    t.false(await isRunning(unit), 'the unit died with its host');
    const offAt = performance.now();
    await waitFor('host2 leaves the cluster', async () => !(await machines(plan)).has(host2.machineId), {
      intervalMs: 100,
    });
    t.log(
      `host2 left the cluster ${Math.round(performance.now() - offAt)} ms after power-off (TTL ${LEASE_TTL_MS} ms)`,
    );
    t.true((await machines(plan)).has(cluster().host1.machineId), 'host1 stays');
    // The powered-off host's endpoint first: fleetts moves on to a live one.
    const out = new BufferOutput();
    const code = await runCli(
      ['--endpoint', [...plan.endpoints].reverse().join(','), 'list-machines', '-l'],
      out,
    );
    t.is(code, 0, out.stderr);
    t.true(out.stdout.includes(cluster().host1.machineId), out.stdout);
    const status = await dev.status();
    t.like(status.hosts[1], { name: 'host2', power: 'off', registered: 'no' });
  },
);

test.serial('power-on: the host rejoins with the same machine id and IP', async (t) => {
  const { dev, plan, host2 } = cluster();
  const state = await readState(dev.stateDir);
  t.deepEqual(state?.poweredOff, ['host2']);
  await dev.powerOn(host2.machineId.slice(0, 8));
  t.deepEqual((await machines(plan)).get(host2.machineId), { ip: host2.ip, hostname: 'host2' });
  t.like((await dev.status()).hosts[1], { name: 'host2', power: 'on', registered: 'yes' });
});

test.serial(
  "partition: the host's fleetd loses etcd while its processes run on; heal: it rejoins",
  async (t) => {
    const { dev, plan, host1, host2 } = cluster();
    const unit = await startServer(host1, 7072);
    t.teardown(() => {
      try {
        process.kill(unit.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    });
    const fleetdBefore = (await readState(dev.stateDir))?.processes.find((p) => p.id === 'host1/fleetd');
    await dev.partition('host1');
    const t0 = performance.now();
    const cut = await inHost(host1, connectScript(plan.bridge.ip, 2379));
    t.not(cut.code, 0, 'etcd is unreachable from host1');
    const toHost2 = await inHost(host1, connectScript(host2.ip, 7070));
    t.not(toHost2.code, 0, 'so is host2');
    t.log(`connect attempts took ${Math.round(performance.now() - t0)} ms`);
    await waitFor('host1 leaves the cluster', async () => !(await machines(plan)).has(host1.machineId), {
      intervalMs: 100,
    });
    t.log(`host1 left the cluster ${Math.round(performance.now() - t0)} ms after the partition`);
    t.true(await isRunning(unit), "host1's processes keep running");
    if (fleetdBefore !== undefined) t.true(await isRunning(fleetdBefore), "and so does host1's fleetd");
    t.like((await dev.status()).hosts[0], { name: 'host1', network: 'partitioned', registered: 'no' });

    const t1 = performance.now();
    await dev.heal('host1');
    t.log(`host1 rejoined ${Math.round(performance.now() - t1)} ms after heal`);
    t.deepEqual((await machines(plan)).get(host1.machineId), { ip: host1.ip, hostname: 'host1' });
    t.like((await dev.status()).hosts[0], { network: 'connected', registered: 'yes', power: 'on' });
  },
);

test.serial('the CLI: status, env, HOST errors and up on a running cluster', async (t) => {
  const { dev, plan } = cluster();
  const run = async (
    ...argv: string[]
  ): Promise<{ code: number; out: string; err: string; error?: string }> => {
    const output = new BufferOutput();
    const ctx: CliContext = {
      output,
      exitCode: 0,
      client: () => Promise.reject(new Error('dev commands need no API client')),
      clock: systemClock,
      cwd: process.cwd(),
      signal: undefined,
      pollMs: 100,
    };
    const program = await buildProgram(ctx);
    // Replace the stock `dev` command by one writing this test's context file.
    const stock = program.commands.findIndex((c) => c.name() === 'dev');
    if (stock >= 0) (program.commands as unknown[]).splice(stock, 1);
    registerDev(program, ctx, { contextFile });
    try {
      await program.parseAsync(argv, { from: 'user' });
      return { code: ctx.exitCode, out: output.stdout, err: output.stderr };
    } catch (err) {
      return { code: 1, out: output.stdout, err: output.stderr, error: (err as Error).message };
    }
  };
  const status = await run('dev', 'status', '--state-dir', dev.stateDir);
  t.regex(status.out, /HOST\s+MACHINE\s+IP\s+POWER\s+NETWORK\s+REGISTERED/);
  t.regex(
    status.out,
    new RegExp(
      `host2\\s+${plan.hosts[1]?.machineId ?? ''}\\s+${plan.hosts[1]?.ip ?? ''}\\s+on\\s+connected\\s+yes`,
    ),
  );
  const env = await run('dev', 'env', '--state-dir', dev.stateDir);
  t.is(env.out, `export FLEETTS_ENDPOINT='${plan.endpoints.join(',')}'\n`, 'every host, host1 first');
  t.is(plan.endpoints.length, 2);
  const unknown = await run('dev', 'power-off', 'nosuchhost', '--state-dir', dev.stateDir);
  t.regex(unknown.error ?? '', /^no dev host "nosuchhost"; the hosts are: host1 \(/);
  const other = await run('dev', 'up', '--nodes', '3', '--state-dir', dev.stateDir);
  t.regex(
    other.error ?? '',
    /a dev cluster of 2 hosts \(process runtime, etcd external\) is already up in .*; run `fleetts dev down` first/,
  );
  const again = await run('dev', 'up', '--state-dir', dev.stateDir);
  t.is(again.error, undefined);
  t.regex(again.out, /^dev cluster already up \(checked\): 2 hosts/);
});

test.serial('down: no namespaces, links, iptables rules, mounts or processes are left', async (t) => {
  const { dev, plan } = cluster();
  const before = await readState(dev.stateDir);
  const processes = before?.processes ?? [];
  t.true(processes.length >= 3, 'etcd and two fleetds were recorded');
  // A unit's cgroup whose process was killed from outside (`kill -9` of a host's processes, not
  // dev power-off): nothing runs in it to lead down to it, and the host could not remove it.
  const host = plan.hosts[0]!;
  const tracking = chooseTracking(defaultCgroupRoot(host.stateDir), 'left.service', 'auto');
  if (tracking.kind === 'proc-scan') throw new Error('no writable cgroup hierarchy on this machine');
  const unit = await startServer(host, 7073);
  writeFileSync(join(tracking.path, 'cgroup.procs'), String(unit.pid));
  process.kill(unit.pid, 'SIGKILL');
  await waitFor('the unit killed', async () => !(await isRunning(unit)), { intervalMs: 50 });
  await dev.down();
  t.false(existsSync(tracking.path), `${tracking.path} removed`);
  for (const h of plan.hosts) {
    t.false(await netnsExists(h.netns), `${h.netns} removed`);
    t.false(await linkExists(h.veth), `${h.veth} removed`);
  }
  t.false(await linkExists(plan.bridge.name), 'bridge removed');
  t.false(await iptablesRuleExists(forwardRule(plan)), 'FORWARD rule removed');
  const mounts = await mountTargets();
  t.deepEqual(
    mounts.filter((m) => m === sharedPath || m.startsWith(root)),
    [],
    'no mounts left',
  );
  for (const p of processes) t.false(await isRunning(p), `${p.id} stopped`);
  const ps = await new Promise<string>((resolve) => {
    const child = spawn('ps', ['-eo', 'pid,args'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('close', () => resolve(out));
  });
  t.false(ps.includes(dev.stateDir), 'no process mentions the state dir');
  t.deepEqual(readDevContext(contextFile), [], 'the CLI context is removed');
  t.false(existsSync(sharedPath), 'the shared mount point is removed');
  const after = await readState(dev.stateDir);
  t.like(after, { phase: 'down', resources: [], processes: [] });
  t.deepEqual(after?.input.machineIds, before?.input.machineIds, 'machine ids are kept for the next up');
  t.is((await readFile(join(dev.stateDir, 'cluster.json'), 'utf8')).includes('"down"'), true);
});
