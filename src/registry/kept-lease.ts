// A lease kept alive on the registry's Clock: the basis of membership, leadership and service
// announcements. It tracks when the last acknowledged keepalive was SENT, which bounds from below
// when etcd can expire the lease, so that holders can self-fence before their keys vanish.
import type { BackoffOptions } from '../lib/backoff.js';
import { callAll } from '../lib/call-all.js';
import { setGridTimer, type Clock, type Timer } from '../lib/clock.js';
import type { Kv, LeaseId } from './kv.js';
import type { LeaseHandle, LeaseLoss, LeaseOptions } from './registry.js';
import { RegistryError } from './registry-error.js';

/** See docs/registry.md for the trade-offs behind these numbers. */
/**
 * A renewal gap longer than this many keepalive periods is an outage ended (see resumedAt): a
 * renewal is sent every period, so anything past a little jitter means some were not acknowledged.
 */
export const LIVE_GAP_PERIODS = 1.2;

export const DEFAULT_LEASE_TTL_MS = 5000;
export const DEFAULT_KEEPALIVE_MS = 1000;
/**
 * How long after `renewedAt()` an agent should stop its units: etcd cannot expire the lease before
 * `renewedAt() + ttl` (5 s), which leaves 1.5 s to stop them before another host may be given them.
 */
export const DEFAULT_FENCE_AFTER_MS = 3500;
/** etcd's smallest usable TTL with its default heartbeat/election settings (it raises lower ones). */
export const MIN_LEASE_TTL_MS = 2000;
/**
 * fleetd's retries of registering while etcd is unreachable (after a lost lease), lib/backoff. The
 * cap is short, 1 s, not 5 s: once etcd is back, the engine gives a machine whose lease the outage
 * took only its reconnect grace (engine.ts, built on this cap) to re-register before it moves its
 * units, so a fleetd must try again within about a second. Jittered (delays in [250 ms, 1 s] once
 * capped) so that the fleet does not re-register in the same instant; one small txn per host per
 * second while etcd is down is cheap. The simulation keeps membership with these same options.
 */
export const MEMBERSHIP_RETRY: BackoffOptions = { minMs: 250, maxMs: 1_000 };

export interface ResolvedLeaseOptions {
  readonly ttlMs: number;
  readonly keepaliveMs: number;
}

export function resolveLeaseOptions(options: LeaseOptions = {}): ResolvedLeaseOptions {
  const ttlMs = Math.max(MIN_LEASE_TTL_MS, Math.ceil((options.ttlMs ?? DEFAULT_LEASE_TTL_MS) / 1000) * 1000);
  const keepaliveMs = options.keepaliveMs ?? Math.min(DEFAULT_KEEPALIVE_MS, ttlMs / 3);
  if (!(keepaliveMs > 0) || keepaliveMs * 2 > ttlMs) {
    throw new RegistryError(
      'invalid',
      `lease keepalive interval ${keepaliveMs} ms must be positive and at most half the TTL (${ttlMs} ms)`,
    );
  }
  return { ttlMs, keepaliveMs };
}

export class KeptLease implements LeaseHandle {
  readonly leaseId: LeaseId;
  readonly ttlMs: number;
  readonly #keepaliveMs: number;
  readonly #kv: Kv;
  readonly #clock: Clock;
  readonly #controller = new AbortController();
  readonly #listeners = new Set<(loss: LeaseLoss) => void>();
  readonly #renewListeners = new Set<() => void>();
  #renewedAt: number;
  #resumedAt: number;
  #timer: Timer | undefined;
  #ended = false;

  /** Grants a lease and starts keeping it alive. */
  static async grant(kv: Kv, clock: Clock, options: LeaseOptions = {}): Promise<KeptLease> {
    const resolved = resolveLeaseOptions(options);
    const sentAt = clock.monotonic();
    const id = await kv.leaseGrant(resolved.ttlMs / 1000);
    return new KeptLease(kv, clock, id, resolved, sentAt);
  }

  /**
   * Takes over keeping alive a lease granted earlier (by this host's previous process): etcd
   * leases are not bound to a connection. `undefined` when it no longer exists.
   */
  static async resume(
    kv: Kv,
    clock: Clock,
    id: LeaseId,
    options: LeaseOptions = {},
  ): Promise<KeptLease | undefined> {
    const resolved = resolveLeaseOptions(options);
    const sentAt = clock.monotonic();
    const ttl = await kv.leaseKeepAlive(id, { timeoutMs: resolved.ttlMs / 2 });
    if (ttl <= 0) return undefined;
    return new KeptLease(kv, clock, id, { ...resolved, ttlMs: ttl * 1000 }, sentAt);
  }

