// The etcd key layout of fleetts (docs/registry.md): the ONLY module that builds or parses keys.
// Every key lives under one configurable prefix; each kind of record has its own top-level tree so
// that a prefix listing of one kind never picks up another (assignments are NOT under machines/).
import type { MachineId, UnitHash, UnitName } from '../cluster/types.js';
import { asMachineId, asUnitHash, asUnitName } from '../cluster/types.js';
import { parseUnitName, UNIT_NAME_MAX } from '../unit/names.js';
import { RegistryError } from './registry-error.js';

export const DEFAULT_KEY_PREFIX = '/fleetts/v1/';

/** What a key under the prefix names; `undefined` from `parse` for anything else. */
export type ParsedKey =
  | { readonly kind: 'machine'; readonly machine: MachineId }
  | { readonly kind: 'machine-metadata'; readonly machine: MachineId }
  | { readonly kind: 'drain'; readonly machine: MachineId }
  | { readonly kind: 'assignment'; readonly machine: MachineId; readonly unit: UnitName }
  | { readonly kind: 'unit'; readonly unit: UnitName }
  | { readonly kind: 'unit-file'; readonly hash: UnitHash }
  | { readonly kind: 'status'; readonly unit: UnitName; readonly machine: MachineId }
  | { readonly kind: 'unschedulable'; readonly unit: UnitName }
  | { readonly kind: 'leader' }
  | { readonly kind: 'service'; readonly service: string; readonly instance: string }
  | { readonly kind: 'claim'; readonly unit: UnitName }
  | { readonly kind: 'floating'; readonly address: string }
  | { readonly kind: 'rollout'; readonly unit: UnitName }
  | { readonly kind: 'upstream'; readonly host: string; readonly service: string };

/** A key range `[start, end)` as etcd ranges and watches take it. */
export interface KeyRange {
  readonly start: string;
  readonly end: string;
}

/** The trees under the prefix; also the topics an engine can watch. */
export const TREES = {
  machines: 'machines/',
  machineMetadata: 'machine-metadata/',
  drains: 'drains/',
  assignments: 'assignments/',
  units: 'units/',
  unitFiles: 'unit-files/',
  statuses: 'status/',
  unschedulable: 'unschedulable/',
  engine: 'engine/',
  services: 'services/',
  claims: 'claims/',
  floating: 'floating/',
  rollouts: 'rollouts/',
  upstreams: 'upstreams/',
} as const;

export class RegistryKeys {
  readonly prefix: string;

  constructor(prefix: string = DEFAULT_KEY_PREFIX) {
    if (!prefix.startsWith('/') || !prefix.endsWith('/') || !isPrintableAscii(prefix)) {
      throw new RegistryError(
        'invalid',
        `etcd key prefix '${prefix}' must start and end with '/' and be printable ASCII (e.g. ${DEFAULT_KEY_PREFIX})`,
      );
    }
    this.prefix = prefix;
  }

  machine(id: MachineId): string {
    return this.prefix + TREES.machines + segment(id, 'machine id');
  }
  machineMetadata(id: MachineId): string {
    return this.prefix + TREES.machineMetadata + segment(id, 'machine id');
  }
  /** The machine is drained (`fleetts drain`): persistent until `undrain`, whatever its lease. */
  drain(id: MachineId): string {
    return this.prefix + TREES.drains + segment(id, 'machine id');
  }
  assignment(machine: MachineId, unit: UnitName): string {
    return this.assignmentsOf(machine).start + segment(unit, 'unit name');
  }
  /** Every assignment of one machine: the only range an agent watches. */
  assignmentsOf(machine: MachineId): KeyRange {
    return prefixRange(this.prefix + TREES.assignments + segment(machine, 'machine id') + '/');
  }
  unit(name: UnitName): string {
    return this.prefix + TREES.units + segment(name, 'unit name');
  }
  unitFile(hash: UnitHash): string {
    return this.prefix + TREES.unitFiles + segment(hash, 'unit hash');
  }
  status(unit: UnitName, machine: MachineId): string {
    return this.statusesOf(unit).start + segment(machine, 'machine id');
  }
  statusesOf(unit: UnitName): KeyRange {
    return prefixRange(this.prefix + TREES.statuses + segment(unit, 'unit name') + '/');
  }
  unschedulable(unit: UnitName): string {
    return this.prefix + TREES.unschedulable + segment(unit, 'unit name');
  }
  /** The run claim of a non-global unit: held by the one machine allowed to run it now. */
  claim(unit: UnitName): string {
    return this.prefix + TREES.claims + segment(unit, 'unit name');
  }
  leader(): string {
    return this.prefix + TREES.engine + 'leader';
  }
  /** Held (under its holder's lease) by the one `fleetts floating-address` that has the address up. */
  floatingAddress(address: string): string {
    return this.prefix + TREES.floating + segment(address, 'floating address');
  }
  /** The rollout record of a template (or unit): its previous file, kept for `rollout --rollback`. */
  rollout(unit: UnitName): string {
    return this.prefix + TREES.rollouts + segment(unit, 'unit name');
  }
  /** The last reload of one `fleetts upstream` (under its lease): which host, which service. */
  upstream(host: string, service: string): string {
    return (
      this.prefix + TREES.upstreams + segment(host, 'host name') + '/' + segment(service, 'service name')
    );
  }
  service(service: string, instance: string): string {
    return this.instancesOf(service).start + segment(instance, 'service instance');
  }
  instancesOf(service: string): KeyRange {
    return prefixRange(this.prefix + TREES.services + segment(service, 'service name') + '/');
  }
  /** One whole tree (`machines/`, `units/`, …). */
  tree(name: keyof typeof TREES): KeyRange {
    return prefixRange(this.prefix + TREES[name]);
  }
  /** Everything under the prefix. */
  all(): KeyRange {
    return prefixRange(this.prefix);
  }

