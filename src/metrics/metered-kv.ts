// A Kv whose unary calls are timed and counted by op (fleetts_etcd_request_seconds, …_errors_total);
// keepalives also feed fleetts_lease_keepalive_seconds. KvCore wraps its connection in one when a
// ProcessMetrics is given, so every registry call of a process is measured in this one place.
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
} from '../registry/kv.js';
import type { Clock } from '../lib/clock.js';
import { isRegistryError } from '../registry/registry-error.js';
import type { EtcdOp, ProcessMetrics } from './process-metrics.js';

/** The families it feeds (every ProcessMetrics has them). */
export type EtcdMetrics = Pick<
  ProcessMetrics,
  'etcdRequestSeconds' | 'etcdRequestErrors' | 'leaseKeepaliveSeconds'
>;

export class MeteredKv implements Kv {
  readonly #kv: Kv;
  readonly #m: EtcdMetrics;
  readonly #clock: Clock;

  constructor(kv: Kv, metrics: EtcdMetrics, clock: Clock) {
    this.#kv = kv;
    this.#m = metrics;
    this.#clock = clock;
  }

  get maxTxnOps(): number {
    return this.#kv.maxTxnOps;
  }

  range(
    key: string,
    end?: string,
    options?: { readonly revision?: Revision },
  ): Promise<{ revision: Revision; kvs: readonly KeyValue[] }> {
    return this.#time('range', () => this.#kv.range(key, end, options));
  }

  txn(request: TxnRequest): Promise<TxnResult> {
    return this.#time('txn', () => this.#kv.txn(request));
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
    return this.#time('lease_grant', () => this.#kv.leaseGrant(ttlSeconds));
  }

  async leaseKeepAlive(id: LeaseId, options: { timeoutMs: number }): Promise<number> {
    const started = this.#clock.monotonic();
    const ttl = await this.#time('lease_keepalive', () => this.#kv.leaseKeepAlive(id, options));
    this.#m.leaseKeepaliveSeconds.observe((this.#clock.monotonic() - started) / 1000);
    return ttl;
  }

  leaseRevoke(id: LeaseId): Promise<void> {
    return this.#time('lease_revoke', () => this.#kv.leaseRevoke(id));
  }

  close(): void {
    this.#kv.close();
  }

  async #time<T>(op: EtcdOp, call: () => Promise<T>): Promise<T> {
    const started = this.#clock.monotonic();
    try {
      return await call();
    } catch (err) {
      this.#m.etcdRequestErrors.inc({ op, code: isRegistryError(err) ? err.code : 'other' });
      throw err;
    } finally {
      this.#m.etcdRequestSeconds.observe({ op }, (this.#clock.monotonic() - started) / 1000);
    }
  }
}
