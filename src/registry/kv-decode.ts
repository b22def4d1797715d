// Stored keys and values back into records, shared by the registry's concerns: every key is
// checked against the layout (keys.ts) and every value against its codec (codec.ts), and a bad one
// becomes a DecodeProblem for the caller's listing instead of a throw.
import type { Assignment, MachineId, Metadata, UnitName, UnitStatus } from '../cluster/types.js';
import { asMachineId, asUnitHash, asUnitName } from '../cluster/types.js';
import type { Decoded, DecodeProblem, StoredValue, ValueKind } from './codec.js';
import { decodeValue } from './codec.js';
import type { ParsedKey, RegistryKeys } from './keys.js';
import type { KeyValue } from './kv.js';
import { NO_LEASE } from './kv.js';
import type { DrainRecord, MachineRecord, ServiceInstance, UnitRecord } from './registry.js';

/** A stored record: its parsed key and its decoded value. */
export interface StoredRecord<P extends ParsedKey['kind'], V extends ValueKind> {
  readonly key: Extract<ParsedKey, { kind: P }>;
  readonly value: StoredValue<V>;
}

/** `kv` as a record of `keyKind` with a `valueKind` value, or the problem with its key and tree. */
export function decodeRecord<P extends ParsedKey['kind'], V extends ValueKind>(
  keys: RegistryKeys,
  kv: KeyValue,
  keyKind: P,
  valueKind: V,
): Decoded<StoredRecord<P, V>> {
  const inspected = keys.inspect(kv.key);
  const at = {
    ...(inspected.tree === undefined ? {} : { tree: inspected.tree }),
    ...(inspected.name === undefined ? {} : { name: inspected.name }),
  };
  if (!inspected.ok)
    return { ok: false, problem: { key: kv.key, message: `bad key: ${inspected.reason}`, ...at } };
  if (inspected.parsed.kind !== keyKind)
    return { ok: false, problem: { key: kv.key, message: `not a ${keyKind} key`, ...at } };
  const value = decodeValue(valueKind, kv.key, kv.value);
  if (!value.ok) return { ok: false, problem: { ...value.problem, ...at } };
  return {
    ok: true,
    value: { key: inspected.parsed as Extract<ParsedKey, { kind: P }>, value: value.value },
  };
}

/**
 * The key and value of `kv` as a record of `keyKind`, or undefined with the problem recorded: a
 * key outside the layout (nested, not ASCII, no valid unit name…) or a value that does not decode.
 */
export function readRecord<P extends ParsedKey['kind'], V extends ValueKind>(
  keys: RegistryKeys,
  kv: KeyValue,
  keyKind: P,
  valueKind: V,
  problems: DecodeProblem[],
): StoredRecord<P, V> | undefined {
  return check(decodeRecord(keys, kv, keyKind, valueKind), problems);
}

/** The value, or undefined with its problem recorded. */
export function check<T>(decoded: Decoded<T>, problems: DecodeProblem[]): T | undefined {
  if (decoded.ok) return decoded.value;
  problems.push(decoded.problem);
  return undefined;
}

export function decodeUnitRecord(
  keys: RegistryKeys,
  kv: KeyValue,
  problems: DecodeProblem[],
): UnitRecord | undefined {
  const read = readRecord(keys, kv, 'unit', 'unit', problems);
  if (read === undefined) return undefined;
  return {
    name: read.key.unit,
    hash: asUnitHash(read.value.hash),
    target: read.value.target,
    modRevision: kv.modRevision,
  };
}

export function decodeAssignment(keys: RegistryKeys, kv: KeyValue): Decoded<Assignment> {
  const decoded = decodeRecord(keys, kv, 'assignment', 'assignment');
  if (!decoded.ok) return decoded;
  const { key, value } = decoded.value;
  return {
    ok: true,
    value: { unit: key.unit, machine: key.machine, hash: asUnitHash(value.hash), target: value.target },
  };
}

