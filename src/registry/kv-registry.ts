// The registry's logic, written once over the Kv primitives: snapshots at one revision, content-
// addressed units with safe garbage collection, leased membership, fenced and batched plan writes,
// and level-triggered watches. `createEtcdRegistry` and `createMemoryRegistry` only pick the Kv.
import { createHash } from 'node:crypto';
import type {
  Assignment,
  MachineId,
  Metadata,
  TargetState,
  Unit,
  UnitHash,
  UnitName,
  UnitStatus,
} from '../cluster/types.js';
import { asMachineId, asUnitName, asUnitHash } from '../cluster/types.js';
import type { Clock, Timer } from '../lib/clock.js';
import type { Random } from '../lib/random.js';
import type { Decoded, DecodeProblem, StoredValue, ValueKind } from './codec.js';
import { decodeOrThrow, decodeValue, encodeValue } from './codec.js';
import { EtcdHealth, HealthTrackingKv } from './etcd-health.js';
import { KeptLease } from './kept-lease.js';
import { RegistryKeys, TREES, type ParsedKey } from './keys.js';
import type { Compare, KeyValue, Kv, Revision, TxnOp, TxnResult } from './kv.js';
import { NO_LEASE } from './kv.js';
import type { Fence, Leadership, LeadershipOptions } from './leadership.js';
import { KvLeadership } from './leadership.js';
import type {
  AssignmentChange,
  ClusterSnapshot,
  LeaseHandle,
  LeaseLoss,
  LeaseOptions,
  MachineRecord,
  MachineRegistration,
  Membership,
  PlanBasis,
  RegisterOptions,
  Registry,
  ServiceInstance,
  SnapshotOptions,
  StorageUsage,
  Subscription,
  UnitRecord,
  Unschedulable,
  Wake,
  WakeReason,
  WakeTopic,
  WatchedSet,
  WriteResult,
} from './registry.js';
import { RegistryError } from './registry-error.js';
import { RangeWatch, watchRangeSet } from './watch-range.js';

const CAS_ATTEMPTS = 10;
/** How long after a delete or replace the unreferenced unit files are swept (one sweep per burst). */
export const UNIT_FILE_COLLECT_DELAY_MS = 2_000;

export interface KvRegistryDeps {
  readonly kv: Kv;
  readonly clock: Clock;
  /** Draws the jitter of retries (watches, leadership campaigns) while etcd is unreachable. */
  readonly random: Random;
  /** Key prefix (default `/fleetts/v1/`). */
  readonly prefix?: string;
  /** Lease defaults for register/openLease/leadership when a call gives none. */
  readonly lease?: LeaseOptions;
}

export class KvRegistry implements Registry {
  readonly keys: RegistryKeys;
  readonly health: EtcdHealth;
  readonly #kv: Kv;
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #leaseDefaults: LeaseOptions;
  readonly #subscriptions = new Set<Subscription>();
  /** Leases granted through this registry, released (not revoked) when it closes. */
  readonly #leases = new Set<KeptLease>();
  readonly #leaderships = new Set<KvLeadership>();
  #closed = false;
  /** Unit and assignment values decoded by the last snapshot, by key (see `snapshot`). */
  #decoded = new Map<string, Memo>();

  constructor(deps: KvRegistryDeps) {
    this.#clock = deps.clock;
    // Every call, leases' keepalives included, tells the health tracker how etcd answered.
    this.health = new EtcdHealth(deps.clock);
    this.#kv = new HealthTrackingKv(deps.kv, this.health);
    this.#random = deps.random;
    this.keys = new RegistryKeys(deps.prefix);
    this.#leaseDefaults = deps.lease ?? {};
  }

  // ——— reads ———

