// Start bursts and the cost of a unit (issue 15), on a 3-host dev cluster (root: network
// namespaces) with the process runtime, etcd members in the hosts (the dev cluster's default):
//  1. `fleetts start s@{1..100}.service` (a template, `sleep infinity`), blocking until all are
//     active, BENCH_BURST_RUNS times (default 3), each followed by `fleetts destroy`: the command's
//     wall time, and when the 100th status became active in etcd (polled every 25 ms);
//  2. idle for 60 s with those 100 units spread over the hosts: each fleetd's CPU and RSS, and the
//     supervision's (every process in a host's namespace that is neither fleetd, etcd nor a unit's
//     own process tree) CPU and PSS;
//  3. failover of a host that is not the engine leader (~33 units): until its units are active
//     elsewhere; the 1-minute load average is sampled every second from the first burst to 30 s
//     after the failover (the machine's, so other work on it counts too);
//  4. 100 units pinned to one host that is not the engine leader: its fleetd's RSS and CPU idle,
//     and the supervision's CPU and PSS per unit.
// Run alone: `node --import=tsx bench/start-burst.bench.ts`.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { UnitStatus } from '../src/cluster/types.js';
import { systemClock } from '../src/lib/clock.js';
import { DevCluster } from '../src/dev/dev-cluster.js';
import type { ClusterPlan, HostPlan } from '../src/dev/plan.js';
import { readState } from '../src/dev/state.js';
import { createEtcdRegistry, type EtcdRegistry } from '../src/registry/etcd-registry.js';
import { fmt, median, processCpuMs, processMemoryMb, ROOT, until, writeSection } from './lib.js';

const UNITS = 100;
const RUNS = Number(process.env['BENCH_BURST_RUNS'] ?? 3);
const IDLE_MS = 60_000;

if (process.getuid?.() !== 0) throw new Error('bench/start-burst.bench.ts needs root (network namespaces)');

const dev = new DevCluster({
  stateDir: '/var/lib/fleetts-bench-burst',
  clock: systemClock,
  progress: (line) => process.stderr.write(`  · ${line}\n`),
  contextFile: '/var/lib/fleetts-bench-burst.context.json',
});
const log = (line: string): void => void process.stderr.write(`${line}\n`);
const sleep = (ms: number): Promise<void> => systemClock.sleep(ms);
const now = (): number => systemClock.monotonic();

const work = mkdtempSync(join(tmpdir(), 'fleetts-burst-'));
writeFileSync(
  join(work, 's@.service'),
  '[Unit]\nDescription=burst %i\n\n[Service]\nExecStart=/bin/sleep infinity\n',
);

let plan: ClusterPlan;
let registry: EtcdRegistry = undefined as unknown as EtcdRegistry;
let endpoint = '';

/** The CLI as a user runs it, from the directory holding the unit files; resolves with its wall time. */
function cli(args: readonly string[]): number {
  const start = now();
  const r = spawnSync(process.execPath, [join(ROOT, 'bin/fleetts.js'), '--endpoint', endpoint, ...args], {
    cwd: work,
    encoding: 'utf8',
  });
  const ms = now() - start;
  if (r.status !== 0)
    throw new Error(`fleetts ${args.slice(0, 2).join(' ')}… exited ${r.status}: ${r.stderr}`);
  return ms;
}

const names = (prefix: string): string[] =>
  Array.from({ length: UNITS }, (_, i) => `${prefix}@${i + 1}.service`);

async function statuses(prefix: string): Promise<UnitStatus[]> {
  const set = await registry.listStatuses();
  return set.items.filter((s) => s.unit.startsWith(`${prefix}@`));
}

async function activeCount(prefix: string): Promise<number> {
  return (await statuses(prefix)).filter((s) => s.active === 'active' && s.pid !== undefined).length;
}

// --- load average: sampled every second for the whole run -------------------------------------
const loadSamples: { at: number; load1: number }[] = [];
const loadTimer = setInterval(() => {
  const load1 = Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
  loadSamples.push({ at: now(), load1 });
}, 1000);
const maxLoad = (from: number, to: number): number =>
  Math.max(...loadSamples.filter((s) => s.at >= from && s.at <= to).map((s) => s.load1));

