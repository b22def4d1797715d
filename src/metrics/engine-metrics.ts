// What the engine leader records: pass durations, placements and moves, and failovers, timed from
// when it saw a machine's key go (its lease expired or was revoked) to when a unit that machine ran
// is reported active on its new machine. The engine calls it; it never decides anything.
import type { MachineId, UnitName, UnitStatus } from '../cluster/types.js';
import type { Clock } from '../lib/clock.js';
import type { FleetMetrics } from './fleet-metrics.js';

/** One unit written to a machine by a plan (the engine's assign decisions). */
export interface Placed {
  readonly unit: UnitName;
  readonly machine: MachineId;
  /** The machine it left, for a move. */
  readonly movedFrom?: MachineId;
  /** True when `movedFrom` is no longer in the cluster: a failover. */
  readonly fromGone?: boolean;
}

/** A failover still waiting for its unit to be active; dropped after this long (it never started). */
const FAILOVER_WAIT_MS = 15 * 60_000;

export class EngineMetrics {
  readonly #m: FleetMetrics;
  readonly #clock: Clock;
  /** When (wall clock) each machine's key was seen deleted; forgotten when it registers again. */
  readonly #goneAt = new Map<MachineId, number>();
  /** Units moved off a gone machine, until they are active on `machine`. */
  readonly #pending = new Map<UnitName, { machine: MachineId; since: number }>();

  constructor(metrics: FleetMetrics, clock: Clock) {
    this.#m = metrics;
    this.#clock = clock;
  }

  pass(outcome: 'settled' | 'applied' | 'conflict' | 'failed', ms: number): void {
    this.#m.enginePassSeconds.observe({ outcome }, ms / 1000);
  }

  /** From the engine's watch: a machine's key was deleted (lease expired or revoked) or created. */
  machineLeft(machine: MachineId): void {
    this.#goneAt.set(machine, this.#clock.now());
  }

  machineJoined(machine: MachineId): void {
    this.#goneAt.delete(machine);
  }

  /** A plan was written: counts placements and moves, and starts timing failovers. */
  placed(placed: readonly Placed[]): void {
    const now = this.#clock.now();
    for (const p of placed) {
      this.#m.placements.inc({ kind: p.movedFrom === undefined ? 'new' : 'move' });
      if (p.movedFrom === undefined) {
        this.#pending.delete(p.unit);
        continue;
      }
      this.#m.moves.inc({ reason: p.fromGone === true ? 'machine_gone' : 'constraint' });
      const earlier = this.#pending.get(p.unit);
      if (p.fromGone === true || earlier !== undefined) {
        // A unit moved again before it started keeps the time of the first loss.
        const since = earlier?.since ?? this.#goneAt.get(p.movedFrom) ?? now;
        this.#pending.set(p.unit, { machine: p.machine, since });
      }
    }
  }

  /** Whether a status change of `unit` may end a failover (the engine then runs a pass to see it). */
  waitsFor(unit: UnitName): boolean {
    return this.#pending.has(unit);
  }

  /** Each pass: failovers whose unit is now active on its new machine are observed. */
  statuses(statuses: readonly UnitStatus[], units: ReadonlyMap<UnitName, unknown>): void {
    if (this.#pending.size === 0) return;
    const now = this.#clock.now();
    for (const s of statuses) {
      const p = this.#pending.get(s.unit);
      if (p === undefined || p.machine !== s.machine || s.active !== 'active') continue;
      this.#m.failoverSeconds.observe(Math.max(0, now - p.since) / 1000);
      this.#pending.delete(s.unit);
    }
    for (const [unit, p] of this.#pending)
      if (!units.has(unit) || now - p.since > FAILOVER_WAIT_MS) this.#pending.delete(unit);
  }

  /** Leadership ended: another engine places units now, and times what it sees. */
  termEnded(): void {
    this.#pending.clear();
  }
}
