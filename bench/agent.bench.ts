// Agent benchmarks (issue 4), with a real fleetd process on a real etcd:
//  1. assignment written → unit active, for process units and container units (median, p95);
//  2. idle cost with 500 local process units: fleetd's CPU and RSS, and the supervisors' memory.
// Run alone: `node --import=tsx bench/agent.bench.ts [latency|idle]`.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { asUnitName, type UnitName } from '../src/cluster/types.js';
import { createEtcdRegistry } from '../src/registry/etcd-registry.js';
import type { Registry } from '../src/registry/registry.js';
import { unitHash } from '../src/unit/hash.js';
import { startEtcd, type RunningEtcd } from '../test/helpers/etcd.js';
import { fmt, median, percentile, processCpuMs, processMemoryMb, ROOT, until, writeSection } from './lib.js';

const MARK = `fleetts-agent-bench-${process.pid}`;

interface Host {
  etcd: RunningEtcd;
  registry: Registry;
  fleetd: ChildProcess;
  dir: string;
  close(): Promise<void>;
}

async function host(runtime: 'process' | 'docker'): Promise<Host> {
  const etcd = await startEtcd();
  const dir = await mkdtemp(join(tmpdir(), 'bench-agent-'));
  const fleetd = spawn(
    process.execPath,
    [
      `${ROOT}bin/fleetd.js`,
      ...['--etcd-endpoints', etcd.endpoint, '--machine-id', 'bench-host', '--public-ip', '127.0.0.1'],
      ...[
        '--state-dir',
        dir,
        '--api-socket',
        join(dir, 'fleetd.sock'),
        '--runtime',
        runtime,
        '--log-level',
        'warn',
      ],
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  const registry = createEtcdRegistry({ endpoints: [etcd.endpoint], requestTimeoutMs: 30_000 });
  await until(
    'fleetd registered',
    async () => ((await registry.listMachines()).items.length === 1 ? true : undefined),
    30_000,
  );
  return {
    etcd,
    registry,
    fleetd,
    dir,
    async close() {
      // Destroy every unit so the supervisors stop their processes, then stop fleetd.
      const snap = await registry.snapshot({ unitFiles: 'none' });
      await Promise.all([...snap.units.keys()].map((u) => registry.deleteUnit(u)));
      await until(
        'units stopped',
        async () => ((await registry.listStatuses()).items.length === 0 ? true : undefined),
        120_000,
        200,
      ).catch(() => undefined);
      fleetd.kill('SIGTERM');
      await new Promise((r) => fleetd.once('exit', r));
      await registry.close();
      await etcd.stop();
      try {
        execFileSync('pkill', ['-f', MARK]);
      } catch {
        /* none left */
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Time from the assignment key's creation to the unit's status saying active, per unit, sequentially. */
async function startLatencies(h: Host, texts: (i: number) => string, count: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    const name = asUnitName(`lat-${i}.unit`);
    const text = texts(i);
    let assignedAt = 0;
    let activeAt = 0;
    const snap0 = await h.registry.snapshot({ unitFiles: 'none' });
    const sub = h.registry.watchCluster(['assignments', 'statuses'], snap0.revision, (wake) => {
      const now = performance.now();
      for (const r of wake.reasons) {
        if (r.kind === 'assignment_changed' && r.unit === name && assignedAt === 0) assignedAt = now;
        if (r.kind === 'status_changed' && r.unit === name && activeAt === 0) {
          void h.registry.listStatuses(name).then((s) => {
            if (activeAt === 0 && s.items.some((x) => x.active === 'active')) activeAt = now;
          });
        }
      }
    });
    await h.registry.createUnit({ name, hash: unitHash(text), target: 'launched' }, text);
    await until(
      `${name} active`,
      async () => {
        if (activeAt > 0) return true;
        const s = await h.registry.listStatuses(name);
        return s.items.some((x) => x.active === 'active') && activeAt > 0 ? true : undefined;
      },
      60_000,
      20,
    );
    sub.close();
    out.push(activeAt - assignedAt);
  }
  return out;
}

async function latency(): Promise<string> {
  const N = 20;
  const rows: string[] = [];
  const p = await host('process');
  try {
    const t = await startLatencies(
      p,
      (i) => `[Service]\nExecStart=/bin/sh -c 'exec sleep 100000 # ${MARK} ${i}'\n`,
      N,
    );
    rows.push(
      `| process unit (\`[Service]\`, \`/bin/sh -c 'exec sleep …'\`) | ${N} | ${fmt(median(t))} ms | ${fmt(percentile(t, 95))} ms |`,
    );
  } finally {
    await p.close();
  }
  const d = await host('docker');
  try {
    const t = await startLatencies(
      d,
      (i) => `[Container]\nImage=fleetts/base:bookworm\nPull=never\nExec=sleep 100000\nEnvironment=N=${i}\n`,
      N,
    );
    rows.push(
      `| container unit (\`[Container]\`, \`fleetts/base:bookworm\`, \`sleep\`) | ${N} | ${fmt(median(t))} ms | ${fmt(percentile(t, 95))} ms |`,
    );
  } finally {
    await d.close();
  }
  return [
    '### Assignment → unit active (issue 4)',
    '',
    'A real `fleetd` (engine and agent) on one host; each unit is submitted alone. Measured from the',
    "assignment key's creation (seen by a watch) to the unit's status `active` in etcd: the agent's",
    'watch, the unit file fetch and parse, the run claim, the runtime start, and the status write.',
    '',
    '| unit | runs | median | p95 |',
    '|---|---|---|---|',
    ...rows,
  ].join('\n');
}

function supervisorsMemory(): { count: number; rssMb: number; pssMb: number } {
  let count = 0;
  let rss = 0;
  let pss = 0;
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    let cmd = '';
    try {
      cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    } catch {
      continue;
    }
    if (!cmd.includes('supervisor-main')) continue;
    count++;
    try {
      rss += processMemoryMb(Number(pid)).rss;
      const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
      pss += Number(/Pss:\s+(\d+) kB/.exec(rollup)?.[1] ?? 0) / 1024;
    } catch {
      /* exited */
    }
  }
  return { count, rssMb: rss, pssMb: pss };
}

async function idle(): Promise<string> {
  const UNITS = Number(process.env['BENCH_IDLE_UNITS'] ?? 500);
  const IDLE_S = 30;
  const h = await host('process');
  try {
    const text = `[Service]\nExecStart=/bin/sh -c 'exec sleep 100000 # ${MARK}'\n`;
    const names: UnitName[] = Array.from({ length: UNITS }, (_, i) => asUnitName(`idle@${i}.unit`));
    await h.registry.createUnits(
      names.map((name) => ({ unit: { name, hash: unitHash(text), target: 'launched' as const }, text })),
    );
    const t0 = performance.now();
    await until(
      `${UNITS} units active`,
      async () => {
        const active = (await h.registry.listStatuses()).items.filter((s) => s.active === 'active').length;
        process.stderr.write(`\r${active}/${UNITS} active`);
        return active === UNITS ? true : undefined;
      },
      600_000,
      1_000,
    );
    const startAll = performance.now() - t0;
    await new Promise((r) => setTimeout(r, 5_000));
    const pid = h.fleetd.pid!;
    const cpu0 = processCpuMs(pid);
    const w0 = performance.now();
    await new Promise((r) => setTimeout(r, IDLE_S * 1000));
    const cpuPct = ((processCpuMs(pid) - cpu0) / (performance.now() - w0)) * 100;
    const mem = processMemoryMb(pid);
    const sup = supervisorsMemory();
    return [
      `### Agent idle cost with ${UNITS} local units (issue 4)`,
      '',
      `${UNITS} process units (\`sleep\`) on one real \`fleetd\`; all became active ${fmt(startAll / 1000, 1)} s after a batch submit.`,
      `Then ${IDLE_S} s with nothing changing. fleet's agent burned CPU from about 500 units per host.`,
      '',
      '| measure | value | target |',
      '|---|---|---|',
      `| fleetd CPU while idle | ${fmt(cpuPct, 2)} % of a core | < 1 % |`,
      `| fleetd RSS | ${fmt(mem.rss)} MB (peak ${fmt(mem.peak)} MB) | < 150 MB |`,
      `| per-unit supervisors (${sup.count} Node processes) | RSS ${fmt(sup.rssMb)} MB in all; PSS ${fmt(sup.pssMb)} MB (${fmt(sup.pssMb / Math.max(1, sup.count), 1)} MB each) | reported separately |`,
    ].join('\n');
  } finally {
    await h.close();
  }
}

const ALL = { latency, idle } as const;
const only = process.argv.slice(2);
for (const [name, fn] of Object.entries(ALL)) {
  if (only.length > 0 && !only.includes(name)) continue;
  process.stderr.write(`bench agent/${name}…\n`);
  const md = await fn();
  writeSection(`agent-${name}`, md);
  process.stdout.write(md + '\n\n');
}
