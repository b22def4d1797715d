// The etcd key layout of fleetts (docs/registry.md): the ONLY module that builds or parses keys.
// Every key lives under one configurable prefix; each kind of record has its own top-level tree so
// that a prefix listing of one kind never picks up another (assignments are NOT under machines/).
import type { MachineId, UnitHash, UnitName } from '../cluster/types.js';
import { asMachineId, asUnitHash, asUnitName } from '../cluster/types.js';
import { RegistryError } from './registry-error.js';

export const DEFAULT_KEY_PREFIX = '/fleetts/v1/';

/** What a key under the prefix names; `undefined` from `parse` for anything else. */
export type ParsedKey =
  | { readonly kind: 'machine'; readonly machine: MachineId }
  | { readonly kind: 'machine-metadata'; readonly machine: MachineId }
  | { readonly kind: 'assignment'; readonly machine: MachineId; readonly unit: UnitName }
  | { readonly kind: 'unit'; readonly unit: UnitName }
  | { readonly kind: 'unit-file'; readonly hash: UnitHash }
  | { readonly kind: 'status'; readonly unit: UnitName; readonly machine: MachineId }
  | { readonly kind: 'unschedulable'; readonly unit: UnitName }
  | { readonly kind: 'leader' }
  | { readonly kind: 'service'; readonly service: string; readonly instance: string }
  | { readonly kind: 'claim'; readonly unit: UnitName };

/** A key range `[start, end)` as etcd ranges and watches take it. */
export interface KeyRange {
  readonly start: string;
  readonly end: string;
}

/** The trees under the prefix; also the topics an engine can watch. */
export const TREES = {
  machines: 'machines/',
  machineMetadata: 'machine-metadata/',
  assignments: 'assignments/',
  units: 'units/',
  unitFiles: 'unit-files/',
  statuses: 'status/',
  unschedulable: 'unschedulable/',
  engine: 'engine/',
  services: 'services/',
  claims: 'claims/',
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

  /** The inverse of the builders; `undefined` for a key outside the layout (never throws). */
  parse(key: string): ParsedKey | undefined {
    if (!key.startsWith(this.prefix)) return undefined;
    const parts = key.slice(this.prefix.length).split('/');
    const [tree, a, b, ...rest] = parts;
    if (rest.length > 0 || a === undefined || a === '') return undefined;
    if (b === '') return undefined;
    switch (tree) {
      case 'machines':
        return b === undefined ? { kind: 'machine', machine: asMachineId(a) } : undefined;
      case 'machine-metadata':
        return b === undefined ? { kind: 'machine-metadata', machine: asMachineId(a) } : undefined;
      case 'assignments':
        return b === undefined
          ? undefined
          : { kind: 'assignment', machine: asMachineId(a), unit: asUnitName(b) };
      case 'units':
        return b === undefined ? { kind: 'unit', unit: asUnitName(a) } : undefined;
      case 'unit-files':
        return b === undefined ? { kind: 'unit-file', hash: asUnitHash(a) } : undefined;
      case 'status':
        return b === undefined ? undefined : { kind: 'status', unit: asUnitName(a), machine: asMachineId(b) };
      case 'unschedulable':
        return b === undefined ? { kind: 'unschedulable', unit: asUnitName(a) } : undefined;
      case 'engine':
        return a === 'leader' && b === undefined ? { kind: 'leader' } : undefined;
      case 'services':
        return b === undefined ? undefined : { kind: 'service', service: a, instance: b };
      case 'claims':
        return b === undefined ? { kind: 'claim', unit: asUnitName(a) } : undefined;
      default:
        return undefined;
    }
  }
}

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

function isPrintableAscii(s: string): boolean {
  return /^[\x21-\x7e]*$/.test(s);
}
