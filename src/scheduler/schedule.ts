// The scheduler (STYLE.md rule 1): a pure function from a ClusterView to a Plan. No I/O, clock,
// randomness or logging; ties break by machine id. The engine leader calls it on every pass.
//
// One pass, in two phases:
//  A. keep: every existing assignment that still satisfies its unit's constraints stays where it is
//     (no rebalancing, a returning machine pulls nothing back); the others are dropped, with why.
//  B. place: every unit left without a machine is placed by the predicate → scorer pipeline.
// Both phases visit units leaders-first (MachineOf depth), then by name, so that followers see
// their leaders and the second of two conflicting new units respects the first.
//
// Semantics where fleet was vague or wrong (asserted in test/scheduler/):
//  - MachineID= is the exact id, or else a prefix that matches exactly one registered machine (fleet
//    took short ids); an ambiguous prefix is unschedulable. A pinned unit whose machine is gone waits
//    for it (its stale assignment is removed) and is never placed elsewhere.
//  - Replaces= lets a unit take a machine where the units it replaces are; they are then re-placed
//    under their own constraints, never beside their replacer. A machine where nothing must be
//    displaced is preferred, so Replaces= moves nothing needlessly. Units whose Replaces= form a
//    cycle (a↔b, or longer) only conflict: none displaces another. A unit never displaces its own
//    MachineOf= leader (it would have to follow it away).
//  - Two existing assignments that now conflict: the later one in visiting order moves.
//  - A global unit is assigned on every machine that passes its predicates; it is unschedulable
//    only when no machine does.
//  - A drained machine (`view.drains`, `fleetts drain`) takes no new placements; of the units
//    assigned to it only those the view releases leave (the engine paces a drain), a global one
//    stopping there, a MachineID= one waiting for the machine's undrain.

import type { Assignment, Machine, MachineId, Placement, UnitName } from '../cluster/types.js';
import type { ClusterView, SchedulableUnit } from '../cluster/view.js';
import { PatternIndex } from './pattern-index.js';
import { PlacementState, type MachineSlot, type UnitInfo } from './placement-state.js';
import { makePlan, compareStrings, type Decision, type Plan } from './plan.js';
import {
  displacedBy,
  firstRejection,
  passes,
  PREDICATES,
  replacePatternOf,
  type Candidate,
  type PredicateName,
} from './predicates.js';
import { compareCandidates } from './scorers.js';

/** What one pass computed: the plan, plus the final working state (for `explain`). */
export interface ScheduleResult {
  readonly plan: Plan;
  readonly state: PlacementState;
  /** Unit-level blockers by unit (cycle, missing leader, unregistered pin), as in unschedulable summaries. */
  readonly blockers: ReadonlyMap<UnitName, string>;
}

export function schedule(view: ClusterView): Plan {
  return runSchedule(view).plan;
}

interface Unplaced {
  summary: string;
  reasons: Record<string, string>;
}

const key = (unit: string, machine: string): string => `${unit}\u0000${machine}`;

/** A safety bound only: in practice one extra sweep settles a pass. */
const MAX_SWEEPS = 16;

