// Pure: a registry snapshot → the API's view of units (desired state, placements, observed state,
// why unplaced). One pass over the snapshot's collections, so listing thousands of units is cheap.
import type { Assignment, MachineId, TargetState, UnitName, UnitStatus } from '../cluster/types.js';
import type { ClusterSnapshot, UnitRecord } from '../registry/registry.js';
import type { MachineEntry, UnitSummary } from './schemas.js';

/** The summaries of `units` (default: all), sorted by name. */
export function summarizeUnits(
  snapshot: ClusterSnapshot,
  units: Iterable<UnitRecord> = snapshot.units.values(),
): UnitSummary[] {
  const assignments = groupBy(snapshot.assignments);
  const statuses = groupBy(snapshot.statuses);
  const out: UnitSummary[] = [];
  for (const unit of units) {
    out.push(summarizeUnit(snapshot, unit, assignments.get(unit.name) ?? [], statuses.get(unit.name) ?? []));
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

export function summarizeUnit(
  snapshot: ClusterSnapshot,
  unit: UnitRecord,
  assignments: readonly Assignment[] = snapshot.assignments.filter((a) => a.unit === unit.name),
  statuses: readonly UnitStatus[] = snapshot.statuses.filter((s) => s.unit === unit.name),
): UnitSummary {
  const placements = assignments.map((a) => {
    const ip = snapshot.machines.get(a.machine)?.ip;
    return { machine: a.machine, ...(ip === undefined ? {} : { ip }), target: a.target };
  });
  const u = snapshot.unschedulable.get(unit.name);
  return {
    name: unit.name,
    hash: unit.hash,
    target: unit.target,
    state: currentState(assignments, statuses),
    placements,
    statuses: statuses.map(stripStatus),
    ...(u === undefined || u.hash !== unit.hash || assignments.length > 0
      ? {}
      : { unschedulable: { reason: u.reason, machines: { ...u.machines } } }),
  };
}

/**
 * Where the cluster is with a unit: launched when it is active on a machine it is assigned to,
 * loaded when it is assigned and its host reports it (not active), inactive otherwise.
 */
export function currentState(
  assignments: readonly Assignment[],
  statuses: readonly UnitStatus[],
): TargetState {
  if (assignments.length === 0) return 'inactive';
  const assigned = new Set<MachineId>(assignments.map((a) => a.machine));
  const here = statuses.filter((s) => assigned.has(s.machine));
  if (here.some((s) => s.active === 'active')) return 'launched';
  return here.length > 0 ? 'loaded' : 'inactive';
}

export function summarizeMachines(snapshot: ClusterSnapshot): MachineEntry[] {
  const counts = new Map<MachineId, number>();
  for (const a of snapshot.assignments) counts.set(a.machine, (counts.get(a.machine) ?? 0) + 1);
  return [...snapshot.machines.values()].map((m) => ({
    id: m.id,
    ip: m.ip,
    metadata: { ...m.metadata },
    configuredMetadata: { ...m.configuredMetadata },
    ...(m.apiAddress === undefined ? {} : { apiAddress: m.apiAddress }),
    version: m.version,
    startedAt: m.startedAt,
    ...(m.memoryBytes === undefined ? {} : { memoryBytes: m.memoryBytes }),
    units: counts.get(m.id) ?? 0,
    ...drainOf(snapshot, m.id, counts.get(m.id) ?? 0),
  }));
}

/** A machine's drain for listings: drained once no unit is left on it and its last step settled. */
function drainOf(snapshot: ClusterSnapshot, machine: MachineId, units: number): Pick<MachineEntry, 'drain'> {
  const d = snapshot.drains.get(machine);
  if (d === undefined) return {};
  return { drain: { since: d.since, state: units === 0 && d.moving.length === 0 ? 'drained' : 'draining' } };
}

function stripStatus(s: UnitStatus): UnitStatus {
  // A copy with only the schema's fields (registry records may carry more).
  return {
    unit: s.unit,
    machine: s.machine,
    hash: s.hash,
    load: s.load,
    active: s.active,
    sub: s.sub,
    ...(s.pid === undefined ? {} : { pid: s.pid }),
    ...(s.containerId === undefined ? {} : { containerId: s.containerId }),
    since: s.since,
    ...(s.lastExit === undefined ? {} : { lastExit: s.lastExit }),
    ...(s.reason === undefined ? {} : { reason: s.reason }),
    ...(s.health === undefined ? {} : { health: s.health }),
  };
}

function groupBy<T extends { readonly unit: UnitName }>(items: readonly T[]): Map<UnitName, T[]> {
  const out = new Map<UnitName, T[]>();
  for (const item of items) {
    const list = out.get(item.unit);
    if (list === undefined) out.set(item.unit, [item]);
    else list.push(item);
  }
  return out;
}
