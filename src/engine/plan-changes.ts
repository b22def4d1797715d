// Pure: what a plan changes in the registry. Assignment decisions map one to one; unschedulable
// reports are written only when they differ from what is stored, so that a settled cluster with
// an unplaceable unit writes nothing (DESIGN.md: no writes in steady state but keepalives).
import type { AssignmentChange, ClusterSnapshot, Unschedulable } from '../registry/registry.js';
import type { UnitName } from '../cluster/types.js';
import type { Plan } from '../scheduler/plan.js';

export function planToChanges(
  plan: Plan,
  snapshot: ClusterSnapshot,
  invalid: ReadonlyMap<UnitName, string>,
  /** Units the pass kept out of the plan (hold-moves.ts): their stored reports stay as they are. */
  held: ReadonlySet<UnitName> = new Set(),
): AssignmentChange[] {
  const changes: AssignmentChange[] = [];
  const unschedulable = new Map<UnitName, Unschedulable>();
  // A move's reason is why the unit left its machine (the unassignment's), not why the new one fits.
  const leftBecause = new Map<string, string>();
  for (const d of plan.decisions)
    if (d.kind === 'unassign') leftBecause.set(`${d.unit}\u0000${d.machine}`, d.reason);
  for (const d of plan.decisions) {
    switch (d.kind) {
      case 'assign': {
        const movedFrom = d.movedFrom;
        const reason =
          movedFrom === undefined ? d.reason : (leftBecause.get(`${d.unit}\u0000${movedFrom}`) ?? d.reason);
        changes.push({
          kind: 'assign',
          assignment: { unit: d.unit, machine: d.machine, hash: d.hash, target: d.target },
          reason,
          ...(movedFrom === undefined ? {} : { movedFrom }),
        });
        break;
      }
      case 'update':
        changes.push({
          kind: 'assign',
          assignment: { unit: d.unit, machine: d.machine, hash: d.hash, target: d.target },
        });
        break;
      case 'unassign':
        changes.push({ kind: 'unassign', unit: d.unit, machine: d.machine });
        break;
      case 'unschedulable': {
        const unit = snapshot.units.get(d.unit);
        if (unit !== undefined)
          unschedulable.set(d.unit, {
            unit: d.unit,
            hash: unit.hash,
            reason: d.summary,
            machines: d.reasons,
          });
        break;
      }
    }
  }
  for (const [name, reason] of invalid) {
    const unit = snapshot.units.get(name);
    if (unit === undefined) continue;
    // Left out of the scheduler's view, so the plan already unassigns it wherever it was.
    unschedulable.set(name, { unit: name, hash: unit.hash, reason, machines: {} });
  }
  for (const [name, record] of unschedulable) {
    const stored = snapshot.unschedulable.get(name);
    if (stored === undefined || !sameRecord(stored, record))
      changes.push({ kind: 'mark_unschedulable', record });
  }
  for (const name of snapshot.unschedulable.keys()) {
    if (!unschedulable.has(name) && !held.has(name))
      changes.push({ kind: 'clear_unschedulable', unit: name });
  }
  return changes;
}

function sameRecord(a: Unschedulable, b: Unschedulable): boolean {
  if (a.hash !== b.hash || a.reason !== b.reason) return false;
  const ak = Object.keys(a.machines);
  if (ak.length !== Object.keys(b.machines).length) return false;
  return ak.every((k) => a.machines[k] === b.machines[k]);
}
