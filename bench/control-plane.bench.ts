// Control-plane benchmarks (issue 3), against a real single-member etcd on loopback and a real
// fleetd process running the engine:
//  1. placement throughput: 10,000 units over 100 light agents, submit → assignment written;
//  2. steady state: 1,000 placed units, nothing changing: etcd writes, and agents woken by one unit;
//  3. control-plane failover: a host's fleetd SIGKILLed → its unit's new assignment written (20 trials).
// Run alone: `node --import=tsx bench/control-plane.bench.ts [placement|steady|failover] [--runs=N]`
// (--runs repeats the placement run and reports the range over all runs).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { asMachineId, asUnitName, type Assignment } from '../src/cluster/types.js';
import { createEtcdRegistry } from '../src/registry/etcd-registry.js';
import type { Membership, Registry, Subscription } from '../src/registry/registry.js';
import { unitHash } from '../src/unit/hash.js';
import { startEtcd, type RunningEtcd } from '../test/helpers/etcd.js';
import { fmt, median, percentile, processMemoryMb, ROOT, until, writeSection } from './lib.js';

const LIGHT_LEASE = { ttlMs: 30_000, keepaliveMs: 10_000 };

interface Harness {
  etcd: RunningEtcd;
  prefix: string;
  clients: Registry[];
  fleetds: ChildProcess[];
  dirs: string[];
  client(): Registry;
  fleetd(id: string, metadata: string, ttlMs?: number): Promise<ChildProcess>;
  close(): Promise<void>;
}

async function harness(prefix: string): Promise<Harness> {
  const etcd = await startEtcd();
  const h: Harness = {
    etcd,
    prefix,
    clients: [],
    fleetds: [],
    dirs: [],
    client() {
      const r = createEtcdRegistry({ endpoints: [etcd.endpoint], prefix, requestTimeoutMs: 30_000 });
      h.clients.push(r);
      return r;
    },
    async fleetd(id, metadata, ttlMs = 5_000) {
      const dir = await mkdtemp(join(tmpdir(), `bench-fleetd-${id}-`));
      h.dirs.push(dir);
      const child = spawn(
        process.execPath,
        [
          `${ROOT}bin/fleetd.js`,
          ...['--etcd-endpoints', etcd.endpoint, '--etcd-key-prefix', prefix, '--machine-id', id],
          ...['--public-ip', '127.0.0.1', '--metadata', metadata, '--state-dir', dir],
          ...['--api-socket', join(dir, 'fleetd.sock'), '--runtime', 'process'],
          ...['--lease-ttl-ms', String(ttlMs), '--log-level', 'warn'],
        ],
        { stdio: ['ignore', 'ignore', 'inherit'] },
      );
      h.fleetds.push(child);
      const r = h.clients[0] ?? h.client();
      await until(
        `${id} registered`,
        async () => ((await r.listMachines()).items.some((m) => m.id === id) ? true : undefined),
        30_000,
      );
      return child;
    },
    async close() {
      for (const f of h.fleetds) f.kill('SIGKILL');
      await Promise.all(h.clients.map((c) => c.close().catch(() => undefined)));
      await etcd.stop();
      await Promise.all(h.dirs.map((d) => rm(d, { recursive: true, force: true })));
    },
  };
  return h;
}

/** `count` light agents: registered machines that watch their own assignments and count wake-ups. */
async function lightAgents(h: Harness, count: number, metadata: Record<string, string>) {
  const clients = [h.client(), h.client(), h.client(), h.client()];
  const sets = new Map<string, readonly Assignment[]>();
  const wakes = new Map<string, number>();
  const memberships: Membership[] = [];
  const subs: Subscription[] = [];
  for (let i = 0; i < count; i++) {
    const id = `agent-${String(i).padStart(3, '0')}`;
    const r = clients[i % clients.length]!;
    memberships.push(
      await r.register(
        {
          id: asMachineId(id),
          ip: '127.0.0.1',
          metadata,
          version: 'bench',
          startedAt: new Date().toISOString(),
        },
        LIGHT_LEASE,
      ),
    );
    subs.push(
      await r.watchAssignments(asMachineId(id), (set) => {
        sets.set(id, set.items);
        wakes.set(id, (wakes.get(id) ?? 0) + 1);
      }),
    );
  }
  return {
    sets,
    wakes,
    placed: () => [...sets.values()].reduce((n, s) => n + s.length, 0),
    close: () => subs.forEach((s) => s.close()),
  };
}

/** Submits like `fleetts start` does: batches of units (createUnits packs each into few transactions). */
async function submitMany(
  r: Registry,
  names: string[],
  text: string,
  batch = 500,
  concurrency = 4,
): Promise<void> {
  const hash = unitHash(text);
  const batches: string[][] = [];
  for (let i = 0; i < names.length; i += batch) batches.push(names.slice(i, i + batch));
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < batches.length) {
        const chunk = batches[next++]!;
        await r.createUnits(
          chunk.map((name) => ({
            unit: { name: asUnitName(name), hash, target: 'launched' as const },
            text,
          })),
        );
      }
    }),
  );
}

