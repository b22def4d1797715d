// The announcer behind `fleetts announce`: a level-triggered loop that health-checks one backend
// and keeps `services/<service>/<instance>` present exactly while the check passes, bound to its
// own lease so that the key also dies with the process or its host.
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import { Wakeup } from '../lib/wakeup.js';
import type { SidekickMetrics } from '../metrics/sidekick-metrics.js';
import type {
  LeaseHandle,
  LeaseOptions,
  LeaseSource,
  ServiceAnnouncer,
  ServiceInstance,
} from '../registry/registry.js';
import {
  type CheckOutcome,
  type CheckState,
  type CheckThresholds,
  DEFAULT_THRESHOLDS,
  INITIAL_CHECK_STATE,
  nextCheckState,
} from './check-state.js';

/** Checks while announced; a failure is noticed within this (plus the check's timeout). */
export const DEFAULT_CHECK_INTERVAL_MS = 1000;
/**
 * Checks while not announced: a refused connection costs nothing, and a backend that comes up
 * (a unit moved to a new host) is announced within this.
 */
export const DEFAULT_DOWN_INTERVAL_MS = 250;

export type AnnounceTarget = Omit<ServiceInstance, 'since'>;

export interface AnnouncerDeps {
  readonly registry: LeaseSource & ServiceAnnouncer;
  readonly clock: Clock;
  readonly log: Logger;
  /** One health check; must not throw and must end within its own timeout. */
  readonly check: () => Promise<CheckOutcome>;
  readonly target: AnnounceTarget;
  readonly intervalMs?: number;
  readonly downIntervalMs?: number;
  readonly thresholds?: CheckThresholds;
  /** The announcer's own lease (TTL: how long the key outlives a killed process or dead host). */
  readonly lease?: LeaseOptions;
  /** Counts checks by result (`--metrics-listen`, docs/metrics.md). */
  readonly metrics?: Pick<SidekickMetrics, 'announceChecks'>;
}

export class Announcer {
  readonly #d: AnnouncerDeps;
  readonly #wake: Wakeup;
  #state: CheckState = INITIAL_CHECK_STATE;
  #lease: LeaseHandle | undefined;
  /** The lease the key was last written under; undefined when not announced. */
  #announcedOn: LeaseHandle['leaseId'] | undefined;
  /** False only after a successful withdraw: at start a previous process's key may still exist. */
  #keyMayExist = true;
  #since = '';

  constructor(deps: AnnouncerDeps) {
    this.#d = deps;
    this.#wake = new Wakeup(deps.clock);
  }

  get state(): CheckState {
    return this.#state;
  }

  /** Checks and announces until `signal` aborts, then withdraws the key and revokes the lease. */
  async run(signal: AbortSignal): Promise<void> {
    const { log, target } = this.#d;
    log.info(
      {
        event: 'announce.started',
        service: target.service,
        instance: target.instance,
        address: target.address,
      },
      `announcing ${target.service}/${target.instance} at ${target.address} while its check passes`,
    );
    // The lease comes first, so that announcing a healthy backend is a single write.
    await this.#ensureLease().catch((err: unknown) => this.#etcdError('open_lease', err));
    while (!signal.aborted) {
      const outcome = await this.#d.check();
      if (signal.aborted) break;
      this.#step(outcome);
      await this.#reconcile();
      const up = this.#state.kind === 'up';
      await this.#wake.wait(
        up
          ? (this.#d.intervalMs ?? DEFAULT_CHECK_INTERVAL_MS)
          : (this.#d.downIntervalMs ?? DEFAULT_DOWN_INTERVAL_MS),
        signal,
      );
    }
    await this.#shutdown();
  }

  #step(outcome: CheckOutcome): void {
    const { log, target } = this.#d;
    this.#d.metrics?.announceChecks.inc({ service: target.service, result: outcome.kind });
    const step = nextCheckState(this.#state, outcome, this.#d.thresholds ?? DEFAULT_THRESHOLDS);
    const was = this.#state.kind;
    this.#state = step.state;
    if (step.action === 'announce') {
      this.#since = new Date(this.#d.clock.now()).toISOString();
      log.info({ event: 'announce.check_passed', check: outcome }, `${target.address} is healthy`);
    } else if (outcome.kind === 'fail' && (was !== step.state.kind || step.state.kind === 'up')) {
      log.warn(
        { event: 'announce.check_failed', reason: outcome.reason, state: step.state },
        `check of ${target.address} failed: ${outcome.reason}`,
      );
    }
  }

  /** Makes etcd match the state; a failed write is retried on the next pass. */
  async #reconcile(): Promise<void> {
    const { registry, log, target } = this.#d;
    try {
      if (this.#state.kind === 'up') {
        const lease = await this.#ensureLease();
        if (this.#announcedOn === lease.leaseId) return;
        this.#keyMayExist = true;
        await registry.announce(lease, { ...target, since: this.#since });
        this.#announcedOn = lease.leaseId;
        log.info(
          {
            event: 'announce.announced',
            service: target.service,
            instance: target.instance,
            address: target.address,
            lease: lease.leaseId,
          },
          `announced ${target.service}/${target.instance} at ${target.address}`,
        );
      } else if (this.#keyMayExist) {
        // Our own key only, once we announced; at start, whatever an earlier process left.
        const own = this.#announcedOn === undefined ? undefined : this.#lease;
        await registry.withdraw(target.service, target.instance, own);
        const was = this.#announcedOn !== undefined;
        this.#announcedOn = undefined;
        this.#keyMayExist = false;
        if (was)
          log.info(
            { event: 'announce.withdrawn', service: target.service, instance: target.instance },
            `withdrew ${target.service}/${target.instance}`,
          );
      }
    } catch (err) {
      this.#etcdError('write', err);
    }
  }

  async #ensureLease(): Promise<LeaseHandle> {
    if (this.#lease !== undefined && !this.#lease.signal.aborted) return this.#lease;
    const lease = await this.#d.registry.openLease(this.#d.lease);
    this.#lease = lease;
    lease.onLost((loss) => {
      // Its key is gone (or going): re-check and re-announce under a new lease at once.
      this.#d.log.warn(
        { event: 'announce.lease_lost', loss },
        `lost lease ${lease.leaseId} (${loss.kind}); re-announcing`,
      );
      if (this.#announcedOn === lease.leaseId) this.#announcedOn = undefined;
      this.#wake.trigger();
    });
    return lease;
  }

  async #shutdown(): Promise<void> {
    const { registry, log, target } = this.#d;
    try {
      // Only the key this process wrote: a late shutdown must not remove a successor's key.
      if (this.#keyMayExist && this.#lease !== undefined)
        await registry.withdraw(target.service, target.instance, this.#lease);
    } catch (err) {
      this.#etcdError('withdraw', err);
    }
    await this.#lease?.close().catch((err: unknown) => this.#etcdError('revoke', err));
    log.info(
      { event: 'announce.stopped', service: target.service, instance: target.instance },
      `stopped announcing ${target.service}/${target.instance}`,
    );
  }

  #etcdError(op: string, err: unknown): void {
    const message = err instanceof Error ? err.message : String(err);
    this.#d.log.warn(
      { event: 'announce.etcd_error', op, err: message },
      `etcd ${op} failed (retrying): ${message}`,
    );
  }
}
