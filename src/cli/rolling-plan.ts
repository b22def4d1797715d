// The pure half of rolling changes (`fleetts restart` of several units, `fleetts rollout`): which
// units go in which batch, and whether a changed unit is back (active with its new file, and
// announced again where it was announced before). roll-units.ts applies what this decides.
import type { ServiceInstanceEntry, UnitSummary } from '../api/schemas.js';
import { parseUnitName, templateOf } from '../unit/names.js';
import { assessUnit, type Progress } from './wait-for-units.js';

/** `items` in order, `size` at a time (the last batch may be smaller). */
export function planBatches<T>(items: readonly T[], size: number): T[][] {
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`batch size must be ≥ 1, not ${size}`);
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** One unit of a rolling change, and where it runs now. */
export interface RollTarget {
  readonly unit: string;
  /** `machine/ip` of each placement (empty: not placed). */
  readonly where: readonly string[];
  /** Its file now. */
  readonly hash: string;
}

export interface RolloutPlan {
  readonly template: string;
  readonly hash: string;
  readonly maxUnavailable: number;
  /** Running instances (target launched), replaced `maxUnavailable` at a time, waiting for each. */
  readonly batches: readonly (readonly RollTarget[])[];
  /** Instances not running (loaded or inactive): given the new file at once, nothing to wait for. */
  readonly idle: readonly RollTarget[];
  /** Instances that run the new file already (a rollout resumed). */
  readonly done: readonly RollTarget[];
}

/** Whether `name` is an instance of `template` (`web@1.unit` of `web@.unit`). */
export function isInstanceOf(name: string, template: string): boolean {
  try {
    const parsed = parseUnitName(name);
    return parsed.kind === 'instance' && templateOf(parsed) === template;
  } catch {
    return false;
  }
}

/** web@2 before web@10: instance names compared with their numbers as numbers. */
export function compareUnits(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}

export function rollTarget(u: UnitSummary): RollTarget {
  return {
    unit: u.name,
    where: u.placements.map((p) => (p.ip === undefined ? p.machine : `${p.machine}/${p.ip}`)),
    hash: u.hash,
  };
}

/**
 * The plan of a rollout of `template` to the file `hash`: its instances among `units`, those that
 * run go in batches of `maxUnavailable` (by name), the others at once; those on `hash` already are
 * left out.
 */
export function planRollout(
  units: readonly UnitSummary[],
  template: string,
  hash: string,
  maxUnavailable: number,
): RolloutPlan {
  const instances = units
    .filter((u) => isInstanceOf(u.name, template))
    .sort((a, b) => compareUnits(a.name, b.name));
  const done = instances.filter((u) => u.hash === hash);
  const todo = instances.filter((u) => u.hash !== hash);
  return {
    template,
    hash,
    maxUnavailable,
    batches: planBatches(todo.filter((u) => u.target === 'launched').map(rollTarget), maxUnavailable),
    idle: todo.filter((u) => u.target !== 'launched').map(rollTarget),
    done: done.map(rollTarget),
  };
}

/** The plan in words, one line per batch: what `rollout --dry-run` prints. */
export function describeRolloutPlan(plan: RolloutPlan, from: string | undefined): string[] {
  const short = (h: string) => h.slice(0, 12);
  const lines = [
    `Rollout of ${plan.template}: ${from === undefined ? '' : `${short(from)} → `}${short(plan.hash)}, at most ${plan.maxUnavailable} instance${plan.maxUnavailable === 1 ? '' : 's'} unavailable at a time`,
  ];
  const where = (t: RollTarget) =>
    `${t.unit} on ${t.where.length === 0 ? '(not placed)' : t.where.join(', ')}`;
  plan.batches.forEach((batch, i) => lines.push(`  batch ${i + 1}: ${batch.map(where).join('; ')}`));
  if (plan.idle.length > 0)
    lines.push(`  not running, given the new file at once: ${plan.idle.map((t) => t.unit).join(', ')}`);
  if (plan.done.length > 0)
    lines.push(`  on the new file already: ${plan.done.map((t) => t.unit).join(', ')}`);
  if (plan.batches.length === 0 && plan.idle.length === 0)
    lines.push(plan.done.length === 0 ? `  no instances of ${plan.template}` : '  nothing to do');
  return lines;
}

/** A service key a unit was announced under before the change: it must be written again after. */
export interface ExpectedAnnouncement {
  readonly service: string;
  readonly instance: string;
}

/** The keys that announce `unit` now (`fleetts announce --unit`). */
export function announcementsOf(
  unit: string,
  instances: readonly ServiceInstanceEntry[],
): ExpectedAnnouncement[] {
  return instances.filter((i) => i.unit === unit).map((i) => ({ service: i.service, instance: i.instance }));
}

/**
 * Whether a unit changed at etcd revision `changedAt` is back: active with its file on each of its
 * machines (as `start` waits for it), not restarting after a failure, and each key it was announced
 * under before written again after `changedAt` by an announcer on its machine (a key written
 * before the change may still name the old process: the announcer had not noticed it stopped).
 */
export function assessReady(
  unit: UnitSummary | undefined,
  expected: readonly ExpectedAnnouncement[],
  instances: readonly ServiceInstanceEntry[],
  changedAt: number,
): Progress {
  const launched = assessUnit(unit, 'launched');
  if (unit !== undefined && launched.kind !== 'failed') {
    const placed = new Set(unit.placements.map((p) => p.machine));
    const failing = unit.statuses.find(
      (s) => placed.has(s.machine) && s.hash === unit.hash && s.sub === 'auto-restart',
    );
    if (failing !== undefined)
      return {
        kind: 'failed',
        reason: `failed on ${failing.machine} and is restarting: ${failing.reason ?? describeExit(failing.lastExit)}`,
      };
  }
  if (launched.kind !== 'reached' || unit === undefined) return launched;
  const machines = new Set(unit.placements.map((p) => p.machine));
  for (const e of expected) {
    const key = `services/${e.service}/${e.instance}`;
    const now = instances.find((i) => i.service === e.service && i.instance === e.instance);
    if (now === undefined || now.revision <= changedAt)
      return { kind: 'waiting', detail: `active, not announced again yet as ${key}` };
    if (now.machine !== undefined && !machines.has(now.machine))
      return { kind: 'waiting', detail: `active, ${key} names machine ${now.machine}` };
  }
  const announced = expected.map((e) => {
    const i = instances.find((x) => x.service === e.service && x.instance === e.instance);
    return `services/${e.service}/${e.instance}${i === undefined ? '' : ` (${i.address})`}`;
  });
  return {
    kind: 'reached',
    where:
      announced.length === 0 ? launched.where : `${launched.where}, announced as ${announced.join(', ')}`,
  };
}

function describeExit(exit: UnitSummary['statuses'][number]['lastExit']): string {
  if (exit === undefined) return 'no exit recorded';
  if (exit.signal !== undefined) return `killed by ${exit.signal}`;
  return `exited with code ${exit.code ?? '?'}`;
}
