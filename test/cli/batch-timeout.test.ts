// The CLI's time limit follows the size of the work (issue 14, item 7): a batch's answer limit grows
// with its units and bytes, and the transport keeps the short limit for connecting only.
import { createServer, type Server } from 'node:http';
import test from 'ava';
import { BATCH_MS_PER_MIB, BATCH_MS_PER_UNIT, batchTimeoutMs } from '../../src/cli/batch-timeout.js';
import { parseEndpoint, readText, sendRequest, TransportError } from '../../src/api/http-transport.js';

const CASES: readonly [string, number, number, number][] = [
  ['one small unit', 1, 100, 10_000 + BATCH_MS_PER_UNIT + Math.ceil((100 / 2 ** 20) * BATCH_MS_PER_MIB)],
  [
    '5,000 units of 1 KiB',
    5_000,
    5_000 * 1024,
    10_000 + 5_000 * BATCH_MS_PER_UNIT + Math.ceil((5_000 / 1024) * BATCH_MS_PER_MIB),
  ],
  ['names only', 300, 0, 10_000 + 300 * BATCH_MS_PER_UNIT],
];
for (const [title, units, bytes, expected] of CASES) {
  test(`batchTimeoutMs: ${title}`, (t) => {
    t.is(batchTimeoutMs(10_000, units, bytes), expected);
    t.true(batchTimeoutMs(10_000, units, bytes) >= 10_000, 'never below the request timeout');
  });
}

test('5,000 units get minutes, not the 10 s that failed a submit fleetd completed', (t) => {
  t.true(batchTimeoutMs(10_000, 5_000, 5_000 * 200) >= 200_000);
});

/** A server that answers `/slow` only once `release` is called. */
async function slowServer(): Promise<{ server: Server; url: string; release: () => void }> {
  let release = (): void => undefined;
  const released = new Promise<void>((resolve) => (release = resolve));
  const server = createServer((req, res) => {
    void released.then(() => res.end('done'));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return { server, url: `http://127.0.0.1:${port}`, release };
}

test('answerTimeoutMs: once connected, the answer may take longer than timeoutMs', async (t) => {
  const { server, url, release } = await slowServer();
  t.teardown(() => server.close());
  const pending = sendRequest(parseEndpoint(url), {
    method: 'PUT',
    path: '/slow',
    body: {},
    timeoutMs: 1_000,
    answerTimeoutMs: 120_000,
  });
  // Answer only after the short limit has passed for sure.
  await new Promise((resolve) => setTimeout(resolve, 2_500));
  release();
  const res = await pending;
  t.is(res.status, 200);
  t.is(await readText(res), 'done');
});

test('answerTimeoutMs: a fleetd that never answers is still given up on, as an exchange failure', async (t) => {
  const { server, url, release } = await slowServer();
  t.teardown(() => {
    release();
    server.close();
  });
  const err = await t.throwsAsync(
    sendRequest(parseEndpoint(url), {
      method: 'PUT',
      path: '/slow',
      body: {},
      timeoutMs: 60_000,
      answerTimeoutMs: 300,
    }),
  );
  t.true(err instanceof TransportError);
  t.is((err as TransportError).stage, 'exchange');
  t.is(err.message, `${url} did not answer within 300 ms`);
});