// --- processes of a host ------------------------------------------------------------------------
interface HostProcs {
  fleetd: number | undefined;
  supervision: number[];
  units: number[];
}

function children(): Map<number, number[]> {
  const out = new Map<number, number[]>();
  for (const line of execFileSync('ps', ['-e', '-o', 'pid=,ppid='], { encoding: 'utf8' })
    .trim()
    .split('\n')) {
    const [pid, ppid] = line.trim().split(/\s+/).map(Number);
    if (pid === undefined || ppid === undefined) continue;
    out.set(ppid, [...(out.get(ppid) ?? []), pid]);
  }
  return out;
}

async function hostProcs(host: HostPlan, unitPids: ReadonlySet<number>): Promise<HostProcs> {
  const state = await readState(dev.stateDir);
  const own = new Map((state?.processes ?? []).map((p) => [p.pid, p.id]));
  const fleetd = state?.processes.find((p) => p.id === `${host.name}/fleetd`)?.pid;
  const kids = children();
  // A unit's own tree: its main process and everything under it.
  const unitTree = new Set<number>();
  const add = (pid: number): void => {
    if (unitTree.has(pid)) return;
    unitTree.add(pid);
    for (const c of kids.get(pid) ?? []) add(c);
  };
  const inNs = execFileSync('ip', ['netns', 'pids', host.netns], { encoding: 'utf8' })
    .trim()
    .split('\n')
    .filter((l) => l !== '')
    .map(Number);
  for (const pid of inNs) if (unitPids.has(pid)) add(pid);
  const supervision = inNs.filter((p) => !own.has(p) && !unitTree.has(p) && p !== fleetd);
  return { fleetd, supervision, units: inNs.filter((p) => unitTree.has(p)) };
}

function pssKb(pid: number): number {
  try {
    const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    return Number(m?.[1] ?? 0);
  } catch {
    return 0;
  }
}

const cpuOf = (pids: readonly number[]): number =>
  pids.reduce((sum, p) => {
    try {
      return sum + processCpuMs(p);
    } catch {
      return sum;
    }
  }, 0);

interface IdleFigures {
  host: string;
  units: number;
  fleetdCpuPct: number;
  fleetdRssMb: number;
  supervisionProcs: number;
  supervisionCpuPct: number;
  supervisionPssMb: number;
  unitPssMb: number;
}

/** Idle CPU over IDLE_MS and memory of each host's fleetd and supervision. */
async function idle(hosts: readonly HostPlan[], prefix: string): Promise<IdleFigures[]> {
  const st = await statuses(prefix);
  const pids = new Set(st.flatMap((s) => (s.pid === undefined ? [] : [s.pid])));
  const perHost = await Promise.all(hosts.map((h) => hostProcs(h, pids)));
  const cpu0 = perHost.map((p) => ({
    f: cpuOf(p.fleetd === undefined ? [] : [p.fleetd]),
    s: cpuOf(p.supervision),
  }));
  const t0 = now();
  await sleep(IDLE_MS);
  const wall = now() - t0;
  return hosts.map((h, i) => {
    const p = perHost[i]!;
    const c0 = cpu0[i]!;
    const machine = h.machineId;
    return {
      host: h.name,
      units: st.filter((s) => s.machine === machine).length,
      fleetdCpuPct: ((cpuOf(p.fleetd === undefined ? [] : [p.fleetd]) - c0.f) / wall) * 100,
      fleetdRssMb: p.fleetd === undefined ? NaN : processMemoryMb(p.fleetd).rss,
      supervisionProcs: p.supervision.length,
      supervisionCpuPct: ((cpuOf(p.supervision) - c0.s) / wall) * 100,
      supervisionPssMb: p.supervision.reduce((s, x) => s + pssKb(x), 0) / 1024,
      unitPssMb: p.units.reduce((s, x) => s + pssKb(x), 0) / 1024,
    };
  });
}

async function leaderHost(): Promise<HostPlan> {
  const leader = await until('an engine leader', () => registry.getLeader(), 60_000, 100);
  const host = plan.hosts.find((h) => leader.candidate.startsWith(h.machineId));
  if (host === undefined) throw new Error(`engine leader ${leader.candidate} is not one of the hosts`);
  return host;
}

