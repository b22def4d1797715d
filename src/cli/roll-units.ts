// The effectful half of rolling changes: changes one batch of units (restart them, or give them a
// new file), waits until each is back (rolling-plan.ts assessReady) or fails or runs out of time,
// and only then goes on to the next batch. Used by `fleetts restart` and `fleetts rollout`.
import type { Clock } from '../lib/clock.js';
import { FleetError } from '../lib/errors.js';
import { askAgainWhileTransient, type ApiClient } from './client.js';
import type { Output } from './output.js';
import { announcementsOf, assessReady, type ExpectedAnnouncement, type RollTarget } from './rolling-plan.js';
import { assessUnit, type Progress } from './wait-for-units.js';

/** Default --health-timeout: how long one batch may take to come back. */
export const DEFAULT_HEALTH_TIMEOUT_MS = 60_000;

export interface RollOptions {
  readonly client: ApiClient;
  readonly output: Output;
  readonly clock: Clock;
  readonly pollMs: number;
  /** How long one batch may take, from its change until every unit of it is back. */
  readonly healthTimeoutMs: number;
  readonly signal?: AbortSignal | undefined;
}

/** What is done to each unit of a batch. */
export type RollChange =
  | { readonly kind: 'restart' }
  /** Replace the unit's file with `text` (its target becomes launched). */
  | { readonly kind: 'replace'; readonly text: string };

/** A batch that did not come back: the units that failed or timed out, and why. */
export class RollError extends FleetError {
  readonly problems: readonly { readonly unit: string; readonly reason: string }[];
  constructor(problems: readonly { unit: string; reason: string }[]) {
    super(
      'not_reached',
      problems.length === 1
        ? `${problems[0]?.unit}: ${problems[0]?.reason}`
        : `${problems.length} units did not come back:\n${problems.map((p) => `  ${p.unit}: ${p.reason}`).join('\n')}`,
    );
    this.problems = problems;
  }
}

/**
 * Changes the units of `batch` and waits until each is active again (and announced again where it
 * was announced), at most `healthTimeoutMs`. Throws RollError naming those that did not come back.
 */
export async function rollBatch(
  batch: readonly RollTarget[],
  change: RollChange,
  o: RollOptions,
): Promise<void> {
  const names = batch.map((t) => t.unit);
  const deadline = o.clock.monotonic() + o.healthTimeoutMs;
  const ask = asker(deadline, o);
  const before = await ask(() => o.client.listServices());
  const expected = new Map<string, ExpectedAnnouncement[]>(
    names.map((n) => [n, announcementsOf(n, before.instances)]),
  );
  let changedAt: number;
  if (change.kind === 'restart') {
    const stopped = await ask(() =>
      o.client.putUnits(
        names.map((name) => ({ name, target: 'loaded' })),
        { create: false },
      ),
    );
    changedAt = Math.max(before.revision, ...stopped.map((r) => r.revision ?? 0));
    await waitUntil(
      names,
      deadline,
      o,
      ask,
      (units) => (name) => assessUnit(units.get(name), 'loaded'),
      'stopped',
    );
    await ask(() =>
      o.client.putUnits(
        names.map((name) => ({ name, target: 'launched' })),
        { create: false },
      ),
    );
  } else {
    const replaced = await ask(() =>
      o.client.putUnits(
        names.map((name) => ({ name, text: change.text, target: 'launched' })),
        { replace: true, create: false },
      ),
    );
    changedAt = Math.max(before.revision, ...replaced.map((r) => r.revision ?? 0));
  }
  await waitUntil(
    names,
    deadline,
    o,
    ask,
    (units, services) => (name) =>
      assessReady(units.get(name), expected.get(name) ?? [], services, changedAt),
    'back',
  );
}

type Assess = (
  units: ReadonlyMap<string, Parameters<typeof assessUnit>[0]>,
  services: Awaited<ReturnType<ApiClient['listServices']>>['instances'],
) => (name: string) => Progress;

type Ask = <T>(request: () => Promise<T>) => Promise<T>;

/** Requests asked again while fleetd is registering again or restarting, until `deadline`. */
function asker(deadline: number, o: RollOptions): Ask {
  return askAgainWhileTransient({
    clock: o.clock,
    output: o.output,
    pollMs: o.pollMs,
    signal: o.signal,
    expired: () => o.clock.monotonic() >= deadline,
    note: 'asking again until --health-timeout',
  });
}

/** Polls until every unit reached what `assess` checks; throws RollError otherwise. */
async function waitUntil(
  names: readonly string[],
  deadline: number,
  o: RollOptions,
  ask: Ask,
  assess: Assess,
  what: 'stopped' | 'back',
): Promise<void> {
  const pending = new Set(names);
  const last = new Map<string, Progress>();
  for (;;) {
    const [units, services] = await Promise.all([
      ask(() => o.client.listUnits([...pending])),
      what === 'back' ? ask(() => o.client.listServices()).then((s) => s.instances) : Promise.resolve([]),
    ]);
    const check = assess(new Map(units.map((u) => [u.name, u])), services);
    const problems: { unit: string; reason: string }[] = [];
    for (const name of [...pending]) {
      const p = check(name);
      last.set(name, p);
      if (p.kind === 'reached') {
        pending.delete(name);
        o.output.progress('');
        o.output.out(
          what === 'stopped'
            ? `Unit ${name} stopped`
            : `Unit ${name} active${p.where === '' ? '' : ` on ${p.where}`}`,
        );
      } else if (p.kind === 'failed') {
        pending.delete(name);
        problems.push({ unit: name, reason: p.reason });
      }
    }
    if (problems.length > 0) throw new RollError(problems);
    if (pending.size === 0) return;
    if (o.clock.monotonic() >= deadline) {
      throw new RollError(
        [...pending].map((name) => {
          const p = last.get(name);
          const detail = p?.kind === 'waiting' ? p.detail : 'no news';
          return {
            unit: name,
            reason: `not ${what === 'stopped' ? 'stopped' : 'back'} within --health-timeout ${o.healthTimeoutMs / 1000}s (${detail}); see fleetts status ${name}`,
          };
        }),
      );
    }
    const first = [...pending][0] ?? '';
    const p = last.get(first);
    o.output.progress(
      `waiting for ${pending.size} unit${pending.size === 1 ? '' : 's'}${p?.kind === 'waiting' ? `: ${first} ${p.detail}` : ''}`,
    );
    await o.clock.sleep(o.pollMs, o.signal);
  }
}
