// fleetd's membership loop: holds this host's membership and registers again whenever it is lost
// (etcd unreachable for longer than the TTL, the lease revoked), retrying with the one backoff
// (lib/backoff, MEMBERSHIP_RETRY) on the injected Clock and Random. fleetd and the cluster
// simulation (test/sim) both run this loop, so the simulation checks the code fleetd runs.
import { Backoff, type BackoffOptions } from '../lib/backoff.js';
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import type { Random } from '../lib/random.js';
import { MEMBERSHIP_RETRY } from '../registry/kept-lease.js';
import type { Membership } from '../registry/registry.js';

export interface MembershipLoopDeps {
  /** One registration attempt (fleetd: resume the saved lease or grant a new one, then save its id). */
  readonly register: () => Promise<Membership>;
  readonly clock: Clock;
  /** Draws the retry jitter: each host its own, so that hosts do not retry in step. */
  readonly random: Random;
  readonly log: Logger;
  /** The machine id, for the log. */
  readonly machine: string;
  /** Called after each successful registration (the first one included when the loop makes it). */
  readonly onRegistered?: (membership: Membership) => void;
  /** Default MEMBERSHIP_RETRY (jittered, 250 ms … 1 s: the engine's reconnect grace counts on it). */
  readonly retry?: BackoffOptions;
}

export class MembershipLoop {
  readonly #d: MembershipLoopDeps;
  #membership: Membership | undefined;

  /** `initial`: a membership registered already (fleetd registers once before it starts its loop). */
  constructor(deps: MembershipLoopDeps, initial?: Membership) {
    this.#d = deps;
    this.#membership = initial;
  }

  /** The membership held now; its signal is aborted between its loss and the loop noticing it. */
  get current(): Membership | undefined {
    return this.#membership;
  }

  /**
   * Registers when it holds no membership, then waits for its loss and registers again, until
   * `stop` aborts. A failed attempt is logged and retried after the backoff's next delay.
   */
  async run(stop: AbortSignal): Promise<void> {
    const { log, clock, random } = this.#d;
    const retry = new Backoff({ clock, random, ...(this.#d.retry ?? MEMBERSHIP_RETRY) });
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
        const next = await this.#d.register();
        // Held even when stopped meanwhile: fleetd's stop releases (or, leaving, revokes) it.
        this.#membership = next;
        if (stop.aborted) break;
        retry.reset();
        log.info({ event: 'fleetd.rejoined', machine: this.#d.machine }, 'rejoined the cluster');
        this.#d.onRegistered?.(next);
      } catch (err) {
        log.warn({ event: 'fleetd.rejoin_failed', err: (err as Error).message }, 'rejoin failed; retrying');
        await retry.sleep(stop);
      }
    }
  }
}