export function runSchedule(view: ClusterView): ScheduleResult {
  const all = new Map<UnitName, SchedulableUnit>();
  for (const u of [...view.units].sort((a, b) => compareStrings(a.hash, b.hash))) {
    if (!all.has(u.name)) all.set(u.name, u);
  }
  const active = [...all.values()].filter((u) => u.target !== 'inactive');
  const patterns: string[] = [];
  for (const u of active) patterns.push(...u.placement.conflicts, ...u.placement.replaces);
  const index = new PatternIndex(
    active.map((u) => u.name),
    patterns,
  );
  const infos = new Map<UnitName, UnitInfo>();
  for (const u of active) infos.set(u.name, toInfo(u, index));

  const drains = view.drains ?? new Map<MachineId, ReadonlySet<UnitName>>();
  const state = new PlacementState(
    uniqueMachines(view.machines),
    infos,
    index,
    replaceCycles(infos, index),
    new Set(drains.keys()),
  );
  const { order, cycles } = placementOrder(infos);
  const rank = new Map<UnitName, number>(order.map((info, i) => [info.name, i]));
  const rankOf = (info: UnitInfo | undefined): number =>
    info === undefined ? 0 : (rank.get(info.name) ?? 0);
  const followers = new Map<UnitName, UnitName[]>();
  for (const info of order) {
    for (const leader of info.machineOf) {
      const list = followers.get(leader);
      if (list === undefined) followers.set(leader, [info.name]);
      else list.push(info.name);
    }
  }

  const existing = new Map<string, Assignment>();
  const existingByUnit = new Map<UnitName, Assignment[]>();
  for (const a of view.assignments) {
    if (existing.has(key(a.unit, a.machine))) continue;
    existing.set(key(a.unit, a.machine), a);
    const list = existingByUnit.get(a.unit);
    if (list === undefined) existingByUnit.set(a.unit, [a]);
    else list.push(a);
  }

  const removal = new Map<string, string>();
  const placedWhy = new Map<string, string>();
  const unplaced = new Map<UnitName, Unplaced>();
  const blockers = new Map<UnitName, string>();
  const pinCache = new Map<string, PinResolution>();
  // Units waiting to be (re)placed after an eviction, served before the next unit in order.
  const urgent: UnitInfo[] = [];
  // Replaces= chains through MachineOf= could displace in a loop; this bounds a pass whatever the input.
  let displacementBudget = infos.size + 1;
  let evictedInPlacePhase = false;
  let phase: 'keep' | 'place' = 'keep';

  const noteRemoval = (unit: UnitName, machine: string, reason: string): void => {
    const k = key(unit, machine);
    if (existing.has(k) && !removal.has(k)) removal.set(k, reason);
  };

  /** Takes `info` off `slot`, and its MachineOf followers with it; in phase B queues them to be re-placed. */
  const evict = (first: UnitInfo, slot: MachineSlot, firstReason: string): void => {
    const todo: [UnitInfo, string][] = [[first, firstReason]];
    for (let item = todo.pop(); item !== undefined; item = todo.pop()) {
      const [info, reason] = item;
      if (!state.machinesOf(info.name).has(slot.id)) continue;
      state.remove(info, slot);
      noteRemoval(info.name, slot.id, reason);
      if (phase === 'place') {
        evictedInPlacePhase = true;
        if (!urgent.includes(info)) urgent.push(info);
      }
      for (const f of followers.get(info.name) ?? []) {
        const finfo = infos.get(f);
        if (finfo !== undefined) todo.push([finfo, `moves with ${info.name} (MachineOf=${info.name})`]);
      }
    }
  };

  const displace = (by: UnitInfo, slot: MachineSlot, victims: readonly UnitName[]): void => {
    for (const v of victims) {
      const vinfo = infos.get(v);
      if (vinfo === undefined) continue;
      displacementBudget--;
      const pattern = replacePatternOf(state, by.name, v) ?? '';
      evict(vinfo, slot, `displaced by ${by.name} (Replaces=${pattern})`);
    }
  };

  // Most units replace nothing: share one candidate per machine instead of allocating units × machines.
  const plain = new Map<MachineSlot, Candidate>(state.slots.map((slot) => [slot, { slot, displaces: [] }]));
  const candidateOn = (info: UnitInfo, slot: MachineSlot): Candidate =>
    info.replaces.length === 0 || displacementBudget <= 0
      ? (plain.get(slot) ?? { slot, displaces: [] })
      : { slot, displaces: displacedBy(state, info, slot) };

  // Phase A: keep what is still valid.
  for (const [unit, list] of existingByUnit) {
    const u = all.get(unit);
    for (const a of list) {
      if (u === undefined) noteRemoval(unit, a.machine, 'unit was destroyed');
      else if (u.target === 'inactive') noteRemoval(unit, a.machine, 'target state is inactive');
    }
  }
  for (const info of order) {
    const list = [...(existingByUnit.get(info.name) ?? [])].sort((a, b) =>
      compareStrings(a.machine, b.machine),
    );
    const cycle = cycles.get(info.name);
    for (const a of list) {
      const slot = state.slot(a.machine);
      if (cycle !== undefined) {
        noteRemoval(info.name, a.machine, cycle);
      } else if (slot === undefined) {
        noteRemoval(info.name, a.machine, `machine ${a.machine} is gone (lease expired)`);
      } else if (!info.placement.global && state.isPlaced(info.name)) {
        const kept = [...state.machinesOf(info.name)].join(', ');
        noteRemoval(info.name, a.machine, `duplicate assignment: the unit stays on ${kept}`);
      } else if (slot.drained && drains.get(slot.id)?.has(info.name) === true) {
        noteRemoval(
          info.name,
          a.machine,
          info.placement.global
            ? `machine ${a.machine} is drained (fleetts drain): a global unit stops there`
            : `machine ${a.machine} is drained (fleetts drain): the unit moves off it`,
        );
      } else {
        const offered = candidateOn(info, slot);
        const candidate = slot.drained ? { ...offered, keep: true } : offered;
        const rejection = firstRejection(state, info, candidate);
        if (rejection !== undefined) {
          // A follower whose leader was here and is leaving says so, rather than where the leader is not.
          const leaving = info.machineOf.find(
            (l) => existing.has(key(l, slot.id)) && !state.machinesOf(l).has(slot.id),
          );
          const reason =
            rejection.predicate === 'machine-of' && leaving !== undefined
              ? `moves with ${leaving} (MachineOf=${leaving})`
              : rejection.reason;
          noteRemoval(info.name, a.machine, reason);
        } else {
          state.place(info, slot);
          // Units evicted here are placed in phase B, in order, like any unit without a machine.
          displace(info, slot, candidate.displaces);
        }
      }
    }
  }

  const resolvePin = (pin: string): PinResolution => {
    let r = pinCache.get(pin);
    if (r === undefined) {
      r = resolveMachineId(pin, state);
      pinCache.set(pin, r);
    }
    return r;
  };

  /** Why the unit cannot be placed whatever the machines, or undefined. */
  const blockerOf = (info: UnitInfo): string | undefined => {
    const cycle = cycles.get(info.name);
    if (cycle !== undefined) return cycle;
    const pin = info.placement.machineId;
    if (pin !== undefined) {
      const r = resolvePin(pin);
      if (r.kind === 'absent') return `waits for machine ${pin} (MachineID=${pin}), which is not registered`;
      if (r.kind === 'machine' && r.slot.drained)
        return `waits for machine ${r.slot.id} (MachineID=${pin}), which is drained (fleetts undrain ${r.slot.id})`;
      if (r.kind === 'ambiguous') {
        return `MachineID=${pin} matches several machines (${r.ids.join(', ')}); give the full id`;
      }
    }
    for (const leader of info.machineOf) {
      const lu = all.get(leader);
      const why =
        lu === undefined
          ? 'which is not submitted'
          : lu.target === 'inactive'
            ? 'whose target state is inactive'
            : state.isPlaced(leader)
              ? undefined
              : 'which is not placed';
      if (why !== undefined) return `waits for ${leader} (MachineOf=${leader}), ${why}`;
    }
    if (info.machineOf.length > 1 && followerSlots(info).length === 0) {
      const where = info.machineOf.map((l) => `${l} on ${[...state.machinesOf(l)].sort().join(', ')}`);
      return `MachineOf units are on different machines (${where.join('; ')})`;
    }
    return undefined;
  };

  /** The machines every MachineOf leader of `info` is on (one, unless leaders are global). */
  const followerSlots = (info: UnitInfo): MachineSlot[] => {
    const sets = info.machineOf.map((l) => state.machinesOf(l));
    const smallest = sets.reduce<ReadonlySet<MachineId> | undefined>(
      (a, b) => (a === undefined || b.size < a.size ? b : a),
      undefined,
    );
    const out: MachineSlot[] = [];
    for (const id of smallest ?? []) {
      const slot = state.slot(id);
      if (slot !== undefined && sets.every((set) => set.has(id))) out.push(slot);
    }
    return out.sort((a, b) => compareStrings(a.id, b.id));
  };

  /** Records why no machine fits, with a reason for every machine. */
  const markUnplaced = (info: UnitInfo, blocker: string | undefined): void => {
    const reasons: Record<string, string> = {};
    const counts = new Map<PredicateName, number>();
    for (const slot of state.slots) {
      const rejection = firstRejection(state, info, candidateOn(info, slot));
      if (rejection === undefined) {
        reasons[slot.id] = blocker ?? 'fits';
      } else {
        reasons[slot.id] = rejection.reason;
        counts.set(rejection.predicate, (counts.get(rejection.predicate) ?? 0) + 1);
      }
    }
    unplaced.set(info.name, { summary: blocker ?? noFitSummary(state.slots.length, counts), reasons });
    if (blocker === undefined) blockers.delete(info.name);
    else blockers.set(info.name, blocker);
  };

  /** Places a global unit on every machine it fits and is missing from; true when it placed any. */
  const placeGlobal = (info: UnitInfo): boolean => {
    let placed = false;
    const blocker = blockerOf(info);
    if (blocker === undefined) {
      for (const slot of state.slots) {
        if (state.machinesOf(info.name).has(slot.id)) continue;
        const candidate = candidateOn(info, slot);
        if (!passes(state, info, candidate)) continue;
        state.place(info, slot);
        placed = true;
        placedWhy.set(
          key(info.name, slot.id),
          `global unit: machine ${slot.id} fits${displacing(info, candidate)}`,
        );
        displace(info, slot, candidate.displaces);
      }
    }
    if (state.isPlaced(info.name)) {
      unplaced.delete(info.name);
      blockers.delete(info.name);
    } else {
      markUnplaced(info, blocker);
    }
    return placed;
  };

  /** Places a non-global unit on the best machine; true when it did. */
  const placeOne = (info: UnitInfo): boolean => {
    const blocker = blockerOf(info);
    if (blocker !== undefined) {
      markUnplaced(info, blocker);
      return false;
    }
    // MachineID and MachineOf leave at most a few machines: try only those.
    const pin = info.placement.machineId;
    let slots: readonly MachineSlot[] = state.slots;
    if (pin !== undefined) {
      const r = resolvePin(pin);
      slots = r.kind === 'machine' ? [r.slot] : [];
    } else if (info.machineOf.length > 0) {
      slots = followerSlots(info);
    }
    // Ranked on the fly: a pass evaluates units × machines candidates, so keep only the best.
    let best: Candidate | undefined;
    const tally = { feasible: 0, clean: 0, considered: slots.length };
    for (const slot of slots) {
      const candidate = candidateOn(info, slot);
      if (!passes(state, info, candidate)) continue;
      tally.feasible++;
      if (candidate.displaces.length === 0) tally.clean++;
      if (best === undefined || compareCandidates(candidate, best) < 0) best = candidate;
    }
    if (best === undefined) {
      markUnplaced(info, undefined);
      return false;
    }
    placedWhy.set(key(info.name, best.slot.id), placementReason(info, best, tally));
    state.place(info, best.slot);
    unplaced.delete(info.name);
    blockers.delete(info.name);
    displace(info, best.slot, best.displaces);
    return true;
  };

  const placeUnit = (info: UnitInfo): boolean => {
    if (info.placement.global) return placeGlobal(info);
    return state.isPlaced(info.name) ? false : placeOne(info);
  };

  /** One sweep over the units in order, serving evicted units first; true when anything was placed. */
  const sweep = (): boolean => {
    let placed = false;
    let i = 0;
    for (;;) {
      let next: UnitInfo | undefined;
      if (urgent.length > 0) {
        let at = 0;
        for (let j = 1; j < urgent.length; j++) if (rankOf(urgent[j]) < rankOf(urgent[at])) at = j;
        next = urgent.splice(at, 1)[0];
      } else {
        next = order[i++];
      }
      if (next === undefined) return placed;
      if (placeUnit(next)) placed = true;
    }
  };

  // Phase B: place everything without a machine (and globals on machines they are missing from).
  // Without evictions the working state only grows, so a unit that did not fit when its turn came
  // would not fit at the end either, and the next pass finds nothing to do. Evictions (Replaces=)
  // can free room, so then sweep again until a sweep places nothing: the plan is a fixed point.
  phase = 'place';
  sweep();
  for (let round = 0; evictedInPlacePhase && round < MAX_SWEEPS; round++) {
    evictedInPlacePhase = false;
    if (!sweep()) break;
  }

  // Diff the final working state against the current assignments.
  const decisions: Decision[] = [];
  let unchanged = 0;
  for (const a of existing.values()) {
    if (infos.get(a.unit) !== undefined && state.machinesOf(a.unit).has(a.machine)) continue;
    const reason = removal.get(key(a.unit, a.machine)) ?? 'no longer placed here';
    decisions.push({ kind: 'unassign', unit: a.unit, machine: a.machine, reason });
  }
  for (const info of order) {
    const on = state.machinesOf(info.name);
    const before = existingByUnit.get(info.name) ?? [];
    const left = before
      .filter((a) => !on.has(a.machine))
      .map((a) => a.machine)
      .sort();
    for (const machine of [...on].sort()) {
      const was = existing.get(key(info.name, machine));
      if (was === undefined) {
        const reason = placedWhy.get(key(info.name, machine)) ?? `machine ${machine} fits`;
        const movedFrom = info.placement.global ? undefined : left[0];
        decisions.push({
          kind: 'assign',
          unit: info.name,
          machine,
          hash: info.unit.hash,
          target: info.target,
          reason,
          ...(movedFrom === undefined ? {} : { movedFrom }),
        });
      } else if (was.hash !== info.unit.hash || was.target !== info.target) {
        decisions.push({
          kind: 'update',
          unit: info.name,
          machine,
          hash: info.unit.hash,
          target: info.target,
          reason: updateReason(was, info),
        });
      } else {
        unchanged++;
      }
    }
    if (on.size === 0) {
      const u = unplaced.get(info.name) ?? { summary: 'not placed', reasons: {} };
      decisions.push({ kind: 'unschedulable', unit: info.name, summary: u.summary, reasons: u.reasons });
    }
  }
  return { plan: makePlan(decisions, unchanged), state, blockers };
}

