// Feasibility checks (Nomad's "feasibility checkers"): the first stage of the placement pipeline.
// Each predicate says whether one unit may be on one machine given the working state, and if not,
// why, in words that end up in plans, `fleetts plan` and `unschedulable/<unit>`.

import type { MachineId, UnitName } from '../cluster/types.js';
import type { MachineSlot, PlacementState, UnitInfo } from './placement-state.js';

/** One machine considered for one unit. */
export interface Candidate {
  readonly slot: MachineSlot;
  /** Residents the unit would push off this machine through Replaces= (empty when it may not). */
  readonly displaces: readonly UnitName[];
  /**
   * Judging an assignment the unit already has (the scheduler's keep phase), not a new placement:
   * a drained machine keeps what it has until the engine releases it.
   */
  readonly keep?: boolean;
}

export type PredicateName = 'drained' | 'machine-id' | 'machine-of' | 'metadata' | 'conflicts' | 'replaces';

export interface Predicate {
  readonly name: PredicateName;
  /**
   * undefined when the machine passes; otherwise why it does not, naming the machine where useful.
   * With `explain` false the reason may be the bare `REJECTED`: placement only needs a yes or no,
   * and building a million reasons nobody reads is most of a large pass's time.
   */
  check(state: PlacementState, unit: UnitInfo, candidate: Candidate, explain: boolean): string | undefined;
}

export const REJECTED = 'rejected';

export interface Rejection {
  readonly predicate: PredicateName;
  readonly reason: string;
}

/** `fleetts drain`: a drained machine takes no new placements (the first reason: it holds whatever the unit). */
const drainedPredicate: Predicate = {
  name: 'drained',
  check(_state, _unit, { slot, keep }, explain) {
    if (!slot.drained || keep === true) return undefined;
    if (!explain) return REJECTED;
    return `machine ${slot.id} is drained (fleetts drain): it takes no new placements`;
  },
};

/** MachineID=: the exact machine id, or else a prefix of it (as fleet accepted short ids). */
const machineIdPredicate: Predicate = {
  name: 'machine-id',
  check(state, unit, { slot }, explain) {
    const pin = unit.placement.machineId;
    if (pin === undefined || pinMatches(state, pin, slot.id)) return undefined;
    if (!explain) return REJECTED;
    return `MachineID=${pin} pins it to another machine`;
  },
};

/** MachineOf=: every named unit must be on this machine. */
const machineOfPredicate: Predicate = {
  name: 'machine-of',
  check(state, unit, { slot }, explain) {
    for (const leader of unit.machineOf) {
      const on = state.machinesOf(leader);
      if (on.has(slot.id)) continue;
      if (!explain) return REJECTED;
      if (on.size === 0) return `MachineOf=${leader}: ${leader} is not placed`;
      return `MachineOf=${leader}: ${leader} is on ${[...on].sort().join(', ')}`;
    }
    return undefined;
  },
};

/** MachineMetadata=: values of one key are ORed, different keys ANDed. */
const metadataPredicate: Predicate = {
  name: 'metadata',
  check(_state, unit, { slot }, explain) {
    let problems: string[] | undefined;
    for (const [key, accepted] of unit.metadata) {
      const actual = slot.machine.metadata[key];
      if (actual !== undefined && accepted.includes(actual)) continue;
      if (!explain) return REJECTED;
      const wanted = accepted.map((v) => `${key}=${v}`).join(' or ');
      (problems ??= []).push(
        actual === undefined
          ? `metadata has no ${key} (wants ${wanted})`
          : `metadata ${key}=${actual} does not match ${wanted}`,
      );
    }
    return problems?.join('; ');
  },
};

/** Conflicts=, both ways: its patterns against the residents, and the residents' patterns against it. */
const conflictsPredicate: Predicate = {
  name: 'conflicts',
  check(_state, unit, { slot, displaces }, explain) {
    for (const pattern of unit.conflicts) {
      const other = firstOther(slot.matching.get(pattern), unit.name, displaces);
      if (other !== undefined && !explain) return REJECTED;
      if (other !== undefined) return `conflicts with ${other} on ${slot.id} (Conflicts=${pattern})`;
    }
    for (const pattern of unit.matchedBy) {
      const other = firstOther(slot.conflictOwners.get(pattern), unit.name, displaces);
      if (other !== undefined && !explain) return REJECTED;
      if (other !== undefined) {
        return `conflicts with ${other} on ${slot.id} (${other} has Conflicts=${pattern})`;
      }
    }
    return undefined;
  },
};

