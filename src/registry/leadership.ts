// Engine leader election on the registry's store: a candidate holds `engine/leader` under its own
// kept lease (create-if-absent txn); followers watch the key and campaign when it goes. The term's
// Fence (the key's create revision) is compared by every leader write, so a deposed leader's plan
// cannot land even if it has not noticed yet that it lost. The key is always lease-bound: one that
// is not, or holds garbage, would never expire, so it is treated as expired and deleted.
import { Backoff } from '../lib/backoff.js';
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import type { Random } from '../lib/random.js';
import { decodeValue, encodeValue, isNewerVersion } from './codec.js';
import { KeptLease } from './kept-lease.js';
import type { RegistryKeys } from './keys.js';
import type { KeyValue, Kv, LeaseId, Revision } from './kv.js';
import { NO_LEASE } from './kv.js';
import type { LeaseLoss, LeaseOptions } from './registry.js';
import { RegistryError, isRegistryError } from './registry-error.js';
import { RangeWatch } from './watch-range.js';

/** Proof of one leadership term, passed to every leader-only write. */
export interface Fence {
  readonly key: string;
  /** The leader key's create revision in this term: unique per term, 0 never. */
  readonly createRevision: Revision;
  readonly candidate: string;
  readonly leaseId: LeaseId;
}

export interface LeadershipOptions extends LeaseOptions {
  /** Who campaigns (the machine id of this fleetd), shown as the leader. */
  readonly candidate: string;
  /** Where an invalid leader key is reported (at warn) when it is deleted. */
  readonly log?: Logger;
}

/** Why a term ended. */
export type TermEnd =
  | { readonly kind: 'lease_lost'; readonly loss: LeaseLoss }
  | { readonly kind: 'key_changed' }
  | { readonly kind: 'resigned' };

export interface LeaderTerm {
  readonly fence: Fence;
  /**
   * Aborted (reason: TermEnd) the moment this process learns the term is over; leader work must
   * stop at once. Writes are fenced regardless, so learning late cannot corrupt state.
   */
  readonly signal: AbortSignal;
  /** See LeaseHandle.renewedAt: a leader may also stop when its lease may be about to expire. */
  renewedAt(): number;
  /** Ends the term and vacates the key so that a follower takes over at once. */
  resign(): Promise<void>;
}

export interface Leadership {
  /**
   * Waits until this candidate leads (retrying through etcd outages). Rejects only when `signal`
   * aborts (with its reason), when closed (`closed`), or on a non-recoverable registry error.
   */
  campaign(signal?: AbortSignal): Promise<LeaderTerm>;
  /** Resigns any term and stops campaigning. */
  close(): Promise<void>;
}

/** Campaign retries while etcd is unreachable (jittered: every fleetd campaigns again at once). */
const RETRY = { minMs: 250, maxMs: 5000 };

export class KvLeadership implements Leadership {
  readonly #kv: Kv;
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #key: string;
  readonly #options: LeadershipOptions;
  readonly #closed = new AbortController();
  #lease: KeptLease | undefined;
  #term: { end: (why: TermEnd) => void } | undefined;

  constructor(deps: {
    kv: Kv;
    clock: Clock;
    random: Random;
    keys: RegistryKeys;
    options: LeadershipOptions;
    /**
     * The key campaigned for (default: the engine's `engine/leader`): another singleton (the
     * floating address) elects its holder the same way under its own key.
     */
    key?: string;
  }) {
    this.#kv = deps.kv;
    this.#clock = deps.clock;
    this.#random = deps.random;
    this.#key = deps.key ?? deps.keys.leader();
    this.#options = deps.options;
  }

