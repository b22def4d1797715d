// What every concern of the kv-backed registry shares: one health-tracked Kv connection, the
// clock, the retry jitter, the key layout, lease defaults, and the lifecycle (watches, leases and
// elections opened through the registry, released when it closes). Each kv-*-store.ts takes one.
import type { Clock } from '../lib/clock.js';
import type { Random } from '../lib/random.js';
import { MeteredKv, type EtcdMetrics } from '../metrics/metered-kv.js';
import { EtcdHealth, HealthTrackingKv } from './etcd-health.js';
import type { KeptLease } from './kept-lease.js';
import { RegistryKeys } from './keys.js';
import type { KeyValue, Kv, TxnResult } from './kv.js';
import type { KvLeadership } from './leadership.js';
import type { LeaseOptions, Subscription } from './registry.js';

/** Read-modify-write loops (compare on the mod revision) give up with `conflict` after this many. */
export const CAS_ATTEMPTS = 10;

export interface KvCoreDeps {
  readonly kv: Kv;
  readonly clock: Clock;
  /** Draws the jitter of retries (watches, leadership campaigns) while etcd is unreachable. */
  readonly random: Random;
  /** Key prefix (default `/fleetts/v1/`). */
  readonly prefix?: string;
  /** Lease defaults for register/openLease/leadership when a call gives none. */
  readonly lease?: LeaseOptions;
  /** Times and counts every etcd request (docs/metrics.md). */
  readonly metrics?: EtcdMetrics;
}

export class KvCore {
  /** Every call, leases' keepalives included, tells `health` how etcd answered. */
  readonly kv: Kv;
  readonly health: EtcdHealth;
  readonly clock: Clock;
  readonly random: Random;
  readonly keys: RegistryKeys;
  readonly leaseDefaults: LeaseOptions;
  readonly #subscriptions = new Set<Subscription>();
  /** Leases granted through this registry, released (not revoked) when it closes. */
  readonly #leases = new Set<KeptLease>();
  readonly #leaderships = new Set<KvLeadership>();
  readonly #onClose: (() => void)[] = [];
  #closed = false;

  constructor(deps: KvCoreDeps) {
    this.clock = deps.clock;
    this.health = new EtcdHealth(deps.clock);
    const kv = deps.metrics === undefined ? deps.kv : new MeteredKv(deps.kv, deps.metrics, deps.clock);
    this.kv = new HealthTrackingKv(kv, this.health);
    this.random = deps.random;
    this.keys = new RegistryKeys(deps.prefix);
    this.leaseDefaults = deps.lease ?? {};
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Closes `sub` with the registry (and forgets it once closed by its owner). */
  track(sub: Subscription): Subscription {
    const tracked: Subscription = {
      close: () => {
        this.#subscriptions.delete(tracked);
        sub.close();
      },
    };
    this.#subscriptions.add(tracked);
    return tracked;
  }

  /** Releases `lease` when the registry closes, unless it ended before. */
  keep(lease: KeptLease): void {
    this.#leases.add(lease);
    lease.signal.addEventListener('abort', () => this.#leases.delete(lease), { once: true });
  }

  keepLeadership(leadership: KvLeadership): void {
    this.#leaderships.add(leadership);
  }

  /** Runs `fn` first thing on close (timers of a concern). */
  onClose(fn: () => void): void {
    this.#onClose.push(fn);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const fn of this.#onClose) fn();
    for (const s of this.#subscriptions) s.close();
    this.#subscriptions.clear();
    for (const lease of this.#leases) lease.release();
    this.#leases.clear();
    this.#leaderships.forEach((l) => l.release());
    this.kv.close();
  }
}

/** The first key of a transaction's first result (its `failure` range, by convention here). */
export function firstKv(res: TxnResult): KeyValue | undefined {
  const first = res.results[0];
  return first?.kind === 'range' ? first.kvs[0] : undefined;
}

export function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
