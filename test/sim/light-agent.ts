// A light agent for the cluster simulation (harness.ts): it follows the rules the real agent will
// follow — watch only this machine's assignments, run the launched ones, report statuses, and
// SELF-FENCE (stop everything) once its membership lease may be about to expire — but its "units"
// are entries in an in-memory map that take a simulated time to start and to stop.
import type { Assignment, MachineId, UnitHash, UnitName } from '../../src/cluster/types.js';
import type { Clock, Timer } from '../../src/lib/clock.js';
import type { Membership, Registry, Subscription } from '../../src/registry/registry.js';

/** A unit's process on this host: it exists (and counts as active) from start until stopped. */
export type ProcPhase = 'starting' | 'running' | 'stopping';

export interface Proc {
  readonly unit: UnitName;
  readonly hash: UnitHash;
  phase: ProcPhase;
  timer: Timer | undefined;
}

/** Called when a unit's process appears on (+1) or disappears from (-1) a host: the ground truth. */
export type ActivityHook = (event: {
  readonly kind: 'up' | 'down';
  readonly unit: UnitName;
  readonly hash: UnitHash;
  readonly machine: MachineId;
  readonly why: string;
}) => void;

export interface LightAgentDeps {
  readonly machine: MachineId;
  readonly registry: Registry;
  readonly clock: Clock;
  /** The host's current membership (undefined while it is not registered). */
  readonly membership: () => Membership | undefined;
  /** Stop all units when `monotonic - renewedAt() > fenceAfterMs` (DEFAULT_FENCE_AFTER_MS). */
  readonly fenceAfterMs: number;
  /** How often the fencing deadline is checked (besides every assignment change). */
  readonly checkMs: number;
  readonly startDelayMs: number;
  readonly stopDelayMs: number;
  readonly onActivity: ActivityHook;
  /** Global units run everywhere and take no run claim. */
  readonly isGlobal: (hash: UnitHash) => boolean;
}

export class LightAgent {
  readonly #d: LightAgentDeps;
  readonly procs = new Map<UnitName, Proc>();
  #assignments = new Map<UnitName, Assignment>();
  #sub: Subscription | undefined;
  #tick: Timer | undefined;
  #dead = false;
  /** Run claims this host holds (or is acquiring): a non-global unit starts only under its claim. */
  readonly #claims = new Set<UnitName>();
  readonly #claiming = new Set<UnitName>();
  #claimLease: string | undefined;
  /** True while fenced: nothing runs until a live membership is renewed again. */
  fenced = true;
  fences = 0;

  constructor(deps: LightAgentDeps) {
    this.#d = deps;
  }

  /** Starts the fencing timer at once, and the assignment watch (retrying while etcd is unreachable). */
  start(): void {
    this.#schedule();
    void this.#watch();
  }

  /** Power off: every process dies at once, nothing is reported, nothing runs again. */
  kill(): void {
    this.#dead = true;
    this.#tick?.cancel();
    this.#sub?.close();
    for (const p of [...this.procs.values()]) {
      p.timer?.cancel();
      this.#gone(p, 'host killed');
    }
  }

  /** Units this host runs now (any phase): what invariant 1 compares across hosts. */
  active(): UnitName[] {
    return [...this.procs.keys()];
  }

  running(): UnitName[] {
    return [...this.procs.values()].filter((p) => p.phase === 'running').map((p) => p.unit);
  }

