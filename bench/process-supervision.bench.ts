// What supervising idle process units costs, per-unit Node supervisors against the host supervisor
// (one Node process per state dir, a Perl shim per unit): `npm run build` first, then
// `node --import=tsx bench/process-supervision.bench.ts [units] [seconds]`. For each kind: start N
// units (`sleep`) through ProcessRuntime.start one after another (time until all run), then the
// PSS of every supervising process (smaps_rollup; the units' own processes left out) and their CPU
// (utime + stime from /proc/<pid>/stat) over the window, idle.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { asUnitName } from '../src/cluster/types.js';
import { hostPaths, readHostLock } from '../src/runtime/host-supervisor-protocol.js';
import { ProcessRuntime } from '../src/runtime/process-runtime.js';
import { parseSupervisorStatus } from '../src/runtime/records.js';
import { unitPaths } from '../src/runtime/supervisor-protocol.js';
import { parseShimRecord } from '../src/runtime/unit-shim.js';
import { config, step } from '../test/runtime/helpers.js';
import { fmt, ROOT, writeSection } from './lib.js';

const UNITS = Number(process.argv[2] ?? 100);
const WINDOW_S = Number(process.argv[3] ?? 30);
const CLK_TCK = 100;
const DIST = join(ROOT, 'dist/runtime');
const flags = ['--max-semi-space-size=1'];
if (!existsSync(join(DIST, 'host-supervisor-main.js')))
  throw new Error(`${DIST}/host-supervisor-main.js is missing: run npm run build first`);

interface Result {
  readonly mode: 'per-unit' | 'host';
  readonly startMs: number;
  readonly pssKb: number;
  readonly processes: number;
  readonly cpuPct: number;
}

function pss(pid: number): number {
  const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
  return Number(m?.[1] ?? 0);
}

function cpuTicks(pid: number): number {
  const rest = readFileSync(`/proc/${pid}/stat`, 'latin1').split(') ')[1]?.split(' ') ?? [];
  return Number(rest[11]) + Number(rest[12]);
}

async function measure(mode: 'per-unit' | 'host'): Promise<Result> {
  const stateDir = mkdtempSync(join(tmpdir(), 'fleetts-sup-bench-'));
  const runtime = new ProcessRuntime({
    stateDir,
    supervisor: mode,
    cgroupRoot: `fleetts-bench/${mode}`,
    supervisorCommand: {
      command: process.execPath,
      args: [...flags, '--max-old-space-size=64', join(DIST, 'supervisor-main.js')],
    },
    hostSupervisorCommand: {
      command: process.execPath,
      args: [...flags, '--max-old-space-size=128', join(DIST, 'host-supervisor-main.js')],
    },
  });
  const units = Array.from({ length: UNITS }, (_, i) => asUnitName(`idle-${i}.service`));
  try {
    const t0 = performance.now();
    for (const u of units) await runtime.start(config(u, { execStart: [step('/bin/sleep', '100000')] }));
    for (;;) {
      const all = await runtime.list();
      if (all.filter((o) => o.sub === 'running').length === UNITS) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const startMs = performance.now() - t0;
    await new Promise((r) => setTimeout(r, 3000)); // let start-up garbage settle
    const pids = new Set<number>();
    for (const u of units) {
      const p = unitPaths(stateDir, u);
      const s = parseSupervisorStatus(readFileSync(p.status, 'utf8'), p.status);
      if (s.ok) pids.add(s.value.supervisor.pid);
      const record = join(p.dir, 'main.json');
      if (existsSync(record)) {
        const shim = parseShimRecord(readFileSync(record, 'utf8'), record);
        if (shim.ok) pids.add(shim.value.shim.pid);
      }
    }
    const host = readHostLock(hostPaths(stateDir).lock);
    if (host !== undefined) pids.add(host.pid);
    const list = [...pids];
    const before = list.map(cpuTicks);
    await new Promise((r) => setTimeout(r, WINDOW_S * 1000));
    const after = list.map(cpuTicks);
    const ticks = after.reduce((a, b) => a + b, 0) - before.reduce((a, b) => a + b, 0);
    const pssKb = list.map(pss).reduce((a, b) => a + b, 0);
    return {
      mode,
      startMs,
      pssKb,
      processes: list.length,
      cpuPct: (100 * ticks) / CLK_TCK / WINDOW_S,
    };
  } finally {
    for (const u of units) await runtime.remove(u).catch(() => undefined);
    await runtime.close();
    const host = readHostLock(hostPaths(stateDir).lock);
    if (host !== undefined) process.kill(host.pid, 'SIGTERM');
    rmSync(stateDir, { recursive: true, force: true });
  }
}

const load = loadavg()[0] ?? NaN;
const results: Result[] = [];
for (const mode of ['per-unit', 'host'] as const) {
  const r = await measure(mode);
  results.push(r);
  process.stderr.write(
    `${mode}: ${UNITS} starts in ${fmt(r.startMs)} ms; ${r.processes} supervising processes, ` +
      `PSS ${fmt(r.pssKb / 1024, 1)} MB (${fmt(r.pssKb / UNITS, 0)} kB per unit); CPU ${fmt(r.cpuPct, 2)} % of a core over ${WINDOW_S} s\n`,
  );
}
writeSection(
  'process-supervision',
  [
    '### Process runtime: what supervising idle units costs',
    '',
    `${UNITS} units (\`sleep\`) started through \`ProcessRuntime.start\` one after another, then idle. PSS`,
    'is the sum of `Pss` in `/proc/<pid>/smaps_rollup` over every supervising process (per-unit: one Node',
    'supervisor per unit; host: the host supervisor and one Perl shim per unit), the units themselves left',
    `out; CPU is their utime + stime over ${WINDOW_S} s idle. Load average (1 min) at the start: ${fmt(load, 2)}.`,
    '',
    '| supervisor | start of all units | processes | PSS in all | PSS per unit | CPU in all, idle | target |',
    '|---|---|---|---|---|---|---|',
    ...results.map(
      (r) =>
        `| ${r.mode} | ${fmt(r.startMs)} ms | ${r.processes} | ${fmt(r.pssKb / 1024, 1)} MB | ${fmt(r.pssKb / UNITS)} kB | ${fmt(r.cpuPct, 2)} % of a core | ≤ 2 MB PSS per unit, ≤ 1 % in all |`,
    ),
  ].join('\n'),
);
