// The scheduler's input (DESIGN.md "engine: snapshot → schedule"): one consistent snapshot of the
// registered machines, the desired units with their parsed placement, and the current assignments.

import type { Assignment, Machine, MachineId, Placement, TargetState, UnitHash, UnitName } from './types.js';

/** A unit as the scheduler sees it: its desired state plus its `[X-Fleet]` placement (specifiers expanded). */
export interface SchedulableUnit {
  readonly name: UnitName;
  readonly hash: UnitHash;
  readonly target: TargetState;
  readonly placement: Placement;
}

/**
 * Everything one scheduling pass reads. Machines are the live ones (holding a membership lease): an
 * assignment to a machine not listed here is to a machine that is gone. Units include `inactive`
 * ones; an assignment of a unit not listed here is of a destroyed unit. At most one assignment per
 * (unit, machine), as the etcd keys guarantee. Order does not matter.
 */
export interface ClusterView {
  readonly machines: readonly Machine[];
  readonly units: readonly SchedulableUnit[];
  readonly assignments: readonly Assignment[];
  /**
   * Drained machines (`fleetts drain`), each with the units released from it in this pass. A
   * drained machine takes no new placements; of the units assigned to it, only the released ones
   * leave (each re-placed under its own constraints, a global one nowhere): the engine releases
   * them a few at a time (engine/drain-step.ts). Absent: no machine is drained.
   */
  readonly drains?: ReadonlyMap<MachineId, ReadonlySet<UnitName>>;
}