  async snapshot(options: SnapshotOptions = {}): Promise<ClusterSnapshot> {
    const k = this.keys;
    const trees = [
      k.tree('machines'),
      k.tree('machineMetadata'),
      k.tree('units'),
      k.tree('assignments'),
      k.tree('statuses'),
      k.tree('unschedulable'),
    ];
    const res = await this.#kv.txn({
      compare: [],
      success: trees.map((r) => ({ kind: 'range', key: r.start, end: r.end })),
    });
    const [machineKvs, metadataKvs, unitKvs, assignmentKvs, statusKvs, unschedulableKvs] = res.results.map(
      (r) => (r.kind === 'range' ? r.kvs : []),
    );
    const problems: DecodeProblem[] = [];
    const machines = this.#machines(machineKvs ?? [], metadataKvs ?? [], problems);

    // Values decoded by the previous snapshot are reused when their key's mod revision is the same
    // (the value then is too): a pass over 10,000 unchanged units decodes none of them again.
    const decoded = new Map<string, Memo>();
    const units = new Map<UnitName, UnitRecord>();
    for (const kv of unitKvs ?? []) {
      const unit = this.#memo(kv, decoded, 'unit', () => this.#decodeUnit(kv, problems));
      if (unit !== undefined) units.set(unit.name, unit);
    }

    const assignments: Assignment[] = [];
    for (const kv of assignmentKvs ?? []) {
      const a = this.#memo(kv, decoded, 'assignment', () => check(this.#decodeAssignment(kv), problems));
      if (a !== undefined) assignments.push(a);
    }
    this.#decoded = decoded;
    const statuses: UnitStatus[] = [];
    for (const kv of statusKvs ?? []) {
      const s = this.#decodeStatus(kv, problems);
      if (s !== undefined) statuses.push(s);
    }
    const unschedulable = new Map<UnitName, Unschedulable>();
    for (const kv of unschedulableKvs ?? []) {
      const read = this.#read(kv, 'unschedulable', 'unschedulable', problems);
      if (read === undefined) continue;
      const { key, value } = read;
      unschedulable.set(key.unit, {
        unit: key.unit,
        hash: asUnitHash(value.hash),
        reason: value.reason,
        machines: value.machines,
      });
    }

    const unitFiles = new Map<UnitHash, string>();
    if (options.unitFiles !== 'none') {
      const known = options.knownUnitFiles ?? new Set<UnitHash>();
      const wanted = [...new Set([...units.values()].map((u) => u.hash))].filter((h) => !known.has(h)).sort();
      // Unit files are immutable, so reading them after `revision` is as good as at it; a file
      // collected meanwhile belongs to a unit that is gone by now, and is simply absent.
      for (const batch of chunks(wanted, this.#kv.maxTxnOps)) {
        const files = await this.#kv.txn({
          compare: [],
          success: batch.map((h) => ({ kind: 'range', key: this.keys.unitFile(h) })),
        });
        for (const r of files.results) {
          const kv = r.kind === 'range' ? r.kvs[0] : undefined;
          const read = kv === undefined ? undefined : this.#read(kv, 'unit-file', 'unitFile', problems);
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
      unitFiles,
      problems,
    };
  }

  async getUnit(name: UnitName): Promise<UnitRecord | undefined> {
    const res = await this.#kv.range(this.keys.unit(name));
    const kv = res.kvs[0];
    if (kv === undefined) return undefined;
    const value = decodeOrThrow('unit', kv.key, kv.value);
    return { name, hash: asUnitHash(value.hash), target: value.target, modRevision: kv.modRevision };
  }

  async getUnitFile(hash: UnitHash): Promise<string | undefined> {
    const key = this.keys.unitFile(hash);
    const kv = (await this.#kv.range(key)).kvs[0];
    return kv === undefined ? undefined : decodeOrThrow('unitFile', key, kv.value).text;
  }

  async listMachines(): Promise<WatchedSet<MachineRecord>> {
    const res = await this.#kv.txn({
      compare: [],
      success: [this.#rangeOp(this.keys.tree('machines')), this.#rangeOp(this.keys.tree('machineMetadata'))],
    });
    const problems: DecodeProblem[] = [];
    const [machineKvs, metadataKvs] = res.results.map((r) => (r.kind === 'range' ? r.kvs : []));
    const machines = this.#machines(machineKvs ?? [], metadataKvs ?? [], problems);
    return { revision: res.revision, items: [...machines.values()], problems };
  }

  async listStatuses(unit?: UnitName): Promise<WatchedSet<UnitStatus>> {
    const range = unit === undefined ? this.keys.tree('statuses') : this.keys.statusesOf(unit);
    const res = await this.#kv.range(range.start, range.end);
    const problems: DecodeProblem[] = [];
    const items: UnitStatus[] = [];
    for (const kv of res.kvs) {
      const s = this.#decodeStatus(kv, problems);
      if (s !== undefined) items.push(s);
    }
    return { revision: res.revision, items, problems };
  }

  async listServiceInstances(service: string): Promise<WatchedSet<ServiceInstance>> {
    const range = this.keys.instancesOf(service);
    const res = await this.#kv.range(range.start, range.end);
    const problems: DecodeProblem[] = [];
    const items: ServiceInstance[] = [];
    for (const kv of res.kvs) {
      const decoded = this.#decodeService(kv);
      if (decoded.ok) items.push(decoded.value);
      else problems.push(decoded.problem);
    }
    return { revision: res.revision, items, problems };
  }

  async getLeader(): Promise<{ readonly candidate: string; readonly since: string } | undefined> {
    const key = this.keys.leader();
    const kv = (await this.#kv.range(key)).kvs[0];
    // A leader key that is not lease-bound or does not decode is treated as expired (leadership.ts).
    if (kv === undefined || kv.lease === NO_LEASE) return undefined;
    const decoded = decodeValue('leader', key, kv.value);
    return decoded.ok ? { candidate: decoded.value.candidate, since: decoded.value.since } : undefined;
  }

  // ——— units ———

  async createUnit(unit: Unit, text: string): Promise<UnitRecord> {
    const actual = createHash('sha256').update(text, 'utf8').digest('hex');
    if (actual !== unit.hash) {
      throw new RegistryError(
        'invalid',
        `unit ${unit.name}: hash ${unit.hash} is not the sha256 of its text (${actual})`,
      );
    }
    const key = this.keys.unit(unit.name);
    const res = await this.#kv.txn({
      compare: [{ target: 'version', key, op: '==', version: 0 }],
      success: [
        { kind: 'put', key: this.keys.unitFile(unit.hash), value: encodeValue('unitFile', { v: 1, text }) },
        { kind: 'put', key, value: encodeValue('unit', { v: 1, hash: unit.hash, target: unit.target }) },
      ],
      failure: [{ kind: 'range', key }],
    });
    if (res.succeeded) return { ...unit, modRevision: res.revision };
    const kv = firstKv(res);
    if (kv === undefined)
      throw new RegistryError('conflict', `unit ${unit.name} changed while being created; retry`);
    const existing = decodeOrThrow('unit', key, kv.value);
    if (existing.hash !== unit.hash) {
      throw new RegistryError(
        'exists',
        `unit ${unit.name} already exists with different content (hash ${existing.hash.slice(0, 12)}…); destroy it first to replace it`,
      );
    }
    return { name: unit.name, hash: unit.hash, target: existing.target, modRevision: kv.modRevision };
  }

  async createUnits(units: readonly { readonly unit: Unit; readonly text: string }[]): Promise<UnitRecord[]> {
    for (const { unit, text } of units) {
      const actual = createHash('sha256').update(text, 'utf8').digest('hex');
      if (actual !== unit.hash) {
        throw new RegistryError(
          'invalid',
          `unit ${unit.name}: hash ${unit.hash} is not the sha256 of its text (${actual})`,
        );
      }
    }
    const out: UnitRecord[] = [];
    let firstError: Error | undefined;
    // etcd limits compares and operations per transaction separately; a batch of n units with k
    // distinct files needs n compares and n + k puts.
    const max = this.#kv.maxTxnOps;
    let i = 0;
    while (i < units.length) {
      const batch: (typeof units)[number][] = [];
      const files = new Map<string, string>();
      while (i < units.length && batch.length < max) {
        const next = units[i]!;
        const filesAfter = files.has(next.unit.hash) ? files.size : files.size + 1;
        if (batch.length + 1 + filesAfter > max) break;
        files.set(next.unit.hash, next.text);
        batch.push(next);
        i++;
      }
      const res = await this.#kv.txn({
        compare: batch.map(({ unit }) => ({
          target: 'version' as const,
          key: this.keys.unit(unit.name),
          op: '==' as const,
          version: 0,
        })),
        success: [
          ...[...files].map(([hash, text]) => ({
            kind: 'put' as const,
            key: this.keys.unitFile(hash as UnitHash),
            value: encodeValue('unitFile', { v: 1, text }),
          })),
          ...batch.map(({ unit }) => ({
            kind: 'put' as const,
            key: this.keys.unit(unit.name),
            value: encodeValue('unit', { v: 1, hash: unit.hash, target: unit.target }),
          })),
        ],
      });
      if (res.succeeded) {
        for (const { unit } of batch) out.push({ ...unit, modRevision: res.revision });
        continue;
      }
      for (const { unit, text } of batch) {
        try {
          out.push(await this.createUnit(unit, text));
        } catch (err) {
          firstError ??= err as Error;
        }
      }
    }
    if (firstError !== undefined) throw firstError;
    return out;
  }

  async setTargetState(
    name: UnitName,
    target: TargetState,
    options: { expectHash?: UnitHash } = {},
  ): Promise<UnitRecord> {
    const key = this.keys.unit(name);
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const current = await this.getUnit(name);
      if (current === undefined) throw new RegistryError('not_found', `unit ${name} does not exist`);
      if (options.expectHash !== undefined && current.hash !== options.expectHash) {
        throw new RegistryError(
          'conflict',
          `unit ${name} was replaced (now hash ${current.hash.slice(0, 12)}…)`,
        );
      }
      if (current.target === target) return current;
      const res = await this.#kv.txn({
        compare: [{ target: 'mod', key, op: '==', revision: current.modRevision }],
        success: [{ kind: 'put', key, value: encodeValue('unit', { v: 1, hash: current.hash, target }) }],
      });
      if (res.succeeded) return { ...current, target, modRevision: res.revision };
    }
    throw new RegistryError(
      'conflict',
      `unit ${name} kept changing while its target state was being set; retry`,
    );
  }

  async deleteUnit(name: UnitName): Promise<boolean> {
    return await this.#deleteUnitKey(this.keys.unit(name), `unit ${name}`, () => undefined);
  }

  async deleteInvalidUnit(name: string): Promise<boolean> {
    if (name === '') throw new RegistryError('invalid', 'no unit key named (an empty name)');
    const key = this.keys.prefix + TREES.units + name;
    return await this.#deleteUnitKey(key, `etcd key ${key}`, (kv) => {
      if (this.#decode(kv, 'unit', 'unit').ok)
        throw new RegistryError(
          'invalid',
          `unit ${name} is a valid unit record; destroy it as a unit, not as a corrupt key`,
        );
    });
  }

  /**
   * Deletes a key under units/ unless it changed between the read and the delete (retried), after
   * `check` accepted what was read; unit files it referenced are swept soon after. False when the
   * key is not there.
   */
  async #deleteUnitKey(key: string, what: string, check: (kv: KeyValue) => void): Promise<boolean> {
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const kv = (await this.#kv.range(key)).kvs[0];
      if (kv === undefined) return false;
      check(kv);
      const res = await this.#kv.txn({
        compare: [{ target: 'mod', key, op: '==', revision: kv.modRevision }],
        success: [{ kind: 'delete', key }],
      });
      if (!res.succeeded) continue;
      this.#collectSoon();
      return true;
    }
    throw new RegistryError('conflict', `${what} kept changing while being deleted; retry`);
  }

  async replaceUnit(expect: UnitRecord, unit: Unit, text: string): Promise<UnitRecord> {
    const actual = createHash('sha256').update(text, 'utf8').digest('hex');
    if (actual !== unit.hash) {
      throw new RegistryError(
        'invalid',
        `unit ${unit.name}: hash ${unit.hash} is not the sha256 of its text (${actual})`,
      );
    }
    if (expect.name !== unit.name)
      throw new RegistryError('invalid', `cannot replace unit ${expect.name} with a unit named ${unit.name}`);
    const key = this.keys.unit(unit.name);
    const res = await this.#kv.txn({
      compare: [{ target: 'mod', key, op: '==', revision: expect.modRevision }],
      success: [
        { kind: 'put', key: this.keys.unitFile(unit.hash), value: encodeValue('unitFile', { v: 1, text }) },
        { kind: 'put', key, value: encodeValue('unit', { v: 1, hash: unit.hash, target: unit.target }) },
      ],
      failure: [{ kind: 'range', key }],
    });
    if (!res.succeeded) {
      if (firstKv(res) === undefined)
        throw new RegistryError('not_found', `unit ${unit.name} was destroyed while being replaced`);
      throw new RegistryError('conflict', `unit ${unit.name} changed while being replaced; retry`);
    }
    if (expect.hash !== unit.hash) this.#collectSoon();
    return { ...unit, modRevision: res.revision };
  }

  collectUnitFiles(): Promise<number> {
    return this.#collect(undefined);
  }

  async usage(): Promise<StorageUsage> {
    const units = this.keys.tree('units');
    const files = this.keys.tree('unitFiles');
    const res = await this.#kv.txn({
      compare: [],
      success: [
        { kind: 'range', key: units.start, end: units.end },
        { kind: 'range', key: files.start, end: files.end },
      ],
    });
    const [unitKvs, fileKvs] = res.results.map((r) => (r.kind === 'range' ? r.kvs : []));
    const unitFileHashes = new Set<UnitHash>();
    let unitFileBytes = 0;
    for (const kv of fileKvs ?? []) {
      unitFileBytes += Buffer.byteLength(kv.value);
      const parsed = this.keys.parse(kv.key);
      if (parsed?.kind === 'unit-file') unitFileHashes.add(parsed.hash);
    }
    return { units: unitKvs?.length ?? 0, unitFileBytes, unitFileHashes };
  }

  #collectTimer: Timer | undefined;

  /** One sweep for a burst of deletes and replaces (see Registry.deleteUnit); best effort. */
  #collectSoon(): void {
    if (this.#collectTimer !== undefined || this.#closed) return;
    this.#collectTimer = this.#clock.setTimer(UNIT_FILE_COLLECT_DELAY_MS, () => {
      this.#collectTimer = undefined;
      if (this.#closed) return;
      // A conflict or an outage only delays collection to the next delete, replace or sweep.
      this.#collect(undefined).catch(() => 0);
    });
  }

  /**
   * Deletes unreferenced unit files (all, or those among `only`). Safe against a concurrent
   * submit of the same content: the delete compares that no key under units/ changed since the
   * revision at which the references were read.
   */
  async #collect(only: ReadonlySet<UnitHash> | undefined): Promise<number> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const units = this.keys.tree('units');
      const files = this.keys.tree('unitFiles');
      const res = await this.#kv.txn({
        compare: [],
        success: [
          { kind: 'range', key: units.start, end: units.end },
          { kind: 'range', key: files.start, end: files.end },
        ],
      });
      const [unitKvs, fileKvs] = res.results.map((r) => (r.kind === 'range' ? r.kvs : []));
      const referenced = new Set<string>();
      for (const kv of unitKvs ?? []) {
        const decoded = decodeValue('unit', kv.key, kv.value);
        // A corrupt unit might reference anything: collect nothing rather than guess.
        if (!decoded.ok) return 0;
        referenced.add(decoded.value.hash);
      }
      const garbage: string[] = [];
      for (const kv of fileKvs ?? []) {
        const parsed = this.keys.parse(kv.key);
        if (parsed?.kind !== 'unit-file' || referenced.has(parsed.hash)) continue;
        if (only !== undefined && !only.has(parsed.hash)) continue;
        garbage.push(kv.key);
      }
      if (garbage.length === 0) return 0;
      let deleted = 0;
      let conflicted = false;
      for (const batch of chunks(garbage, this.#kv.maxTxnOps)) {
        const del = await this.#kv.txn({
          compare: [{ target: 'mod', key: units.start, end: units.end, op: '<', revision: res.revision + 1 }],
          success: batch.map((key) => ({ kind: 'delete', key })),
        });
        if (!del.succeeded) {
          conflicted = true;
          break;
        }
        deleted += batch.length;
      }
      if (!conflicted) return deleted;
    }
    throw new RegistryError('conflict', 'units kept changing while unit files were being collected; retry');
  }

  // ——— membership ———

  async register(machine: MachineRegistration, options?: RegisterOptions): Promise<Membership> {
    const key = this.keys.machine(machine.id);
    const value = encodeValue('machine', {
      v: 1,
      ip: machine.ip,
      metadata: { ...machine.metadata },
      ...(machine.apiAddress === undefined ? {} : { apiAddress: machine.apiAddress }),
      version: machine.version,
      startedAt: machine.startedAt,
    });
    const leaseOptions: LeaseOptions = { ...this.#leaseDefaults, ...options };
    const resumed =
      options?.resumeLeaseId === undefined
        ? undefined
        : await KeptLease.resume(this.#kv, this.#clock, options.resumeLeaseId, leaseOptions);
    const lease = resumed ?? (await KeptLease.grant(this.#kv, this.#clock, leaseOptions));
    this.#keep(lease);
    let res: TxnResult;
    let createRevision: Revision;
    try {
      res = await this.#kv.txn({
        compare: [{ target: 'version', key, op: '==', version: 0 }],
        success: [{ kind: 'put', key, value, lease: lease.leaseId }],
        failure: [{ kind: 'range', key }],
      });
      createRevision = res.revision;
      const holder = firstKv(res);
      if (!res.succeeded && holder !== undefined && holder.lease === lease.leaseId) {
        // Our own (resumed) membership: refresh the value, keep the key and its create revision.
        res = await this.#kv.txn({
          compare: [{ target: 'create', key, op: '==', revision: holder.createRevision }],
          success: [{ kind: 'put', key, value, lease: lease.leaseId }],
          failure: [{ kind: 'range', key }],
        });
        createRevision = holder.createRevision;
      }
    } catch (error) {
      await lease.close().catch(() => undefined);
      throw error;
    }
    if (!res.succeeded) {
      // Never revoke a resumed lease here: it may hold this host's statuses.
      if (resumed === undefined) await lease.close().catch(() => undefined);
      else lease.release();
      const holder = firstKv(res);
      throw new RegistryError(
        'machine_id_taken',
        `machine id ${machine.id} is already registered by a live fleetd (lease ${holder?.lease ?? '?'}): ` +
          `another host has the same /etc/machine-id, or this host's previous fleetd has not expired yet ` +
          `(it will within ${lease.ttlMs / 1000} s)`,
      );
    }
    return new KvMembership(this.#kv, this.#clock, this.#random, key, machine.id, createRevision, lease);
  }

  async patchMachineMetadata(
    machine: MachineId,
    patch: Readonly<Record<string, string | null>>,
  ): Promise<Metadata> {
    const key = this.keys.machineMetadata(machine);
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const kv = (await this.#kv.range(key)).kvs[0];
      const decoded = kv === undefined ? undefined : decodeValue('machineMetadata', key, kv.value);
      // A corrupt record is replaced: the patch is the best information there is.
      const current: Record<string, string> = decoded?.ok === true ? { ...decoded.value.metadata } : {};
      const next = { ...current };
      for (const [name, v] of Object.entries(patch)) {
        if (v === null) delete next[name];
        else next[name] = v;
      }
      if (kv !== undefined && decoded?.ok === true && sameRecord(current, next)) return next;
      const compare: Compare =
        kv === undefined
          ? { target: 'version', key, op: '==', version: 0 }
          : { target: 'mod', key, op: '==', revision: kv.modRevision };
      const res = await this.#kv.txn({
        compare: [compare],
        success: [{ kind: 'put', key, value: encodeValue('machineMetadata', { v: 1, metadata: next }) }],
      });
      if (res.succeeded) return next;
    }
    throw new RegistryError('conflict', `metadata of machine ${machine} kept changing; retry`);
  }

  // ——— assignments ———

  async writeAssignments(
    fence: Fence,
    changes: readonly AssignmentChange[],
    basis: PlanBasis,
  ): Promise<WriteResult> {
    if (fence.key !== this.keys.leader()) {
      throw new RegistryError(
        'invalid',
        `fence for ${fence.key} does not belong to this registry (${this.keys.leader()})`,
      );
    }
    // Transactions are planned over the changes and their ops built one transaction at a time, so
    // that a plan of thousands of units never holds all its requests at once (issue 3: memory).
    const groups = this.#groupByUnit(changes);
    const machineCompares = this.#machineCompares(changes, basis);
    const max = this.#kv.maxTxnOps;
    interface PlannedTxn {
      units: UnitName[];
      changes: AssignmentChange[];
      machines: Map<string, Compare>;
    }
    const txns: PlannedTxn[] = [];
    let current: PlannedTxn = { units: [], changes: [], machines: new Map() };
    const flush = (): void => {
      if (current.changes.length > 0) txns.push(current);
      current = { units: [], changes: [], machines: new Map() };
    };
    const comparesWith = (unit: UnitName): number => {
      let extra = 0;
      for (const key of machineCompares.get(unit)?.keys() ?? []) if (!current.machines.has(key)) extra++;
      // 1 compare for the fence + 1 per unit + 1 per machine.
      return 1 + current.units.length + 1 + current.machines.size + extra;
    };
    for (const [unit, list] of groups) {
      if (current.changes.length + list.length > max || comparesWith(unit) > max) flush();
      const own = machineCompares.get(unit) ?? new Map<string, Compare>();
      if (list.length <= max) {
        current.units.push(unit);
        current.changes.push(...list);
        for (const [key, c] of own) current.machines.set(key, c);
        continue;
      }
      // A unit with more changes than one txn holds (a global unit on many machines): each part
      // carries the compares of the machines it touches; 2 compares go to the fence and the unit.
      for (const part of chunks(list, own.size > 0 ? max - 2 : max)) {
        flush();
        const touched = new Set<string>();
        for (const change of part) {
          if (change.kind === 'assign') touched.add(this.keys.machine(change.assignment.machine));
          else if (change.kind === 'unassign') touched.add(this.keys.machine(change.machine));
        }
        current = {
          units: [unit],
          changes: [...part],
          machines: new Map([...own].filter(([key]) => touched.has(key))),
        };
      }
    }
    flush();
    // A plan assigns thousands of units that share a few (hash, target) values: encode each once.
    const encoded = new Map<string, string>();

    let revision = 0;
    for (const [i, txn] of txns.entries()) {
      const compare: Compare[] = [
        { target: 'create', key: fence.key, op: '==', revision: fence.createRevision },
      ];
      for (const unit of txn.units) {
        const seen = basis.units.get(unit);
        const key = this.keys.unit(unit);
        compare.push(
          seen === undefined
            ? { target: 'version', key, op: '==', version: 0 }
            : { target: 'mod', key, op: '==', revision: seen.modRevision },
        );
      }
      compare.push(...txn.machines.values());
      const res = await this.#kv.txn({
        compare,
        success: txn.changes.map((c) => this.#changeOp(c, encoded)),
        failure: [
          { kind: 'range', key: fence.key },
          ...txn.units.map((u) => ({ kind: 'range' as const, key: this.keys.unit(u) })),
          ...[...txn.machines.keys()].map((key) => ({ kind: 'range' as const, key })),
        ],
      });
      if (res.succeeded) {
        revision = res.revision;
        continue;
      }
      const applied = `${i} of ${txns.length} transactions of the plan were applied`;
      const leader = firstKv(res);
      if (leader?.createRevision !== fence.createRevision) {
        throw new RegistryError(
          'fenced',
          `engine ${fence.candidate} is no longer leader (term ${fence.createRevision} ended); ${applied}`,
        );
      }
      const changed = txn.units.filter((u, j) => {
        const r = res.results[j + 1];
        const kv = r?.kind === 'range' ? r.kvs[0] : undefined;
        return (kv?.modRevision ?? 0) !== (basis.units.get(u)?.modRevision ?? 0);
      });
      const machinesChanged = [...txn.machines.values()].filter((c, j) => {
        const r = res.results[1 + txn.units.length + j];
        const kv = r?.kind === 'range' ? r.kvs[0] : undefined;
        if (c.target === 'create') return kv?.createRevision !== c.revision;
        return c.target === 'lease' ? (kv?.lease ?? NO_LEASE) !== NO_LEASE : kv !== undefined;
      });
      const what =
        changed.length > 0
          ? `unit${changed.length === 1 ? '' : 's'} ${changed.join(', ')} changed`
          : `machine membership changed (${machinesChanged.map((c) => c.key.slice(this.keys.prefix.length)).join(', ')})`;
      throw new RegistryError('conflict', `${what} since the plan's snapshot; ${applied}; re-plan`);
    }
    return { revision, transactions: txns.length };
  }

  /** Ops per unit, units in name order; within a unit: unassign, clear, assign, mark. */
  /** Per unit, the machine-membership compares its changes rely on (see PlanBasis.machines). */
  #machineCompares(
    changes: readonly AssignmentChange[],
    basis: PlanBasis,
  ): Map<UnitName, Map<string, Compare>> {
    const out = new Map<UnitName, Map<string, Compare>>();
    const machines = basis.machines;
    if (machines === undefined) return out;
    const add = (unit: UnitName, c: Compare): void => {
      const m = out.get(unit) ?? new Map<string, Compare>();
      m.set(c.key, c);
      out.set(unit, m);
    };
    for (const change of changes) {
      if (change.kind === 'assign') {
        const seen = machines.get(change.assignment.machine);
        const key = this.keys.machine(change.assignment.machine);
        add(
          change.assignment.unit,
          seen === undefined
            ? { target: 'version', key, op: '==', version: 0 }
            : { target: 'create', key, op: '==', revision: seen.createRevision },
        );
      } else if (change.kind === 'unassign' && !machines.has(change.machine)) {
        // Still gone: no record, or one bound to no lease (not live: see #machines).
        add(change.unit, {
          target: 'lease',
          key: this.keys.machine(change.machine),
          op: '==',
          lease: NO_LEASE,
        });
      }
    }
    return out;
  }

  #groupByUnit(changes: readonly AssignmentChange[]): [UnitName, AssignmentChange[]][] {
    const order: Record<AssignmentChange['kind'], number> = {
      unassign: 0,
      clear_unschedulable: 1,
      assign: 2,
      mark_unschedulable: 3,
    };
    const byUnit = new Map<UnitName, AssignmentChange[]>();
    const seenKeys = new Set<string>();
    for (const change of changes) {
      const unit =
        change.kind === 'assign'
          ? change.assignment.unit
          : change.kind === 'mark_unschedulable'
            ? change.record.unit
            : change.unit;
      const key = this.#changeKey(change);
      if (seenKeys.has(key))
        throw new RegistryError('invalid', `plan changes ${key} twice (a plan writes each key once)`);
      seenKeys.add(key);
      const list = byUnit.get(unit) ?? [];
      list.push(change);
      byUnit.set(unit, list);
    }
    return [...byUnit.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([unit, list]) => [
        unit,
        list.length === 1 ? list : [...list].sort((a, b) => order[a.kind] - order[b.kind]),
      ]);
  }

  #changeKey(change: AssignmentChange): string {
    switch (change.kind) {
      case 'assign':
        return this.keys.assignment(change.assignment.machine, change.assignment.unit);
      case 'unassign':
        return this.keys.assignment(change.machine, change.unit);
      case 'mark_unschedulable':
        return this.keys.unschedulable(change.record.unit);
      case 'clear_unschedulable':
        return this.keys.unschedulable(change.unit);
    }
  }

  #changeOp(change: AssignmentChange, encoded: Map<string, string>): TxnOp {
    const key = this.#changeKey(change);
    switch (change.kind) {
      case 'assign': {
        const { hash, target } = change.assignment;
        const memo = `${hash}\u0000${target}`;
        let value = encoded.get(memo);
        if (value === undefined) {
          value = encodeValue('assignment', { v: 1, hash, target });
          encoded.set(memo, value);
        }
        return { kind: 'put', key, value };
      }
      case 'mark_unschedulable':
        return {
          kind: 'put',
          key,
          value: encodeValue('unschedulable', {
            v: 1,
            hash: change.record.hash,
            reason: change.record.reason,
            machines: { ...change.record.machines },
          }),
        };
      case 'unassign':
      case 'clear_unschedulable':
        return { kind: 'delete', key };
    }
  }

  async watchAssignments(
    machine: MachineId,
    onChange: (set: WatchedSet<Assignment>) => void,
  ): Promise<Subscription> {
    return this.#track(
      await watchRangeSet<Assignment>({
        kv: this.#kv,
        clock: this.#clock,
        random: this.#random,
        range: this.keys.assignmentsOf(machine),
        decode: (kv) => this.#decodeAssignment(kv),
        onChange,
      }),
    );
  }

  // ——— run claims ———

  async claimUnit(
    lease: Pick<LeaseHandle, 'leaseId'>,
    unit: UnitName,
    machine: MachineId,
  ): Promise<{ readonly ok: true } | { readonly ok: false; readonly holder: MachineId }> {
    const key = this.keys.claim(unit);
    const value = encodeValue('claim', { v: 1, machine, since: new Date(this.#clock.now()).toISOString() });
    const res = await this.#kv.txn({
      compare: [{ target: 'version', key, op: '==', version: 0 }],
      success: [{ kind: 'put', key, value, lease: lease.leaseId }],
      failure: [{ kind: 'range', key }],
    });
    if (res.succeeded) return { ok: true };
    const holder = firstKv(res);
    if (holder === undefined) return this.claimUnit(lease, unit, machine); // released meanwhile
    if (holder.lease === lease.leaseId) return { ok: true };
    const decoded = decodeValue('claim', key, holder.value);
    return { ok: false, holder: asMachineId(decoded.ok ? decoded.value.machine : '?') };
  }

  async releaseUnit(lease: Pick<LeaseHandle, 'leaseId'>, unit: UnitName): Promise<void> {
    const key = this.keys.claim(unit);
    await this.#kv.txn({
      compare: [{ target: 'lease', key, op: '==', lease: lease.leaseId }],
      success: [{ kind: 'delete', key }],
    });
  }

  // ——— statuses ———

  async putStatus(lease: Pick<LeaseHandle, 'leaseId'>, status: UnitStatus): Promise<Revision> {
    const value = encodeValue('status', {
      v: 1,
      hash: status.hash,
      load: status.load,
      active: status.active,
      sub: status.sub,
      ...(status.pid === undefined ? {} : { pid: status.pid }),
      ...(status.containerId === undefined ? {} : { containerId: status.containerId }),
      since: status.since,
      ...(status.lastExit === undefined ? {} : { lastExit: { ...status.lastExit } }),
      ...(status.reason === undefined ? {} : { reason: status.reason }),
    });
    const res = await this.#kv.txn({
      compare: [],
      success: [
        { kind: 'put', key: this.keys.status(status.unit, status.machine), value, lease: lease.leaseId },
      ],
    });
    return res.revision;
  }

  async deleteStatus(unit: UnitName, machine: MachineId): Promise<void> {
    await this.#kv.txn({ compare: [], success: [{ kind: 'delete', key: this.keys.status(unit, machine) }] });
  }

  // ——— services ———

  async openLease(options?: LeaseOptions): Promise<LeaseHandle> {
    const lease = await KeptLease.grant(this.#kv, this.#clock, { ...this.#leaseDefaults, ...options });
    this.#keep(lease);
    return lease;
  }

  async announce(lease: Pick<LeaseHandle, 'leaseId'>, instance: ServiceInstance): Promise<Revision> {
    const value = encodeValue('service', {
      v: 1,
      address: instance.address,
      ...(instance.machine === undefined ? {} : { machine: instance.machine }),
      ...(instance.unit === undefined ? {} : { unit: instance.unit }),
      since: instance.since,
    });
    const res = await this.#kv.txn({
      compare: [],
      success: [
        {
          kind: 'put',
          key: this.keys.service(instance.service, instance.instance),
          value,
          lease: lease.leaseId,
        },
      ],
    });
    return res.revision;
  }

  async withdraw(service: string, instance: string, lease?: Pick<LeaseHandle, 'leaseId'>): Promise<void> {
    const key = this.keys.service(service, instance);
    await this.#kv.txn({
      compare: lease === undefined ? [] : [{ target: 'lease', key, op: '==', lease: lease.leaseId }],
      success: [{ kind: 'delete', key }],
    });
  }

  async watchServiceInstances(
    service: string,
    onChange: (set: WatchedSet<ServiceInstance>) => void,
  ): Promise<Subscription> {
    return this.#track(
      await watchRangeSet<ServiceInstance>({
        kv: this.#kv,
        clock: this.#clock,
        random: this.#random,
        range: this.keys.instancesOf(service),
        decode: (kv) => this.#decodeService(kv),
        onChange,
      }),
    );
  }

  // ——— engine ———

  watchCluster(
    topics: readonly WakeTopic[],
    fromRevision: Revision,
    onWake: (wake: Wake) => void,
  ): Subscription {
    const trees: (keyof typeof TREES)[] = [];
    for (const topic of new Set(topics)) {
      if (topic === 'machines') trees.push('machines', 'machineMetadata');
      else trees.push(topic);
    }
    const watches = trees.map(
      (tree) =>
        new RangeWatch({
          kv: this.#kv,
          clock: this.#clock,
          random: this.#random,
          range: this.keys.tree(tree),
          after: fromRevision,
          onEvents: (events) => {
            const reasons: WakeReason[] = [];
            let revision = fromRevision;
            for (const event of events) {
              revision = Math.max(revision, event.kv.modRevision);
              const reason = this.#wakeReason(event.type, event.kv);
              if (reason !== undefined) reasons.push(reason);
            }
            if (reasons.length > 0) onWake({ revision, reasons });
          },
          resync: async () => {
            const res = await this.#kv.range(this.keys.leader());
            onWake({ revision: res.revision, reasons: [{ kind: 'resync' }] });
            return res.revision;
          },
        }),
    );
    return this.#track({ close: () => watches.forEach((w) => w.close()) });
  }

  #wakeReason(type: 'put' | 'delete', kv: KeyValue): WakeReason | undefined {
    const inspected = this.keys.inspect(kv.key);
    if (!inspected.ok) return { kind: 'invalid_key', key: kv.key };
    const parsed = inspected.parsed;
    switch (parsed.kind) {
      case 'machine':
        if (type === 'delete') return { kind: 'machine_left', machine: parsed.machine };
        return { kind: kv.version === 1 ? 'machine_joined' : 'machine_changed', machine: parsed.machine };
      case 'machine-metadata':
        return { kind: 'machine_changed', machine: parsed.machine };
      case 'unit':
        return { kind: 'unit_changed', unit: parsed.unit };
      case 'status':
        return { kind: 'status_changed', unit: parsed.unit, machine: parsed.machine };
      case 'assignment':
        return { kind: 'assignment_changed', unit: parsed.unit, machine: parsed.machine };
      case 'unschedulable':
        return { kind: 'unschedulable_changed', unit: parsed.unit };
      default:
        return undefined;
    }
  }

  leadership(options: LeadershipOptions): Leadership {
    const leadership = new KvLeadership({
      kv: this.#kv,
      clock: this.#clock,
      random: this.#random,
      keys: this.keys,
      options: { ...this.#leaseDefaults, ...options },
    });
    this.#leaderships.add(leadership);
    return leadership;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#collectTimer?.cancel();
    this.#collectTimer = undefined;
    for (const s of this.#subscriptions) s.close();
    this.#subscriptions.clear();
    for (const lease of this.#leases) lease.release();
    this.#leases.clear();
    this.#leaderships.forEach((l) => l.release());
    this.#kv.close();
    return Promise.resolve();
  }

  // ——— decoding ———

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

  #keep(lease: KeptLease): void {
    this.#leases.add(lease);
    lease.signal.addEventListener('abort', () => this.#leases.delete(lease), { once: true });
  }

  #track(sub: Subscription): Subscription {
    const tracked: Subscription = {
      close: () => {
        this.#subscriptions.delete(tracked);
        sub.close();
      },
    };
    this.#subscriptions.add(tracked);
    return tracked;
  }

  #rangeOp(range: { start: string; end: string }): TxnOp {
    return { kind: 'range', key: range.start, end: range.end };
  }

  #machines(
    machineKvs: readonly KeyValue[],
    metadataKvs: readonly KeyValue[],
    problems: DecodeProblem[],
  ): Map<MachineId, MachineRecord> {
    const dynamic = new Map<MachineId, Metadata>();
    for (const kv of metadataKvs) {
      const read = this.#read(kv, 'machine-metadata', 'machineMetadata', problems);
      if (read !== undefined) dynamic.set(read.key.machine, read.value.metadata);
    }
    const machines = new Map<MachineId, MachineRecord>();
    for (const kv of machineKvs) {
      const read = this.#read(kv, 'machine', 'machine', problems);
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
        createRevision: kv.createRevision,
      });
    }
    return machines;
  }

  /**
   * The key and value of `kv` as a record of `keyKind`, or undefined with the problem recorded: a
   * key outside the layout (nested, not ASCII, no valid unit name…) or a value that does not decode.
   */
  #read<P extends ParsedKey['kind'], V extends ValueKind>(
    kv: KeyValue,
    keyKind: P,
    valueKind: V,
    problems: DecodeProblem[],
  ): { key: Extract<ParsedKey, { kind: P }>; value: StoredValue<V> } | undefined {
    const decoded = this.#decode(kv, keyKind, valueKind);
    if (decoded.ok) return decoded.value;
    problems.push(decoded.problem);
    return undefined;
  }

  #decode<P extends ParsedKey['kind'], V extends ValueKind>(
    kv: KeyValue,
    keyKind: P,
    valueKind: V,
  ): Decoded<{ key: Extract<ParsedKey, { kind: P }>; value: StoredValue<V> }> {
    const inspected = this.keys.inspect(kv.key);
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

  #decodeUnit(kv: KeyValue, problems: DecodeProblem[]): UnitRecord | undefined {
    const read = this.#read(kv, 'unit', 'unit', problems);
    if (read === undefined) return undefined;
    return {
      name: read.key.unit,
      hash: asUnitHash(read.value.hash),
      target: read.value.target,
      modRevision: kv.modRevision,
    };
  }

  #decodeAssignment(kv: KeyValue): Decoded<Assignment> {
    const decoded = this.#decode(kv, 'assignment', 'assignment');
    if (!decoded.ok) return decoded;
    const { key, value } = decoded.value;
    return {
      ok: true,
      value: { unit: key.unit, machine: key.machine, hash: asUnitHash(value.hash), target: value.target },
    };
  }

  #decodeStatus(kv: KeyValue, problems: DecodeProblem[]): UnitStatus | undefined {
    const read = this.#read(kv, 'status', 'status', problems);
    return read === undefined ? undefined : toStatus(read.key.unit, read.key.machine, read.value);
  }

  #decodeService(kv: KeyValue): Decoded<ServiceInstance> {
    const decoded = this.#decode(kv, 'service', 'service');
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
}

