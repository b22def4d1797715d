// Pure: a registry snapshot → the counts behind the machine and unit gauges (fleet-metrics.ts).
import { currentState } from '../api/unit-summaries.js';
import {
  ACTIVE_STATES,
  TARGET_STATES,
  type Assignment,
  type MachineId,
  type UnitStatus,
} from '../cluster/types.js';
import type { ClusterSnapshot } from '../registry/registry.js';

export const MACHINE_STATES = ['up', 'down'] as const;
export const UNIT_STATES = { target: TARGET_STATES, current: TARGET_STATES, active: ACTIVE_STATES };

export interface ClusterCounts {
  readonly machines: Record<(typeof MACHINE_STATES)[number], number>;
  /** `"<target> <current>"` → units; every pair is present (0 when none), so series do not vanish. */
  readonly units: ReadonlyMap<string, number>;
}

/**
 * Machines up (registered) and down (in `seen`, not registered now); `seen` is updated: the machines
 * of this snapshot join it, so a machine counts as down from the first scrape after it left.
 */
export function clusterCounts(snapshot: ClusterSnapshot, seen: Set<MachineId>): ClusterCounts {
  for (const id of snapshot.machines.keys()) seen.add(id);
  const up = snapshot.machines.size;
  const units = new Map<string, number>();
  for (const t of UNIT_STATES.target) for (const c of UNIT_STATES.current) units.set(`${t} ${c}`, 0);
  const assignments = groupByUnit(snapshot.assignments);
  const statuses = groupByUnit(snapshot.statuses);
  for (const unit of snapshot.units.values()) {
    const state = currentState(assignments.get(unit.name) ?? [], statuses.get(unit.name) ?? []);
    const key = `${unit.target} ${state}`;
    units.set(key, (units.get(key) ?? 0) + 1);
  }
  return { machines: { up, down: seen.size - up }, units };
}

function groupByUnit<T extends Assignment | UnitStatus>(items: readonly T[]): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const item of items) {
    const list = out.get(item.unit);
    if (list === undefined) out.set(item.unit, [item]);
    else list.push(item);
  }
  return out;
}