export function decodeStatus(
  keys: RegistryKeys,
  kv: KeyValue,
  problems: DecodeProblem[],
): UnitStatus | undefined {
  const read = readRecord(keys, kv, 'status', 'status', problems);
  return read === undefined ? undefined : toStatus(read.key.unit, read.key.machine, read.value);
}

export function decodeService(keys: RegistryKeys, kv: KeyValue): Decoded<ServiceInstance> {
  const decoded = decodeRecord(keys, kv, 'service', 'service');
  if (!decoded.ok) return decoded;
  const { key, value: v } = decoded.value;
  return {
    ok: true,
    value: {
      service: key.service,
      instance: key.instance,
      address: v.address,
      ...(v.machine === undefined ? {} : { machine: asMachineId(v.machine) }),
      ...(v.unit === undefined ? {} : { unit: asUnitName(v.unit) }),
      since: v.since,
    },
  };
}

/** `drains/<machine>` as a record, or undefined with its problem recorded. */
export function decodeDrain(
  keys: RegistryKeys,
  kv: KeyValue,
  problems: DecodeProblem[],
): DrainRecord | undefined {
  const read = readRecord(keys, kv, 'drain', 'drain', problems);
  if (read === undefined) return undefined;
  return {
    machine: read.key.machine,
    since: read.value.since,
    moving: (read.value.moving ?? []).map((m) => ({ unit: asUnitName(m.unit), services: [...m.services] })),
    modRevision: kv.modRevision,
  };
}

/** Live machines from `machines/` with `machine-metadata/` merged over their configured metadata. */
export function decodeMachines(
  keys: RegistryKeys,
  machineKvs: readonly KeyValue[],
  metadataKvs: readonly KeyValue[],
  problems: DecodeProblem[],
): Map<MachineId, MachineRecord> {
  const dynamic = new Map<MachineId, Metadata>();
  for (const kv of metadataKvs) {
    const read = readRecord(keys, kv, 'machine-metadata', 'machineMetadata', problems);
    if (read !== undefined) dynamic.set(read.key.machine, read.value.metadata);
  }
  const machines = new Map<MachineId, MachineRecord>();
  for (const kv of machineKvs) {
    const read = readRecord(keys, kv, 'machine', 'machine', problems);
    if (read === undefined) continue;
    const { key, value } = read;
    // A host is live only while its lease is: a record bound to no lease was not written by a
    // fleetd (each registers under its membership lease) and nothing would ever expire it.
    if (kv.lease === NO_LEASE) {
      problems.push({
        key: kv.key,
        message: `machine ${key.machine} is bound to no lease, so it is not a live fleetd (each registers under its membership lease); ignored: no units are placed on it and no request goes to its API address`,
        tree: 'machines',
        name: key.machine,
      });
      continue;
    }
    machines.set(key.machine, {
      id: key.machine,
      ip: value.ip,
      metadata: { ...value.metadata, ...dynamic.get(key.machine) },
      configuredMetadata: value.metadata,
      ...(value.apiAddress === undefined ? {} : { apiAddress: value.apiAddress }),
      version: value.version,
      startedAt: value.startedAt,
      ...(value.memoryBytes === undefined ? {} : { memoryBytes: value.memoryBytes }),
      createRevision: kv.createRevision,
    });
  }
  return machines;
}

function toStatus(unit: UnitName, machine: MachineId, v: StoredValue<'status'>): UnitStatus {
  return {
    unit,
    machine,
    hash: asUnitHash(v.hash),
    load: v.load,
    active: v.active,
    sub: v.sub,
    ...(v.pid === undefined ? {} : { pid: v.pid }),
    ...(v.containerId === undefined ? {} : { containerId: v.containerId }),
    since: v.since,
    ...(v.lastExit === undefined
      ? {}
      : {
          lastExit: {
            ...(v.lastExit.code === undefined ? {} : { code: v.lastExit.code }),
            ...(v.lastExit.signal === undefined ? {} : { signal: v.lastExit.signal }),
            at: v.lastExit.at,
          },
        }),
    ...(v.reason === undefined ? {} : { reason: v.reason }),
    ...(v.health === undefined ? {} : { health: v.health }),
  };
}
