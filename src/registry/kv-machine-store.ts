// Membership over the Kv: `machines/<id>` bound to each fleetd's kept lease (resumable across a
// restart, so that a quick restart keeps its units), and persistent dynamic metadata
// (`machine-metadata/<id>`) merged over each machine's configured metadata.
import type { MachineId, Metadata } from '../cluster/types.js';
import type { Clock } from '../lib/clock.js';
import type { Random } from '../lib/random.js';
import { decodeValue, encodeValue } from './codec.js';
import type { DecodeProblem } from './codec.js';
import { KeptLease } from './kept-lease.js';
import type { KeyRange, RegistryKeys } from './keys.js';
import { CAS_ATTEMPTS, firstKv, type KvCore } from './kv-core.js';
import { decodeDrain, decodeMachines } from './kv-decode.js';
import type { Compare, Kv, Revision, TxnOp, TxnResult } from './kv.js';
import type {
  DrainRecord,
  LeaseLoss,
  LeaseOptions,
  MachineRecord,
  MachineRegistration,
  MachineStore,
  Membership,
  RegisterOptions,
  WatchedSet,
} from './registry.js';
import { RegistryError } from './registry-error.js';
import { RangeWatch } from './watch-range.js';

export class KvMachineStore implements MachineStore {
  readonly #core: KvCore;
  readonly #kv: Kv;
  readonly #keys: RegistryKeys;
  readonly #clock: Clock;
  readonly #random: Random;

  constructor(core: KvCore) {
    this.#core = core;
    this.#kv = core.kv;
    this.#keys = core.keys;
    this.#clock = core.clock;
    this.#random = core.random;
  }

  async listMachines(): Promise<WatchedSet<MachineRecord>> {
    const res = await this.#kv.txn({
      compare: [],
      success: [rangeOp(this.#keys.tree('machines')), rangeOp(this.#keys.tree('machineMetadata'))],
    });
    const problems: DecodeProblem[] = [];
    const [machineKvs, metadataKvs] = res.results.map((r) => (r.kind === 'range' ? r.kvs : []));
    const machines = decodeMachines(this.#keys, machineKvs ?? [], metadataKvs ?? [], problems);
    return { revision: res.revision, items: [...machines.values()], problems };
  }

  async register(machine: MachineRegistration, options?: RegisterOptions): Promise<Membership> {
    const key = this.#keys.machine(machine.id);
    const value = encodeValue('machine', {
      v: 1,
      ip: machine.ip,
      metadata: { ...machine.metadata },
      ...(machine.apiAddress === undefined ? {} : { apiAddress: machine.apiAddress }),
      version: machine.version,
      startedAt: machine.startedAt,
      ...(machine.memoryBytes === undefined ? {} : { memoryBytes: machine.memoryBytes }),
    });
    const leaseOptions: LeaseOptions = { ...this.#core.leaseDefaults, ...options };
    const resumed =
      options?.resumeLeaseId === undefined
        ? undefined
        : await KeptLease.resume(this.#kv, this.#clock, options.resumeLeaseId, leaseOptions);
    const lease = resumed ?? (await KeptLease.grant(this.#kv, this.#clock, leaseOptions));
    this.#core.keep(lease);
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

  async drainMachine(machine: MachineId, since: string): Promise<DrainRecord> {
    const key = this.#keys.drain(machine);
    const value = encodeValue('drain', { v: 1, since });
    const res = await this.#kv.txn({
      compare: [{ target: 'version', key, op: '==', version: 0 }],
      success: [{ kind: 'put', key, value }],
      failure: [{ kind: 'range', key }],
    });
    if (res.succeeded) return { machine, since, moving: [], modRevision: res.revision };
    const held = firstKv(res);
    const problems: DecodeProblem[] = [];
    const existing = held === undefined ? undefined : decodeDrain(this.#keys, held, problems);
    if (existing !== undefined) return existing;
    // A corrupt record (not written by fleetts) is replaced: the machine is drained from now on.
    await this.#kv.txn({ compare: [], success: [{ kind: 'put', key, value }] });
    return this.drainMachine(machine, since);
  }

  async undrainMachine(machine: MachineId): Promise<boolean> {
    const key = this.#keys.drain(machine);
    const res = await this.#kv.txn({
      compare: [{ target: 'version', key, op: '>', version: 0 }],
      success: [{ kind: 'delete', key }],
    });
    return res.succeeded;
  }

  async patchMachineMetadata(
    machine: MachineId,
    patch: Readonly<Record<string, string | null>>,
  ): Promise<Metadata> {
    const key = this.#keys.machineMetadata(machine);
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
  resumedAt(): number {
    return this.#lease.resumedAt();
  }

  renewedAt(): number {
    return this.#lease.renewedAt();
  }
  onRenewed(fn: () => void): () => void {
    return this.#lease.onRenewed(fn);
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

function rangeOp(range: KeyRange): TxnOp {
  return { kind: 'range', key: range.start, end: range.end };
}

function sameRecord(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  const ak = Object.keys(a);
  return ak.length === Object.keys(b).length && ak.every((k) => a[k] === b[k]);
}