  async campaign(signal?: AbortSignal): Promise<LeaderTerm> {
    const stop = signal === undefined ? this.#closed.signal : AbortSignal.any([signal, this.#closed.signal]);
    const backoff = new Backoff({ clock: this.#clock, random: this.#random, ...RETRY });
    for (;;) {
      if (this.#closed.signal.aborted) throw new RegistryError('closed', 'leadership was closed');
      stop.throwIfAborted();
      try {
        const term = await this.#attempt(stop);
        if (term !== undefined) return term;
        backoff.reset();
      } catch (error) {
        if (stop.aborted) continue;
        if (!isRegistryError(error) || !error.recoverable) throw error;
        await backoff.sleep(stop);
      }
    }
  }

  async close(): Promise<void> {
    this.#closed.abort(new RegistryError('closed', 'leadership was closed'));
    this.#term?.end({ kind: 'resigned' });
    const lease = this.#lease;
    this.#lease = undefined;
    await lease?.close().catch(() => undefined);
  }

  /** Stops campaigning and keepalives without revoking (the registry is closing). */
  release(): void {
    this.#closed.abort(new RegistryError('closed', 'leadership was closed'));
    this.#term?.end({ kind: 'resigned' });
    this.#lease?.release();
    this.#lease = undefined;
  }

  /** One try: leads, or waits until the key is vacated (then resolves undefined to try again). */
  async #attempt(stop: AbortSignal): Promise<LeaderTerm | undefined> {
    if (this.#lease === undefined || this.#lease.signal.aborted) {
      this.#lease = await KeptLease.grant(this.#kv, this.#clock, this.#options);
    }
    const lease = this.#lease;
    const key = this.#key;
    const value = encodeValue('leader', {
      v: 1,
      candidate: this.#options.candidate,
      since: new Date(this.#clock.now()).toISOString(),
    });
    const res = await this.#kv.txn({
      compare: [{ target: 'version', key, op: '==', version: 0 }],
      success: [{ kind: 'put', key, value, lease: lease.leaseId }],
      failure: [{ kind: 'range', key }],
    });
    if (res.succeeded) return this.#startTerm(lease, res.revision);
    const first = res.results[0];
    const holder = first?.kind === 'range' ? first.kvs[0] : undefined;
    // Our own earlier attempt may have landed although its answer was lost.
    if (holder !== undefined && holder.lease === lease.leaseId)
      return this.#startTerm(lease, holder.createRevision);
    if (holder === undefined) return undefined;
    const invalid = invalidLeaderKey(holder);
    if (invalid !== undefined) {
      await this.#vacate(holder, invalid);
      return undefined;
    }
    await this.#waitForVacancy(key, res.revision, lease, stop);
    return undefined;
  }

  /** Deletes a leader key that would never expire by itself (unless it changed meanwhile). */
  async #vacate(holder: KeyValue, why: string): Promise<void> {
    this.#options.log?.warn(
      { event: 'engine.leader_key_invalid', key: holder.key, reason: why },
      `the leader key ${holder.key} ${why}; treating it as expired (deleting it) and campaigning`,
    );
    await this.#kv.txn({
      compare: [{ target: 'mod', key: holder.key, op: '==', revision: holder.modRevision }],
      success: [{ kind: 'delete', key: holder.key }],
    });
  }

  #waitForVacancy(key: string, after: Revision, lease: KeptLease, stop: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        watch.close();
        stop.removeEventListener('abort', done);
        lease.signal.removeEventListener('abort', done);
        resolve();
      };
      const watch = new RangeWatch({
        kv: this.#kv,
        clock: this.#clock,
        random: this.#random,
        range: { start: key, end: key + '\0' },
        after,
        onEvents: (events) => {
          // A put that leaves the key invalid (e.g. garbage without a lease) ends the wait too: the
          // next attempt vacates it.
          if (events.some((e) => e.type === 'delete' || invalidLeaderKey(e.kv) !== undefined)) done();
        },
        // After a watch error, simply try again: the create-if-absent txn re-checks the key.
        resync: () => {
          done();
          return Promise.resolve(after);
        },
      });
      stop.addEventListener('abort', done, { once: true });
      lease.signal.addEventListener('abort', done, { once: true });
    });
  }

  #startTerm(lease: KeptLease, createRevision: Revision): LeaderTerm {
    const key = this.#key;
    const controller = new AbortController();
    const end = (why: TermEnd): void => {
      if (controller.signal.aborted) return;
      controller.abort(why);
      watch.close();
      unsubscribe();
      if (this.#term === term) this.#term = undefined;
    };
    const term = { end };
    this.#term = term;
    const unsubscribe = lease.onLost((loss) => end({ kind: 'lease_lost', loss }));
    const watch = new RangeWatch({
      kv: this.#kv,
      clock: this.#clock,
      random: this.#random,
      range: { start: key, end: key + '\0' },
      after: createRevision,
      onEvents: (events) => {
        // This term never writes the key again: any put is someone else's (a put over the key keeps
        // its create revision but detaches the lease, and the key would outlive this leader).
        if (
          events.some(
            (e) =>
              e.type === 'delete' || e.kv.createRevision !== createRevision || e.kv.lease !== lease.leaseId,
          )
        ) {
          end({ kind: 'key_changed' });
        }
      },
      resync: async () => {
        const res = await this.#kv.range(key);
        const kv = res.kvs[0];
        if (kv?.createRevision !== createRevision || kv.lease !== lease.leaseId) end({ kind: 'key_changed' });
        return res.revision;
      },
    });
    if (lease.signal.aborted) end({ kind: 'lease_lost', loss: lease.signal.reason as LeaseLoss });
    const fence: Fence = { key, createRevision, candidate: this.#options.candidate, leaseId: lease.leaseId };
    return {
      fence,
      signal: controller.signal,
      renewedAt: () => lease.renewedAt(),
      resign: async () => {
        end({ kind: 'resigned' });
        if (this.#lease === lease) this.#lease = undefined;
        await lease.close();
      },
    };
  }
}

/**
 * Why a leader key held by someone else can never expire by itself, or undefined when it can (it
 * is bound to a lease and decodes, or was written by a newer fleetts, whose term ends with its
 * lease like any other).
 */
function invalidLeaderKey(kv: KeyValue): string | undefined {
  if (kv.lease === NO_LEASE) return 'is bound to no lease, so it would never expire';
  const decoded = decodeValue('leader', kv.key, kv.value);
  if (decoded.ok || isNewerVersion(kv.value)) return undefined;
  return `does not decode (${decoded.problem.message})`;
}
