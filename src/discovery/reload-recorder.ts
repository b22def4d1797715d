// What `fleetts upstream` leaves in etcd: after each reload of nginx, `upstreams/<host>/<service>`
// (servers, checksum, revision) under the sidekick's own lease, so that the event stream can show
// the reload (`upstream.reloaded`) and the key goes when the sidekick does.
import { createHash } from 'node:crypto';
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import type {
  LeaseHandle,
  LeaseSource,
  Revision,
  UpstreamReload,
  UpstreamReporter,
} from '../registry/registry.js';

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

/**
 * Writes each reload in the background, one write at a time: the sync loop never waits for etcd
 * (a slow or unreachable etcd must not delay the next reload of nginx), and reloads that come while
 * a write is in flight are coalesced into one write of the latest. So a burst of reloads may show
 * as fewer `upstream.reloaded` events, the last one always with what nginx runs now.
 */
export class ReloadRecorder {
  readonly #d: ReloadRecorderDeps;
  #lease: LeaseHandle | undefined;
  /** The latest reload not yet being written. */
  #pending: UpstreamReload | undefined;
  /** The background writer while one runs. */
  #writer: Promise<void> | undefined;
  #closed = false;

  constructor(deps: ReloadRecorderDeps) {
    this.#d = deps;
  }

  /**
   * Records a reload (its time: now). Returns at once; never throws: nginx runs the new file
   * whatever etcd says, so a failed write is logged and the next reload writes again (on a new
   * lease if this one was lost).
   */
  record(reload: ReloadDone): void {
    if (this.#closed) return;
    const { clock, host, service } = this.#d;
    this.#pending = {
      host,
      service,
      servers: reload.servers,
      checksum: createHash('sha256').update(reload.text).digest('hex'),
      revision: reload.revision,
      reloadedAt: new Date(clock.now()).toISOString(),
    };
    this.#writer ??= this.#drain();
  }

  /** Resolves when every reload recorded so far has been written (or its write has failed). */
  async settled(): Promise<void> {
    await this.#writer;
  }

  async #drain(): Promise<void> {
    try {
      for (let next = this.#pending; next !== undefined && !this.#closed; next = this.#pending) {
        this.#pending = undefined;
        await this.#write(next);
      }
    } finally {
      // In the same turn as the loop's last check: a record() after this starts a new writer.
      this.#writer = undefined;
    }
  }

  async #write(reload: UpstreamReload): Promise<void> {
    const { registry, log, host, service } = this.#d;
    try {
      if (this.#lease === undefined || this.#lease.signal.aborted) {
        // A lost lease is over; closing it only makes sure.
        await this.#lease?.close().catch(() => undefined);
        this.#lease = undefined;
        this.#lease = await registry.openLease();
      }
      await registry.recordUpstreamReload(this.#lease, reload);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      log.warn(
        { event: 'upstream.record_failed', service, host, err: message },
        `nginx reloaded, but the reload of ${service} could not be recorded in etcd (no upstream.reloaded event): ${message}`,
      );
    }
  }

  /** Lets a write in flight finish, drops any other, and revokes the lease: the key goes at once. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#pending = undefined;
    await this.#writer;
    const lease = this.#lease;
    this.#lease = undefined;
    await lease?.close().catch(() => undefined);
  }
}