function toInfo(u: SchedulableUnit, index: PatternIndex): UnitInfo {
  const p = u.placement;
  const n = normalized(p);
  return {
    name: u.name,
    unit: u,
    placement: p,
    machineOf: n.machineOf.includes(u.name) ? n.machineOf.filter((m) => m !== u.name) : n.machineOf,
    conflicts: n.conflicts,
    replaces: n.replaces,
    metadata: n.metadata,
    target: u.target === 'launched' ? 'launched' : 'loaded',
    matchedBy: index.patternsMatching(u.name),
  };
}

type Normalized = Pick<UnitInfo, 'machineOf' | 'conflicts' | 'replaces' | 'metadata'>;

/**
 * A placement's deduplicated lists, computed once per Placement object: the engine hands the
 * thousands of instances of one template the same Placement, so a pass normalizes it once.
 * Placements are immutable, so this memo cannot change what `schedule` returns.
 */
const NORMALIZED = new WeakMap<Placement, Normalized>();

function normalized(p: Placement): Normalized {
  let n = NORMALIZED.get(p);
  if (n === undefined) {
    const metadata = Object.keys(p.machineMetadata)
      .sort()
      .map((k): readonly [string, readonly string[]] => [k, [...new Set(p.machineMetadata[k] ?? [])]])
      .filter(([, values]) => values.length > 0);
    n = {
      machineOf: [...new Set(p.machineOf)] as UnitName[],
      conflicts: [...new Set(p.conflicts)],
      replaces: [...new Set(p.replaces)],
      metadata,
    };
    NORMALIZED.set(p, n);
  }
  return n;
}

