import test from 'ava';
import { FakeClock, setGridTimer, TIMER_GRID_MS, type Clock } from '../../src/lib/clock.js';

/** A FakeClock that counts the timers that fired: each one is a wakeup of a real process. */
function countingClock(): { clock: Clock; fake: FakeClock; wakeups: () => number } {
  const fake = new FakeClock();
  let wakeups = 0;
  const clock: Clock = {
    monotonic: () => fake.monotonic(),
    now: () => fake.now(),
    sleep: (ms, signal) => fake.sleep(ms, signal),
    setTimer: (ms, fn) =>
      fake.setTimer(ms, () => {
        wakeups++;
        fn();
      }),
  };
  return { clock, fake, wakeups: () => wakeups };
}

test('setGridTimer: fires on the grid, never later than asked and less than a grid earlier', async (t) => {
  const { clock, fake } = countingClock();
  for (const start of [0, 1, 124, 249, 250, 251, 499, 999, 1_337]) {
    await fake.advance(start - fake.monotonic() + 10_000);
    for (const ms of [1_000, 2_000, 3_500]) {
      const from = fake.monotonic();
      let at: number | undefined;
      setGridTimer(clock, ms, () => (at = fake.monotonic()));
      await fake.advance(ms);
      t.truthy(at, `${ms} ms from ${from} did not fire`);
      t.true(at! - from <= ms && at! - from > ms - TIMER_GRID_MS, `${ms} ms from ${from}: ${at! - from}`);
      t.is(at! % TIMER_GRID_MS, 0);
    }
  }
});

test('setGridTimer: periodic timers of different periods share their wakeups; a cancelled one does not fire', async (t) => {
  const { clock, fake, wakeups } = countingClock();
  const fired = new Map<number, number[]>();
  const every = (ms: number): void => {
    const go = (): void => {
      fired.set(ms, [...(fired.get(ms) ?? []), fake.monotonic()]);
      setGridTimer(clock, ms, go);
    };
    setGridTimer(clock, ms, go);
  };
  await fake.advance(37);
  every(500);
  await fake.advance(113);
  every(1_000);
  every(1_000);
  await fake.advance(171);
  every(2_000);
  const from = wakeups();
  await fake.advance(10_000);
  t.is(fired.get(500)!.length, 20);
  t.true(fired.get(1_000)!.length >= 18);
  t.is(wakeups() - from, 20, 'one wakeup per grid point for 4 periodic timers (about 45 without the grid)');
  // The 500 ms timer is not late either: every 500 ms after its first.
  const halves = fired.get(500)!;
  for (let i = 1; i < halves.length; i++) t.is(halves[i]! - halves[i - 1]!, 500);

  let late = false;
  const cancelled = setGridTimer(clock, 1_000, () => (late = true));
  let kept = false;
  setGridTimer(clock, 1_000, () => (kept = true));
  cancelled.cancel();
  await fake.advance(1_000);
  t.false(late);
  t.true(kept);
});

test('setGridTimer: a callback that throws does not keep the others of its grid point from running', async (t) => {
  const { clock, fake } = countingClock();
  const ran: string[] = [];
  setGridTimer(clock, 1_000, () => ran.push('keepalive'));
  setGridTimer(clock, 1_000, () => {
    throw new Error('heartbeat bug');
  });
  setGridTimer(clock, 1_000, () => ran.push('watchdog'));
  await t.throwsAsync(fake.advance(1_000), { message: 'heartbeat bug' });
  t.deepEqual(ran, ['keepalive', 'watchdog']);
});
