// The scheduler's working state during one pass: which units are on which machine, indexed so that
// each predicate is a few map lookups (per machine: residents by the patterns they match, and by the
// Conflicts/Replaces patterns they carry). Mutable, but private to one pure `schedule` call.

import type { Machine, MachineId, Placement, UnitName } from '../cluster/types.js';
import type { SchedulableUnit } from '../cluster/view.js';
import type { PatternIndex } from './pattern-index.js';
import type { PlacedTarget } from './plan.js';

/** A unit with its placement normalised once per pass (deduplicated patterns, no self-MachineOf). */
export interface UnitInfo {
  readonly name: UnitName;
  readonly unit: SchedulableUnit;
  readonly placement: Placement;
  readonly machineOf: readonly UnitName[];
  readonly conflicts: readonly string[];
  readonly replaces: readonly string[];
  /** MachineMetadata as [key, accepted values] sorted by key, keys without values dropped. */
  readonly metadata: readonly (readonly [string, readonly string[]])[];
  readonly target: PlacedTarget;
  /** The Conflicts/Replaces patterns (of any unit) that this unit's name matches. */
  readonly matchedBy: readonly string[];
}

export class MachineSlot {
  readonly residents = new Set<UnitName>();
  /** pattern → residents whose name matches it. */
  readonly matching = new Map<string, Set<UnitName>>();
  /** pattern → residents that have it in Conflicts=. */
  readonly conflictOwners = new Map<string, Set<UnitName>>();
  /** pattern → residents that have it in Replaces=. */
  readonly replaceOwners = new Map<string, Set<UnitName>>();

  constructor(
    readonly machine: Machine,
    /** `fleetts drain`: no new placements here (predicates.ts); what is here leaves when released. */
    readonly drained = false,
  ) {}

  get id(): MachineId {
    return this.machine.id;
  }

  add(info: UnitInfo): void {
    this.residents.add(info.name);
    for (const p of info.matchedBy) addTo(this.matching, p, info.name);
    for (const p of info.conflicts) addTo(this.conflictOwners, p, info.name);
    for (const p of info.replaces) addTo(this.replaceOwners, p, info.name);
  }

  remove(info: UnitInfo): void {
    this.residents.delete(info.name);
    for (const p of info.matchedBy) this.matching.get(p)?.delete(info.name);
    for (const p of info.conflicts) this.conflictOwners.get(p)?.delete(info.name);
    for (const p of info.replaces) this.replaceOwners.get(p)?.delete(info.name);
  }
}

function addTo(map: Map<string, Set<UnitName>>, key: string, name: UnitName): void {
  const set = map.get(key);
  if (set === undefined) map.set(key, new Set([name]));
  else set.add(name);
}

export class PlacementState {
  /** Sorted by machine id, so every scan over machines is in tie-break order. */
  readonly slots: readonly MachineSlot[];
  private readonly slotById = new Map<string, MachineSlot>();
  private readonly placedOn = new Map<UnitName, Set<MachineId>>();
  private readonly leaderClosure = new Map<UnitName, ReadonlySet<UnitName>>();

  constructor(
    machines: readonly Machine[],
    readonly units: ReadonlyMap<UnitName, UnitInfo>,
    readonly index: PatternIndex,
    /** Units whose Replaces= form a cycle, each mapped to the cycle's members (sorted). */
    readonly replaceCycles: ReadonlyMap<UnitName, readonly UnitName[]>,
    /** Drained machines (ClusterView.drains). */
    drained: ReadonlySet<MachineId> = new Set(),
  ) {
    this.slots = machines
      .map((m) => new MachineSlot(m, drained.has(m.id)))
      .sort((a, b) => (a.id < b.id ? -1 : 1));
    for (const s of this.slots) this.slotById.set(s.id, s);
  }

  /** Whether `a` and `b` are on one Replaces= cycle (so neither displaces the other). */
  inReplaceCycle(a: UnitName, b: UnitName): boolean {
    const cycle = this.replaceCycles.get(a);
    return cycle !== undefined && cycle === this.replaceCycles.get(b);
  }

  /** Whether `leader` is among the units `unit` follows through MachineOf=, directly or not. */
  isLeaderOf(leader: UnitName, unit: UnitName): boolean {
    let closure = this.leaderClosure.get(unit);
    if (closure === undefined) {
      const seen = new Set<UnitName>();
      const todo = [...(this.units.get(unit)?.machineOf ?? [])];
      for (let n = todo.pop(); n !== undefined; n = todo.pop()) {
        if (seen.has(n)) continue;
        seen.add(n);
        todo.push(...(this.units.get(n)?.machineOf ?? []));
      }
      closure = seen;
      this.leaderClosure.set(unit, closure);
    }
    return closure.has(leader);
  }

  slot(id: string): MachineSlot | undefined {
    return this.slotById.get(id);
  }

  /** The machines the unit is placed on in the working state (several only for global units). */
  machinesOf(unit: UnitName): ReadonlySet<MachineId> {
    return this.placedOn.get(unit) ?? EMPTY;
  }

  isPlaced(unit: UnitName): boolean {
    return this.machinesOf(unit).size > 0;
  }

  place(info: UnitInfo, slot: MachineSlot): void {
    slot.add(info);
    let set = this.placedOn.get(info.name);
    if (set === undefined) {
      set = new Set();
      this.placedOn.set(info.name, set);
    }
    set.add(slot.id);
  }

  remove(info: UnitInfo, slot: MachineSlot): void {
    slot.remove(info);
    this.placedOn.get(info.name)?.delete(slot.id);
  }
}

const EMPTY: ReadonlySet<MachineId> = new Set();
