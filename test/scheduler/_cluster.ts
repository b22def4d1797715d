// Test fixtures for the scheduler: terse builders for machines, units and assignments, and views of
// a plan that read well in assertions. Not a test file (ava runs only *.test.ts).

import {
  asMachineId,
  asUnitHash,
  asUnitName,
  NO_PLACEMENT,
  type Assignment,
  type Machine,
  type Placement,
  type TargetState,
} from '../../src/cluster/types.js';
import type { ClusterView, SchedulableUnit } from '../../src/cluster/view.js';
import { applyPlanToAssignments, type Plan } from '../../src/scheduler/plan.js';
import { schedule } from '../../src/scheduler/schedule.js';

export function machine(id: string, metadata: Record<string, string> = {}): Machine {
  return {
    id: asMachineId(id),
    ip: '10.0.0.1',
    metadata,
    version: 'test',
    startedAt: '2024-01-01T00:00:00Z',
  };
}

export function unit(
  name: string,
  placement: Partial<Placement> = {},
  target: TargetState = 'launched',
  hash = `h-${name}`,
): SchedulableUnit {
  return {
    name: asUnitName(name),
    hash: asUnitHash(hash),
    target,
    placement: { ...NO_PLACEMENT, ...placement },
  };
}

export function assigned(
  unitName: string,
  machineId: string,
  target: 'loaded' | 'launched' = 'launched',
  hash = `h-${unitName}`,
): Assignment {
  return { unit: asUnitName(unitName), machine: asMachineId(machineId), hash: asUnitHash(hash), target };
}

export function view(
  machines: readonly Machine[],
  units: readonly SchedulableUnit[],
  assignments: readonly Assignment[] = [],
): ClusterView {
  return { machines, units, assignments };
}

/** The plan as one line per decision: `assign web.unit m1: reason`, `unschedulable x.unit: summary`. */
export function lines(plan: Plan): string[] {
  return plan.decisions.map((d) =>
    d.kind === 'unschedulable'
      ? `unschedulable ${d.unit}: ${d.summary}`
      : `${d.kind} ${d.unit} ${d.machine}: ${d.reason}`,
  );
}

/** unit → sorted machine ids, for the assignments. */
export function placements(assignments: readonly Assignment[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const a of assignments) (out[a.unit] ??= []).push(a.machine);
  for (const list of Object.values(out)) list.sort();
  return out;
}

/** Schedules and applies the plan: the state the cluster settles in after one pass. */
export function pass(v: ClusterView): { plan: Plan; assignments: Assignment[]; next: ClusterView } {
  const plan = schedule(v);
  const assignments = applyPlanToAssignments(v.assignments, plan);
  return { plan, assignments, next: { ...v, assignments } };
}
