// Finding and signalling all processes of one unit, including ones that setsid/daemonize away
// from their parent (systemd's KillMode=control-group). Preferred: a cgroup per unit (v2, else v1
// `pids`), which no process can leave. Fallback without cgroups: every Exec step runs in its own
// session with FLEETTS_INVOCATION_ID=<token> in its environment, and the unit's processes are the
// /proc entries carrying that token, in those sessions, or descended from either. A process that
// both clears its environment and double-forks escapes the fallback; none escapes a cgroup.

import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';
import { environHas, listPids, readProcStat } from './proc.js';
import type { TrackingConfig } from './supervisor-protocol.js';

export interface ProcessTree {
  readonly tracking: TrackingConfig;
  /**
   * Runs `spawn` (which must fork synchronously, as child_process.spawn does) so that the new
   * process starts inside the unit's tree: with a cgroup, the supervisor joins the unit's cgroup
   * for the duration of the call and then returns to its own.
   */
  spawnInside<T>(spawn: () => T): T;
  /** Tells the tree about a process just spawned (its session roots the proc-scan fallback). */
  register(pid: number): void;
  /** Pids of the unit's live processes (never the supervisor's). */
  pids(): number[];
  /** Sends `signal` to every process of the unit except `except`; returns how many were signalled. */
  signal(signal: NodeJS.Signals, except?: ReadonlySet<number>): number;
  /** Removes the unit's (empty) cgroup; a no-op when processes remain or there is none. */
  release(): void;
}

const SERVICE = 'service';
const SUPERVISOR = 'supervisor';

/**
 * Builds the tree for the supervisor from the runtime's decision. A per-unit supervisor moves
 * itself into the unit's `supervisor` cgroup; the host supervisor (`host`) lives in a cgroup of
 * its own beside the units' (hostSupervisorCgroup) and returns there after each spawn.
 */
export function openProcessTree(
  tracking: TrackingConfig,
  invocationToken: string,
  options: { readonly host?: boolean } = {},
): ProcessTree {
  return tracking.kind === 'proc-scan'
    ? new ScanTree(tracking, invocationToken)
    : new CgroupTree(tracking, options.host === true);
}

/** The cgroup.procs file of a unit's processes, which the host supervisor's shim joins ('' without a cgroup). */
export function serviceProcsFile(tracking: TrackingConfig): string {
  return tracking.kind === 'proc-scan' ? '' : join(tracking.path, SERVICE, 'cgroup.procs');
}

/**
 * The host supervisor's own cgroup, `<hierarchy>/<root>/.host-supervisor` (no unit name starts
 * with a dot), in the hierarchy the units' cgroups are made in (proc-scan: none).
 */
export function hostSupervisorCgroup(root: string, mode: 'auto' | 'proc-scan'): TrackingConfig {
  return chooseTracking(root, HOST_SUPERVISOR, mode);
}

const HOST_SUPERVISOR = '.host-supervisor';

class CgroupTree implements ProcessTree {
  readonly #service: string;
  readonly #supervisor: string;

