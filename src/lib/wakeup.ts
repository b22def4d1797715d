// The wake-up of a level-triggered loop (STYLE.md rule 3): watches call `trigger()` as often as
// they like; the loop awaits `wait()`, which resolves once per burst (coalesced), or after a resync
// timeout, or when the signal aborts. Events carry no decision: the loop re-reads full state.
import type { Clock, Timer } from './clock.js';

export type WakeCause = 'triggered' | 'timeout' | 'aborted';

export class Wakeup {
  readonly #clock: Clock;
  #pending = false;
  #resolve: ((cause: WakeCause) => void) | undefined;

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  /** Marks that something changed; wakes a waiting loop (once, however often it is called). */
  trigger(): void {
    this.#pending = true;
    const resolve = this.#resolve;
    this.#resolve = undefined;
    resolve?.('triggered');
  }

  /** True when a trigger arrived since the last `wait` returned. */
  get pending(): boolean {
    return this.#pending;
  }

  /** Resolves at once if triggered since the last wait, else on the next trigger, timeout or abort. */
  wait(timeoutMs: number, signal?: AbortSignal): Promise<WakeCause> {
    if (this.#pending) {
      this.#pending = false;
      return Promise.resolve('triggered');
    }
    if (signal?.aborted) return Promise.resolve('aborted');
    return new Promise((resolve) => {
      const done = (cause: WakeCause): void => {
        timer.cancel();
        signal?.removeEventListener('abort', onAbort);
        if (this.#resolve === done) this.#resolve = undefined;
        if (cause === 'triggered') this.#pending = false;
        resolve(cause);
      };
      const onAbort = (): void => done('aborted');
      this.#resolve = done;
      const timer: Timer = this.#clock.setTimer(timeoutMs, () => done('timeout'));
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
}
