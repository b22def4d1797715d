// ReloadRecorder (the `upstreams/` key behind upstream.reloaded) with an in-memory registry whose
// writes the test holds: nginx reloads never wait for etcd, one write is in flight at a time, and
// the reloads that come meanwhile are coalesced into one write of the latest.
import test from 'ava';
import { ReloadRecorder } from '../../src/discovery/reload-recorder.js';
import { UpstreamSync } from '../../src/discovery/upstream-sync.js';
import { systemClock } from '../../src/lib/clock.js';
import { silentLogger } from '../../src/lib/logger.js';
import { createRandom } from '../../src/lib/random.js';
import type { LeaseHandle, UpstreamReload } from '../../src/registry/registry.js';
import { waitFor } from '../helpers/wait.js';
import { capturingLogger, PushedService } from './upstream-fakes.js';

const T = '2026-12-06T12:00:00.000Z';
const clock = { ...systemClock, now: () => Date.parse(T) };

/** A registry whose writes wait until the test lets each go (or fail). */
class HeldRegistry {
  readonly writes: UpstreamReload[] = [];
  readonly leases: string[] = [];
  readonly #held: { resolve: () => void; reject: (err: Error) => void }[] = [];
  #lost = new AbortController();

  openLease(): Promise<LeaseHandle> {
    const id = String(this.leases.length + 1);
    this.leases.push(id);
    this.#lost = new AbortController();
    const signal = this.#lost.signal;
    return Promise.resolve({
      leaseId: id,
      ttlMs: 5000,
      signal,
      renewedAt: () => 0,
      resumedAt: () => 0,
      onLost: () => () => undefined,
      onRenewed: () => () => undefined,
      close: () => Promise.resolve(),
      release: () => undefined,
    });
  }

  recordUpstreamReload(_lease: Pick<LeaseHandle, 'leaseId'>, reload: UpstreamReload): Promise<number> {
    this.writes.push(reload);
    return new Promise<void>((resolve, reject) => this.#held.push({ resolve, reject })).then(
      () => this.writes.length,
    );
  }

  get waiting(): number {
    return this.#held.length;
  }
  /** Lets the oldest held write finish (or fail). */
  release(err?: Error): void {
    const w = this.#held.shift();
    if (w === undefined) throw new Error('no write is held');
    if (err === undefined) w.resolve();
    else w.reject(err);
  }
  loseLease(): void {
    this.#lost.abort();
  }
}

const reload = (servers: number) => ({ text: `servers ${servers}\n`, servers, revision: 10 + servers });

test('a burst of reloads while a write is held: one write in flight, then one of the latest', async (t) => {
  const registry = new HeldRegistry();
  const recorder = new ReloadRecorder({ registry, clock, log: silentLogger, host: 'lb1', service: 'web' });
  recorder.record(reload(1));
  await waitFor('the first write', () => registry.waiting === 1);
  for (let n = 2; n <= 20; n++) recorder.record(reload(n));
  t.is(registry.writes.length, 1, 'no second write while the first is in flight');
  registry.release();
  await waitFor('the second write', () => registry.waiting === 1);
  registry.release();
  await recorder.settled();
  t.deepEqual(
    registry.writes.map((w) => w.servers),
    [1, 20],
    'the burst in between is one write of the latest',
  );
  t.like(registry.writes[1], { host: 'lb1', service: 'web', revision: 30, reloadedAt: T });
  t.regex(registry.writes[1]?.checksum ?? '', /^[0-9a-f]{64}$/);
  t.deepEqual(registry.leases, ['1'], 'one lease for every write');

  // Idle again: the next reload is written at once.
  recorder.record(reload(3));
  await waitFor('a write after the writer went idle', () => registry.waiting === 1);
  registry.release();
  await recorder.settled();
  t.deepEqual(
    registry.writes.map((w) => w.servers),
    [1, 20, 3],
  );
});

test('a failed write is logged and the next reload is written, on a new lease once it was lost', async (t) => {
  const registry = new HeldRegistry();
  const { log, lines } = capturingLogger();
  const recorder = new ReloadRecorder({ registry, clock, log, host: 'lb1', service: 'web' });
  recorder.record(reload(1));
  await waitFor('the write', () => registry.waiting === 1);
  registry.release(new Error('etcd is unavailable'));
  await recorder.settled();
  t.like(
    lines.find((l) => l['event'] === 'upstream.record_failed'),
    {
      level: 40,
      service: 'web',
      host: 'lb1',
      err: 'etcd is unavailable',
    },
  );
  registry.loseLease();
  recorder.record(reload(2));
  await waitFor('the next write', () => registry.waiting === 1);
  registry.release();
  await recorder.settled();
  t.deepEqual(registry.leases, ['1', '2']);
  t.deepEqual(
    registry.writes.map((w) => w.servers),
    [1, 2],
  );
});

test('close lets the write in flight finish, drops the rest and records nothing after', async (t) => {
  const registry = new HeldRegistry();
  const recorder = new ReloadRecorder({ registry, clock, log: silentLogger, host: 'lb1', service: 'web' });
  recorder.record(reload(1));
  await waitFor('the write', () => registry.waiting === 1);
  recorder.record(reload(2));
  const closed = recorder.close();
  registry.release();
  await closed;
  recorder.record(reload(3));
  await recorder.settled();
  t.deepEqual(
    registry.writes.map((w) => w.servers),
    [1],
  );
});

test('nginx is reloaded for each change while the record of an earlier reload is still held', async (t) => {
  const registry = new HeldRegistry();
  const recorder = new ReloadRecorder({ registry, clock, log: silentLogger, host: 'lb1', service: 'web' });
  const service = new PushedService();
  const applied: string[] = [];
  const sync = new UpstreamSync({
    registry: service,
    clock: systemClock,
    random: createRandom(1),
    log: silentLogger,
    service: 'web',
    render: (instances) => instances.map((i) => i.address).join(',') + '\n',
    sink: {
      apply: (text) => {
        applied.push(text);
        return Promise.resolve({ kind: 'reloaded', changed: true });
      },
    },
    debounceMs: 0,
    onReloaded: (r) => recorder.record(r),
  });
  const stop = new AbortController();
  const running = sync.run(stop.signal);
  await waitFor('the first reload and its held write', () => applied.length === 1 && registry.waiting === 1);
  for (let n = 1; n <= 3; n++) {
    service.push(n);
    await waitFor(`reload ${n + 1}, the first write still held`, () => applied.length === n + 1);
  }
  t.is(registry.writes.length, 1, 'still the first write only');
  registry.release();
  await waitFor('the write of the latest reload', () => registry.waiting === 1);
  registry.release();
  await recorder.settled();
  t.deepEqual(
    registry.writes.map((w) => w.servers),
    [0, 3],
  );
  stop.abort();
  await running;
});