function uniqueMachines(machines: readonly Machine[]): Machine[] {
  const byId = new Map<MachineId, Machine>();
  for (const m of machines) if (!byId.has(m.id)) byId.set(m.id, m);
  return [...byId.values()];
}

interface Tally {
  /** Machines tried (all, or those MachineID/MachineOf allow). */
  readonly considered: number;
  /** Machines that passed every predicate. */
  readonly feasible: number;
  /** Of those, the ones where nothing would be displaced. */
  readonly clean: number;
}

function placementReason(info: UnitInfo, best: Candidate, tally: Tally): string {
  const id = best.slot.id;
  const pin = info.placement.machineId;
  const { considered, feasible, clean } = tally;
  let why: string;
  if (pin !== undefined) why = `pinned to machine ${id} (MachineID=${pin})`;
  else if (info.machineOf.length > 0) {
    why = `placed with ${info.machineOf.join(', ')} on ${id} (MachineOf=${info.machineOf.join(',')})`;
  } else if (feasible === 1 && considered > 1) {
    why = `machine ${id} is the only one of ${considered} that fits`;
  } else {
    const load = `machine ${id} has the fewest units (${best.slot.residents.size})`;
    // Displacing nothing ranks first: say so when that, not the load, ruled machines out.
    if (best.displaces.length === 0 && clean < feasible) {
      why =
        clean === 1
          ? `machine ${id} is the only one that fits without displacing anything`
          : `${load} of the ${clean} machines that fit without displacing anything`;
    } else {
      why = feasible < considered ? `${load} of the ${feasible} machines that fit` : load;
    }
  }
  return why + displacing(info, best);
}

