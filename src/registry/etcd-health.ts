// The health of one fleetd's connection to etcd, as its own requests and keepalives find it: the
// engine asks it whether an absent machine may be gone only because etcd was (docs/
// control-plane-faults.md). Fed by `HealthTrackingKv`, which every registry call goes through.
import type { Clock } from '../lib/clock.js';
import type {
  KeyValue,
  Kv,
  KvWatch,
  LeaseId,
  Revision,
  TxnRequest,
  TxnResult,
  WatchHandlers,
  WatchOptions,
} from './kv.js';
import { isRegistryError } from './registry-error.js';

/** What the engine reads: times are the registry clock's `monotonic()`. */
export interface EtcdHealthView {
  /**
   * Since when every answer was a success: the time of the first success after the last
   * unavailability, `-Infinity` if this connection never found etcd unavailable, `undefined` while
   * the latest outcome is a failure.
   */
  healthySince(): number | undefined;
  /** When a request or keepalive last failed because etcd was unavailable (`undefined`: never). */
  lastFailureAt(): number | undefined;
}

export class EtcdHealth implements EtcdHealthView {
  readonly #clock: Clock;
  #healthySince: number | undefined = Number.NEGATIVE_INFINITY;
  #lastFailureAt: number | undefined;

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  healthySince(): number | undefined {
    return this.#healthySince;
  }

  lastFailureAt(): number | undefined {
    return this.#lastFailureAt;
  }

  /** etcd answered (whatever the answer: a conflict or a missing lease is an answer). */
  succeeded(): void {
    this.#healthySince ??= this.#clock.monotonic();
  }

  /** etcd could not be reached or did not answer in time. */
  failed(): void {
    this.#lastFailureAt = this.#clock.monotonic();
    this.#healthySince = undefined;
  }

  /** Notes the outcome of one call: unavailability is a failure, any other error is not news. */
  track<T>(call: Promise<T>): Promise<T> {
    return call.then(
      (value) => {
        this.succeeded();
        return value;
      },
      (error: unknown) => {
        if (isRegistryError(error, 'unavailable')) this.failed();
        else if (isRegistryError(error) && error.code !== 'closed' && error.code !== 'invalid')
          this.succeeded(); // etcd answered with a refusal
        throw error;
      },
    );
  }
}

/** A Kv whose unary calls and keepalives report to an EtcdHealth; watches pass through. */
export class HealthTrackingKv implements Kv {
  readonly #kv: Kv;
  readonly #health: EtcdHealth;

  constructor(kv: Kv, health: EtcdHealth) {
    this.#kv = kv;
    this.#health = health;
  }

  get maxTxnOps(): number {
    return this.#kv.maxTxnOps;
  }

  range(
    key: string,
    end?: string,
    options?: { readonly revision?: Revision },
  ): Promise<{ revision: Revision; kvs: readonly KeyValue[] }> {
    return this.#health.track(this.#kv.range(key, end, options));
  }

  txn(request: TxnRequest): Promise<TxnResult> {
    return this.#health.track(this.#kv.txn(request));
  }

  watch(
    key: string,
    end: string,
    startRevision: Revision,
    handlers: WatchHandlers,
    options?: WatchOptions,
  ): KvWatch {
    return this.#kv.watch(key, end, startRevision, handlers, options);
  }

  leaseGrant(ttlSeconds: number): Promise<LeaseId> {
    return this.#health.track(this.#kv.leaseGrant(ttlSeconds));
  }

  leaseKeepAlive(id: LeaseId, options: { timeoutMs: number }): Promise<number> {
    return this.#health.track(this.#kv.leaseKeepAlive(id, options));
  }

  leaseRevoke(id: LeaseId): Promise<void> {
    return this.#health.track(this.#kv.leaseRevoke(id));
  }

  close(): void {
    this.#kv.close();
  }
}
