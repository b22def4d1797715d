// Blocking commands (load, start, stop, unload, restart): poll the units through the API until
// each reached its target state as fleet defined it, showing progress, and report which did not
// and why (unplaceable with the scheduler's reason, failed with the host's reason, or timed out).
import type { TargetState } from '../cluster/types.js';
import type { Clock } from '../lib/clock.js';
import type { UnitStatus } from '../cluster/types.js';
import type { UnitSummary } from '../api/schemas.js';
import { isTransient, type ApiClient } from './client.js';
import type { Output } from './output.js';
import type { UnitNews } from './unit-news.js';

/** Default --block-attempts: one attempt per poll interval, so about a minute with the default. */
export const DEFAULT_BLOCK_ATTEMPTS = 120;
/** A failure must hold this long before it counts (a stale status of a unit being restarted). */
const FAILURE_GRACE_MS = 1_500;

export type Progress =
  | { readonly kind: 'reached'; readonly where: string }
  | { readonly kind: 'waiting'; readonly detail: string }
  | { readonly kind: 'failed'; readonly reason: string };

const RUNNING: ReadonlySet<UnitStatus['active']> = new Set(['active', 'activating', 'deactivating']);

/** Pure: how far `unit` is from `want` (fleet's meaning of the target states). */
export function assessUnit(unit: UnitSummary | undefined, want: TargetState): Progress {
  if (unit === undefined) return { kind: 'failed', reason: 'it was destroyed meanwhile' };
  const placed = new Set(unit.placements.map((p) => p.machine));
  const where = unit.placements
    .map((p) => (p.ip === undefined ? p.machine : `${p.machine}/${p.ip}`))
    .join(', ');
  const onPlaced = unit.statuses.filter((s) => placed.has(s.machine) && s.hash === unit.hash);
  if (want === 'inactive') {
    const still = unit.statuses.filter((s) => RUNNING.has(s.active));
    if (unit.placements.length === 0 && still.length === 0) return { kind: 'reached', where: '' };
    return {
      kind: 'waiting',
      detail: still.length > 0 ? `still ${still[0]?.active} on ${still[0]?.machine}` : 'still placed',
    };
  }
  if (unit.placements.length === 0) {
    if (unit.unschedulable !== undefined)
      return { kind: 'failed', reason: `cannot be placed: ${unit.unschedulable.reason}` };
    return { kind: 'waiting', detail: 'not placed yet' };
  }
  if (unit.placements.some((p) => p.target !== want))
    return { kind: 'waiting', detail: 'placement not updated yet' };
  const failed = onPlaced.find((s) => s.active === 'failed');
  if (want === 'launched') {
    if (failed !== undefined)
      return { kind: 'failed', reason: `failed on ${failed.machine}: ${failed.reason ?? failed.sub}` };
    const up = unit.placements.every((p) =>
      onPlaced.some((s) => s.machine === p.machine && s.active === 'active'),
    );
    if (up) return { kind: 'reached', where };
    const s = onPlaced[0];
    return {
      kind: 'waiting',
      detail: s === undefined ? `starting on ${where}` : `${s.active} (${s.sub}) on ${s.machine}`,
    };
  }
  const busy = onPlaced.find((s) => RUNNING.has(s.active));
  if (busy !== undefined)
    return { kind: 'waiting', detail: `${busy.active} (${busy.sub}) on ${busy.machine}` };
  // Loaded means its host has it (and reports it), as list-unit-files' STATE says.
  const unreported = unit.placements.find((p) => !onPlaced.some((s) => s.machine === p.machine));
  if (unreported !== undefined) return { kind: 'waiting', detail: `loading on ${unreported.machine}` };
  return { kind: 'reached', where };
}

export interface WaitOptions {
  readonly client: ApiClient;
  readonly output: Output;
  readonly clock: Clock;
  /** 0: no limit. */
  readonly attempts: number;
  readonly pollMs: number;
  readonly signal?: AbortSignal | undefined;
  /**
   * Wakes the wait between polls when the cluster reports a change (unit-news.ts). An attempt is
   * still one poll interval: polls made early on news do not use attempts up.
   */
  readonly news?: Pick<UnitNews, 'wait'> | undefined;
}

export interface WaitResult {
  /** Units that did not reach their target, with why (sorted by name). */
  readonly problems: readonly { readonly unit: string; readonly reason: string }[];
}

const VERB: Readonly<Record<TargetState, string>> = {
  inactive: 'inactive',
  loaded: 'loaded',
  launched: 'launched',
};

/** Polls until every unit reached its target, failed, or the attempts ran out. */
export async function waitForUnits(
  wants: ReadonlyMap<string, TargetState>,
  o: WaitOptions,
): Promise<WaitResult> {
  const pending = new Map(wants);
  const failingSince = new Map<string, number>();
  const problems: { unit: string; reason: string }[] = [];
  const last = new Map<string, Progress>();
  let outage = false;
  let attempt = 1;
  for (; pending.size > 0;) {
    let units: Awaited<ReturnType<ApiClient['listUnits']>>;
    try {
      units = await o.client.listUnits([...pending.keys()]);
      outage = false;
    } catch (err) {
      // fleetd registering again (its lease lapsed under load) or restarting: the units go on
      // changing in the cluster; this attempt counts, the next one asks again. Said once per outage.
      if (!isTransient(err) || (o.attempts > 0 && attempt >= o.attempts)) throw err;
      if (!outage) {
        o.output.progress('');
        o.output.err(`fleetts: ${err.message} (asking again)`);
      }
      outage = true;
      await o.clock.sleep(o.pollMs, o.signal);
      attempt++;
      continue;
    }
    const byName = new Map(units.map((u) => [u.name, u]));
    for (const [name, want] of pending) {
      const p = assessUnit(byName.get(name), want);
      last.set(name, p);
      if (p.kind === 'reached') {
        pending.delete(name);
        failingSince.delete(name);
        o.output.progress('');
        o.output.out(`Unit ${name} ${VERB[want]}${p.where === '' ? '' : ` on ${p.where}`}`);
      } else if (p.kind === 'failed') {
        const since = failingSince.get(name) ?? o.clock.monotonic();
        failingSince.set(name, since);
        if (o.clock.monotonic() - since >= FAILURE_GRACE_MS || byName.get(name) === undefined) {
          pending.delete(name);
          problems.push({ unit: name, reason: p.reason });
        }
      } else failingSince.delete(name);
    }
    if (pending.size === 0) break;
    if (o.attempts > 0 && attempt >= o.attempts) {
      for (const [name, want] of pending) {
        const p = last.get(name);
        const detail = p?.kind === 'waiting' ? p.detail : p?.kind === 'failed' ? p.reason : 'no news';
        problems.push({
          unit: name,
          reason: `not ${VERB[want]} after ${attempt} attempts (${detail}); raise --block-attempts or check fleetts status ${name}`,
        });
      }
      break;
    }
    const names = [...pending.keys()];
    const first = last.get(names[0] ?? '');
    const detail = first?.kind === 'waiting' ? `: ${names[0]} ${first.detail}` : '';
    o.output.progress(`waiting for ${names.length} unit${names.length === 1 ? '' : 's'}${detail}`);
    if (o.news === undefined) await o.clock.sleep(o.pollMs, o.signal);
    else if ((await o.news.wait(o.pollMs, o.signal)) === 'news') continue;
    attempt++;
  }
  o.output.progress('');
  problems.sort((a, b) => (a.unit < b.unit ? -1 : a.unit > b.unit ? 1 : 0));
  return { problems };
}
