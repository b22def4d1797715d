// The simulation's runtime (harness.ts): what the REAL agent (src/agent/agent.ts) runs its units on
// in the simulation. A unit is an entry in memory that takes a simulated time to start and to stop
// (on the FakeClock), so that a unit can be active on two hosts at once if the agents let it. Each
// appearance and disappearance of a unit is reported to the harness: its ground truth.
import type { MachineId, UnitHash, UnitName } from '../../src/cluster/types.js';
import type { Clock, Timer } from '../../src/lib/clock.js';
import type { ChangeListener, ObservedUnit, ProcessUnitConfig, Runtime } from '../../src/runtime/runtime.js';

/** A unit's process on this host: it exists (and counts as active) from start until stopped. */
export type ProcPhase = 'starting' | 'running' | 'stopping';

export interface Proc {
  readonly unit: UnitName;
  readonly hash: UnitHash;
  readonly atMostOnce: boolean;
  readonly pid: number;
  /** Simulated time it was started. */
  readonly since: number;
  phase: ProcPhase;
  timer: Timer | undefined;
  /** Resolves when it has stopped (set while stopping). */
  stopped: Promise<void> | undefined;
  /** Why it is stopping: `fenced` or `unassigned` (decided when the stop was asked for). */
  why: string;
}

/** Called when a unit's process appears on (`up`) or disappears from (`down`) a host. */
export type ActivityHook = (event: {
  readonly kind: 'up' | 'down';
  readonly unit: UnitName;
  readonly hash: UnitHash;
  readonly machine: MachineId;
  readonly why: string;
}) => void;

export interface SimRuntimeDeps {
  readonly machine: MachineId;
  readonly clock: Clock;
  readonly startDelayMs: number;
  readonly stopDelayMs: number;
  readonly onActivity: ActivityHook;
  /** Why the agent stops a unit now (`fenced` while it is self-fenced, else `unassigned`). */
  readonly stopReason: () => string;
}

export class SimRuntime implements Runtime<ProcessUnitConfig> {
  readonly #d: SimRuntimeDeps;
  /** Units active on this host (any phase): the ground truth the invariants compare across hosts. */
  readonly procs = new Map<UnitName, Proc>();
  /** What `list` reports: every unit this runtime knows, stopped ones included (until removed). */
  readonly #observed = new Map<UnitName, ObservedUnit>();
  readonly #listeners = new Set<ChangeListener>();
  /** Each setFenceDeadline argument (the supervisors' deadline; the simulation kills hosts whole). */
  readonly deadlines: (number | undefined)[] = [];
  #dead = false;
  #pid = 1000;

  constructor(deps: SimRuntimeDeps) {
    this.#d = deps;
  }

  adopt(): Promise<ObservedUnit[]> {
    return Promise.resolve([]); // a simulated host starts empty (a kill is a power-off)
  }

  async start(config: ProcessUnitConfig): Promise<void> {
    if (this.#dead) return;
    const p = this.procs.get(config.unit);
    if (p !== undefined && p.hash === config.hash && p.phase !== 'stopping') return;
    if (p !== undefined) await this.stop(config.unit);
    if (this.#dead || this.procs.has(config.unit)) return;
    const proc: Proc = {
      unit: config.unit,
      hash: config.hash,
      atMostOnce: config.atMostOnce === true,
      pid: (this.#pid += 1),
      since: this.#d.clock.monotonic(),
      phase: 'starting',
      timer: undefined,
      stopped: undefined,
      why: '',
    };
    this.procs.set(config.unit, proc);
    this.#d.onActivity({
      kind: 'up',
      unit: proc.unit,
      hash: proc.hash,
      machine: this.#d.machine,
      why: 'assigned',
    });
    this.#set(proc, 'activating', 'start');
    proc.timer = this.#d.clock.setTimer(this.#d.startDelayMs, () => {
      proc.timer = undefined;
      proc.phase = 'running';
      this.#set(proc, 'active', 'running');
    });
  }

  stop(unit: UnitName): Promise<void> {
    const p = this.procs.get(unit);
    if (p === undefined || this.#dead) return Promise.resolve();
    if (p.stopped !== undefined) return p.stopped;
    p.timer?.cancel();
    p.phase = 'stopping';
    p.why = this.#d.stopReason();
    this.#set(p, 'deactivating', 'stop-sigterm');
    p.stopped = new Promise<void>((resolve) => {
      p.timer = this.#d.clock.setTimer(this.#d.stopDelayMs, () => {
        p.timer = undefined;
        this.#gone(p, p.why);
        this.#set(p, 'inactive', 'dead');
        resolve();
      });
    });
    return p.stopped;
  }

  async remove(unit: UnitName): Promise<void> {
    await this.stop(unit);
    this.#observed.delete(unit);
  }

  setFenceDeadline(remainingMs: number | undefined): void {
    this.deadlines.push(remainingMs);
    if (this.deadlines.length > 100) this.deadlines.splice(0, 50);
  }

  list(): Promise<ObservedUnit[]> {
    return Promise.resolve([...this.#observed.values()].sort((a, b) => (a.unit < b.unit ? -1 : 1)));
  }

  onChange(listener: ChangeListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  // eslint-disable-next-line require-yield
  async *journal(): AsyncIterable<string> {
    await Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  /** Power off: every unit dies at once, nothing is reported, nothing starts again. */
  kill(): void {
    this.#dead = true;
    for (const p of [...this.procs.values()]) {
      p.timer?.cancel();
      this.#gone(p, 'host killed');
    }
    this.#listeners.clear();
  }

  #gone(p: Proc, why: string): void {
    if (this.procs.get(p.unit) !== p) return;
    this.procs.delete(p.unit);
    this.#d.onActivity({ kind: 'down', unit: p.unit, hash: p.hash, machine: this.#d.machine, why });
  }

  #set(p: Proc, active: ObservedUnit['active'], sub: string): void {
    if (this.#dead) return;
    const o: ObservedUnit = {
      unit: p.unit,
      hash: p.hash,
      load: 'loaded',
      active,
      sub,
      since: new Date(this.#d.clock.now()).toISOString(),
      ...(active === 'inactive' ? {} : { pid: p.pid }),
      ...(p.atMostOnce ? { atMostOnce: true as const } : {}),
    };
    this.#observed.set(p.unit, o);
    for (const l of this.#listeners) l(o);
  }
}