function displacing(info: UnitInfo, c: Candidate): string {
  if (c.displaces.length === 0) return '';
  return `; displaces ${c.displaces.join(', ')} (Replaces=${info.replaces.join(',')})`;
}

function updateReason(was: Assignment, info: UnitInfo): string {
  const parts: string[] = [];
  if (was.target !== info.target) parts.push(`target ${was.target} → ${info.target}`);
  if (was.hash !== info.unit.hash) {
    parts.push(`unit file changed (${was.hash.slice(0, 12)} → ${info.unit.hash.slice(0, 12)})`);
  }
  return parts.join('; ');
}

const PREDICATE_LABEL: Readonly<Record<PredicateName, string>> = {
  drained: 'drained',
  'machine-id': 'MachineID',
  'machine-of': 'MachineOf',
  metadata: 'metadata',
  conflicts: 'conflicts',
  replaces: 'Replaces',
};

function noFitSummary(machines: number, counts: ReadonlyMap<PredicateName, number>): string {
  if (machines === 0) return 'no machines are registered';
  const parts = PREDICATES.filter((p) => counts.has(p.name)).map((p) => {
    const n = counts.get(p.name) ?? 0;
    return `${PREDICATE_LABEL[p.name]} on ${n} machine${n === 1 ? '' : 's'}`;
  });
  return `no machine fits (rejected by ${parts.join(', ')})`;
}

