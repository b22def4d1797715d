// Pure: a drain (`fleetts drain`) as the API reports it: the units still on the machine, and the
// engine's current step with what each moved unit still waits for (the engine's own rule,
// engine/drain-step.ts, run on the same snapshot).
import type { MachineId } from '../cluster/types.js';
import { buildClusterView, PlacementCache } from '../engine/cluster-view.js';
import { planDrainSteps } from '../engine/drain-step.js';
import type { ClusterSnapshot } from '../registry/registry.js';
import type { DrainStatus } from './schemas.js';

/** The drain of `machine`, or undefined when it is not drained. Needs unit files and services. */
export function drainStatusOf(snapshot: ClusterSnapshot, machine: MachineId): DrainStatus | undefined {
  const drain = snapshot.drains.get(machine);
  if (drain === undefined) return undefined;
  const { view } = buildClusterView(snapshot, new PlacementCache());
  const waiting = new Map<string, string>();
  for (const n of planDrainSteps({ ...snapshot, drains: new Map([[machine, drain]]) }, view).notes)
    if (n.kind === 'waiting') waiting.set(n.unit, n.why);
  const units = snapshot.assignments
    .filter((a) => a.machine === machine)
    .map((a) => a.unit)
    .sort();
  return {
    machine,
    since: drain.since,
    state: units.length === 0 && drain.moving.length === 0 ? 'drained' : 'draining',
    units,
    moving: drain.moving.map((m) => {
      const why = waiting.get(m.unit);
      return { unit: m.unit, services: [...m.services], ...(why === undefined ? {} : { waiting: why }) };
    }),
  };
}
