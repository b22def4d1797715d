// The agent's pure core: one level-triggered pass compares what this machine should run (its
// assignments, with their parsed unit files) against what its runtimes report, and returns the
// actions that close the gap, each with the reason for it. The executor (agent.ts) carries them out.
import type { ActiveState, LoadState, UnitHash, UnitName } from '../cluster/types.js';
import type { ObservedUnit } from '../runtime/runtime.js';
import { isFenceStop } from '../runtime/fence.js';

export type RuntimeKind = 'process' | 'container';

/** What a pass needs to know of a parsed unit file. */
export interface UnitRunInfo {
  readonly runtime: RuntimeKind;
  /** BindsTo=: full unit names; this unit runs only while each of them is active on this machine. */
  readonly bindsTo: readonly string[];
  /** After=: full unit names; among those launched on this machine, start this unit after them. */
  readonly after: readonly string[];
}

/** A unit file the agent could not use: `not-found` (not in the registry) or `error` (does not parse). */
export interface UnitLoadError {
  readonly kind: 'error';
  readonly load: Exclude<LoadState, 'loaded'>;
  readonly reason: string;
}

export type DesiredSpec = { readonly kind: 'ok'; readonly info: UnitRunInfo } | UnitLoadError;

/** One assignment of this machine, with what its unit file says. */
export interface DesiredUnit {
  readonly unit: UnitName;
  readonly hash: UnitHash;
  readonly target: 'loaded' | 'launched';
  readonly spec: DesiredSpec;
}

/** A runtime's view of one unit, and which runtime it lives in. */
export interface ObservedEntry extends ObservedUnit {
  readonly runtime: RuntimeKind;
}

export interface DiffContext {
  /** Runtimes this host has (a `[Container]` unit needs `container`). */
  readonly runtimes: ReadonlySet<RuntimeKind>;
  /** Units with an operation in flight: left alone until it ends (a pass never stacks operations). */
  readonly busy: ReadonlySet<UnitName>;
  /**
   * Units this agent started (or adopted) for a hash and has not stopped itself since. A unit of
   * that hash that is now inactive or failed ended on its own, and is not started again until its
   * assignment changes: restarting is its Restart= policy's job, not the agent's.
   */
  readonly attempted: ReadonlyMap<UnitName, UnitHash>;
  /**
   * Units found on this host when fleetd started (adopted) and not assigned to it yet: for a short
   * while they are stopped but not removed, because the engine may place them here again (a host
   * powered on after its units went unplaced) and then the same container starts again.
   */
  readonly keep?: ReadonlySet<UnitName>;
  /** The agent has self-fenced: stop everything that runs, start nothing, remove nothing. */
  readonly fenced?: { readonly reason: string };
}

/** A status the agent reports for a unit its runtime does not (or not usefully) know. */
export interface ReportedState {
  readonly hash: UnitHash;
  readonly load: LoadState;
  readonly active: ActiveState;
  readonly sub: string;
  readonly reason?: string;
}

export type Action =
  | {
      readonly kind: 'start';
      readonly unit: UnitName;
      readonly hash: UnitHash;
      readonly runtime: RuntimeKind;
      readonly reason: string;
    }
  /** The unit runs another hash: the runtime stops the old one and starts this one. */
  | {
      readonly kind: 'replace';
      readonly unit: UnitName;
      readonly from: UnitHash;
      readonly hash: UnitHash;
      readonly runtime: RuntimeKind;
      readonly reason: string;
    }
  | { readonly kind: 'stop'; readonly unit: UnitName; readonly runtime: RuntimeKind; readonly reason: string }
  /** Stops the unit if needed and forgets it (its status is deleted with it). */
  | {
      readonly kind: 'remove';
      readonly unit: UnitName;
      readonly runtime: RuntimeKind;
      readonly reason: string;
    }
  /** Report this state instead of the runtime's (the runtime does not know the unit, or cannot run it). */
  | {
      readonly kind: 'report';
      readonly unit: UnitName;
      readonly state: ReportedState;
      readonly reason: string;
    }
  /** Nothing to do, and why (logged, and asserted by tests). */
  | { readonly kind: 'hold'; readonly unit: UnitName; readonly reason: string };

export const NO_CONTAINER_RUNTIME = 'this host has no Docker runtime (start fleetd with Docker available)';

/** Running or about to run: what a stop would act on. */
export function isUp(o: { readonly active: ActiveState }): boolean {
  return o.active === 'active' || o.active === 'activating';
}

function isEnded(o: { readonly active: ActiveState }): boolean {
  return o.active === 'inactive' || o.active === 'failed';
}

