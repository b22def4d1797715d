// The loop behind `fleetts floating-address`: campaigns for `floating/<address>` under its own kept
// lease (the engine's election, on another key), and keeps the address on this host's interface
// exactly while floating-state.ts says it may be: added and announced by gratuitous ARP once held,
// removed the moment the term ends, when keepalives go unacknowledged past the fence deadline, or
// when stopped (and only then is the lease revoked). docs/floating-address.md.
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import { Wakeup } from '../lib/wakeup.js';
import type { LeaderTerm, Leadership } from '../registry/leadership.js';
import { decideFloating, type FloatingDecision } from './floating-state.js';
import { type AddressControl, describeTarget, type FloatingTarget } from './ip-address.js';

/** How often `ip` is asked whether the address is still there (someone may have removed it). */
export const DEFAULT_FLOATING_CHECK_MS = 1_000;
/** A failed `ip` command is tried again this soon. */
const RETRY_MS = 250;
const STOP_ATTEMPTS = 4;

export interface FloatingAddressDeps {
  readonly leadership: Pick<Leadership, 'campaign' | 'close'>;
  readonly control: AddressControl;
  readonly clock: Clock;
  readonly log: Logger;
  readonly target: FloatingTarget;
  /** How long after the last acknowledged keepalive the address goes (floating-state.ts). */
  readonly fenceAfterMs: number;
  readonly checkIntervalMs?: number;
}

export class FloatingAddress {
  readonly #d: FloatingAddressDeps;
  readonly #wake: Wakeup;
  #term: LeaderTerm | undefined;
  /** What `ip` last said (or what the last successful add/remove made it); undefined: unknown. */
  #present: boolean | undefined;
  #checkedAt = Number.NEGATIVE_INFINITY;
  #announcing: AbortController | undefined;

  constructor(deps: FloatingAddressDeps) {
    this.#d = deps;
    this.#wake = new Wakeup(deps.clock);
  }

  /** Holds the address whenever this host may, until `signal` aborts; then removes it and resigns. */
  async run(signal: AbortSignal): Promise<void> {
    const { log, target, clock } = this.#d;
    const checkMs = this.#d.checkIntervalMs ?? DEFAULT_FLOATING_CHECK_MS;
    log.info(
      { event: 'floating.started', address: target.address, device: target.device },
      `floating address ${describeTarget(target)}: campaigning`,
    );
    const campaigning = this.#campaign(signal);
    for (;;) {
      const stopping = signal.aborted;
      let decision = this.#decide(stopping);
      if (decision.action === 'none' && clock.monotonic() - this.#checkedAt >= checkMs) {
        await this.#refresh();
        decision = this.#decide(stopping);
      }
      let ok = await this.#apply(decision);
      if (stopping) {
        // The lease is revoked next, which frees the key at once: try hard to remove the address first.
        for (let i = 1; !ok && i < STOP_ATTEMPTS; i++) {
          await clock.sleep(RETRY_MS);
          ok = await this.#apply(this.#decide(true));
        }
        break;
      }
      const now = clock.monotonic();
      const wait = Math.min(ok ? checkMs : RETRY_MS, (decision.deadline ?? Infinity) - now);
      await this.#wake.wait(Math.max(0, wait), signal);
    }
    await campaigning;
    // The address is down: only now may the key go (a successor adds it at once).
    await this.#d.leadership.close().catch((err: unknown) => this.#error('revoke', err));
    log.info(
      { event: 'floating.stopped', address: target.address },
      `floating address ${target.address}: stopped`,
    );
  }

  #decide(stopping: boolean): FloatingDecision {
    const term = this.#term;
    return decideFloating({
      now: this.#d.clock.monotonic(),
      hold:
        term === undefined || term.signal.aborted
          ? { kind: 'none' }
          : { kind: 'held', renewedAt: term.renewedAt() },
      stopping,
      present: this.#present,
      fenceAfterMs: this.#d.fenceAfterMs,
    });
  }

  async #campaign(signal: AbortSignal): Promise<void> {
    const { leadership, log, target } = this.#d;
    while (!signal.aborted) {
      let term: LeaderTerm;
      try {
        term = await leadership.campaign(signal);
      } catch (err) {
        if (signal.aborted) return;
        this.#error('campaign', err);
        await this.#d.clock.sleep(RETRY_MS * 4, signal).catch(() => undefined);
        continue;
      }
      this.#term = term;
      log.info(
        { event: 'floating.elected', address: target.address, key: term.fence.key },
        `holding ${term.fence.key}: bringing ${target.address} up`,
      );
      this.#wake.trigger();
      await new Promise<void>((resolve) => {
        if (term.signal.aborted || signal.aborted) return resolve();
        term.signal.addEventListener('abort', () => resolve(), { once: true });
        signal.addEventListener('abort', () => resolve(), { once: true });
      });
      if (signal.aborted) return;
      log.warn(
        { event: 'floating.term_ended', address: target.address, why: term.signal.reason as unknown },
        `lost ${term.fence.key}: taking ${target.address} down`,
      );
      this.#wake.trigger();
    }
  }

  /** Applies one decision; false when an `ip` command failed (retried soon). */
  async #apply(d: FloatingDecision): Promise<boolean> {
    const { control, log, target, clock } = this.#d;
    if (d.action === 'none') return true;
    if (d.action === 'remove') {
      // Never a gratuitous ARP for an address this host is giving up.
      this.#announcing?.abort();
      this.#announcing = undefined;
      const was = this.#present;
      try {
        await control.remove();
      } catch (err) {
        this.#present = undefined;
        this.#error('remove', err);
        return false;
      }
      this.#present = false;
      this.#checkedAt = clock.monotonic();
      log[was === true ? 'info' : 'debug'](
        { event: 'floating.removed', address: target.address, why: d.why },
        `${describeTarget(target)} is down (${d.why})`,
      );
      return true;
    }
    try {
      await control.add();
    } catch (err) {
      this.#present = undefined;
      this.#error('add', err);
      return false;
    }
    this.#present = true;
    this.#checkedAt = clock.monotonic();
    log.info({ event: 'floating.added', address: target.address }, `${describeTarget(target)} is up`);
    const announcing = new AbortController();
    this.#announcing = announcing;
    control.announce(announcing.signal).then(
      () => {
        if (!announcing.signal.aborted)
          log.info(
            { event: 'floating.announced', address: target.address },
            `announced ${target.address} by gratuitous ARP`,
          );
      },
      (err: unknown) => this.#error('announce', err),
    );
    // A deadline may have passed while `ip` ran: decide again at once.
    this.#wake.trigger();
    return true;
  }

  async #refresh(): Promise<void> {
    try {
      this.#present = await this.#d.control.present();
    } catch (err) {
      this.#present = undefined;
      this.#error('list', err);
    }
    this.#checkedAt = this.#d.clock.monotonic();
  }

  #error(op: string, err: unknown): void {
    const message = err instanceof Error ? err.message : String(err);
    this.#d.log.warn(
      { event: 'floating.error', op, address: this.#d.target.address, err: message },
      `floating address ${op} failed (retrying): ${message}`,
    );
  }
}