const WORKER_UNIT = '[Service]\nExecStart=/bin/sleep infinity\n\n[X-Fleet]\nMachineMetadata=role=worker\n';

interface PlacementRun {
  submittedMs: number;
  totalMs: number;
  perMachine: number[];
  rss: number;
  peak: number;
  load: number;
}

async function placementOnce(units: number, machines: number): Promise<PlacementRun> {
  const h = await harness('/bench-placement/');
  try {
    const engineHost = await h.fleetd('engine-host', 'role=control');
    const agents = await lightAgents(h, machines, { role: 'worker' });
    const names = Array.from({ length: units }, (_, i) => `web@${i}.unit`);
    const load = loadavg()[0] ?? NaN;
    const t0 = performance.now();
    await submitMany(h.client(), names, WORKER_UNIT);
    const submittedMs = performance.now() - t0;
    await until('all placed', () => (agents.placed() === units ? true : undefined), 300_000, 10);
    const totalMs = performance.now() - t0;
    const mem = processMemoryMb(engineHost.pid!);
    const perMachine = [...agents.sets.values()].map((s) => s.length);
    agents.close();
    return { submittedMs, totalMs, perMachine, rss: mem.rss, peak: mem.peak, load };
  } finally {
    await h.close();
  }
}

/** `--runs=N` (default 1): the machine is shared, so one run says little; the table gives the range. */
function runsWanted(): number {
  const arg = process.argv.find((a) => a.startsWith('--runs='));
  const n = arg === undefined ? 1 : Number(arg.slice('--runs='.length));
  if (!Number.isInteger(n) || n < 1) throw new Error(`--runs wants a positive integer, got ${arg}`);
  return n;
}

async function placement(): Promise<string> {
  const UNITS = 10_000;
  const MACHINES = 100;
  const runs: PlacementRun[] = [];
  for (let i = 0; i < runsWanted(); i++) {
    const run = await placementOnce(UNITS, MACHINES);
    runs.push(run);
    process.stderr.write(
      `placement run ${i + 1}: ${fmt(UNITS / (run.totalMs / 1000))}/s, RSS peak ${fmt(run.peak)} MB, load ${fmt(run.load, 1)}\n`,
    );
  }
  const range = (values: number[], digits = 0): string => {
    const lo = fmt(Math.min(...values), digits);
    const hi = fmt(Math.max(...values), digits);
    return lo === hi ? lo : `${lo} – ${hi}`;
  };
  const rates = runs.map((r) => UNITS / (r.totalMs / 1000));
  const per = runs.flatMap((r) => r.perMachine);
  return [
    `### Placement throughput (issue 3)`,
    '',
    `${fmt(UNITS)} units (instances of one template, \`MachineMetadata=role=worker\`) submitted as \`fleetts start\``,
    `does (batches of 500 units, 4 at a time; \`createUnits\` packs 127 units per etcd transaction) to a local`,
    `single-member etcd, placed by the engine of a real \`fleetd\` process over ${MACHINES}`,
    `light agents (registered machines watching their own assignments). End to end = first submit → last`,
    `assignment seen by its agent's watch. ${runs.length} run${runs.length === 1 ? '' : 's'}, each on a fresh`,
    `etcd and fleetd; ranges are min – max over the runs (the machine is shared: load average at each start`,
    `in the last column of the per-run table). The fleetd runs the engine, its own agent and the API with`,
    `\`--runtime process\` (it loads no Docker client; a fleetd that may run containers also loads dockerode).`,
    '',
    '| measure | value | target |',
    '|---|---|---|',
    `| submit (${fmt(UNITS)} units) | ${range(
      runs.map((r) => r.submittedMs / 1000),
      2,
    )} s | |`,
    `| end to end, all ${fmt(UNITS)} placed | ${range(
      runs.map((r) => r.totalMs / 1000),
      2,
    )} s | |`,
    `| **placements per second, end to end** | **${range(rates)}** (median ${fmt(median(rates))}) | ≥ 2,000 |`,
    `| units per machine (min / max) | ${Math.min(...per)} / ${Math.max(...per)} | even spread |`,
    `| **engine fleetd peak RSS** (VmHWM) | **${range(runs.map((r) => r.peak))} MB** (median ${fmt(median(runs.map((r) => r.peak)))} MB) | ≤ 200 MB |`,
    `| engine fleetd RSS after the burst | ${range(runs.map((r) => r.rss))} MB | |`,
    '',
    '| run | placements/s | peak RSS | load average (1 min) |',
    '|---|---|---|---|',
    ...runs.map((r, i) => `| ${i + 1} | ${fmt(rates[i] ?? NaN)} | ${fmt(r.peak)} MB | ${fmt(r.load, 2)} |`),
  ].join('\n');
}