const short = (h: string): string => h.slice(0, 12);

function describe(o: ObservedUnit): string {
  return `${o.active}/${o.sub}${o.reason === undefined ? '' : ` (${o.reason})`}`;
}

/**
 * The actions of one pass, in a stable order (units by name; within a unit, removals from a
 * runtime it left before anything else). Every assigned unit gets exactly one action that decides
 * it (start, replace, stop, report or hold); an observed unit that is not assigned gets a remove
 * (or, while it is in `ctx.keep`, a stop if it runs).
 */
export function diffUnits(
  desired: readonly DesiredUnit[],
  observed: readonly ObservedEntry[],
  ctx: DiffContext,
): Action[] {
  const actions: Action[] = [];
  const byUnit = new Map<UnitName, ObservedEntry[]>();
  for (const o of observed) byUnit.set(o.unit, [...(byUnit.get(o.unit) ?? []), o]);
  const wanted = new Map(desired.map((d) => [d.unit as string, d]));

  if (ctx.fenced !== undefined) {
    for (const o of sortByUnit(observed)) {
      if (ctx.busy.has(o.unit) || !isUp(o)) continue;
      actions.push({ kind: 'stop', unit: o.unit, runtime: o.runtime, reason: ctx.fenced.reason });
    }
    return actions;
  }

  const names = [...new Set([...wanted.keys(), ...byUnit.keys()])].sort();
  for (const name of names) {
    const d = wanted.get(name);
    const entries = byUnit.get(name as UnitName) ?? [];
    if (d === undefined) {
      for (const o of entries) {
        if (ctx.busy.has(o.unit)) continue;
        if (ctx.keep?.has(o.unit) === true) {
          if (isUp(o)) {
            actions.push({
              kind: 'stop',
              unit: o.unit,
              runtime: o.runtime,
              reason:
                'not assigned to this machine (found running when fleetd started; kept stopped for now)',
            });
          }
          continue;
        }
        actions.push({
          kind: 'remove',
          unit: o.unit,
          runtime: o.runtime,
          reason: 'no longer assigned to this machine',
        });
      }
      continue;
    }
    if (ctx.busy.has(d.unit)) {
      actions.push({ kind: 'hold', unit: d.unit, reason: 'an operation on it is in progress' });
      continue;
    }
    const spec = d.spec;
    if (spec.kind === 'error') {
      const up = entries.find(isUp);
      if (up !== undefined && up.hash !== d.hash) {
        actions.push({
          kind: 'stop',
          unit: d.unit,
          runtime: up.runtime,
          reason: `its new unit file cannot be loaded: ${spec.reason}`,
        });
      } else {
        actions.push({
          kind: 'report',
          unit: d.unit,
          state: { hash: d.hash, load: spec.load, active: 'inactive', sub: 'dead', reason: spec.reason },
          reason: spec.reason,
        });
      }
      continue;
    }
    const runtime = spec.info.runtime;
    // A unit whose new file runs it the other way (process ↔ container) leaves its old runtime first.
    const elsewhere = entries.filter((o) => o.runtime !== runtime);
    for (const o of elsewhere) {
      actions.push({
        kind: 'remove',
        unit: o.unit,
        runtime: o.runtime,
        reason: `its unit file now runs it as a ${runtime === 'process' ? 'process' : 'container'}`,
      });
    }
    if (elsewhere.length > 0) continue;
    if (!ctx.runtimes.has(runtime)) {
      actions.push({
        kind: 'report',
        unit: d.unit,
        state: { hash: d.hash, load: 'error', active: 'inactive', sub: 'dead', reason: NO_CONTAINER_RUNTIME },
        reason: NO_CONTAINER_RUNTIME,
      });
      continue;
    }
    const o = entries[0];
    actions.push(
      d.target === 'loaded' ? decideLoaded(d, o) : decideLaunched(d, spec.info, o, wanted, byUnit, ctx),
    );
  }
  return actions;
}

function decideLoaded(d: DesiredUnit, o: ObservedEntry | undefined): Action {
  if (o !== undefined && isUp(o)) {
    return {
      kind: 'stop',
      unit: d.unit,
      runtime: o.runtime,
      reason: 'its target state is loaded (placed, not running)',
    };
  }
  if (o === undefined || o.hash !== d.hash) {
    return {
      kind: 'report',
      unit: d.unit,
      state: { hash: d.hash, load: 'loaded', active: 'inactive', sub: 'dead' },
      reason: 'target state loaded: known and prepared, not started',
    };
  }
  return { kind: 'hold', unit: d.unit, reason: `loaded, not running (${describe(o)})` };
}

