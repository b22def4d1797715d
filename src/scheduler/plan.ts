// The output of one scheduling pass (STYLE.md "plan, then apply"): decisions with reasons a person
// can read. The engine applies a Plan in one fenced etcd transaction; tests and simulations apply it
// in memory with `applyPlanToAssignments`.

import type { Assignment, MachineId, TargetState, UnitHash, UnitName } from '../cluster/types.js';

/** The target an assignment carries: a placed unit is either kept loaded or launched. */
export type PlacedTarget = Exclude<TargetState, 'inactive'>;

/** Place the unit on a machine (a new placement, or the second half of a move). */
export interface AssignDecision {
  readonly kind: 'assign';
  readonly unit: UnitName;
  readonly machine: MachineId;
  readonly hash: UnitHash;
  readonly target: PlacedTarget;
  readonly reason: string;
  /** Set when this assignment replaces one of the same unit on another machine (a move). */
  readonly movedFrom?: MachineId;
}

/** Remove the unit from a machine; `reason` says why it may not stay there. */
export interface UnassignDecision {
  readonly kind: 'unassign';
  readonly unit: UnitName;
  readonly machine: MachineId;
  readonly reason: string;
}

/** Change an assignment in place (target state or unit file hash); the unit does not move. */
export interface UpdateDecision {
  readonly kind: 'update';
  readonly unit: UnitName;
  readonly machine: MachineId;
  readonly hash: UnitHash;
  readonly target: PlacedTarget;
  readonly reason: string;
}

/**
 * The unit should be placed but no machine fits. Not an error (STYLE.md rule 8): it is reported on
 * every pass until something changes, so a plan of a settled cluster holds only these.
 */
export interface UnschedulableDecision {
  readonly kind: 'unschedulable';
  readonly unit: UnitName;
  /** One line for people: why no machine fits, or what the unit waits for. */
  readonly summary: string;
  /** Per registered machine, why it was rejected (empty when the unit was not tried on machines). */
  readonly reasons: Readonly<Record<string, string>>;
}

export type Decision = AssignDecision | UnassignDecision | UpdateDecision | UnschedulableDecision;

export interface PlanSummary {
  readonly assign: number;
  readonly unassign: number;
  readonly update: number;
  readonly unschedulable: number;
  /** Assignments that stay exactly as they are. */
  readonly unchanged: number;
}

export interface Plan {
  /** Sorted by unit name, then unassign < assign < update < unschedulable, then machine id. */
  readonly decisions: readonly Decision[];
  readonly summary: PlanSummary;
}

const KIND_ORDER: Readonly<Record<Decision['kind'], number>> = {
  unassign: 0,
  assign: 1,
  update: 2,
  unschedulable: 3,
};

/** Code-unit order: unlike localeCompare it does not depend on the host's locale. */
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function machineOfDecision(d: Decision): string {
  return d.kind === 'unschedulable' ? '' : d.machine;
}

/** Builds a Plan: sorts the decisions into their stable order and counts them. */
export function makePlan(decisions: readonly Decision[], unchanged: number): Plan {
  const sorted = [...decisions].sort(
    (a, b) =>
      compareStrings(a.unit, b.unit) ||
      KIND_ORDER[a.kind] - KIND_ORDER[b.kind] ||
      compareStrings(machineOfDecision(a), machineOfDecision(b)),
  );
  const count = (kind: Decision['kind']): number => sorted.filter((d) => d.kind === kind).length;
  return {
    decisions: sorted,
    summary: {
      assign: count('assign'),
      unassign: count('unassign'),
      update: count('update'),
      unschedulable: count('unschedulable'),
      unchanged,
    },
  };
}

/** The decisions that change assignments (everything but `unschedulable` reports). */
export function planChanges(plan: Plan): readonly (AssignDecision | UnassignDecision | UpdateDecision)[] {
  return plan.decisions.filter(
    (d): d is AssignDecision | UnassignDecision | UpdateDecision => d.kind !== 'unschedulable',
  );
}

/** True when applying the plan would change nothing (unschedulable reports aside). */
export function isSettled(plan: Plan): boolean {
  return planChanges(plan).length === 0;
}

const keyOf = (unit: string, machine: string): string => `${unit}\u0000${machine}`;

/**
 * The assignments after applying `plan` to `assignments`, sorted by unit then machine. Pure: the
 * in-memory counterpart of the engine's etcd transaction, for tests and simulations.
 */
export function applyPlanToAssignments(assignments: readonly Assignment[], plan: Plan): Assignment[] {
  const byKey = new Map<string, Assignment>();
  for (const a of assignments) byKey.set(keyOf(a.unit, a.machine), a);
  for (const d of plan.decisions) {
    switch (d.kind) {
      case 'unassign':
        byKey.delete(keyOf(d.unit, d.machine));
        break;
      case 'assign':
      case 'update':
        byKey.set(keyOf(d.unit, d.machine), {
          unit: d.unit,
          machine: d.machine,
          hash: d.hash,
          target: d.target,
        });
        break;
      case 'unschedulable':
        break;
    }
  }
  return [...byKey.values()].sort(
    (a, b) => compareStrings(a.unit, b.unit) || compareStrings(a.machine, b.machine),
  );
}
