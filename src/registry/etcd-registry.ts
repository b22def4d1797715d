// The registry on a real etcd: the composition root (daemon/, dev/) builds one per fleetd process
// from its configuration. All logic lives in KvRegistry; this only connects it to etcd.
import type { Clock } from '../lib/clock.js';
import { systemClock } from '../lib/clock.js';
import { createRandom, entropySeed, type Random } from '../lib/random.js';
import type { EtcdMetrics } from '../metrics/metered-kv.js';
import type { EtcdConnectionOptions } from './etcd-kv.js';
import { EtcdKv } from './etcd-kv.js';
import { KvRegistry } from './kv-registry.js';
import type { LeaseOptions } from './registry.js';

export type { EtcdConnectionOptions } from './etcd-kv.js';

export interface EtcdRegistryOptions extends EtcdConnectionOptions {
  /** Key prefix (default `/fleetts/v1/`); several clusters can share one etcd under different prefixes. */
  readonly prefix?: string;
  /** Defaults for membership, leadership and announcer leases (docs/registry.md). */
  readonly lease?: LeaseOptions;
  /** Only tests pass another clock: etcd's own leases run on real time. */
  readonly clock?: Clock;
  /**
   * Draws the retry jitter (default: seeded from the OS's entropy, so that processes differ). A
   * fleetd passes its process-wide one.
   */
  readonly random?: Random;
  /** Times and counts every etcd request (docs/metrics.md). */
  readonly metrics?: EtcdMetrics;
}

export class EtcdRegistry extends KvRegistry {
  constructor(options: EtcdRegistryOptions) {
    const clock = options.clock ?? systemClock;
    super({
      kv: new EtcdKv(options, clock),
      clock,
      random: options.random ?? createRandom(entropySeed()),
      ...(options.prefix === undefined ? {} : { prefix: options.prefix }),
      ...(options.lease === undefined ? {} : { lease: options.lease }),
      ...(options.metrics === undefined ? {} : { metrics: options.metrics }),
    });
  }
}

export function createEtcdRegistry(options: EtcdRegistryOptions): EtcdRegistry {
  return new EtcdRegistry(options);
}
