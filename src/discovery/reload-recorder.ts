// What `fleetts upstream` leaves in etcd: after each reload of nginx, `upstreams/<host>/<service>`
// (servers, checksum, revision) under the sidekick's own lease, so that the event stream can show
// the reload (`upstream.reloaded`) and the key goes when the sidekick does.
import { createHash } from 'node:crypto';
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import type { LeaseHandle, LeaseSource, Revision, UpstreamReporter } from '../registry/registry.js';

export interface ReloadRecorderDeps {
  readonly registry: LeaseSource & UpstreamReporter;
  readonly clock: Clock;
  readonly log: Logger;
  readonly host: string;
  readonly service: string;
}

/** One reload as UpstreamSync reports it. */
export interface ReloadDone {
  readonly text: string;
  readonly servers: number;
  readonly revision: Revision;
}

export class ReloadRecorder {
  readonly #d: ReloadRecorderDeps;
  #lease: LeaseHandle | undefined;

  constructor(deps: ReloadRecorderDeps) {
    this.#d = deps;
  }

  /**
   * Records a reload. Never throws: nginx runs the new file whatever etcd says, so a failed write
   * is logged and the next reload writes again (on a new lease if this one was lost).
   */
  async record(reload: ReloadDone): Promise<void> {
    const { registry, clock, log, host, service } = this.#d;
    try {
      if (this.#lease === undefined || this.#lease.signal.aborted) {
        // A lost lease is over; closing it only makes sure.
        await this.#lease?.close().catch(() => undefined);
        this.#lease = undefined;
        this.#lease = await registry.openLease();
      }
      await registry.recordUpstreamReload(this.#lease, {
        host,
        service,
        servers: reload.servers,
        checksum: createHash('sha256').update(reload.text).digest('hex'),
        revision: reload.revision,
        reloadedAt: new Date(clock.now()).toISOString(),
      });
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      log.warn(
        { event: 'upstream.record_failed', service, host, err: message },
        `nginx reloaded, but the reload of ${service} could not be recorded in etcd (no upstream.reloaded event): ${message}`,
      );
    }
  }

  /** Revokes the lease: the key goes at once. */
  async close(): Promise<void> {
    const lease = this.#lease;
    this.#lease = undefined;
    await lease?.close().catch(() => undefined);
  }
}
