// Observed state over the Kv: `status/<unit>/<machine>`, written by each agent under its
// membership lease (so a dead host's statuses go with it) and listed for the API.
import type { MachineId, UnitName, UnitStatus } from '../cluster/types.js';
import type { DecodeProblem } from './codec.js';
import { encodeValue } from './codec.js';
import type { RegistryKeys } from './keys.js';
import type { KvCore } from './kv-core.js';
import { decodeStatus } from './kv-decode.js';
import type { Kv, Revision } from './kv.js';
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
    const res = await this.#kv.txn({
      compare: [],
      success: [
        { kind: 'put', key: this.#keys.status(status.unit, status.machine), value, lease: lease.leaseId },
      ],
    });
    return res.revision;
  }

  async deleteStatus(unit: UnitName, machine: MachineId): Promise<void> {
    await this.#kv.txn({ compare: [], success: [{ kind: 'delete', key: this.#keys.status(unit, machine) }] });
  }
}
