// The health checks of `fleetts announce` (and of units' [X-Health]) against real sockets: their
// deadline counts only the time the checking process could run, so a process descheduled past the
// timeout (a starved host) does not call a backend down that answered at once; a backend that
// never answers still fails, at the timeout while the process runs, and after at most
// CHECK_STALL_LIMIT timeouts however starved it is.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import test from 'ava';
import { FakeClock, systemClock, type Clock } from '../../src/lib/clock.js';
import {
  checkDeadline,
  checkHealth,
  CHECK_STALL_LIMIT,
  type CheckTarget,
} from '../../src/discovery/health-check.js';

async function serve(answer: boolean): Promise<{ server: Server; port: number }> {
  const server = createServer((_req, res) => {
    if (answer) res.end('ok');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port };
}

/** Keeps this process off the event loop, as a descheduled process is (the kernel answers meanwhile). */
function stall(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // busy
  }
}

test('a check answered while its process was stalled past the timeout passes (tcp and http)', async (t) => {
  const { server, port } = await serve(true);
  t.teardown(() => server.close());
  const targets: CheckTarget[] = [
    { kind: 'tcp', host: '127.0.0.1', port },
    { kind: 'http', url: `http://127.0.0.1:${port}/` },
  ];
  for (const target of targets) {
    // Without the stall discounted, the 200 ms timer runs before the connect or the answer that
    // came during the 600 ms stall (libuv runs due timers first) and the check fails.
    const pending = checkHealth(target, { clock: systemClock, timeoutMs: 200 });
    stall(600);
    t.deepEqual(await pending, {
      kind: 'pass',
      detail: target.kind === 'tcp' ? 'connected' : 'HTTP 200',
    });
  }
});

test('a backend that never answers fails at the timeout while the process runs', async (t) => {
  const { server, port } = await serve(false);
  t.teardown(() => server.closeAllConnections());
  t.teardown(() => server.close());
  const clock = new FakeClock();
  let outcome: unknown;
  void checkHealth({ kind: 'http', url: `http://127.0.0.1:${port}/` }, { clock, timeoutMs: 300 }).then(
    (o) => (outcome = o),
  );
  await clock.advance(299);
  t.is(outcome, undefined);
  await clock.advance(1);
  await new Promise((resolve) => setImmediate(resolve));
  t.deepEqual(outcome, { kind: 'fail', reason: 'no answer within 300 ms' });
});

/** A FakeClock whose process "stalls": its monotonic time jumps ahead of its timers by `skew`. */
class StallingClock implements Clock {
  readonly fake = new FakeClock();
  skew = 0;
  monotonic = (): number => this.fake.monotonic() + this.skew;
  now = (): number => this.fake.now() + this.skew;
  setTimer: Clock['setTimer'] = (ms, fn) => this.fake.setTimer(ms, fn);
  sleep: Clock['sleep'] = (ms, signal) => this.fake.sleep(ms, signal);
}

test('checkDeadline: stalls do not count toward the timeout, up to CHECK_STALL_LIMIT timeouts in all', async (t) => {
  const clock = new StallingClock();
  let expired = false;
  checkDeadline(clock, 1_000, () => (expired = true));
  // 900 ms of running time and 4 s of stalls: not yet.
  for (let i = 0; i < 9; i++) {
    if (i < 4) clock.skew += 1_000;
    await clock.fake.advance(100);
  }
  t.false(expired);
  // The 100 ms left of running time.
  await clock.fake.advance(100);
  t.true(expired);

  // A process stalled 2 s at every tick still ends its check after CHECK_STALL_LIMIT timeouts in
  // all, with only 500 ms of running time.
  const starved = new StallingClock();
  let at: number | undefined;
  checkDeadline(starved, 1_000, () => (at = starved.monotonic()));
  for (let ticks = 0; at === undefined; ticks++) {
    t.true(ticks < 5, 'ended after 5 ticks');
    starved.skew += 2_000;
    await starved.fake.advance(100);
  }
  t.is(at, 5 * 2_100);
  t.true(CHECK_STALL_LIMIT * 1_000 <= 5 * 2_100);
});