/** A decoded value and the mod revision of the key it was decoded from. */
interface MemoValues {
  unit: UnitRecord;
  assignment: Assignment;
}
interface Memo {
  readonly kind: keyof MemoValues;
  readonly modRevision: Revision;
  readonly value: MemoValues[keyof MemoValues];
}

/** `machines/<id>` bound to a kept lease; lost also when the key itself disappears. */
class KvMembership implements Membership {
  readonly machineId: MachineId;
  readonly createRevision: Revision;
  readonly #lease: KeptLease;
  readonly #watch: RangeWatch;

  constructor(
    kv: Kv,
    clock: Clock,
    random: Random,
    key: string,
    machineId: MachineId,
    createRevision: Revision,
    lease: KeptLease,
  ) {
    this.machineId = machineId;
    this.createRevision = createRevision;
    this.#lease = lease;
    const gone = (): void => lease.lose({ kind: 'key_deleted', key });
    this.#watch = new RangeWatch({
      kv,
      clock,
      random,
      range: { start: key, end: key + '\0' },
      after: createRevision,
      onEvents: (events) => {
        if (events.some((e) => e.type === 'delete' || e.kv.createRevision !== createRevision)) gone();
      },
      resync: async () => {
        const res = await kv.range(key);
        if (res.kvs[0]?.createRevision !== createRevision) gone();
        return res.revision;
      },
    });
    lease.signal.addEventListener('abort', () => this.#watch.close(), { once: true });
  }

  get leaseId(): string {
    return this.#lease.leaseId;
  }
  get ttlMs(): number {
    return this.#lease.ttlMs;
  }
  get signal(): AbortSignal {
    return this.#lease.signal;
  }
  renewedAt(): number {
    return this.#lease.renewedAt();
  }
  onLost(fn: (loss: LeaseLoss) => void): () => void {
    return this.#lease.onLost(fn);
  }
  async close(): Promise<void> {
    this.#watch.close();
    await this.#lease.close();
  }
  release(): void {
    this.#watch.close();
    this.#lease.release();
  }
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
  };
}

function check<T>(decoded: Decoded<T>, problems: DecodeProblem[]): T | undefined {
  if (decoded.ok) return decoded.value;
  problems.push(decoded.problem);
  return undefined;
}

function firstKv(res: TxnResult): KeyValue | undefined {
  const first = res.results[0];
  return first?.kind === 'range' ? first.kvs[0] : undefined;
}

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

function sameRecord(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  const ak = Object.keys(a);
  return ak.length === Object.keys(b).length && ak.every((k) => a[k] === b[k]);
}
