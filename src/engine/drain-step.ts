// Pure: the pace of a drain (`fleetts drain`, docs/drain.md). Each pass, for every drained machine,
// either waits for the units its last step released (until each runs elsewhere, active with its
// current file, and is announced again under the services it was announced under before; or stopped
// for good: a global unit, a unit pinned to the machine, one that fits nowhere else) or releases the
// next group: one unit with the MachineOf sidekicks it shares the machine with. The step is recorded
// on the drain's record in etcd (written before the plan), so a new engine leader goes on from it.
import type { ActiveState, MachineId, UnitName } from '../cluster/types.js';
import type { ClusterView, SchedulableUnit } from '../cluster/view.js';
import type { AssignmentChange, ClusterSnapshot, DrainMove } from '../registry/registry.js';
import { compareStrings } from '../scheduler/plan.js';

const RUNNING: ReadonlySet<ActiveState> = new Set(['active', 'activating', 'deactivating']);

export interface DrainSteps {
  /** The released units per drained machine: ClusterView.drains for this pass. */
  readonly drains: ReadonlyMap<MachineId, ReadonlySet<UnitName>>;
  /** Steps to record (`drain_moving`), written before the plan. */
  readonly changes: readonly AssignmentChange[];
  /** Units a drain waits for: their status changes wake the engine. */
  readonly waiting: ReadonlySet<UnitName>;
  /** Whether a drain waits for an announcement: service changes wake the engine. */
  readonly waitsForServices: boolean;
  /** What each drain does in this pass, for logs. */
  readonly notes: readonly DrainNote[];
}

export type DrainNote =
  | { readonly kind: 'released'; readonly machine: MachineId; readonly units: readonly UnitName[] }
  | { readonly kind: 'waiting'; readonly machine: MachineId; readonly unit: UnitName; readonly why: string }
  | { readonly kind: 'done'; readonly machine: MachineId };

export function planDrainSteps(
  snapshot: Pick<ClusterSnapshot, 'drains' | 'statuses' | 'unschedulable' | 'services'>,
  view: ClusterView,
): DrainSteps {
  const drains = new Map<MachineId, ReadonlySet<UnitName>>();
  const changes: AssignmentChange[] = [];
  const waiting = new Set<UnitName>();
  const notes: DrainNote[] = [];
  let waitsForServices = false;
  if (snapshot.drains.size === 0) return { drains, changes, waiting, waitsForServices, notes };
  const units = new Map<UnitName, SchedulableUnit>();
  for (const u of view.units) if (u.target !== 'inactive') units.set(u.name, u);
  const facts: Facts = { snapshot, view, units };

  for (const drain of snapshot.drains.values()) {
    const { machine } = drain;
    const unsettled = drain.moving
      .map((move) => ({ move, why: unsettledWhy(facts, move, machine) }))
      .filter((x): x is { move: DrainMove; why: string } => x.why !== undefined);
    if (unsettled.length > 0) {
      drains.set(machine, new Set(drain.moving.map((m) => m.unit)));
      for (const { move, why } of unsettled) {
        waiting.add(move.unit);
        if (move.services.length > 0) waitsForServices = true;
        notes.push({ kind: 'waiting', machine, unit: move.unit, why });
      }
      continue;
    }
    const group = nextGroup(facts, machine);
    if (group.length === 0) {
      drains.set(machine, new Set());
      if (drain.moving.length > 0) {
        changes.push({ kind: 'drain_moving', drain, moving: [] });
        notes.push({ kind: 'done', machine });
      }
      continue;
    }
    drains.set(machine, new Set(group));
    changes.push({ kind: 'drain_moving', drain, moving: group.map((unit) => movesOf(snapshot, unit)) });
    notes.push({ kind: 'released', machine, units: group });
  }
  return { drains, changes, waiting, waitsForServices, notes };
}

interface Facts {
  readonly snapshot: Pick<ClusterSnapshot, 'statuses' | 'unschedulable' | 'services'>;
  readonly view: ClusterView;
  readonly units: ReadonlyMap<UnitName, SchedulableUnit>;
}

