// Pure: the stop-before-start handshake of a move. A non-global unit is not launched on a machine
// while another live machine still reports it active, activating or deactivating (it is being
// stopped there after an unassignment): the launch waits for the next pass, which the status
// change wakes. Machines that are gone do not count: their statuses die with their lease, and a
// partitioned host stops its units (self-fencing) before its lease can expire.
import type { ActiveState, MachineId, UnitName } from '../cluster/types.js';
import type { ClusterView } from '../cluster/view.js';
import type { ClusterSnapshot } from '../registry/registry.js';
import { makePlan, type Decision, type Plan } from '../scheduler/plan.js';

const RUNNING: ReadonlySet<ActiveState> = new Set(['active', 'activating', 'deactivating']);

export interface HeldStart {
  readonly unit: UnitName;
  readonly machine: MachineId;
  /** Where the unit still runs. */
  readonly runningOn: readonly MachineId[];
}

export function holdUnsafeStarts(
  plan: Plan,
  snapshot: Pick<ClusterSnapshot, 'machines' | 'statuses'>,
  view: Pick<ClusterView, 'units'>,
): { plan: Plan; held: HeldStart[] } {
  const global = new Set(view.units.filter((u) => u.placement.global).map((u) => u.name));
  const runningOn = new Map<UnitName, MachineId[]>();
  for (const s of snapshot.statuses) {
    if (!RUNNING.has(s.active) || !snapshot.machines.has(s.machine)) continue;
    runningOn.set(s.unit, [...(runningOn.get(s.unit) ?? []), s.machine]);
  }
  const held: HeldStart[] = [];
  const kept: Decision[] = [];
  for (const d of plan.decisions) {
    if ((d.kind === 'assign' || d.kind === 'update') && d.target === 'launched' && !global.has(d.unit)) {
      const elsewhere = (runningOn.get(d.unit) ?? []).filter((m) => m !== d.machine);
      if (elsewhere.length > 0) {
        held.push({ unit: d.unit, machine: d.machine, runningOn: elsewhere });
        continue;
      }
    }
    kept.push(d);
  }
  if (held.length === 0) return { plan, held };
  return { plan: makePlan(kept, plan.summary.unchanged), held };
}