async function destroyAll(prefix: string): Promise<number> {
  const ms = cli(['destroy', ...names(prefix)]);
  await until(
    `${prefix}@ units gone`,
    async () => ((await statuses(prefix)).length === 0 ? true : undefined),
    120_000,
    100,
  );
  return ms;
}

interface BurstRun {
  cliMs: number;
  lastActiveMs: number;
  destroyMs?: number;
}

const bursts: BurstRun[] = [];
let spread: IdleFigures[] = [];
let pinned: IdleFigures | undefined;
let failover: { host: string; units: number; ms: number } | undefined;
const burstWindow = { from: 0, to: 0 };
const failoverWindow = { from: 0, to: 0 };

try {
  const up = await dev.up({ nodes: 3, sharedPath: '/srv/fleetts-bench-burst' });
  plan = up.plan;
  endpoint = up.endpoint;
  registry = createEtcdRegistry({ endpoints: [...plan.etcd.endpoints], requestTimeoutMs: 2_000 });
  cli(['submit', 's@.service']);

  burstWindow.from = now();
  for (let run = 1; run <= RUNS; run++) {
    await sleep(5_000);
    const start = now();
    let lastActiveMs = NaN;
    let polling = true;
    const poller = (async () => {
      while (polling) {
        if ((await activeCount('s').catch(() => 0)) === UNITS) {
          lastActiveMs = now() - start;
          return;
        }
        await sleep(25);
      }
    })();
    const cliMs = cli(['start', ...names('s')]);
    await until('100 active in etcd', () => (Number.isNaN(lastActiveMs) ? undefined : true), 60_000, 25);
    polling = false;
    await poller;
    const r: BurstRun = { cliMs, lastActiveMs };
    log(`burst ${run}: fleetts start ${fmt(cliMs)} ms, 100th active ${fmt(lastActiveMs)} ms`);
    if (run < RUNS) r.destroyMs = await destroyAll('s');
    bursts.push(r);
  }
  burstWindow.to = now() + 30_000;

  const leader = await leaderHost();
  await sleep(20_000);
  spread = await idle(plan.hosts, 's');
  for (const f of spread) log(JSON.stringify(f));

  // Failover of a non-leader host's units.
  const victim = plan.hosts.find((h) => h.name !== leader.name)!;
  const theirs = (await statuses('s')).filter((s) => s.machine === victim.machineId).map((s) => s.unit);
  // The CLI talks to a host that stays up.
  endpoint = `unix://${plan.hosts.find((h) => h.name !== victim.name)!.apiSocket}`;
  failoverWindow.from = now();
  let killedAt = 0;
  await dev.powerOff(victim.name, { onKill: () => (killedAt = now()) });
  await until(
    `${victim.name}'s ${theirs.length} units active elsewhere`,
    async () => {
      const st = await statuses('s');
      return theirs.every((u) =>
        st.some((s) => s.unit === u && s.machine !== victim.machineId && s.active === 'active'),
      )
        ? true
        : undefined;
    },
    120_000,
    50,
  );
  failover = { host: victim.name, units: theirs.length, ms: now() - killedAt };
  log(`failover of ${theirs.length} units: ${fmt(failover.ms)} ms`);
  await sleep(30_000);
  failoverWindow.to = now();
  const lastDestroy = await destroyAll('s');
  bursts[bursts.length - 1]!.destroyMs = lastDestroy;
  await dev.powerOn(victim.name);

  // 100 units on one host that is not the engine leader.
  const leader2 = await leaderHost();
  const target = plan.hosts.find((h) => h.name !== leader2.name)!;
  writeFileSync(
    join(work, 'p@.service'),
    `[Service]\nExecStart=/bin/sleep infinity\n\n[X-Fleet]\nMachineMetadata=hostname=${target.name}\n`,
  );
  await until(
    '3 hosts registered',
    async () => ((await registry.listMachines()).items.length === 3 ? true : undefined),
    120_000,
    250,
  );
  cli(['start', '--block-attempts', '0', ...names('p')]);
  await sleep(20_000);
  pinned = (await idle([target], 'p'))[0];
  log(JSON.stringify(pinned));
} finally {
  clearInterval(loadTimer);
  await (registry as EtcdRegistry | undefined)?.close().catch(() => undefined);
  await dev.down({ purge: true });
}

