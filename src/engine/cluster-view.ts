// Pure: turns a registry snapshot into the scheduler's ClusterView. Unit files are parsed once per
// (name, hash) — units are immutable — or once per hash when the text cannot depend on the name,
// and cached by the engine across passes.
import type { Placement, TargetState, UnitHash, UnitName } from '../cluster/types.js';
import type { ClusterView, SchedulableUnit } from '../cluster/view.js';
import type { ClusterSnapshot } from '../registry/registry.js';
import { FleetError } from '../lib/errors.js';
import { globMatch } from '../lib/glob.js';
import { parseUnitName } from '../unit/names.js';
import { parseUnitSpec } from '../unit/unit-spec.js';

/** A unit's placement, or why its stored file cannot be scheduled. */
export type PlacementResult =
  { readonly ok: true; readonly placement: Placement } | { readonly ok: false; readonly reason: string };

interface NameEntry {
  readonly hash: UnitHash;
  readonly result: PlacementResult;
  /** The scheduler's view of the unit, reused while its hash and target stay the same. */
  schedulable: SchedulableUnit | undefined;
}

interface FileEntry {
  readonly text: string;
  /**
   * The placement this text gives every unit name, when it does not depend on the name: the text
   * has no `%` (so no specifier) and parsed without error. Ten thousand instances of one template
   * are then parsed once, not once each (issue 3: a 10,000-unit burst within the memory budget).
   */
  shared: Placement | undefined;
}

/**
 * Parsed placements by unit name and hash, across passes. Bounded by pruning to live units. Units
 * are immutable per hash, so an entry stays valid until the unit's hash changes.
 */
export class PlacementCache {
  readonly #byName = new Map<UnitName, NameEntry>();
  /** Unit file texts by hash: a snapshot leaves out texts the engine already holds. */
  readonly #files = new Map<UnitHash, FileEntry>();

  get size(): number {
    return this.#byName.size;
  }

  get(name: UnitName, hash: UnitHash, text: string | undefined): PlacementResult {
    return this.#entry(name, hash, text)?.result ?? placementOf(name, undefined);
  }

  /** The unit as the scheduler sees it, or why it cannot be scheduled; reused across passes. */
  schedulable(
    unit: { readonly name: UnitName; readonly hash: UnitHash; readonly target: TargetState },
    text: string | undefined,
  ): SchedulableUnit | string {
    const entry = this.#entry(unit.name, unit.hash, text);
    const result = entry?.result ?? placementOf(unit.name, undefined);
    if (!result.ok) return result.reason;
    const known = entry?.schedulable;
    if (known !== undefined && known.target === unit.target) return known;
    const made: SchedulableUnit = {
      name: unit.name,
      hash: unit.hash,
      target: unit.target,
      placement: result.placement,
    };
    if (entry !== undefined) entry.schedulable = made;
    return made;
  }

  #entry(name: UnitName, hash: UnitHash, text: string | undefined): NameEntry | undefined {
    const hit = this.#byName.get(name);
    if (hit?.hash === hash) return hit;
    let file = this.#files.get(hash);
    if (file === undefined && text !== undefined) {
      file = { text, shared: undefined };
      this.#files.set(hash, file);
    }
    // Only cache results for texts we had: a missing text may appear on the next pass.
    if (file === undefined) return undefined;
    const entry: NameEntry = { hash, result: placementFor(name, file), schedulable: undefined };
    this.#byName.set(name, entry);
    return entry;
  }

  /** Keeps only the entries of (name, hash) pairs still present. */
  prune(live: ReadonlyMap<UnitName, { readonly hash: UnitHash }>): void {
    for (const [name, entry] of this.#byName)
      if (live.get(name)?.hash !== entry.hash) this.#byName.delete(name);
    if (this.#files.size === 0) return;
    const hashes = new Set<UnitHash>();
    for (const u of live.values()) hashes.add(u.hash);
    for (const hash of this.#files.keys()) if (!hashes.has(hash)) this.#files.delete(hash);
  }

  /** Hashes whose texts the engine no longer needs to read (for SnapshotOptions.knownUnitFiles). */
  knownHashes(): Set<UnitHash> {
    return new Set(this.#files.keys());
  }
}

/**
 * The placement of `name` from a cached file: the shared parse when the text does not depend on the
 * name and the name breaks none of the rules that involve it (parseUnitSpec checks that a unit does
 * not follow or replace itself, and that its name is valid); otherwise a full parse for this name.
 */
function placementFor(name: UnitName, file: FileEntry): PlacementResult {
  const shared = file.shared;
  if (shared !== undefined && nameFits(name, shared)) return { ok: true, placement: shared };
  const result = placementOf(name, file.text);
  if (result.ok && shared === undefined && !file.text.includes('%')) file.shared = result.placement;
  return result;
}

function nameFits(name: UnitName, placement: Placement): boolean {
  if (placement.machineOf.includes(name)) return false;
  for (const pattern of placement.replaces) if (safeGlobMatch(pattern, name)) return false;
  try {
    parseUnitName(name);
    return true;
  } catch {
    return false;
  }
}

function safeGlobMatch(pattern: string, name: string): boolean {
  try {
    return globMatch(pattern, name);
  } catch {
    return true; // not provably fine: let the full parse decide
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
  // Unit files that are in etcd but did not decode: say so, rather than "missing".
  const corruptFiles = new Map<string, string>();
  for (const p of snapshot.problems)
    if (p.tree === 'unitFiles' && p.name !== undefined) corruptFiles.set(p.name, p.message);
  for (const unit of snapshot.units.values()) {
    if (unit.target === 'inactive') {
      // Not placed whatever its file says: no need to parse it.
      units.push({ name: unit.name, hash: unit.hash, target: unit.target, placement: INACTIVE_PLACEMENT });
      continue;
    }
    const text = snapshot.unitFiles.get(unit.hash);
    const result = cache.schedulable(unit, text);
    const corrupt = text === undefined ? corruptFiles.get(unit.hash) : undefined;
    if (corrupt !== undefined)
      invalid.set(
        unit.name,
        `its unit file is corrupt in etcd (${corrupt}); destroy the unit and submit it again`,
      );
    else if (typeof result === 'string') invalid.set(unit.name, result);
    else units.push(result);
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