  private constructor(kv: Kv, clock: Clock, id: LeaseId, options: ResolvedLeaseOptions, grantedAt: number) {
    this.#kv = kv;
    this.#clock = clock;
    this.leaseId = id;
    this.ttlMs = options.ttlMs;
    this.#keepaliveMs = options.keepaliveMs;
    this.#renewedAt = grantedAt;
    this.#resumedAt = grantedAt;
    this.#schedule(options.keepaliveMs);
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /**
   * When etcd last became reachable for this lease (monotonic): its grant, or the first renewal
   * acknowledged after a gap of more than LIVE_GAP_PERIODS keepalive periods (an outage, a leader
   * election). Peers read it (as `liveSinceMs`) to tell etcd coming back for everyone from a host
   * being cut off (docs/fencing.md).
   */
  resumedAt(): number {
    return this.#resumedAt;
  }

  renewedAt(): number {
    return this.#renewedAt;
  }

  onRenewed(fn: () => void): () => void {
    if (this.#ended) return () => undefined;
    this.#renewListeners.add(fn);
    return () => this.#renewListeners.delete(fn);
  }

  onLost(fn: (loss: LeaseLoss) => void): () => void {
    if (this.#ended) return () => undefined;
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /** Ends the lease as lost for a reason found outside the keepalives (e.g. its key was deleted). */
  lose(loss: LeaseLoss): void {
    if (this.#ended) return;
    this.#end(loss);
    for (const fn of [...this.#listeners]) fn(loss);
    this.#listeners.clear();
    // The lease may still be alive in etcd (e.g. lost only by us): revoke it so that its keys go
    // now, not a TTL later; unreachable etcd lets it expire by itself.
    this.#kv.leaseRevoke(this.leaseId).catch(() => undefined);
  }

  async close(): Promise<void> {
    if (this.#ended) return;
    this.#end({ kind: 'revoked' });
    this.#listeners.clear();
    await this.#kv.leaseRevoke(this.leaseId);
  }

  /**
   * Stops keepalives WITHOUT revoking: the lease and its keys live on for up to one TTL, so that a
   * restarting fleetd can `resume` it and adopt its units instead of having them rescheduled.
   */
  release(): void {
    if (this.#ended) return;
    this.#end({ kind: 'released' });
    this.#listeners.clear();
  }

  #end(loss: LeaseLoss): void {
    this.#ended = true;
    this.#renewListeners.clear();
    this.#timer?.cancel();
    this.#timer = undefined;
    this.#controller.abort(loss);
  }

  #schedule(delayMs: number): void {
    if (this.#ended) return;
    // On the timer grid: the membership's and the engine campaign's leases, the heartbeat and the
    // watchdog then wake the process together (lib/clock.ts setGridTimer).
    this.#timer = setGridTimer(this.#clock, Math.max(0, delayMs), () => void this.#renew());
  }

  async #renew(): Promise<void> {
    if (this.#ended) return;
    if (this.#unrenewedFor() >= this.ttlMs)
      return this.lose({ kind: 'unrenewed', sinceMs: this.#unrenewedFor() });
    const sentAt = this.#clock.monotonic();
    try {
      const ttl = await this.#kv.leaseKeepAlive(this.leaseId, { timeoutMs: this.#keepaliveMs });
      if (this.#ended) return;
      if (ttl <= 0) return this.lose({ kind: 'expired' });
      if (sentAt - this.#renewedAt > LIVE_GAP_PERIODS * this.#keepaliveMs) this.#resumedAt = sentAt;
      this.#renewedAt = Math.max(this.#renewedAt, sentAt);
      // A listener's failure does not stop the keepalives; it is thrown outside, from a microtask.
      const failed = callAll([...this.#renewListeners]);
      if (failed !== undefined)
        queueMicrotask(() => {
          throw failed.error;
        });
    } catch {
      // Unreachable or slow etcd: keep trying until a whole TTL passes without an acknowledgement.
      if (this.#ended) return;
    }
    if (this.#unrenewedFor() >= this.ttlMs)
      return this.lose({ kind: 'unrenewed', sinceMs: this.#unrenewedFor() });
    const next = Math.min(sentAt + this.#keepaliveMs, this.#renewedAt + this.ttlMs);
    this.#schedule(next - this.#clock.monotonic());
  }

  #unrenewedFor(): number {
    return this.#clock.monotonic() - this.#renewedAt;
  }
}
