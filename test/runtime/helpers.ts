// Helpers for the process runtime's real-process tests: unit configs, polling with a deadline, and
// a cleanup that leaves no supervisor, unit process, cgroup or state directory behind.

import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { asUnitHash, asUnitName, type UnitName } from '../../src/cluster/types.js';
import { ProcessRuntime, type ProcessRuntimeDeps } from '../../src/runtime/process-runtime.js';
import type { ExecStep, ObservedUnit, ProcessUnitConfig, Runtime } from '../../src/runtime/runtime.js';
import { parseSupervisorStatus } from '../../src/runtime/records.js';
import type { SupervisorStatus } from '../../src/runtime/supervisor-protocol.js';
import { isAlive, listPids, readProcStat } from '../../src/runtime/proc.js';
import { hostPaths, readHostLock } from '../../src/runtime/host-supervisor-protocol.js';
import { parseShimRecord } from '../../src/runtime/unit-shim.js';
import { waitFor } from '../helpers/wait.js';

export const step = (...argv: string[]): ExecStep => ({
  path: argv[0] ?? '',
  argv,
  ignoreFailure: false,
  privileged: false,
});
export const ignored = (...argv: string[]): ExecStep => ({ ...step(...argv), ignoreFailure: true });
export const sh = (script: string): ExecStep => step('/bin/sh', '-c', script);

let seq = 0;
export function unitName(prefix: string): UnitName {
  return asUnitName(`${prefix}-${++seq}.service`);
}

export function config(
  unit: UnitName,
  over: Partial<Omit<ProcessUnitConfig, 'kind' | 'unit'>>,
): ProcessUnitConfig {
  return {
    kind: 'process',
    unit,
    hash: asUnitHash('h1'),
    type: 'simple',
    execStartPre: [],
    execStart: [],
    execStartPost: [],
    execStop: [],
    execStopPost: [],
    execReload: [],
    restart: 'no',
    restartSecMs: 50,
    startLimitBurst: 5,
    startLimitIntervalMs: 10_000,
    timeoutStartMs: 10_000,
    timeoutStopMs: 5_000,
    killSignal: 'SIGTERM',
    killMode: 'control-group',
    env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' },
    remainAfterExit: false,
    successExitStatus: { codes: [], signals: [] },
    ...over,
  };
}

export interface TestHost {
  readonly stateDir: string;
  readonly cgroupRoot: string;
  readonly runtimes: ProcessRuntime[];
}

const hosts: TestHost[] = [];

/** A fresh state dir and cgroup root; everything under them is cleaned by `cleanupHosts`. */
export function newHost(): TestHost {
  const host = {
    stateDir: mkdtempSync(join(tmpdir(), 'fleetts-rt-')),
    cgroupRoot: `fleetts-test/${randomBytes(6).toString('hex')}`,
    runtimes: [],
  };
  hosts.push(host);
  return host;
}

let mode: 'host' | 'per-unit' = 'host';

/**
 * How the runtimes of this test file supervise their units (ProcessRuntimeDeps.supervisor): a file
 * that calls this before importing the tests runs them against that kind of supervisor.
 */
export function useSupervisor(m: 'host' | 'per-unit'): void {
  mode = m;
}

export function supervisorMode(): 'host' | 'per-unit' {
  return mode;
}

export function newRuntime(
  host: TestHost = newHost(),
  over: Partial<ProcessRuntimeDeps> = {},
): { runtime: ProcessRuntime; host: TestHost } {
  const runtime = new ProcessRuntime({
    stateDir: host.stateDir,
    cgroupRoot: host.cgroupRoot,
    resyncMs: 200,
    supervisor: mode,
    ...over,
  });
  host.runtimes.push(runtime);
  return { runtime, host };
}

/** Polls `probe` until it returns a value other than undefined/false; throws after `timeoutMs`. */
export { waitFor };

export async function observed(runtime: Runtime, unit: UnitName): Promise<ObservedUnit | undefined> {
  return (await runtime.list()).find((o) => o.unit === unit);
}