/**
 * Replaces=: a replaced unit never shares a machine with its replacer. The replacer passes where the
 * units it may displace are (see `displacedBy`). Units whose Replaces= form a cycle (a replaces b,
 * b replaces a) behave as a plain conflict: none displaces another.
 */
const replacesPredicate: Predicate = {
  name: 'replaces',
  check(state, unit, { slot, displaces }, explain) {
    for (const pattern of unit.replaces) {
      const other = firstOther(slot.matching.get(pattern), unit.name, displaces);
      if (other === undefined) continue;
      if (!explain) return REJECTED;
      if (state.inReplaceCycle(unit.name, other))
        return cycleReason(state, other, slot.id, `Replaces=${pattern}`);
      if (state.isLeaderOf(other, unit.name)) {
        return `cannot displace ${other} on ${slot.id} (Replaces=${pattern}): it is a MachineOf leader of this unit`;
      }
      return `would displace ${other} on ${slot.id} (Replaces=${pattern}), but this pass has displaced too many units; the next pass continues`;
    }
    for (const pattern of unit.matchedBy) {
      const other = firstOther(slot.replaceOwners.get(pattern), unit.name, displaces);
      if (other === undefined) continue;
      if (!explain) return REJECTED;
      return state.inReplaceCycle(unit.name, other)
        ? cycleReason(state, other, slot.id, `${other} has Replaces=${pattern}`)
        : `replaced by ${other} on ${slot.id} (${other} has Replaces=${pattern})`;
    }
    return undefined;
  },
};

function cycleReason(state: PlacementState, other: UnitName, machine: MachineId, which: string): string {
  const cycle = state.replaceCycles.get(other) ?? [];
  return `conflicts with ${other} on ${machine} (${which}; ${cycle.join(', ')} replace each other, so none displaces another)`;
}

/** The feasibility pipeline, in the order its reasons are reported (the first failing one wins). */
export const PREDICATES: readonly Predicate[] = [
  drainedPredicate,
  machineIdPredicate,
  machineOfPredicate,
  metadataPredicate,
  conflictsPredicate,
  replacesPredicate,
];

export function firstRejection(
  state: PlacementState,
  unit: UnitInfo,
  candidate: Candidate,
  explain = true,
): Rejection | undefined {
  for (const predicate of PREDICATES) {
    const reason = predicate.check(state, unit, candidate, explain);
    if (reason !== undefined) return { predicate: predicate.name, reason };
  }
  return undefined;
}

/** Whether the machine passes every predicate (the fast path of placement: no reasons built). */
export function passes(state: PlacementState, unit: UnitInfo, candidate: Candidate): boolean {
  for (const predicate of PREDICATES)
    if (predicate.check(state, unit, candidate, false) !== undefined) return false;
  return true;
}

/**
 * The residents of `slot` that `unit` would push off it through Replaces=, sorted. Never a unit on a
 * Replaces= cycle with it, nor one of its own MachineOf leaders (it would have to follow it away).
 */
export function displacedBy(state: PlacementState, unit: UnitInfo, slot: MachineSlot): readonly UnitName[] {
  if (unit.replaces.length === 0) return NONE;
  const out = new Set<UnitName>();
  for (const pattern of unit.replaces) {
    for (const other of slot.matching.get(pattern) ?? []) {
      if (
        other === unit.name ||
        state.inReplaceCycle(unit.name, other) ||
        state.isLeaderOf(other, unit.name)
      ) {
        continue;
      }
      out.add(other);
    }
  }
  return [...out].sort();
}

const NONE: readonly UnitName[] = [];

/** The first Replaces= pattern of unit `by` that matches `name`, if any. */
export function replacePatternOf(state: PlacementState, by: UnitName, name: UnitName): string | undefined {
  const info = state.units.get(by);
  if (info === undefined || info.replaces.length === 0) return undefined;
  return info.replaces.find((p) => state.index.matches(p, name));
}

/** Whether MachineID=`pin` admits `machine`: exactly, or as a prefix when no machine has that exact id. */
export function pinMatches(state: PlacementState, pin: string, machine: MachineId): boolean {
  return machine === pin || (state.slot(pin) === undefined && machine.startsWith(pin));
}

/** The smallest name in `set` other than `self` and the `excluded` ones (stable reasons). */
function firstOther(
  set: ReadonlySet<UnitName> | undefined,
  self: UnitName,
  excluded: readonly UnitName[],
): UnitName | undefined {
  if (set === undefined || set.size === 0) return undefined;
  let best: UnitName | undefined;
  for (const name of set) {
    if (name === self || excluded.includes(name)) continue;
    if (best === undefined || name < best) best = name;
  }
  return best;
}
