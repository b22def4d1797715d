// UnitNews (src/cli/unit-news.ts) over a scripted event stream: only what follows `stream.synced`
// wakes a wait, a stream that cannot be opened leaves plain polling, and close() ends the reading.
import { PassThrough } from 'node:stream';
import test from 'ava';
import { systemClock } from '../../src/lib/clock.js';
import { UnitNews } from '../../src/cli/unit-news.js';

const message = (data: object): string => `data: ${JSON.stringify(data)}\n\n`;

function scripted(): { body: PassThrough; client: { events(): Promise<PassThrough> } } {
  const body = new PassThrough();
  return { body, client: { events: () => Promise.resolve(body) } };
}

test('the snapshot before stream.synced is not news; an event after it is', async (t) => {
  const { body, client } = scripted();
  const news = UnitNews.open(client, systemClock);
  body.write(message({ kind: 'unit.started', unit: 'a.service', snapshot: true }));
  t.is(await news.wait(300), 'timeout');
  body.write(message({ kind: 'stream.synced' }));
  t.is(await news.wait(300), 'timeout');
  setTimeout(() => body.write(message({ kind: 'unit.started', unit: 'b.service' })), 150);
  t.is(await news.wait(60_000), 'news');
  news.close();
  t.true(body.destroyed);
});

test('no event stream (an older fleetd, an error): waits end by timeout, as plain polling', async (t) => {
  const news = UnitNews.open({ events: () => Promise.reject(new Error('404')) }, systemClock);
  t.is(await news.wait(200), 'timeout');
  news.close();
});

test('an aborted wait rejects', async (t) => {
  const { client } = scripted();
  const news = UnitNews.open(client, systemClock);
  await t.throwsAsync(news.wait(60_000, AbortSignal.timeout(200)), { any: true });
  news.close();
});