  async #watch(): Promise<void> {
    let retryMs = 250;
    while (!this.#dead && this.#sub === undefined) {
      try {
        const sub = await this.#d.registry.watchAssignments(this.#d.machine, (set) => {
          this.#assignments = new Map(set.items.map((a) => [a.unit, a]));
          this.#reconcile();
        });
        if (this.#dead) sub.close();
        else this.#sub = sub;
      } catch {
        await this.#d.clock.sleep(retryMs);
        retryMs = Math.min(retryMs * 2, 2000);
      }
    }
  }

  #schedule(): void {
    if (this.#dead) return;
    this.#tick = this.#d.clock.setTimer(this.#d.checkMs, () => {
      this.#reconcile();
      this.#schedule();
    });
  }

  /** The real agent's rule: no renewal acknowledged for `fenceAfterMs` means stop everything now. */
  #isFenced(): boolean {
    const m = this.#d.membership();
    if (m === undefined || m.signal.aborted) return true;
    return this.#d.clock.monotonic() - m.renewedAt() > this.#d.fenceAfterMs;
  }

  #reconcile(): void {
    if (this.#dead) return;
    const fenced = this.#isFenced();
    if (fenced && !this.fenced) this.fences++;
    this.fenced = fenced;
    const want = new Map<UnitName, Assignment>();
    if (!fenced) {
      for (const a of this.#assignments.values()) if (a.target === 'launched') want.set(a.unit, a);
    }
    for (const p of this.procs.values()) {
      const w = want.get(p.unit);
      if (p.phase !== 'stopping' && (w === undefined || w.hash !== p.hash))
        this.#stop(p, fenced ? 'fenced' : 'unassigned');
    }
    for (const a of want.values()) {
      // A unit still stopping here starts again once it has stopped (see #gone).
      if (!this.procs.has(a.unit)) this.#claimThenStart(a);
    }
    // Claims of units no longer running here go back (the real agent's rule too).
    for (const unit of [...this.#claims]) {
      if (!this.procs.has(unit) && !want.has(unit) && !this.#claiming.has(unit)) this.#release(unit);
    }
  }

  /** The real agent's rule: a non-global unit starts only once this host holds its run claim. */
  #claimThenStart(a: Assignment): void {
    if (this.#d.isGlobal(a.hash)) return this.#start(a);
    const m = this.#d.membership();
    if (m === undefined) return;
    if (m.leaseId !== this.#claimLease) {
      // Claims live on the membership lease: a new lease holds none of the old ones.
      this.#claims.clear();
      this.#claimLease = m.leaseId;
    }
    if (this.#claims.has(a.unit)) return this.#start(a);
    if (this.#claiming.has(a.unit)) return;
    this.#claiming.add(a.unit);
    this.#d.registry
      .claimUnit(m, a.unit, this.#d.machine)
      .then((res) => {
        this.#claiming.delete(a.unit);
        if (!res.ok || this.#dead) return;
        this.#claims.add(a.unit);
        this.#reconcile();
      })
      .catch(() => this.#claiming.delete(a.unit));
  }

  /** Kept in `#claims` until etcd confirms, so a release that fails is retried by the next pass. */
  #release(unit: UnitName): void {
    const m = this.#d.membership();
    if (m === undefined || m.leaseId !== this.#claimLease) {
      this.#claims.delete(unit); // that lease and its claims are gone
      return;
    }
    if (this.#dead) return;
    this.#d.registry
      .releaseUnit(m, unit)
      .then(() => this.#claims.delete(unit))
      .catch(() => undefined);
  }

  #start(a: Assignment): void {
    const p: Proc = { unit: a.unit, hash: a.hash, phase: 'starting', timer: undefined };
    this.procs.set(a.unit, p);
    this.#d.onActivity({ kind: 'up', unit: a.unit, hash: a.hash, machine: this.#d.machine, why: 'assigned' });
    p.timer = this.#d.clock.setTimer(this.#d.startDelayMs, () => {
      p.timer = undefined;
      p.phase = 'running';
      this.#report(p, 'active', 'running');
    });
  }

  #stop(p: Proc, why: string): void {
    p.timer?.cancel();
    p.phase = 'stopping';
    p.timer = this.#d.clock.setTimer(this.#d.stopDelayMs, () => {
      p.timer = undefined;
      this.#gone(p, why);
      this.#report(p, 'inactive', 'dead');
      if (!this.#d.isGlobal(p.hash)) this.#release(p.unit);
      this.#reconcile();
    });
  }

  #gone(p: Proc, why: string): void {
    if (this.procs.get(p.unit) !== p) return;
    this.procs.delete(p.unit);
    this.#d.onActivity({ kind: 'down', unit: p.unit, hash: p.hash, machine: this.#d.machine, why });
  }

  /** Best effort, as the real reporter: a status write that fails is retried by the next change. */
  #report(p: Proc, active: 'active' | 'inactive', sub: string): void {
    const m = this.#d.membership();
    if (m === undefined || this.#dead) return;
    this.#d.registry
      .putStatus(m, {
        unit: p.unit,
        machine: this.#d.machine,
        hash: p.hash,
        load: 'loaded',
        active,
        sub,
        since: new Date(this.#d.clock.now()).toISOString(),
      })
      .catch(() => undefined);
  }
}