function decideLaunched(
  d: DesiredUnit,
  info: UnitRunInfo,
  o: ObservedEntry | undefined,
  wanted: ReadonlyMap<string, DesiredUnit>,
  observed: ReadonlyMap<UnitName, readonly ObservedEntry[]>,
  ctx: DiffContext,
): Action {
  const activeHere = (name: string): ObservedEntry | undefined => {
    const w = wanted.get(name);
    return (observed.get(name as UnitName) ?? []).find((e) => w !== undefined && e.hash === w.hash);
  };
  // An assigned unit that ran this hash and ended by itself stays ended (no restart loop).
  if (
    o !== undefined &&
    o.hash === d.hash &&
    isEnded(o) &&
    ctx.attempted.get(d.unit) === d.hash &&
    !isFenceStop(o.reason)
  ) {
    return {
      kind: 'hold',
      unit: d.unit,
      reason: `it ended ${describe(o)}; not restarted until its assignment changes (restarts are its Restart= policy's job)`,
    };
  }
  // Started for this hash, yet the runtime does not know it: its config could not be made.
  if (o === undefined && ctx.attempted.get(d.unit) === d.hash) {
    return {
      kind: 'hold',
      unit: d.unit,
      reason: 'it could not be started; not retried until its assignment changes',
    };
  }
  // BindsTo=: the unit it is bound to must be active here, else this one stops (or waits).
  for (const b of info.bindsTo) {
    if (b === d.unit) continue;
    const t = activeHere(b);
    const why =
      wanted.get(b) === undefined
        ? `BindsTo=${b} is not assigned to this machine`
        : t === undefined
          ? `BindsTo=${b} is not running here`
          : t.active === 'active'
            ? undefined
            : `BindsTo=${b} is not active (${describe(t)})`;
    if (why === undefined) continue;
    if (o !== undefined && isUp(o)) return { kind: 'stop', unit: d.unit, runtime: o.runtime, reason: why };
    if (o === undefined) {
      return {
        kind: 'report',
        unit: d.unit,
        state: { hash: d.hash, load: 'loaded', active: 'inactive', sub: 'dead', reason: `waiting: ${why}` },
        reason: `waiting: ${why}`,
      };
    }
    return { kind: 'hold', unit: d.unit, reason: `waiting: ${why}` };
  }
  if (o !== undefined && o.hash === d.hash && isUp(o)) {
    return { kind: 'hold', unit: d.unit, reason: `running (${describe(o)})` };
  }
  if (o !== undefined && o.active === 'deactivating') {
    return { kind: 'hold', unit: d.unit, reason: `waiting for it to stop (${describe(o)})` };
  }
  // After=: among units launched here, start only once each of them has started (or ended for good).
  for (const a of info.after) {
    const w = wanted.get(a);
    if (a === d.unit || w === undefined || w.target !== 'launched' || w.spec.kind === 'error') continue;
    const t = activeHere(a);
    const started =
      t !== undefined &&
      !ctx.busy.has(t.unit) &&
      (t.active === 'active' ||
        (isEnded(t) && ctx.attempted.get(t.unit) === t.hash && !isFenceStop(t.reason)));
    if (!started) return { kind: 'hold', unit: d.unit, reason: `waiting: After=${a} has not started yet` };
  }
  if (o === undefined) {
    return {
      kind: 'start',
      unit: d.unit,
      hash: d.hash,
      runtime: info.runtime,
      reason: 'assigned with target launched',
    };
  }
  if (o.hash !== d.hash) {
    if (isUp(o)) {
      return {
        kind: 'replace',
        unit: d.unit,
        from: o.hash,
        hash: d.hash,
        runtime: info.runtime,
        reason: `its unit file changed (${short(o.hash)} → ${short(d.hash)})`,
      };
    }
    return {
      kind: 'start',
      unit: d.unit,
      hash: d.hash,
      runtime: info.runtime,
      reason: `its unit file changed (${short(o.hash)} → ${short(d.hash)}); the old one had ended`,
    };
  }
  return {
    kind: 'start',
    unit: d.unit,
    hash: d.hash,
    runtime: info.runtime,
    reason: isFenceStop(o.reason)
      ? 'it was stopped by self-fencing and is assigned here again'
      : `target launched, but it is ${describe(o)}`,
  };
}

function sortByUnit<T extends { readonly unit: string }>(xs: readonly T[]): T[] {
  return [...xs].sort((a, b) => (a.unit < b.unit ? -1 : a.unit > b.unit ? 1 : 0));
}
