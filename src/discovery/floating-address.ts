// The loop behind `fleetts floating-address`: campaigns for `floating/<address>` under its own kept
// lease (the engine's election, on another key), and keeps the address on this host's interface
// exactly while floating-state.ts says it may be: added and announced by gratuitous ARP once held,
// removed the moment the term ends, when keepalives go unacknowledged past the fence deadline, or
// when stopped (and only then is the lease revoked). docs/floating-address.md.
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import { Wakeup } from '../lib/wakeup.js';
import type { LeaderTerm, Leadership } from '../registry/leadership.js';
import {
  type CheckOutcome,
  type CheckState,
  type CheckThresholds,
  INITIAL_CHECK_STATE,
  nextCheckState,
} from './check-state.js';
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
  /**
   * `--track`: this host's own service (its balancer), checked every `intervalMs`. While it fails
   * (`fall` failures in a row, until `rise` passes in a row), this host gives the address up and
   * does not campaign: keepalived's track_script. Without it the host is always eligible.
   */
  readonly track?: FloatingTrack;
}

export interface FloatingTrack {
  /** One check (never throws; a problem is a `fail` with its reason). */
  readonly check: () => Promise<CheckOutcome>;
  /** What is checked, for the logs (`tcp://127.0.0.1:80`). */
  readonly describe: string;
  readonly intervalMs: number;
  readonly thresholds: CheckThresholds;
}

export class FloatingAddress {
  readonly #d: FloatingAddressDeps;
  readonly #wake: Wakeup;
  #term: LeaderTerm | undefined;
  /** What `ip` last said (or what the last successful add/remove made it); undefined: unknown. */
  #present: boolean | undefined;
  #checkedAt = Number.NEGATIVE_INFINITY;
  #announcing: AbortController | undefined;
  /** Whether the tracked service passes (always, without --track). */
  #tracked: boolean;
  /** Aborted when the tracked service starts failing: ends a campaign in progress. */
  #eligible = new AbortController();
  readonly #trackChanged: Wakeup;

  constructor(deps: FloatingAddressDeps) {
    this.#d = deps;
    this.#wake = new Wakeup(deps.clock);
    this.#trackChanged = new Wakeup(deps.clock);
    this.#tracked = deps.track === undefined;
  }

  /** Holds the address whenever this host may, until `signal` aborts; then removes it and resigns. */
  async run(signal: AbortSignal): Promise<void> {
    const { log, target, clock } = this.#d;
    const checkMs = this.#d.checkIntervalMs ?? DEFAULT_FLOATING_CHECK_MS;
    log.info(
      { event: 'floating.started', address: target.address, device: target.device },
      `floating address ${describeTarget(target)}: campaigning`,
    );
    const tracking = this.#track(signal);
    const campaigning = this.#campaign(signal);
    for (;;) {
      const stopping = signal.aborted;
      let decision = this.#decide(stopping);
      if (decision.action === 'none' && clock.monotonic() - this.#checkedAt >= checkMs) {
        await this.#refresh();
        decision = this.#decide(stopping);
      }
      let ok = await this.#apply(decision);
      if (ok && decision.why === 'track_failed' && this.#present === false) {
        // Down first, and only then the key goes, so that a healthy host takes over at once.
        await this.#resign();
        continue;
      }
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
    await tracking;
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
      tracked: this.#tracked,
      present: this.#present,
      fenceAfterMs: this.#d.fenceAfterMs,
    });
  }

  async #campaign(signal: AbortSignal): Promise<void> {
    const { leadership, log, target } = this.#d;
    while (!signal.aborted) {
      if (!this.#tracked) {
        await this.#trackChanged.wait(60_000, signal);
        continue;
      }
      const eligible = this.#eligible.signal;
      let term: LeaderTerm;
      try {
        term = await leadership.campaign(AbortSignal.any([signal, eligible]));
      } catch (err) {
        if (signal.aborted || eligible.aborted) continue;
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
      const why = term.signal.reason as { kind?: string } | undefined;
      if (why?.kind !== 'resigned')
        log.warn(
          { event: 'floating.term_ended', address: target.address, why: term.signal.reason as unknown },
          `lost ${term.fence.key}: taking ${target.address} down`,
        );
      this.#term = undefined;
      this.#wake.trigger();
    }
  }

  /** Gives the key up (the address is already down): a healthy host takes over at once. */
  async #resign(): Promise<void> {
    const term = this.#term;
    if (term === undefined || term.signal.aborted) return;
    this.#d.log.warn(
      { event: 'floating.resigned', address: this.#d.target.address, key: term.fence.key },
      `${this.#d.track?.describe ?? 'the tracked service'} fails: ${this.#d.target.address} is down, giving ${term.fence.key} up`,
    );
    this.#term = undefined;
    await term.resign().catch((err: unknown) => this.#error('resign', err));
  }

  /** Runs the --track check every interval; eligibility follows its rise/fall state. */
  async #track(signal: AbortSignal): Promise<void> {
    const track = this.#d.track;
    if (track === undefined) return;
    const { clock, log, target } = this.#d;
    let state: CheckState = INITIAL_CHECK_STATE;
    while (!signal.aborted) {
      const outcome = await track.check().catch((err: unknown): CheckOutcome => ({
        kind: 'fail',
        reason: err instanceof Error ? err.message : String(err),
      }));
      if (signal.aborted) return;
      const step = nextCheckState(state, outcome, track.thresholds);
      state = step.state;
      const tracked = state.kind === 'up';
      if (tracked !== this.#tracked) {
        this.#tracked = tracked;
        if (tracked) {
          this.#eligible = new AbortController();
          log.info(
            { event: 'floating.track_passed', address: target.address, check: track.describe },
            `${track.describe} passes: campaigning for ${target.address}`,
          );
        } else {
          this.#eligible.abort();
          log.warn(
            {
              event: 'floating.track_failed',
              address: target.address,
              check: track.describe,
              reason: outcome.kind === 'fail' ? outcome.reason : undefined,
            },
            `${track.describe} fails (${outcome.kind === 'fail' ? outcome.reason : '?'}): not holding ${target.address}`,
          );
        }
        this.#trackChanged.trigger();
        this.#wake.trigger();
      }
      await clock.sleep(track.intervalMs, signal).catch(() => undefined);
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
