// Pure: keeps units where they are on machines whose membership is gone, while that absence may
// only mean etcd was unavailable (docs/control-plane-faults.md). The scheduler then does not see
// those assignments, so it neither moves nor deletes them, and plans everything else as usual.
import type { MachineId, UnitName } from '../cluster/types.js';
import type { ClusterView, SchedulableUnit } from '../cluster/view.js';

export interface HeldMove {
  readonly unit: UnitName;
  /** The absent machine the unit stays assigned to. */
  readonly machine: MachineId;
}

/**
 * The view without the assignments on absent machines of units that are still wanted placed
 * (those would otherwise move), and without those units themselves unless they are global (a
 * global unit is still placed on machines that join). An assignment that is going anyway (its unit
 * destroyed, unloaded or unschedulable for its file) is left to the scheduler: removing it is what
 * a user asked, not a move.
 */
export function holdMovesOffAbsentMachines(
  view: ClusterView,
  /** Which of those assignments to hold (default: all of them). */
  hold: (move: HeldMove, unit: SchedulableUnit) => boolean = () => true,
): { view: ClusterView; held: HeldMove[] } {
  const live = new Set(view.machines.map((m) => m.id));
  const placed = new Map(view.units.filter((u) => u.target !== 'inactive').map((u) => [u.name, u]));
  const held: HeldMove[] = [];
  for (const a of view.assignments) {
    const unit = placed.get(a.unit);
    const move = { unit: a.unit, machine: a.machine };
    if (!live.has(a.machine) && unit !== undefined && hold(move, unit)) held.push(move);
  }
  if (held.length === 0) return { view, held };
  const heldUnits = new Set(held.map((h) => h.unit));
  const hidden = new Set(
    held.filter((h) => placed.get(h.unit)?.placement.global !== true).map((h) => h.unit),
  );
  return {
    view: {
      machines: view.machines,
      units: view.units.filter((u) => !hidden.has(u.name)),
      assignments: view.assignments.filter(
        (a) => !heldUnits.has(a.unit) || (live.has(a.machine) && !hidden.has(a.unit)),
      ),
    },
    held,
  };
}
