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

type ClaimResult =
  { readonly ok: true; readonly takenFrom?: MachineId } | { readonly ok: false; readonly holder: MachineId };

interface AskedClaim {
  readonly lease: Pick<LeaseHandle, 'leaseId'>;
  readonly unit: UnitName;
  readonly machine: MachineId;
  readonly resolve: (r: ClaimResult) => void;
  readonly reject: (err: unknown) => void;
}

export class KvClaimStore implements ClaimStore {
  readonly #kv: Kv;
  readonly #keys: RegistryKeys;
  readonly #clock: Clock;
  /** Claims asked since the first of them queued the microtask that sends them together (#flush). */
  #asked: AskedClaim[] | undefined;

  constructor(core: KvCore) {
    this.#kv = core.kv;
    this.#keys = core.keys;
    this.#clock = core.clock;
  }

  /**
   * Claims asked together (an agent's burst of starts) go in one transaction that creates them all,
   * when none exists; otherwise each is asked alone, with the same answers.
   */
  claimUnit(
    lease: Pick<LeaseHandle, 'leaseId'>,
    unit: UnitName,
    machine: MachineId,
    options: ClaimOptions = {},
  ): Promise<ClaimResult> {
    if (options.takeFrom !== undefined) return this.#claimOne(lease, unit, machine, options);
    return new Promise<ClaimResult>((resolve, reject) => {
      if (this.#asked === undefined) {
        this.#asked = [];
        // A microtask, not a timer: the claims of one pass are asked within the same turn (and the
        // fake clocks of the tests never run real timers).
        queueMicrotask(() => void this.#flush());
      }
      this.#asked.push({ lease, unit, machine, resolve, reject });
    });
  }

  async #flush(): Promise<void> {
    const asked = this.#asked ?? [];
    this.#asked = undefined;
    const units = new Set(asked.map((a) => a.unit));
    const max = Math.max(1, this.#kv.maxTxnOps);
    if (asked.length > 1 && units.size === asked.length && asked.length <= max) {
      const since = new Date(this.#clock.now()).toISOString();
      const batch = await this.#kv
        .txn({
          compare: asked.map((a) => ({
            target: 'version',
            key: this.#keys.claim(a.unit),
            op: '==',
            version: 0,
          })),
          success: asked.map((a) => ({
            kind: 'put',
            key: this.#keys.claim(a.unit),
            value: encodeValue('claim', { v: 1, machine: a.machine, since }),
            lease: a.lease.leaseId,
          })),
        })
        .then(
          (res) => res.succeeded,
          () => false,
        );
      if (batch) {
        for (const a of asked) a.resolve({ ok: true });
        return;
      }
    }
    // One of them exists already (held here or elsewhere), or too many: each alone.
    for (const a of asked) this.#claimOne(a.lease, a.unit, a.machine).then(a.resolve, a.reject);
  }

  async #claimOne(
    lease: Pick<LeaseHandle, 'leaseId'>,
    unit: UnitName,
    machine: MachineId,
    options: ClaimOptions = {},
  ): Promise<ClaimResult> {
    const key = this.#keys.claim(unit);
    const value = encodeValue('claim', { v: 1, machine, since: new Date(this.#clock.now()).toISOString() });
    const res = await this.#kv.txn({
      compare: [{ target: 'version', key, op: '==', version: 0 }],
      success: [{ kind: 'put', key, value, lease: lease.leaseId }],
      failure: [{ kind: 'range', key }],
    });
    if (res.succeeded) return { ok: true };
    const holder = firstKv(res);
    if (holder === undefined) return this.#claimOne(lease, unit, machine); // released meanwhile
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