const ms = (n: number): string => `${fmt(n / 1000, 2)} s`;
const pct = (n: number): string => `${fmt(n, 2)} %`;
const spreadRows = spread.map(
  (f) =>
    `| ${f.host} | ${f.units} | ${pct(f.fleetdCpuPct)} | ${fmt(f.fleetdRssMb)} MB | ${f.supervisionProcs} | ${pct(f.supervisionCpuPct)} | ${fmt(f.supervisionPssMb, 1)} MB (${fmt(f.units === 0 ? NaN : f.supervisionPssMb / f.units, 2)} MB per unit) |`,
);
const p = pinned;
const lines = [
  '### Start bursts and the cost of a unit (issue 15)',
  '',
  'A 3-host dev cluster (`fleetts dev up`, process runtime, an etcd member in each host). The template',
  '`s@.service` runs `/bin/sleep infinity`. fleet v1.0 figures are those measured on the same machine kind',
  'when the issue was filed (fleet cannot be fetched here); fleetts figures are from this run. The load',
  "average is the machine's 1-minute figure from /proc/loadavg, sampled every second during this run (3",
  'etcd members, 3 fleetds and their supervisors share its 2 cores; nothing else ran).',
  '',
  '| measure | fleetts | fleet v1.0 | target |',
  '|---|---|---|---|',
  `| \`fleetts start s@{1..100}.service\` blocking, median of ${bursts.length} | ${ms(median(bursts.map((b) => b.cliMs)))} (${bursts.map((b) => ms(b.cliMs)).join(', ')}) | 3.3–7.4 s | ≤ 1 s |`,
  `| the 100th unit active in etcd, from the command's start, median | ${ms(median(bursts.map((b) => b.lastActiveMs)))} (${bursts.map((b) => ms(b.lastActiveMs)).join(', ')}) | | |`,
  `| \`fleetts destroy\` of the 100 | ${bursts.map((b) => (b.destroyMs === undefined ? '' : ms(b.destroyMs))).join(', ')} | 160–250 s | |`,
  `| failover of a host that is not the engine leader: its units active elsewhere | ${failover === undefined ? 'n/a' : `${ms(failover.ms)} (${failover.units} units)`} | | median ≤ 6 s |`,
  `| highest 1-minute load average, from the first burst to 30 s after the last | ${fmt(maxLoad(burstWindow.from, burstWindow.to), 2)} | 0.2–0.3 | ≤ 0.6 |`,
  `| highest 1-minute load average, from the failover to 30 s after | ${fmt(maxLoad(failoverWindow.from, failoverWindow.to), 2)} | 0.2–0.3 | ≤ 0.6 |`,
  '',
  `Idle for ${IDLE_MS / 1000} s with the 100 units spread over the hosts. *Supervision* is every process in a host's`,
  "namespace other than fleetd, etcd and the units' own process trees (the runtime's supervisors); PSS from",
  '/proc/PID/smaps_rollup, CPU from /proc/PID/stat over the window.',
  '',
  '| host | units | fleetd CPU | fleetd RSS | supervision processes | supervision CPU | supervision PSS |',
  '|---|---|---|---|---|---|---|',
  ...spreadRows,
  '',
  p === undefined
    ? ''
    : [
        `100 units pinned to ${p.host}, not the engine leader, idle for ${IDLE_MS / 1000} s:`,
        '',
        '| measure | fleetts | fleet v1.0 | target |',
        '|---|---|---|---|',
        `| fleetd RSS | ${fmt(p.fleetdRssMb)} MB | 16–19 MB | ≤ 60 MB |`,
        `| fleetd CPU | ${pct(p.fleetdCpuPct)} | | ≤ 1 % |`,
        `| supervision of the ${p.units} units: CPU | ${pct(p.supervisionCpuPct)} (${p.supervisionProcs} processes) | | ≤ 1 % |`,
        `| supervision PSS per unit | ${fmt(p.supervisionPssMb / p.units, 2)} MB (${fmt(p.supervisionPssMb, 1)} MB in all) | | ≤ 2 MB |`,
        `| the units' own processes (sleep), PSS per unit | ${fmt(p.unitPssMb / p.units, 2)} MB | | |`,
      ].join('\n'),
];
writeSection('start-burst', lines.join('\n'));
process.stdout.write(`${lines.join('\n')}\n`);