/** Waits until the unit is in `active` (and `sub`, if given). */
export function waitState(
  runtime: Runtime,
  unit: UnitName,
  active: ObservedUnit['active'],
  sub?: string,
  timeoutMs?: number,
): Promise<ObservedUnit> {
  return waitFor(
    `${unit} to be ${active}${sub === undefined ? '' : `/${sub}`}`,
    async () => {
      const o = await observed(runtime, unit);
      return o !== undefined && o.active === active && (sub === undefined || o.sub === sub) ? o : undefined;
    },
    timeoutMs,
  );
}

export async function journalLines(runtime: Runtime, unit: UnitName, lines = 1000): Promise<string[]> {
  const out: string[] = [];
  for await (const l of runtime.journal(unit, { lines })) out.push(l);
  return out;
}

export function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/** A unit's status.json, or undefined when it is missing or unreadable. */
export function readStatusFile(path: string): SupervisorStatus | undefined {
  const decoded = parseSupervisorStatus(readText(path), path);
  return decoded.ok ? decoded.value : undefined;
}

export function pidAlive(pid: number): boolean {
  const st = readProcStat(pid);
  return st !== undefined && st.state !== 'Z';
}

/** Kills every supervisor and unit process the tests started and removes their cgroups and state. */
export async function cleanupHosts(): Promise<void> {
  for (const host of hosts.splice(0)) {
    for (const r of host.runtimes) await r.close();
    const unitsDir = join(host.stateDir, 'units');
    let names: string[] = [];
    try {
      names = readdirSync(unitsDir);
    } catch {
      // nothing started
    }
    // The host supervisor first, so that it restarts nothing while its units are killed.
    const hostSupervisor = readHostLock(hostPaths(host.stateDir).lock);
    if (hostSupervisor !== undefined && isAlive(hostSupervisor)) kill(hostSupervisor.pid);
    for (const name of names) {
      const status = readStatusFile(join(unitsDir, name, 'status.json'));
      if (status !== undefined && isAlive(status.supervisor)) kill(status.supervisor.pid);
      const tokens =
        status === undefined
          ? []
          : [`${status.supervisor.pid}-${status.supervisor.startTime}-`, status.invocation ?? ''].filter(
              (x) => x !== '',
            );
      const shim = parseShimRecord(readText(join(unitsDir, name, 'main.json')), 'main.json');
      if (shim.ok && isAlive(shim.value.shim)) kill(shim.value.shim.pid);
      for (const pid of tokens.length === 0 ? [] : listPids()) {
        const environ = readText(`/proc/${pid}/environ`);
        if (tokens.some((token) => environ.includes(`FLEETTS_INVOCATION_ID=${token}`))) kill(pid);
      }
    }
    for (const mount of ['/sys/fs/cgroup/unified', '/sys/fs/cgroup', '/sys/fs/cgroup/pids']) {
      const root = join(mount, host.cgroupRoot);
      if (!existsSync(join(root, 'cgroup.procs'))) continue;
      const dirs = cgroupDirs(root);
      for (const dir of dirs) {
        for (const pid of readText(join(dir, 'cgroup.procs')).split('\n')) if (pid !== '') kill(Number(pid));
      }
      for (const dir of dirs.reverse()) {
        await waitFor(`${dir} to empty`, () => readText(join(dir, 'cgroup.procs')) === '', 5000).catch(
          () => undefined,
        );
        try {
          rmdirSync(dir);
        } catch {
          // busy: reported by the next run's leftovers
        }
      }
    }
    rmSync(host.stateDir, { recursive: true, force: true });
  }
  for (const mount of ['/sys/fs/cgroup/unified', '/sys/fs/cgroup', '/sys/fs/cgroup/pids']) {
    try {
      rmdirSync(join(mount, 'fleetts-test'));
    } catch {
      // not there, or another run's
    }
  }
}

/** A cgroup directory and all below it, parents first. */
function cgroupDirs(dir: string): string[] {
  const out = [dir];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.isDirectory()) out.push(...cgroupDirs(join(dir, e.name)));
  }
  return out;
}

function kill(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone
  }
}
