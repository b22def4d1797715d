// The registry on an in-memory etcd (memory-kv.ts), for the deterministic cluster simulation and
// fast tests: the same KvRegistry logic as on etcd, leases expiring on a FakeClock, and per-client
// faults (unreachable, slow, keepalives dropped) to script partitions and frozen hosts.
import { createRandom, type Random } from '../lib/random.js';
import type { EtcdMetrics } from '../metrics/metered-kv.js';
import { KvRegistry } from './kv-registry.js';
import type { MemoryEtcd, MemoryKv, MemoryKvFaults } from './memory-kv.js';
import type { LeaseOptions } from './registry.js';

export { MemoryEtcd } from './memory-kv.js';
export type { MemoryKvFaults } from './memory-kv.js';

export interface MemoryRegistryOptions {
  /** The shared store: every registry of one simulated cluster connects to the same one. */
  readonly store: MemoryEtcd;
  readonly prefix?: string;
  readonly lease?: LeaseOptions;
  /**
   * Draws the retry jitter (default: seed 1, deterministic like the store's fake clock). Give each
   * simulated host its own, or their retries move in lockstep.
   */
  readonly random?: Random;
  /** Times and counts this connection's requests (tests of metrics). */
  readonly metrics?: EtcdMetrics;
}

/** One fleetd's (or client's) connection to the shared in-memory store. */
export class MemoryRegistry extends KvRegistry {
  readonly #kv: MemoryKv;

  constructor(options: MemoryRegistryOptions) {
    const kv = options.store.client();
    super({
      kv,
      clock: options.store.clock,
      random: options.random ?? createRandom(1),
      ...(options.prefix === undefined ? {} : { prefix: options.prefix }),
      ...(options.lease === undefined ? {} : { lease: options.lease }),
      ...(options.metrics === undefined ? {} : { metrics: options.metrics }),
    });
    this.#kv = kv;
  }

  /** Injects faults into this connection only (`{}` heals it). */
  setFaults(faults: MemoryKvFaults): void {
    this.#kv.setFaults(faults);
  }
}

export function createMemoryRegistry(options: MemoryRegistryOptions): MemoryRegistry {
  return new MemoryRegistry(options);
}
