// The whole cluster at one revision (one etcd transaction of range reads), for the engine's passes
// and the API's summaries. Decoded unit and assignment values are memoized across snapshots by
// key and mod revision, so a pass over 10,000 unchanged units decodes none of them again.
import type { Assignment, MachineId, UnitHash, UnitName, UnitStatus } from '../cluster/types.js';
import { asUnitHash } from '../cluster/types.js';
import type { DecodeProblem } from './codec.js';
import { chunks, type KvCore } from './kv-core.js';
import {
  check,
  decodeAssignment,
  decodeDrain,
  decodeMachines,
  decodeService,
  decodeStatus,
  decodeUnitRecord,
  readRecord,
} from './kv-decode.js';
import type { KeyValue, Revision } from './kv.js';
import type {
  ClusterSnapshot,
  DrainRecord,
  ServiceInstance,
  SnapshotOptions,
  SnapshotReader,
  UnitRecord,
  Unschedulable,
} from './registry.js';

export class KvSnapshotReader implements SnapshotReader {
  readonly #core: KvCore;
  /** Unit, assignment and status values decoded by the last snapshot, by key. */
  #decoded = new Map<string, Memo>();

  constructor(core: KvCore) {
    this.#core = core;
  }

  async snapshot(options: SnapshotOptions = {}): Promise<ClusterSnapshot> {
    const { kv: store, keys: k } = this.#core;
    const trees = [
      k.tree('machines'),
      k.tree('machineMetadata'),
      k.tree('units'),
      k.tree('assignments'),
      k.tree('statuses'),
      k.tree('unschedulable'),
      k.tree('drains'),
      ...(options.services === true ? [k.tree('services')] : []),
    ];
    const res = await store.txn({
      compare: [],
      success: trees.map((r) => ({ kind: 'range', key: r.start, end: r.end })),
    });
    const [
      machineKvs,
      metadataKvs,
      unitKvs,
      assignmentKvs,
      statusKvs,
      unschedulableKvs,
      drainKvs,
      serviceKvs,
    ] = res.results.map((r) => (r.kind === 'range' ? r.kvs : []));
    const problems: DecodeProblem[] = [];
    const machines = decodeMachines(k, machineKvs ?? [], metadataKvs ?? [], problems);

    // Values decoded by the previous snapshot are reused when their key's mod revision is the same
    // (the value then is too).
    const decoded = new Map<string, Memo>();
    const units = new Map<UnitName, UnitRecord>();
    for (const kv of unitKvs ?? []) {
      const unit = this.#memo(kv, decoded, 'unit', () => decodeUnitRecord(k, kv, problems));
      if (unit !== undefined) units.set(unit.name, unit);
    }

    const assignments: Assignment[] = [];
    for (const kv of assignmentKvs ?? []) {
      const a = this.#memo(kv, decoded, 'assignment', () => check(decodeAssignment(k, kv), problems));
      if (a !== undefined) assignments.push(a);
    }
    const statuses: UnitStatus[] = [];
    for (const kv of statusKvs ?? []) {
      const s = this.#memo(kv, decoded, 'status', () => decodeStatus(k, kv, problems));
      if (s !== undefined) statuses.push(s);
    }
    this.#decoded = decoded;
    const unschedulable = new Map<UnitName, Unschedulable>();
    for (const kv of unschedulableKvs ?? []) {
      const read = readRecord(k, kv, 'unschedulable', 'unschedulable', problems);
      if (read === undefined) continue;
      const { key, value } = read;
      unschedulable.set(key.unit, {
        unit: key.unit,
        hash: asUnitHash(value.hash),
        reason: value.reason,
        machines: value.machines,
      });
    }
    const drains = new Map<MachineId, DrainRecord>();
    for (const kv of drainKvs ?? []) {
      const d = decodeDrain(k, kv, problems);
      if (d !== undefined) drains.set(d.machine, d);
    }
    const services: ServiceInstance[] = [];
    for (const kv of serviceKvs ?? []) {
      const s = check(decodeService(k, kv), problems);
      if (s !== undefined) services.push(s);
    }

    const unitFiles = new Map<UnitHash, string>();
    if (options.unitFiles !== 'none') {
      const known = options.knownUnitFiles ?? new Set<UnitHash>();
      const wanted = [...new Set([...units.values()].map((u) => u.hash))].filter((h) => !known.has(h)).sort();
      // Unit files are immutable, so reading them after `revision` is as good as at it; a file
      // collected meanwhile belongs to a unit that is gone by now, and is simply absent.
      for (const batch of chunks(wanted, store.maxTxnOps)) {
        const files = await store.txn({
          compare: [],
          success: batch.map((h) => ({ kind: 'range', key: k.unitFile(h) })),
        });
        for (const r of files.results) {
          const kv = r.kind === 'range' ? r.kvs[0] : undefined;
          const read = kv === undefined ? undefined : readRecord(k, kv, 'unit-file', 'unitFile', problems);
          if (read !== undefined) unitFiles.set(read.key.hash, read.value.text);
        }
      }
    }
    return {
      revision: res.revision,
      machines,
      units,
      assignments,
      statuses,
      unschedulable,
      drains,
      services,
      unitFiles,
      problems,
    };
  }

  /** `decode()` of `kv`, or the value decoded for the same key at the same mod revision before. */
  #memo<K extends keyof MemoValues>(
    kv: KeyValue,
    into: Map<string, Memo>,
    kind: K,
    decode: () => MemoValues[K] | undefined,
  ): MemoValues[K] | undefined {
    const hit = this.#decoded.get(kv.key);
    if (hit !== undefined && hit.kind === kind && hit.modRevision === kv.modRevision) {
      into.set(kv.key, hit);
      return hit.value as MemoValues[K];
    }
    const value = decode();
    // Corrupt values are not memoized: their problem is reported by every snapshot.
    if (value !== undefined) into.set(kv.key, { kind, modRevision: kv.modRevision, value });
    return value;
  }
}

/** A decoded value and the mod revision of the key it was decoded from. */
interface MemoValues {
  unit: UnitRecord;
  assignment: Assignment;
  status: UnitStatus;
}
interface Memo {
  readonly kind: keyof MemoValues;
  readonly modRevision: Revision;
  readonly value: MemoValues[keyof MemoValues];
}
