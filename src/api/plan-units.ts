// Pure: `fleetts plan` — what the scheduler would do with some units, and why, without changing
// anything. The units (submitted, or given as text) are put into the snapshot's view with a placed
// target and explained by the same scheduler pass the engine runs.
import type { UnitName } from '../cluster/types.js';
import type { SchedulableUnit } from '../cluster/view.js';
import { buildClusterView, PlacementCache } from '../engine/cluster-view.js';
import type { ClusterSnapshot } from '../registry/registry.js';
import { explainUnit } from '../scheduler/explain.js';
import type { UnitSpec } from '../unit/unit-spec.js';
import type { UnitPlan } from './schemas.js';

export interface PlanRequest {
  readonly spec: UnitSpec;
  readonly target: 'loaded' | 'launched';
}

export function planUnits(snapshot: ClusterSnapshot, requests: readonly PlanRequest[]): UnitPlan[] {
  const { view } = buildClusterView(snapshot, new PlacementCache());
  const asked = new Map<UnitName, SchedulableUnit>(
    requests.map((r) => [
      r.spec.name,
      { name: r.spec.name, hash: r.spec.hash, target: r.target, placement: r.spec.placement },
    ]),
  );
  const units = [...view.units.filter((u) => !asked.has(u.name)), ...asked.values()];
  const planned = { ...view, units };
  return requests.map((r): UnitPlan => {
    const e = explainUnit(planned, r.spec.name);
    return {
      unit: e.unit,
      placedOn: [...e.placedOn],
      ...(e.blocker === undefined ? {} : { blocker: e.blocker }),
      decisions: e.decisions.map((d) =>
        d.kind === 'unschedulable'
          ? { kind: d.kind, reason: d.summary }
          : { kind: d.kind, machine: d.machine, reason: d.reason },
      ),
      machines: e.machines.map((m) => ({
        machine: m.machine,
        fits: m.fits,
        reason: m.reason,
        ...(m.rank === undefined ? {} : { rank: m.rank }),
      })),
    };
  });
}
