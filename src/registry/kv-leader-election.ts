// The engine's leader election over the Kv (leadership.ts holds the campaign and its fence), and
// who leads now, for the API and tests.
import type { Clock } from '../lib/clock.js';
import type { Random } from '../lib/random.js';
import { decodeValue } from './codec.js';
import type { RegistryKeys } from './keys.js';
import type { KvCore } from './kv-core.js';
import type { Kv } from './kv.js';
import { NO_LEASE } from './kv.js';
import type { Leadership, LeadershipOptions } from './leadership.js';
import { KvLeadership } from './leadership.js';
import type { LeaderElection } from './registry.js';

export class KvLeaderElection implements LeaderElection {
  readonly #core: KvCore;
  readonly #kv: Kv;
  readonly #keys: RegistryKeys;
  readonly #clock: Clock;
  readonly #random: Random;

  constructor(core: KvCore) {
    this.#core = core;
    this.#kv = core.kv;
    this.#keys = core.keys;
    this.#clock = core.clock;
    this.#random = core.random;
  }

  leadership(options: LeadershipOptions): Leadership {
    const leadership = new KvLeadership({
      kv: this.#kv,
      clock: this.#clock,
      random: this.#random,
      keys: this.#keys,
      options: { ...this.#core.leaseDefaults, ...options },
    });
    this.#core.keepLeadership(leadership);
    return leadership;
  }

  async deposeLeader(candidate: string): Promise<boolean> {
    const key = this.#keys.leader();
    const kv = (await this.#kv.range(key)).kvs[0];
    if (kv === undefined || kv.lease === NO_LEASE) return false;
    const decoded = decodeValue('leader', key, kv.value);
    if (!decoded.ok || decoded.value.candidate !== candidate) return false;
    await this.#kv.leaseRevoke(kv.lease);
    return true;
  }

  async getLeader(): Promise<{ readonly candidate: string; readonly since: string } | undefined> {
    const key = this.#keys.leader();
    const kv = (await this.#kv.range(key)).kvs[0];
    // A leader key that is not lease-bound or does not decode is treated as expired (leadership.ts).
    if (kv === undefined || kv.lease === NO_LEASE) return undefined;
    const decoded = decodeValue('leader', key, kv.value);
    return decoded.ok ? { candidate: decoded.value.candidate, since: decoded.value.since } : undefined;
  }
}