export type PinResolution =
  | { readonly kind: 'machine'; readonly slot: MachineSlot }
  | { readonly kind: 'absent' }
  | { readonly kind: 'ambiguous'; readonly ids: readonly MachineId[] };

/** MachineID= resolution: the exact id, else the one machine whose id starts with it (fleet's short ids). */
export function resolveMachineId(pin: string, state: PlacementState): PinResolution {
  const exact = state.slot(pin);
  if (exact !== undefined) return { kind: 'machine', slot: exact };
  const matches = state.slots.filter((s) => s.id.startsWith(pin));
  const [only] = matches;
  if (only === undefined || pin === '') return { kind: 'absent' };
  if (matches.length === 1) return { kind: 'machine', slot: only };
  return { kind: 'ambiguous', ids: matches.map((s) => s.id) };
}

/** Units whose Replaces= patterns form a cycle (a replaces b, b replaces a, or longer), by unit. */
function replaceCycles(
  infos: ReadonlyMap<UnitName, UnitInfo>,
  index: PatternIndex,
): Map<UnitName, readonly UnitName[]> {
  const out = new Map<UnitName, readonly UnitName[]>();
  const byPattern = new Map<string, UnitName[]>();
  for (const info of infos.values()) {
    for (const p of info.replaces) {
      const list = byPattern.get(p);
      if (list === undefined) byPattern.set(p, [info.name]);
      else list.push(info.name);
    }
  }
  if (byPattern.size === 0) return out;
  const edges = new Map<UnitName, Set<UnitName>>();
  for (const replaced of infos.values()) {
    for (const p of index.patternsMatching(replaced.name)) {
      for (const by of byPattern.get(p) ?? []) {
        if (by === replaced.name) continue;
        let set = edges.get(by);
        if (set === undefined) edges.set(by, (set = new Set()));
        set.add(replaced.name);
      }
    }
  }
  const nodes = [...edges.keys()].sort();
  for (const component of cyclicComponents(nodes, (n) => [...(edges.get(n) ?? [])].sort())) {
    for (const n of component) out.set(n, component);
  }
  return out;
}

