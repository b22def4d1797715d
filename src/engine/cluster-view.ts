// Pure: turns a registry snapshot into the scheduler's ClusterView. Unit files are parsed once per
// (name, hash) — units are immutable — and cached by the engine across passes.
import type { Placement, UnitHash, UnitName } from '../cluster/types.js';
import type { ClusterView, SchedulableUnit } from '../cluster/view.js';
import type { ClusterSnapshot } from '../registry/registry.js';
import { FleetError } from '../lib/errors.js';
import { parseUnitSpec } from '../unit/unit-spec.js';

/** A unit's placement, or why its stored file cannot be scheduled. */
export type PlacementResult =
  { readonly ok: true; readonly placement: Placement } | { readonly ok: false; readonly reason: string };

/** Cache of parsed placements, keyed by unit name and hash. Bounded by pruning to live units. */
export class PlacementCache {
  readonly #entries = new Map<string, PlacementResult>();
  /** Unit file texts by hash: a snapshot leaves out texts the engine already holds. */
  readonly #texts = new Map<UnitHash, string>();

  get size(): number {
    return this.#entries.size;
  }

  get(name: UnitName, hash: UnitHash, text: string | undefined): PlacementResult {
    const key = `${name}\u0000${hash}`;
    const hit = this.#entries.get(key);
    if (hit !== undefined) return hit;
    if (text !== undefined) this.#texts.set(hash, text);
    else text = this.#texts.get(hash);
    const result = placementOf(name, text);
    // Only cache results for texts we had: a missing text may appear on the next pass.
    if (text !== undefined) this.#entries.set(key, result);
    return result;
  }

  /** Keeps only the entries of (name, hash) pairs still present. */
  prune(live: readonly { readonly name: UnitName; readonly hash: UnitHash }[]): void {
    const keep = new Set<string>();
    const hashes = new Set<UnitHash>();
    for (const u of live) {
      keep.add(`${u.name}\u0000${u.hash}`);
      hashes.add(u.hash);
    }
    for (const key of this.#entries.keys()) if (!keep.has(key)) this.#entries.delete(key);
    for (const hash of this.#texts.keys()) if (!hashes.has(hash)) this.#texts.delete(hash);
  }

  /** Hashes whose texts the engine no longer needs to read (for SnapshotOptions.knownUnitFiles). */
  knownHashes(): Set<UnitHash> {
    return new Set(this.#texts.keys());
  }
}

export function placementOf(name: UnitName, text: string | undefined): PlacementResult {
  if (text === undefined)
    return { ok: false, reason: 'its unit file is missing from the registry; submit it again' };
  try {
    return { ok: true, placement: parseUnitSpec(text, name).placement };
  } catch (err) {
    if (err instanceof FleetError) return { ok: false, reason: `its unit file is invalid: ${err.message}` };
    throw err;
  }
}

export interface BuiltView {
  readonly view: ClusterView;
  /** Units that cannot be scheduled at all (their file is missing or invalid), with why. */
  readonly invalid: ReadonlyMap<UnitName, string>;
}

/** The scheduler's input for a snapshot; units whose files do not parse are left out and reported. */
export function buildClusterView(snapshot: ClusterSnapshot, cache: PlacementCache): BuiltView {
  const units: SchedulableUnit[] = [];
  const invalid = new Map<UnitName, string>();
  for (const unit of snapshot.units.values()) {
    if (unit.target === 'inactive') {
      // Not placed whatever its file says: no need to parse it.
      units.push({ name: unit.name, hash: unit.hash, target: unit.target, placement: INACTIVE_PLACEMENT });
      continue;
    }
    const result = cache.get(unit.name, unit.hash, snapshot.unitFiles.get(unit.hash));
    if (result.ok)
      units.push({ name: unit.name, hash: unit.hash, target: unit.target, placement: result.placement });
    else invalid.set(unit.name, result.reason);
  }
  return {
    view: { machines: [...snapshot.machines.values()], units, assignments: snapshot.assignments },
    invalid,
  };
}

const INACTIVE_PLACEMENT: Placement = {
  machineOf: [],
  machineMetadata: {},
  conflicts: [],
  global: false,
  replaces: [],
};
