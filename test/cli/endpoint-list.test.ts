// The CLI's endpoint list: parsing (every accepted form, every mistake with where it is) and
// failover against real sockets: on to the next endpoint only when no connection was made, never
// after a fleetd may have received the request.
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import {
  parseEndpoint,
  readText,
  sendRequest,
  TransportError,
  type Endpoint,
} from '../../src/api/http-transport.js';
import { UsageError } from '../../src/lib/errors.js';
import { EndpointList, parseEndpointList } from '../../src/cli/endpoint-list.js';

const VALID: readonly [string, string, string[]][] = [
  ['one socket', 'unix:///run/fleetts/fleetd.sock', ['unix:///run/fleetts/fleetd.sock']],
  ['one URL', 'http://10.0.0.2:4003', ['http://10.0.0.2:4003']],
  [
    'sockets and URLs mixed, in order',
    'unix:///a/fleetd.sock,https://h2:4003,http://[::1]:4003,unix:///b/fleetd.sock',
    ['unix:///a/fleetd.sock', 'https://h2:4003', 'http://[::1]:4003', 'unix:///b/fleetd.sock'],
  ],
  ['spaces around items', ' unix:///a.sock , http://h:1 ', ['unix:///a.sock', 'http://h:1']],
  [
    'a repeated endpoint is tried once',
    'unix:///a.sock,http://h:1,unix:///a.sock',
    ['unix:///a.sock', 'http://h:1'],
  ],
];

for (const [what, spec, urls] of VALID)
  test(`parseEndpointList: ${what}`, (t) => {
    t.deepEqual(
      parseEndpointList(spec, '--endpoint').map((e) => e.url),
      urls,
    );
  });

test('parseEndpointList: each part of a mixed list is parsed as a single endpoint would be', (t) => {
  t.deepEqual(parseEndpointList('unix:///a.sock,https://h2:4003/api/', 'x'), [
    parseEndpoint('unix:///a.sock'),
    parseEndpoint('https://h2:4003/api/'),
  ]);
});

