// The one retry delay of every loop that waits out an unreachable etcd (engine, leadership, watches,
// upstream sync, fleetd's membership): exponential growth with jitter, on the injected `Clock` and
// `Random` (STYLE.md rule 5), so a simulation replays its retries exactly from a seed.
import type { Clock } from './clock.js';
import type { Random } from './random.js';

export interface BackoffOptions {
  /** The shortest delay, and the floor of every delay (> 0 keeps a fast-failing call from spinning). */
  readonly minMs: number;
  /** The longest delay: no delay exceeds it. */
  readonly maxMs: number;
  /** Growth of the ceiling per consecutive failure (default 2). */
  readonly factor?: number;
}

export interface BackoffDeps extends BackoffOptions {
  readonly clock: Clock;
  readonly random: Random;
}

/**
 * "Full jitter" (AWS Architecture Blog, "Exponential Backoff And Jitter", 2015), with a floor:
 * after the n-th consecutive failure (n = 1, 2, …) the delay is uniform in
 * [minMs, min(maxMs, minMs · factor^n)].
 *
 * Why full jitter and not "decorrelated jitter" (min(cap, uniform(base, 3 · previous))): when etcd
 * comes back, every fleetd's watches, campaigns and registrations failed at the same instants, and
 * what spreads their retries is the jitter of each delay. Full jitter draws every delay afresh
 * over the whole window, also once the ceiling reached `maxMs` (a long outage); decorrelated
 * jitter clamped at its cap returns exactly the cap for about two thirds of its draws then, so
 * the herd keeps retrying in step. Full jitter also does the least total work in the blog's
 * measurements, and its state is one counter, so `next` and `reset` are trivial to reason about.
 * The first delay is jittered too (in [minMs, minMs · factor]): failures that start together (a
 * stream cut for everyone at once) must not all retry at exactly `minMs`.
 *
 * The floor is `minMs`, not the blog's 0: a call that fails at once (connection refused) retried
 * after ~0 ms would be a hot loop.
 */
export class Backoff {
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #minMs: number;
  readonly #maxMs: number;
  readonly #factor: number;
  #failures = 0;

  constructor(deps: BackoffDeps) {
    const factor = deps.factor ?? 2;
    if (!(Number.isFinite(deps.minMs) && deps.minMs > 0))
      throw new RangeError(`Backoff: minMs ${deps.minMs} must be a positive number of milliseconds`);
    if (!(Number.isFinite(deps.maxMs) && deps.maxMs >= deps.minMs))
      throw new RangeError(`Backoff: maxMs ${deps.maxMs} must be at least minMs ${deps.minMs}`);
    if (!(Number.isFinite(factor) && factor >= 1))
      throw new RangeError(`Backoff: factor ${factor} must be at least 1`);
    this.#clock = deps.clock;
    this.#random = deps.random;
    this.#minMs = deps.minMs;
    this.#maxMs = deps.maxMs;
    this.#factor = factor;
  }

  /** Consecutive failures counted since the last `reset` (the number of `next` calls). */
  get failures(): number {
    return this.#failures;
  }

  /** The ceiling of the delay `next` returns after `failures` consecutive failures (≥ 1). */
  ceilingMs(failures: number): number {
    // Capped before it can overflow: factor^n grows past maxMs within a few dozen failures.
    const exponent = Math.min(failures, 64);
    return Math.min(this.#maxMs, this.#minMs * this.#factor ** exponent);
  }

  /** Counts one more failure and returns how long to wait before the next try (whole ms). */
  next(): number {
    this.#failures++;
    const ceiling = this.ceilingMs(this.#failures);
    const delay = this.#minMs + this.#random.next() * (ceiling - this.#minMs);
    // Rounded down but never below the floor; random.next() < 1 keeps it within the ceiling.
    return Math.max(this.#minMs, Math.min(ceiling, Math.floor(delay)));
  }

  /** After a success: the next failure waits about `minMs` again. */
  reset(): void {
    this.#failures = 0;
  }

  /**
   * Counts a failure and waits `next()` on the clock. Resolves early (never rejects) when `signal`
   * aborts: the caller's loop checks the signal itself.
   */
  async sleep(signal?: AbortSignal): Promise<void> {
    await this.#clock.sleep(this.next(), signal).catch(() => undefined);
  }
}