/** The services `unit` is announced under now (as `fleetts announce --unit` names it). */
function movesOf(snapshot: Pick<ClusterSnapshot, 'services'>, unit: UnitName): DrainMove {
  const services = new Set<string>();
  for (const s of snapshot.services) if (s.unit === unit) services.add(s.service);
  return { unit, services: [...services].sort(compareStrings) };
}

/**
 * Why a unit the drain of `machine` released has not settled yet, or undefined when it has: it
 * runs elsewhere (active with its current file, or loaded for a loaded target) and is announced
 * there under each service it was announced under before; or it is stopped for good (destroyed,
 * inactive, global, or unplaceable with the scheduler's reason recorded).
 */
function unsettledWhy(facts: Facts, move: DrainMove, machine: MachineId): string | undefined {
  const unit = facts.units.get(move.unit);
  if (unit === undefined) return undefined;
  const assigned = facts.view.assignments.filter((a) => a.unit === move.unit);
  if (assigned.some((a) => a.machine === machine)) return `still assigned to ${machine}`;
  const statuses = facts.snapshot.statuses.filter((s) => s.unit === move.unit);
  const stopping = statuses.find((s) => s.machine === machine && RUNNING.has(s.active));
  if (stopping !== undefined) return `stopping on ${machine} (${stopping.active})`;
  if (unit.placement.global) return undefined;
  if (assigned.length === 0) {
    const report = facts.snapshot.unschedulable.get(move.unit);
    return report?.hash === unit.hash ? undefined : 'waiting to be placed';
  }
  for (const a of assigned) {
    const s = statuses.find((x) => x.machine === a.machine && x.hash === unit.hash);
    if (s === undefined) return `starting on ${a.machine}`;
    if (unit.target === 'launched' && s.active !== 'active')
      return `${s.active} (${s.sub}) on ${a.machine}${s.reason === undefined ? '' : `: ${s.reason}`}`;
    for (const service of move.services) {
      const announced = facts.snapshot.services.some(
        (i) => i.service === service && i.unit === move.unit && i.machine === a.machine,
      );
      if (!announced) return `active on ${a.machine}, not yet announced under services/${service}`;
    }
  }
  return undefined;
}

/**
 * The next units to release from `machine`: one unit with the units it shares the machine with
 * through MachineOf= (its sidekicks, its leaders), so that a group moves as one. Groups that can
 * move elsewhere go first, by name; those that stop for good (a global unit, a unit pinned with
 * MachineID=) last, when the others run elsewhere.
 */
function nextGroup(facts: Facts, machine: MachineId): UnitName[] {
  const here = new Set<UnitName>();
  for (const a of facts.view.assignments)
    if (a.machine === machine && facts.units.has(a.unit)) here.add(a.unit);
  if (here.size === 0) return [];
  const parent = new Map<UnitName, UnitName>([...here].map((n) => [n, n]));
  const root = (n: UnitName): UnitName => {
    let r = n;
    for (let p = parent.get(r); p !== undefined && p !== r; p = parent.get(r)) r = p;
    return r;
  };
  for (const name of here) {
    for (const leader of facts.units.get(name)?.placement.machineOf ?? []) {
      const l = leader as UnitName;
      if (!here.has(l)) continue;
      const [a, b] = [root(name), root(l)];
      if (a !== b) parent.set(a < b ? b : a, a < b ? a : b);
    }
  }
  const groups = new Map<UnitName, UnitName[]>();
  for (const name of [...here].sort(compareStrings)) {
    const r = root(name);
    const list = groups.get(r);
    if (list === undefined) groups.set(r, [name]);
    else list.push(name);
  }
  const staysBehind = (group: readonly UnitName[]): boolean =>
    group.some((n) => {
      const p = facts.units.get(n)?.placement;
      return p?.global === true || p?.machineId !== undefined;
    });
  const ordered = [...groups.values()].sort(
    (a, b) => Number(staysBehind(a)) - Number(staysBehind(b)) || compareStrings(a[0] ?? '', b[0] ?? ''),
  );
  return ordered[0] ?? [];
}
