// The composition root of one host's daemon: the only place that constructs real adapters. It
// keeps the host's membership in etcd (re-registering after a loss) and runs the engine.
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import { FleetError } from '../lib/errors.js';
import { VERSION } from '../lib/version.js';
import { asMachineId, type MachineId } from '../cluster/types.js';
import { Engine } from '../engine/engine.js';
import type { Membership, Registry } from '../registry/registry.js';
import { isRegistryError } from '../registry/registry-error.js';
import type { DaemonConfig } from './config.js';

export interface FleetdDeps {
  readonly config: DaemonConfig;
  readonly registry: Registry;
  readonly clock: Clock;
  readonly log: Logger;
  readonly machineId: string;
  readonly publicIp: string;
}

/** Keepalive period: a third of the TTL at most, and about every second with the default TTL. */
export function keepaliveMsFor(ttlMs: number): number {
  return Math.max(500, Math.min(1_000, Math.floor(ttlMs / 3)));
}

export class Fleetd {
  readonly #deps: FleetdDeps;
  readonly #stop = new AbortController();
  readonly machineId: MachineId;
  readonly engine: Engine;
  #membership: Membership | undefined;
  #running: Promise<void> | undefined;

  constructor(deps: FleetdDeps) {
    this.#deps = deps;
    this.machineId = asMachineId(deps.machineId);
    const lease = { ttlMs: deps.config.leaseTtlMs, keepaliveMs: keepaliveMsFor(deps.config.leaseTtlMs) };
    this.engine = new Engine({
      registry: deps.registry,
      clock: deps.clock,
      log: deps.log.child({ component: 'engine' }),
      candidate: deps.machineId,
      lease,
    });
  }

  get membership(): Membership | undefined {
    return this.#membership;
  }

  /**
   * Registers this host (retrying once after one TTL when the id is held: that may be this host's
   * own previous fleetd, killed before its lease expired) and starts the engine. Throws FleetError
   * `machine_id_taken` when another live fleetd holds the id.
   */
  async start(): Promise<void> {
    const { log, clock, config } = this.#deps;
    try {
      this.#membership = await this.#register();
    } catch (err) {
      if (!isRegistryError(err, 'machine_id_taken')) throw err;
      log.warn(
        { event: 'fleetd.machine_id_held', machine: this.machineId },
        err.message + '; waiting one lease TTL',
      );
      await clock.sleep(config.leaseTtlMs + 1_000, this.#stop.signal);
      try {
        this.#membership = await this.#register();
      } catch (again) {
        if (!isRegistryError(again, 'machine_id_taken')) throw again;
        throw new FleetError(
          'machine_id_taken',
          `machine id ${this.machineId} is used by another running fleetd; ` +
            `give each host its own id (--machine-id, or a distinct /etc/machine-id)`,
        );
      }
    }
    log.info(
      {
        event: 'fleetd.registered',
        machine: this.machineId,
        ip: this.#deps.publicIp,
        metadata: config.metadata,
      },
      `registered as machine ${this.machineId}`,
    );
    this.engine.start();
    this.#running = this.#keepMembership();
  }

  async #register(): Promise<Membership> {
    const { config, registry, publicIp } = this.#deps;
    const resumeLeaseId = await this.#readLeaseId();
    const membership = await registry.register(
      {
        id: this.machineId,
        ip: publicIp,
        metadata: config.metadata,
        version: VERSION,
        startedAt: new Date(this.#deps.clock.now()).toISOString(),
      },
      {
        ttlMs: config.leaseTtlMs,
        keepaliveMs: keepaliveMsFor(config.leaseTtlMs),
        ...(resumeLeaseId === undefined ? {} : { resumeLeaseId }),
      },
    );
    await this.#writeLeaseId(membership.leaseId);
    return membership;
  }

  // The membership lease id is kept in the state dir so that a restarted fleetd (upgrade, crash)
  // resumes the same lease while it is alive: same membership, units adopted, nothing moves.
  get #leaseFile(): string {
    return join(this.#deps.config.stateDir, 'lease-id');
  }

  async #readLeaseId(): Promise<string | undefined> {
    try {
      const id = (await readFile(this.#leaseFile, 'utf8')).trim();
      return /^[0-9]+$/.test(id) ? id : undefined;
    } catch {
      return undefined;
    }
  }

  async #writeLeaseId(id: string): Promise<void> {
    await mkdir(this.#deps.config.stateDir, { recursive: true });
    const tmp = `${this.#leaseFile}.tmp`;
    await writeFile(tmp, id + '\n');
    await rename(tmp, this.#leaseFile);
  }

  /** Re-registers whenever the membership lease is lost (etcd unreachable for longer than the TTL). */
  async #keepMembership(): Promise<void> {
    const { log, clock } = this.#deps;
    const stop = this.#stop.signal;
    let retryMs = 500;
    while (!stop.aborted) {
      const m = this.#membership;
      if (m !== undefined) {
        await new Promise<void>((resolve) => {
          if (m.signal.aborted || stop.aborted) return resolve();
          const done = (): void => resolve();
          m.signal.addEventListener('abort', done, { once: true });
          stop.addEventListener('abort', done, { once: true });
        });
        if (stop.aborted) break;
        log.warn(
          { event: 'fleetd.membership_lost', reason: m.signal.reason as unknown },
          'membership lease lost; rejoining',
        );
        this.#membership = undefined;
      }
      try {
        this.#membership = await this.#register();
        retryMs = 500;
        log.info({ event: 'fleetd.rejoined', machine: this.machineId }, 'rejoined the cluster');
      } catch (err) {
        log.warn({ event: 'fleetd.rejoin_failed', err: (err as Error).message }, 'rejoin failed; retrying');
        await clock.sleep(retryMs, stop).catch(() => undefined);
        retryMs = Math.min(retryMs * 2, 5_000);
      }
    }
  }

  /**
   * Shutdown for a restart or upgrade: hands engine leadership over at once, and releases (does not
   * revoke) the membership lease, so a fleetd started again within the TTL resumes it and adopts
   * its units; if none comes back, the lease expires and the engine moves the units.
   * With `leave`, the lease is revoked instead: the cluster sees the host gone at once.
   */
  async stop(options: { leave?: boolean } = {}): Promise<void> {
    this.#stop.abort(new Error('fleetd stopping'));
    await this.engine.stop();
    await this.#running;
    if (options.leave === true) await this.#membership?.close().catch(() => undefined);
    else this.#membership?.release();
    await this.#deps.registry.close();
  }
}