  /** The inverse of the builders; `undefined` for a key outside the layout or invalid (never throws). */
  parse(key: string): ParsedKey | undefined {
    const inspected = this.inspect(key);
    return inspected.ok ? inspected.parsed : undefined;
  }

  /**
   * Like `parse`, with why a key is not one of the layout. Every segment of an `ok` key is one its
   * builder accepts (unit names are valid unit names), so whatever is read back can be written
   * again: a hand-written `units/bad name;rm -rf.service` is reported, never handed on to throw
   * later in the engine.
   */
  inspect(key: string): InspectedKey {
    if (!key.startsWith(this.prefix)) return { ok: false, reason: `not under the prefix ${this.prefix}` };
    const path = key.slice(this.prefix.length);
    const slash = path.indexOf('/');
    const treeName = slash < 0 ? path : path.slice(0, slash + 1);
    const tree = TREE_OF.get(treeName);
    if (tree === undefined)
      return { ok: false, reason: 'not a key of the fleetts layout (docs/registry.md)' };
    const name = path.slice(treeName.length);
    const parts = name.split('/');
    const [a = '', b] = parts;
    const arity = SEGMENTS[tree];
    if (parts.length !== arity || parts.some((p) => p === ''))
      return invalid(
        tree,
        name,
        `a ${TREES[tree]} key has ${arity === 1 ? 'one segment' : 'two segments'} after ${TREES[tree]}, not ${JSON.stringify(name)}`,
      );
    // Unit names are checked as unit names (which are printable ASCII), for the better reason;
    // the common case (all printable, and the unit segment a plain valid name) costs two regexes.
    const unitAt = UNIT_SEGMENT[tree];
    const unit = unitAt === undefined ? undefined : parts[unitAt];
    if (!isPrintableAscii(name) || (unit !== undefined && !isPlainUnitName(unit))) {
      for (const [i, part] of parts.entries()) {
        const why =
          i === unitAt
            ? unitNameProblem(part)
            : isPrintableAscii(part)
              ? undefined
              : `segment ${JSON.stringify(part)} is not printable ASCII (fleetts writes no such key)`;
        if (why !== undefined) return invalid(tree, name, why);
      }
    }
    let parsed: ParsedKey;
    switch (tree) {
      case 'machines':
        parsed = { kind: 'machine', machine: asMachineId(a) };
        break;
      case 'machineMetadata':
        parsed = { kind: 'machine-metadata', machine: asMachineId(a) };
        break;
      case 'drains':
        parsed = { kind: 'drain', machine: asMachineId(a) };
        break;
      case 'assignments':
        parsed = { kind: 'assignment', machine: asMachineId(a), unit: asUnitName(b ?? '') };
        break;
      case 'units':
        parsed = { kind: 'unit', unit: asUnitName(a) };
        break;
      case 'unitFiles':
        if (!/^[0-9a-f]+$/.test(a))
          return invalid(tree, name, `unit file key ${JSON.stringify(a)} is not a lowercase hex hash`);
        parsed = { kind: 'unit-file', hash: asUnitHash(a) };
        break;
      case 'statuses':
        parsed = { kind: 'status', unit: asUnitName(a), machine: asMachineId(b ?? '') };
        break;
      case 'unschedulable':
        parsed = { kind: 'unschedulable', unit: asUnitName(a) };
        break;
      case 'engine':
        if (a !== 'leader') return invalid(tree, name, 'the only key under engine/ is engine/leader');
        parsed = { kind: 'leader' };
        break;
      case 'services':
        parsed = { kind: 'service', service: a, instance: b ?? '' };
        break;
      case 'claims':
        parsed = { kind: 'claim', unit: asUnitName(a) };
        break;
      case 'floating':
        parsed = { kind: 'floating', address: a };
        break;
      case 'rollouts':
        parsed = { kind: 'rollout', unit: asUnitName(a) };
        break;
      case 'upstreams':
        parsed = { kind: 'upstream', host: a, service: b ?? '' };
        break;
    }
    return { ok: true, parsed, tree, name };
  }
}