async function steady(): Promise<string> {
  const UNITS = 1_000;
  const h = await harness('/bench-steady/');
  try {
    await h.fleetd('engine-host', 'role=control');
    const agents = await lightAgents(h, 50, { role: 'worker' });
    const r = h.client();
    await submitMany(
      r,
      Array.from({ length: UNITS }, (_, i) => `app@${i}.unit`),
      WORKER_UNIT,
    );
    await until('placed', () => (agents.placed() === UNITS ? true : undefined), 120_000);
    await new Promise((res) => setTimeout(res, 2_000));
    const before = (await r.snapshot({ unitFiles: 'none' })).revision;
    const IDLE_S = 20;
    await new Promise((res) => setTimeout(res, IDLE_S * 1000));
    const after = (await r.snapshot({ unitFiles: 'none' })).revision;
    const wakesBefore = new Map(agents.wakes);
    await r.createUnit(
      { name: asUnitName('one-more.unit'), hash: unitHash(WORKER_UNIT), target: 'launched' },
      WORKER_UNIT,
    );
    await until('one more placed', () => (agents.placed() === UNITS + 1 ? true : undefined), 30_000);
    await new Promise((res) => setTimeout(res, 1_000));
    const woken = [...agents.wakes].filter(([id, n]) => n !== wakesBefore.get(id)).length;
    agents.close();
    return [
      `### Steady state (issue 3)`,
      '',
      `${fmt(UNITS)} units placed on 50 light agents by a real fleetd's engine, then nothing changes for ${IDLE_S} s;`,
      'then one more unit is submitted.',
      '',
      '| measure | value | target |',
      '|---|---|---|',
      `| etcd revisions written in ${IDLE_S} s idle (keepalives do not bump the revision) | ${after - before} | 0 |`,
      `| agents woken by scheduling one unit (of 50 watching) | ${woken} | 1 |`,
    ].join('\n');
  } finally {
    await h.close();
  }
}

async function failover(): Promise<string> {
  const TRIALS = 20;
  const TTL = 5_000;
  const h = await harness('/bench-failover/');
  const times: number[] = [];
  try {
    await h.fleetd('engine-host', 'role=control');
    const r = h.client();
    for (let i = 0; i < TRIALS; i++) {
      const pool = `t${i}`;
      const victim = await h.fleetd(`victim-${i}`, `pool=${pool}`, TTL);
      const text = `[Service]\nExecStart=/bin/sleep infinity\n\n[X-Fleet]\nMachineMetadata=pool=${pool}\n`;
      const unit = asUnitName(`svc-${i}.unit`);
      await r.createUnit({ name: unit, hash: unitHash(text), target: 'launched' }, text);
      const onVictim = async (): Promise<true | undefined> =>
        (await r.snapshot({ unitFiles: 'none' })).assignments.some(
          (a) => a.unit === unit && a.machine === `victim-${i}`,
        )
          ? true
          : undefined;
      await until('placed on victim', onVictim, 30_000);
      const standby = asMachineId(`standby-${i}`);
      await r.register(
        {
          id: standby,
          ip: '127.0.0.1',
          metadata: { pool },
          version: 'bench',
          startedAt: new Date().toISOString(),
        },
        LIGHT_LEASE,
      );
      let movedAt = 0;
      const sub = await r.watchAssignments(standby, (set) => {
        if (movedAt === 0 && set.items.some((a) => a.unit === unit)) movedAt = performance.now();
      });
      const killedAt = performance.now();
      victim.kill('SIGKILL');
      await until('moved to standby', () => (movedAt > 0 ? true : undefined), 60_000, 5);
      sub.close();
      times.push(movedAt - killedAt);
      process.stderr.write(`failover trial ${i + 1}/${TRIALS}: ${fmt(movedAt - killedAt)} ms\n`);
    }
    return [
      `### Control-plane failover (issue 3)`,
      '',
      `A host's \`fleetd\` is SIGKILLed (its unit can only move to one standby machine); time until the`,
      `unit's new assignment is seen by the standby's watch. ${TRIALS} trials, lease TTL ${TTL / 1000} s (default),`,
      'keepalive every 1 s.',
      '',
      '| measure | value | expected |',
      '|---|---|---|',
      `| p50 | ${fmt(median(times) / 1000, 2)} s | about the TTL |`,
      `| p95 | ${fmt(percentile(times, 95) / 1000, 2)} s | about the TTL |`,
      `| min / max | ${fmt(Math.min(...times) / 1000, 2)} s / ${fmt(Math.max(...times) / 1000, 2)} s | between TTL − keepalive and TTL + etcd's expiry check |`,
    ].join('\n');
  } finally {
    await h.close();
  }
}

const ALL = { placement, steady, failover } as const;
const only = process.argv.slice(2).filter((a) => !a.startsWith('--'));
for (const [name, fn] of Object.entries(ALL)) {
  if (only.length > 0 && !only.includes(name)) continue;
  process.stderr.write(`bench control-plane/${name}…\n`);
  const md = await fn();
  writeSection(`control-plane-${name}`, md);
  process.stdout.write(md + '\n\n');
}
