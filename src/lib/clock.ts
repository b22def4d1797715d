// Time as an input (STYLE.md rule 5): the only module that touches Date.now/setTimeout. Real code
// gets `systemClock`; simulations and pure tests get a `FakeClock` that moves only when told.

import { callAll } from './call-all.js';

export interface Timer {
  cancel(): void;
}

export interface Clock {
  /** Milliseconds on a monotonic clock (never goes back; unrelated to wall time). */
  monotonic(): number;
  /** Wall-clock milliseconds since the epoch (for timestamps shown to people). */
  now(): number;
  /** Calls `fn` once after `ms` milliseconds unless cancelled. */
  setTimer(ms: number, fn: () => void): Timer;
  /** Resolves after `ms` milliseconds (rejects with the signal's reason when aborted). */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const systemClock: Clock = {
  monotonic: () => performance.now(),
  now: () => Date.now(),
  setTimer(ms, fn) {
    const t = setTimeout(fn, ms);
    return { cancel: () => clearTimeout(t) };
  },
  sleep(ms, signal) {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason as Error);
      const t = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      const onAbort = (): void => {
        clearTimeout(t);
        reject(signal?.reason as Error);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  },
};

interface Pending {
  at: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
}

/** A clock that only moves through `advance`; timers fire in time order, ties in creation order. */
export class FakeClock implements Clock {
  #mono = 0;
  #epoch: number;
  #seq = 0;
  #timers: Pending[] = [];

  constructor(startEpochMs = Date.UTC(2026, 0, 1)) {
    this.#epoch = startEpochMs;
  }

  monotonic(): number {
    return this.#mono;
  }

  now(): number {
    return this.#epoch + this.#mono;
  }

  setTimer(ms: number, fn: () => void): Timer {
    const p: Pending = { at: this.#mono + Math.max(0, ms), seq: this.#seq++, fn, cancelled: false };
    this.#timers.push(p);
    return {
      cancel: () => {
        p.cancelled = true;
      },
    };
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason as Error);
      const timer = this.setTimer(ms, () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      });
      const onAbort = (): void => {
        timer.cancel();
        reject(signal?.reason as Error);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Number of timers still pending. */
  get pending(): number {
    return this.#timers.filter((t) => !t.cancelled).length;
  }

  /**
   * Moves time forward by `ms`, firing due timers in order; after each timer, awaits pending
   * microtasks so that promise chains started by a timer run before the next one fires.
   */
  async advance(ms: number): Promise<void> {
    const target = this.#mono + ms;
    for (;;) {
      await flushMicrotasks();
      this.#timers = this.#timers.filter((t) => !t.cancelled);
      this.#timers.sort((a, b) => a.at - b.at || a.seq - b.seq);
      const next = this.#timers[0];
      if (next === undefined || next.at > target) break;
      this.#timers.shift();
      this.#mono = next.at;
      next.fn();
    }
    this.#mono = target;
    await flushMicrotasks();
  }
}

/** Lets every already-queued promise continuation run (a few macrotask-free turns). */
export async function flushMicrotasks(turns = 20): Promise<void> {
  for (let i = 0; i < turns; i++) await Promise.resolve();
}

/** The grid periodic timers are aligned on (setGridTimer). */
export const TIMER_GRID_MS = 500;

interface GridSlot {
  readonly timer: Timer;
  readonly fns: Set<() => void>;
}

const gridSlots = new WeakMap<Clock, Map<number, GridSlot>>();

/**
 * Like `clock.setTimer(ms, fn)` for a timer that repeats about every `ms` (≥ TIMER_GRID_MS), but
 * fired at a multiple of the grid on the clock's monotonic time, by one timer shared with every
 * other grid timer due then: the periodic work of a process (lease keepalives, heartbeat, fencing
 * watchdog, peer watch) then wakes it once per grid point instead of once each. An idle fleetd's
 * CPU was mostly wakeups, not work (docs/memory.md).
 *
 * The delay is at most `ms` and more than `ms - grid` when `ms` ≥ 2 × grid; between one and two
 * grids it may be up to half a grid longer, once, until the timer's period is on the grid.
 */
export function setGridTimer(clock: Clock, ms: number, fn: () => void, grid = TIMER_GRID_MS): Timer {
  if (!(ms >= grid)) return clock.setTimer(ms, fn);
  const now = clock.monotonic();
  let at = Math.floor((now + ms) / grid) * grid;
  if (at - now < grid / 2) at += grid;
  let slots = gridSlots.get(clock);
  if (slots === undefined) gridSlots.set(clock, (slots = new Map<number, GridSlot>()));
  let slot = slots.get(at);
  if (slot === undefined) {
    const fns = new Set<() => void>();
    const timer = clock.setTimer(at - now, () => {
      slots.delete(at);
      const failed = callAll(fns);
      if (failed !== undefined) throw failed.error; // as a timer of its own would have
    });
    slots.set(at, (slot = { timer, fns }));
  }
  const entry = (): void => fn();
  slot.fns.add(entry);
  const mine = slot;
  return {
    cancel: () => {
      mine.fns.delete(entry);
      if (mine.fns.size === 0 && slots.get(at) === mine) {
        mine.timer.cancel();
        slots.delete(at);
      }
    },
  };
}