function invalid(tree: TreeName, name: string, reason: string): InspectedKey {
  return { ok: false, tree, name, reason };
}

export type TreeName = keyof typeof TREES;

/** `parse` with reasons: a key of the layout, or why not (with its tree when it is under one). */
export type InspectedKey =
  | { readonly ok: true; readonly parsed: ParsedKey; readonly tree: TreeName; readonly name: string }
  | {
      readonly ok: false;
      /** The tree the key is under, if any. */
      readonly tree?: TreeName;
      /** The rest of the key after the tree (for `units/`: the name as stored). */
      readonly name?: string;
      readonly reason: string;
    };

/** Which segment after each tree's name is a unit name (checked as one), if any. */
const UNIT_SEGMENT: Readonly<Record<TreeName, number | undefined>> = {
  machines: undefined,
  machineMetadata: undefined,
  drains: undefined,
  assignments: 1,
  units: 0,
  unitFiles: undefined,
  statuses: 0,
  unschedulable: 0,
  engine: undefined,
  services: undefined,
  claims: 0,
  floating: undefined,
  rollouts: 0,
  upstreams: undefined,
};

/** `machines/` → `machines`, … */
const TREE_OF: ReadonlyMap<string, TreeName> = new Map(
  (Object.keys(TREES) as TreeName[]).map((t) => [TREES[t], t]),
);

/** How many segments follow each tree's name. */
const SEGMENTS: Readonly<Record<TreeName, number>> = {
  machines: 1,
  machineMetadata: 1,
  drains: 1,
  assignments: 2,
  units: 1,
  unitFiles: 1,
  statuses: 2,
  unschedulable: 1,
  engine: 1,
  services: 2,
  claims: 1,
  floating: 1,
  rollouts: 1,
  upstreams: 2,
};

/** The range of every key that starts with `prefix` (etcd's `range_end = prefix + 1`). */
export function prefixRange(prefix: string): KeyRange {
  return { start: prefix, end: prefixEnd(prefix) };
}

/** The smallest key greater than every key starting with `prefix` (prefix is ASCII). */
export function prefixEnd(prefix: string): string {
  if (prefix === '') return '\0';
  const last = prefix.charCodeAt(prefix.length - 1);
  return prefix.slice(0, -1) + String.fromCharCode(last + 1);
}

/**
 * A key segment: non-empty printable ASCII without '/', so that keys parse back unambiguously and
 * sort the same as bytes (etcd) and as JS strings (the memory registry).
 */
function segment(value: string, what: string): string {
  if (value === '' || value.includes('/') || !isPrintableAscii(value)) {
    throw new RegistryError(
      'invalid',
      `invalid ${what} '${value}': must be non-empty printable ASCII without '/'`,
    );
  }
  return value;
}

/**
 * Names that are certainly valid unit names (a subset of what parseUnitName accepts), so that a
 * snapshot of 10,000 statuses does not run the full parser on each; anything else gets the parser
 * and its reason.
 */
const PLAIN_UNIT_NAME = /^(?![.])[A-Za-z0-9:_.\\-]+(?:@[A-Za-z0-9:_.\\-]*)?\.(?:unit|service)$/;

function isPlainUnitName(s: string): boolean {
  return s.length <= UNIT_NAME_MAX && PLAIN_UNIT_NAME.test(s);
}

/** Why `s` is not a valid unit name, or undefined when it is. */
function unitNameProblem(s: string): string | undefined {
  if (isPlainUnitName(s)) return undefined;
  try {
    parseUnitName(s);
    return undefined;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

function isPrintableAscii(s: string): boolean {
  return /^[\x21-\x7e]*$/.test(s);
}