/**
 * Units in MachineOf depth order (leaders first), then by name; and for units on a MachineOf cycle,
 * the reason they cannot be placed. Units downstream of a cycle come last and wait for their leader.
 */
function placementOrder(infos: ReadonlyMap<UnitName, UnitInfo>): {
  order: UnitInfo[];
  cycles: Map<UnitName, string>;
} {
  const depth = new Map<UnitName, number>();
  const pending = new Map<UnitName, number>();
  const followers = new Map<UnitName, UnitName[]>();
  const queue: UnitName[] = [];
  for (const info of infos.values()) {
    const leaders = info.machineOf.filter((l) => infos.has(l));
    pending.set(info.name, leaders.length);
    for (const l of leaders) {
      const list = followers.get(l);
      if (list === undefined) followers.set(l, [info.name]);
      else list.push(info.name);
    }
    if (leaders.length === 0) {
      depth.set(info.name, 0);
      queue.push(info.name);
    }
  }
  for (let i = 0; i < queue.length; i++) {
    const n = queue[i] as UnitName;
    const d = depth.get(n) ?? 0;
    for (const f of followers.get(n) ?? []) {
      depth.set(f, Math.max(depth.get(f) ?? 0, d + 1));
      const left = (pending.get(f) ?? 0) - 1;
      pending.set(f, left);
      if (left === 0) queue.push(f);
    }
  }
  const cycles = new Map<UnitName, string>();
  const stuck = [...infos.keys()].filter((n) => (pending.get(n) ?? 0) > 0).sort();
  if (stuck.length > 0) {
    const inStuck = new Set(stuck);
    const next = (n: UnitName): UnitName[] => (infos.get(n)?.machineOf ?? []).filter((l) => inStuck.has(l));
    for (const component of cyclicComponents(stuck, next)) {
      const reason = `MachineOf forms a cycle (${component.join(', ')})`;
      for (const n of component) cycles.set(n, reason);
    }
  }
  const order = [...infos.values()].sort(
    (a, b) =>
      (depth.get(a.name) ?? Number.MAX_SAFE_INTEGER) - (depth.get(b.name) ?? Number.MAX_SAFE_INTEGER) ||
      compareStrings(a.name, b.name),
  );
  return { order, cycles };
}

/** Strongly connected components with more than one member (Tarjan's, iterative: chains may be long). */
function cyclicComponents(
  nodes: readonly UnitName[],
  next: (n: UnitName) => readonly UnitName[],
): UnitName[][] {
  let counter = 0;
  const index = new Map<UnitName, number>();
  const low = new Map<UnitName, number>();
  const onStack = new Set<UnitName>();
  const stack: UnitName[] = [];
  const out: UnitName[][] = [];
  const visit = (n: UnitName, work: { node: UnitName; edges: readonly UnitName[]; i: number }[]): void => {
    index.set(n, counter);
    low.set(n, counter);
    counter++;
    stack.push(n);
    onStack.add(n);
    work.push({ node: n, edges: next(n), i: 0 });
  };
  for (const root of nodes) {
    if (index.has(root)) continue;
    const work: { node: UnitName; edges: readonly UnitName[]; i: number }[] = [];
    visit(root, work);
    while (work.length > 0) {
      const frame = work[work.length - 1];
      if (frame === undefined) break;
      const w = frame.edges[frame.i];
      if (w !== undefined) {
        frame.i++;
        if (!index.has(w)) visit(w, work);
        else if (onStack.has(w)) low.set(frame.node, Math.min(low.get(frame.node) ?? 0, index.get(w) ?? 0));
        continue;
      }
      work.pop();
      const parent = work[work.length - 1];
      const nodeLow = low.get(frame.node) ?? 0;
      if (parent !== undefined) low.set(parent.node, Math.min(low.get(parent.node) ?? 0, nodeLow));
      if (nodeLow === index.get(frame.node)) {
        const component: UnitName[] = [];
        let m: UnitName | undefined;
        do {
          m = stack.pop();
          if (m === undefined) break;
          onStack.delete(m);
          component.push(m);
        } while (m !== frame.node);
        if (component.length > 1) out.push(component.sort());
      }
    }
  }
  return out;
}
