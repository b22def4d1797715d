// UpstreamSync's empty hold, on pushed instance sets: every instance vanishing at once is not
// rendered while they come back within the hold; it is once the hold is over; a service that was
// empty from the start, or a hold of 0, renders at once. The real case (an etcd outage revoking
// every lease, on real etcd and nginx) is in upstream.test.ts.
import test from 'ava';
import { UpstreamSync } from '../../src/discovery/upstream-sync.js';
import { systemClock } from '../../src/lib/clock.js';
import { createRandom } from '../../src/lib/random.js';
import { waitFor } from '../helpers/wait.js';
import { capturingLogger, PushedService } from './upstream-fakes.js';

function running(emptyHoldMs: number) {
  const service = new PushedService();
  const { log, lines } = capturingLogger();
  const applied: string[] = [];
  const sync = new UpstreamSync({
    registry: service,
    clock: systemClock,
    random: createRandom(1),
    log,
    service: 'web',
    render: (instances) => `[${instances.map((i) => i.address).join(',')}]`,
    sink: {
      apply: (text) => {
        if (applied.at(-1) === text) return Promise.resolve({ kind: 'unchanged' });
        applied.push(text);
        return Promise.resolve({ kind: 'reloaded', changed: true });
      },
    },
    debounceMs: 0,
    emptyHoldMs,
  });
  const stop = new AbortController();
  const done = sync.run(stop.signal);
  return {
    service,
    applied,
    events: (name: string) => lines.filter((l) => l['event'] === name),
    stop: async () => {
      stop.abort();
      await done;
    },
  };
}

test('every instance gone and back within the hold: the empty set is never rendered', async (t) => {
  const r = running(60_000);
  await waitFor('the first (empty) render', () => r.applied.length === 1);
  r.service.push(3);
  await waitFor('three backends', () => r.applied.length === 2);
  r.service.push(0);
  await waitFor('the empty set held', () => r.events('upstream.empty_held').length === 1);
  r.service.push(1);
  await waitFor('one backend', () => r.applied.length === 3);
  r.service.push(3);
  await waitFor('three again', () => r.applied.length === 4);
  t.is(r.events('upstream.empty_ended').length, 1);
  t.is(r.events('upstream.empty_released').length, 0);
  t.deepEqual(r.applied, [
    '[]',
    '[10.0.0.1:80,10.0.0.2:80,10.0.0.3:80]',
    '[10.0.0.1:80]',
    '[10.0.0.1:80,10.0.0.2:80,10.0.0.3:80]',
  ]);
  await r.stop();
});

test('nothing back within the hold: the empty set is rendered when it ends', async (t) => {
  const r = running(300);
  await waitFor('the first render', () => r.applied.length === 1);
  r.service.push(2);
  await waitFor('two backends', () => r.applied.length === 2);
  r.service.push(0);
  await waitFor('the empty set, after the hold', () => r.applied.length === 3);
  t.is(r.applied.at(-1), '[]');
  t.is(r.events('upstream.empty_held').length, 1);
  t.is(r.events('upstream.empty_released').length, 1);
  await r.stop();
});

test('a hold of 0 renders the empty set at once', async (t) => {
  const r = running(0);
  await waitFor('the first render', () => r.applied.length === 1);
  r.service.push(2);
  await waitFor('two backends', () => r.applied.length === 2);
  r.service.push(0);
  await waitFor('the empty set', () => r.applied.length === 3);
  t.is(r.applied.at(-1), '[]');
  t.is(r.events('upstream.empty_held').length, 0);
  await r.stop();
});
