// Run claims over the Kv: `claims/<unit>`, created if absent under the claimant's membership
// lease, so that a non-global unit runs on one machine at most whatever the timing of plans.
import type { MachineId, UnitName } from '../cluster/types.js';
import { asMachineId } from '../cluster/types.js';
import type { Clock } from '../lib/clock.js';
import { decodeValue, encodeValue } from './codec.js';
import type { RegistryKeys } from './keys.js';
import { firstKv, type KvCore } from './kv-core.js';
import type { Kv } from './kv.js';
import type { ClaimOptions, ClaimStore, LeaseHandle } from './registry.js';

export class KvClaimStore implements ClaimStore {
  readonly #kv: Kv;
  readonly #keys: RegistryKeys;
  readonly #clock: Clock;

  constructor(core: KvCore) {
    this.#kv = core.kv;
    this.#keys = core.keys;
    this.#clock = core.clock;
  }

  async claimUnit(
    lease: Pick<LeaseHandle, 'leaseId'>,
    unit: UnitName,
    machine: MachineId,
    options: ClaimOptions = {},
  ): Promise<
    { readonly ok: true; readonly takenFrom?: MachineId } | { readonly ok: false; readonly holder: MachineId }
  > {
    const key = this.#keys.claim(unit);
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
    const holderId = asMachineId(decoded.ok ? decoded.value.machine : '?');
    if (decoded.ok && options.takeFrom?.(holderId) === true) {
      // The holder is dead (its peers say so) while its lease lives on: take the claim over, if
      // it is still the same claim.
      const taken = await this.#kv.txn({
        compare: [{ target: 'mod', key, op: '==', revision: holder.modRevision }],
        success: [{ kind: 'put', key, value, lease: lease.leaseId }],
      });
      if (taken.succeeded) return { ok: true, takenFrom: holderId };
    }
    return { ok: false, holder: holderId };
  }

  async releaseDeadHolder(unit: UnitName, holder: MachineId): Promise<boolean> {
    const key = this.#keys.claim(unit);
    const kv = firstKv(await this.#kv.txn({ compare: [], success: [{ kind: 'range', key }] }));
    if (kv === undefined) return false;
    const decoded = decodeValue('claim', key, kv.value);
    if (!decoded.ok || decoded.value.machine !== holder) return false;
    const res = await this.#kv.txn({
      compare: [{ target: 'mod', key, op: '==', revision: kv.modRevision }],
      success: [{ kind: 'delete', key }],
    });
    return res.succeeded;
  }

  async releaseUnit(lease: Pick<LeaseHandle, 'leaseId'>, unit: UnitName): Promise<void> {
    const key = this.#keys.claim(unit);
    await this.#kv.txn({
      compare: [{ target: 'lease', key, op: '==', lease: lease.leaseId }],
      success: [{ kind: 'delete', key }],
    });
  }
}
