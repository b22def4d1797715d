// Observed state over the Kv: `status/<unit>/<machine>`, written by each agent under its
// membership lease (so a dead host's statuses go with it) and listed for the API.
import type { MachineId, UnitName, UnitStatus } from '../cluster/types.js';
import type { DecodeProblem } from './codec.js';
import { encodeValue } from './codec.js';
import type { RegistryKeys } from './keys.js';
import type { KvCore } from './kv-core.js';
import { decodeStatus } from './kv-decode.js';
import type { Kv, Revision, TxnOp } from './kv.js';
import type { LeaseHandle, StatusStore, WatchedSet } from './registry.js';

export class KvStatusStore implements StatusStore {
  readonly #kv: Kv;
  readonly #keys: RegistryKeys;

  constructor(core: KvCore) {
    this.#kv = core.kv;
    this.#keys = core.keys;
  }

  async listStatuses(unit?: UnitName): Promise<WatchedSet<UnitStatus>> {
    const range = unit === undefined ? this.#keys.tree('statuses') : this.#keys.statusesOf(unit);
    const res = await this.#kv.range(range.start, range.end);
    const problems: DecodeProblem[] = [];
    const items: UnitStatus[] = [];
    for (const kv of res.kvs) {
      const s = decodeStatus(this.#keys, kv, problems);
      if (s !== undefined) items.push(s);
    }
    return { revision: res.revision, items, problems };
  }

  async putStatus(lease: Pick<LeaseHandle, 'leaseId'>, status: UnitStatus): Promise<Revision> {
    const res = await this.#kv.txn({ compare: [], success: [this.#putOp(lease, status)] });
    return res.revision;
  }

  async writeStatuses(
    lease: Pick<LeaseHandle, 'leaseId'>,
    puts: readonly UnitStatus[],
    deletes: readonly { readonly unit: UnitName; readonly machine: MachineId }[],
  ): Promise<void> {
    const ops: TxnOp[] = [
      ...puts.map((s) => this.#putOp(lease, s)),
      ...deletes.map((d) => ({ kind: 'delete' as const, key: this.#keys.status(d.unit, d.machine) })),
    ];
    const batches: TxnOp[][] = [];
    for (let i = 0; i < ops.length; i += this.#kv.maxTxnOps)
      batches.push(ops.slice(i, i + this.#kv.maxTxnOps));
    const results = await Promise.allSettled(
      batches.map((success) => this.#kv.txn({ compare: [], success })),
    );
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
  }

  #putOp(lease: Pick<LeaseHandle, 'leaseId'>, status: UnitStatus): TxnOp {
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
      ...(status.health === undefined ? {} : { health: status.health }),
    });
    return { kind: 'put', key: this.#keys.status(status.unit, status.machine), value, lease: lease.leaseId };
  }

  async deleteStatus(unit: UnitName, machine: MachineId): Promise<void> {
    await this.#kv.txn({ compare: [], success: [{ kind: 'delete', key: this.#keys.status(unit, machine) }] });
  }
}