  constructor(
    readonly tracking: Extract<TrackingConfig, { kind: 'cgroup1' | 'cgroup2' }>,
    host: boolean,
  ) {
    this.#service = join(tracking.path, SERVICE);
    this.#supervisor = host ? join(dirname(tracking.path), HOST_SUPERVISOR) : join(tracking.path, SUPERVISOR);
    mkdirSync(this.#service, { recursive: true });
    mkdirSync(this.#supervisor, { recursive: true });
    // The supervisor lives in its own cgroup beside the unit's: out of fleetd's cgroup (stopping
    // fleetd.service must not kill it) and out of the unit's (killing the unit must not kill it).
    // The host supervisor moved there at its start: moving a process costs the kernel an RCU grace
    // period, too much to repeat for every unit of a burst.
    if (!host) writeFileSync(join(this.#supervisor, 'cgroup.procs'), String(process.pid));
  }

  spawnInside<T>(spawn: () => T): T {
    writeFileSync(join(this.#service, 'cgroup.procs'), String(process.pid));
    try {
      return spawn();
    } finally {
      writeFileSync(join(this.#supervisor, 'cgroup.procs'), String(process.pid));
    }
  }

  register(): void {}

  pids(): number[] {
    return readCgroupProcs(this.#service).filter((pid) => pid !== process.pid);
  }

  signal(signal: NodeJS.Signals, except: ReadonlySet<number> = new Set()): number {
    let n = 0;
    for (const pid of this.pids()) {
      if (except.has(pid)) continue;
      if (trySignal(pid, signal)) n++;
    }
    return n;
  }

  release(): void {
    try {
      rmdirSync(this.#service);
    } catch {
      // still populated (KillMode=process/none leave processes behind) or already gone
    }
  }
}

class ScanTree implements ProcessTree {
  readonly #entry: string;
  readonly #sessions = new Set<number>();

  constructor(
    readonly tracking: TrackingConfig,
    token: string,
  ) {
    this.#entry = `FLEETTS_INVOCATION_ID=${token}`;
  }

  spawnInside<T>(spawn: () => T): T {
    return spawn();
  }

  register(pid: number): void {
    // Spawned detached: each Exec step leads its own session.
    this.#sessions.add(pid);
  }

  pids(): number[] {
    const stats = [];
    for (const pid of listPids()) {
      if (pid === process.pid) continue;
      const st = readProcStat(pid);
      if (st !== undefined && st.state !== 'Z') stats.push(st);
    }
    const members = new Set<number>();
    for (const st of stats) {
      if (this.#sessions.has(st.session) || environHas(st.pid, this.#entry)) members.add(st.pid);
    }
    // Descendants of members, whatever their session or environment (to a fixed point).
    for (let grew = true; grew;) {
      grew = false;
      for (const st of stats) {
        if (!members.has(st.pid) && members.has(st.ppid)) {
          members.add(st.pid);
          grew = true;
        }
      }
    }
    return [...members].sort((a, b) => a - b);
  }

  signal(signal: NodeJS.Signals, except: ReadonlySet<number> = new Set()): number {
    let n = 0;
    for (const pid of this.pids()) {
      if (except.has(pid)) continue;
      if (trySignal(pid, signal)) n++;
    }
    return n;
  }

  release(): void {}
}

function readCgroupProcs(dir: string): number[] {
  try {
    return readFileSync(join(dir, 'cgroup.procs'), 'latin1')
      .split('\n')
      .filter((s) => s !== '')
      .map(Number)
      .filter((pid) => readProcStat(pid)?.state !== 'Z');
  } catch {
    return [];
  }
}

function trySignal(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
}

/**
 * Decides how a unit's processes are tracked (runtime side): a cgroup directory `<root>/<unitDir>`
 * in the cgroup v2 hierarchy if one is mounted and writable, else in the v1 `pids` hierarchy, else
 * the /proc scan. `root` is relative to the hierarchy's mount point (e.g. `fleetts/3fa9c1…`).
 */
export function chooseTracking(root: string, unit: string, mode: 'auto' | 'proc-scan'): TrackingConfig {
  if (mode === 'proc-scan') return { kind: 'proc-scan' };
  for (const m of cgroupMounts()) {
    const path = join(m.mountPoint, root, unit);
    try {
      mkdirSync(path, { recursive: true });
      if (!existsSync(join(path, 'cgroup.procs'))) continue;
      return { kind: m.version === 2 ? 'cgroup2' : 'cgroup1', path };
    } catch {
      // not writable (not root, read-only mount, no delegation): try the next
    }
  }
  return { kind: 'proc-scan' };
}

/**
 * Removes a unit's cgroup directories once empty (runtime side, after its supervisor exited);
 * true when none is left.
 */
export function removeUnitCgroup(tracking: TrackingConfig): boolean {
  if (tracking.kind === 'proc-scan') return true;
  for (const dir of [join(tracking.path, SERVICE), join(tracking.path, SUPERVISOR), tracking.path]) {
    try {
      rmdirSync(dir);
    } catch {
      // populated (a process left by KillMode=process/none, an exiting supervisor) or gone
    }
  }
  const gone = !existsSync(tracking.path);
  if (gone) {
    try {
      rmdirSync(dirname(tracking.path)); // this fleetd's cgroup root, when its last unit goes
    } catch {
      // other units remain
    }
  }
  return gone;
}

/** Pids in a unit's cgroup (runtime side: to clean up after a supervisor that died). */
export function unitCgroupPids(tracking: TrackingConfig): number[] {
  return tracking.kind === 'proc-scan' ? [] : readCgroupProcs(join(tracking.path, SERVICE));
}

interface CgroupMount {
  readonly mountPoint: string;
  readonly version: 1 | 2;
}

/** Where the units of the runtime keeping its state in `stateDir` get their cgroups (in each hierarchy). */
export function defaultCgroupRoot(stateDir: string): string {
  return `fleetts/${createHash('sha256').update(resolve(stateDir)).digest('hex').slice(0, 12)}`;
}

/** cgroup2 mounts first, then v1 hierarchies with the pids controller. */
function cgroupMounts(): CgroupMount[] {
  let text: string;
  try {
    text = readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return [];
  }
  const v2: CgroupMount[] = [];
  const v1: CgroupMount[] = [];
  for (const line of text.split('\n')) {
    const [left, right] = line.split(' - ');
    if (left === undefined || right === undefined) continue;
    const mountPoint = unescapeMount(left.split(' ')[4] ?? '');
    const [fstype, , options = ''] = right.split(' ');
    if (fstype === 'cgroup2') v2.push({ mountPoint, version: 2 });
    else if (fstype === 'cgroup' && options.split(',').includes('pids')) v1.push({ mountPoint, version: 1 });
  }
  return [...v2, ...v1];
}

function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}