const INVALID: readonly [string, string, string, RegExp][] = [
  [
    'empty',
    '',
    'FLEETTS_ENDPOINT',
    /^FLEETTS_ENDPOINT is empty: give unix:\/\/\/path\/to\/fleetd\.sock or http\(s\):\/\/host:port, or several separated by commas$/,
  ],
  [
    'an empty item',
    'unix:///a.sock,,http://h:1',
    '--endpoint',
    /^empty endpoint \(item 2 of --endpoint "unix:\/\/\/a\.sock,,http:\/\/h:1"\): separate endpoints by single commas, with none at either end, e\.g\. unix:\/\/\/run\/fleetts\/fleetd\.sock,http:\/\/10\.0\.0\.2:4003$/,
  ],
  [
    'a trailing comma',
    'unix:///a.sock,',
    '--endpoint',
    /^empty endpoint \(item 2 of --endpoint "unix:\/\/\/a\.sock,"\): /,
  ],
  [
    'a leading comma',
    ',unix:///a.sock',
    'FLEETTS_ENDPOINT',
    /^empty endpoint \(item 1 of FLEETTS_ENDPOINT ",unix/,
  ],
  [
    'an unknown scheme in a list',
    'unix:///a.sock,ftp://h:21',
    'FLEETTS_ENDPOINT',
    /^bad endpoint "ftp:\/\/h:21" \(item 2 of FLEETTS_ENDPOINT "unix:\/\/\/a\.sock,ftp:\/\/h:21"\): scheme ftp: is not supported; use unix:\/\/\/path\/to\/fleetd\.sock or http\(s\):\/\/host:port$/,
  ],
  [
    'no scheme, alone',
    'localhost:4003',
    '--endpoint',
    /^bad endpoint "localhost:4003" in --endpoint: scheme localhost: is not supported; use unix:\/\/\/path/,
  ],
  [
    'a relative socket path',
    'unix://run/fleetd.sock',
    '--endpoint',
    /^bad endpoint "unix:\/\/run\/fleetd\.sock" in --endpoint: use unix:\/\/\//,
  ],
];

for (const [what, spec, where, message] of INVALID)
  test(`parseEndpointList refuses ${what}: a usage error saying where`, (t) => {
    const err = t.throws(() => parseEndpointList(spec, where), { instanceOf: UsageError });
    t.regex(err.message, message);
    t.false(err.message.includes('\n'), 'one line');
  });

/** An HTTP server on a unix socket in a temp dir; `requests` lists every request it received. */
interface TestServer {
  readonly endpoint: Endpoint;
  readonly requests: string[];
  close(): Promise<void>;
}

async function tempDir(t: { teardown(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'fleetts-endpoints-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function serve(
  socketPath: string,
  handle: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => res.end('ok'),
): Promise<TestServer> {
  const requests: string[] = [];
  const server: Server = createServer((req, res) => {
    requests.push(`${req.method ?? ''} ${req.url ?? ''}`);
    handle(req, res);
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  return {
    endpoint: parseEndpoint(`unix://${socketPath}`),
    requests,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Sends through the list as the CLI's client does; the answer's status and body, or the error. */
async function put(
  list: EndpointList,
  o: { timeoutMs?: number; headers?: Record<string, string> } = {},
): Promise<string> {
  const res = await list.send((e) =>
    sendRequest(e, {
      method: 'PUT',
      path: '/v1/units',
      body: { units: [] },
      timeoutMs: o.timeoutMs ?? 10_000,
      ...(o.headers === undefined ? {} : { headers: o.headers }),
    }),
  );
  return `${res.status} ${await readText(res)}`;
}

test('a dead endpoint first: the request goes to the live one, and later ones go there directly', async (t) => {
  const dir = await tempDir(t);
  const live = await serve(join(dir, 'live.sock'));
  t.teardown(() => live.close());
  const dead = parseEndpoint(`unix://${join(dir, 'nobody.sock')}`);
  const debug: string[] = [];
  const tried: string[] = [];
  const list = new EndpointList([dead, live.endpoint], (line) => debug.push(line));
  const send = (): Promise<string> =>
    list
      .send((e) => {
        tried.push(e.url);
        return sendRequest(e, { method: 'GET', path: '/v1/health' });
      })
      .then((res) => readText(res));
  t.is(await send(), 'ok');
  t.is(list.current.url, live.endpoint.url, 'the one that answered is kept');
  t.is(await send(), 'ok');
  t.is(await send(), 'ok');
  t.deepEqual(
    tried,
    [dead.url, live.endpoint.url, live.endpoint.url, live.endpoint.url],
    'the dead one tried once',
  );
  t.is(live.requests.length, 3);
  t.deepEqual(debug, [`✗ ${dead.url}: no such socket; trying the next endpoint`]);
});

test('every endpoint dead: one error naming each endpoint and why', async (t) => {
  const dir = await tempDir(t);
  // A socket file nobody listens on any more, as a killed fleetd leaves it: connection refused.
  const stalePath = join(dir, 'stale.sock');
  const killed = spawnSync(process.execPath, [
    '-e',
    `require('net').createServer().listen(${JSON.stringify(stalePath)}, () => process.kill(process.pid, 'SIGKILL'))`,
  ]);
  t.is(killed.signal, 'SIGKILL');
  const stale = { endpoint: parseEndpoint(`unix://${stalePath}`) };
  const none = parseEndpoint(`unix://${join(dir, 'none.sock')}`);
  const list = new EndpointList([none, stale.endpoint, parseEndpoint('http://127.0.0.1:1')]);
  const err = await t.throwsAsync(put(list), { instanceOf: TransportError });
  t.is(
    err.message,
    [
      'no fleetd answered at any of the 3 endpoints:',
      `  ${none.url}: no such socket`,
      `  ${stale.endpoint.url}: connection refused`,
      '  http://127.0.0.1:1: connection refused',
      'Is fleetd running there? Set --endpoint or FLEETTS_ENDPOINT to live fleetds.',
    ].join('\n'),
  );
});

test('one dead endpoint alone: the same message as before lists existed', async (t) => {
  const dir = await tempDir(t);
  const list = new EndpointList([parseEndpoint(`unix://${join(dir, 'none.sock')}`)]);
  const err = await t.throwsAsync(put(list), { instanceOf: TransportError });
  t.regex(
    err.message,
    /^cannot reach fleetd at unix:\/\/\S+\/none\.sock: no such socket \(is fleetd running on this host\? set --endpoint or FLEETTS_ENDPOINT\)$/,
  );
});

test('a fleetd that received the PUT and dropped the connection: not sent to the next endpoint', async (t) => {
  const dir = await tempDir(t);
  const dropping = await serve(join(dir, 'dropping.sock'), (req) => req.socket.destroy());
  const live = await serve(join(dir, 'live.sock'));
  t.teardown(() => Promise.all([dropping.close(), live.close()]).then(() => undefined));
  const err = await t.throwsAsync(put(new EndpointList([dropping.endpoint, live.endpoint])), {
    instanceOf: TransportError,
  });
  t.is(err.stage, 'exchange');
  t.regex(err.message, /^cannot reach fleetd at unix:\/\/\S+\/dropping\.sock: /);
  t.deepEqual(dropping.requests, ['PUT /v1/units']);
  t.deepEqual(live.requests, [], 'the PUT ran at most once');
});

test('a fleetd that accepted the connection but does not answer in time: not sent to the next endpoint', async (t) => {
  const dir = await tempDir(t);
  const silent = await serve(join(dir, 'silent.sock'), () => undefined);
  const live = await serve(join(dir, 'live.sock'));
  t.teardown(() => Promise.all([silent.close(), live.close()]).then(() => undefined));
  const err = await t.throwsAsync(
    put(new EndpointList([silent.endpoint, live.endpoint]), { timeoutMs: 500 }),
    {
      instanceOf: TransportError,
    },
  );
  t.is(err.stage, 'exchange');
  t.regex(err.message, /^unix:\/\/\S+\/silent\.sock did not answer within 500 ms$/);
  t.deepEqual(live.requests, []);
});

test('a fleetd answering with an error is the answer: not sent to the next endpoint', async (t) => {
  const dir = await tempDir(t);
  const failing = await serve(join(dir, 'failing.sock'), (_req, res) => {
    res.statusCode = 503;
    res.end('etcd unavailable');
  });
  const live = await serve(join(dir, 'live.sock'));
  t.teardown(() => Promise.all([failing.close(), live.close()]).then(() => undefined));
  t.is(await put(new EndpointList([failing.endpoint, live.endpoint])), '503 etcd unavailable');
  t.deepEqual(live.requests, []);
});

test('the endpoint in use dies between requests: the next request moves on', async (t) => {
  const dir = await tempDir(t);
  const first = await serve(join(dir, 'first.sock'));
  const second = await serve(join(dir, 'second.sock'));
  t.teardown(() => second.close());
  const list = new EndpointList([first.endpoint, second.endpoint]);
  // No kept-alive connection to the first: the next request must connect anew, as it does once
  // the kernel closed the socket of a killed fleetd.
  t.is(await put(list, { headers: { connection: 'close' } }), '200 ok');
  await first.close();
  t.is(await put(list), '200 ok');
  t.is(list.current.url, second.endpoint.url);
  t.deepEqual([first.requests.length, second.requests.length], [1, 1]);
});

test('an aborted request is not sent to the next endpoint', async (t) => {
  const dir = await tempDir(t);
  const dead = parseEndpoint(`unix://${join(dir, 'none.sock')}`);
  const live = await serve(join(dir, 'live.sock'));
  t.teardown(() => live.close());
  const abort = new AbortController();
  abort.abort();
  await t.throwsAsync(
    new EndpointList([dead, live.endpoint]).send((e) =>
      sendRequest(e, { method: 'GET', path: '/v1/health', signal: abort.signal }),
    ),
    { name: 'AbortError' },
  );
  t.deepEqual(live.requests, []);
});

test('no connection within the timeout (a TLS handshake that never ends): the next endpoint answers', async (t) => {
  const dir = await tempDir(t);
  // Accepts TCP connections and never speaks TLS: the https connection is never made.
  const held: Socket[] = [];
  const mute = createNetServer((s) => held.push(s.on('error', () => undefined)));
  await new Promise<void>((resolve) => mute.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const s of held) s.destroy();
    mute.close();
  });
  const live = await serve(join(dir, 'live.sock'));
  t.teardown(() => live.close());
  const port = (mute.address() as AddressInfo).port;
  const debug: string[] = [];
  const list = new EndpointList([parseEndpoint(`https://127.0.0.1:${port}`), live.endpoint], (l) =>
    debug.push(l),
  );
  t.is(await put(list, { timeoutMs: 500 }), '200 ok');
  t.deepEqual(debug, [`✗ https://127.0.0.1:${port}: no connection within 500 ms; trying the next endpoint`]);
  t.deepEqual(live.requests, ['PUT /v1/units']);
});
