// The TCP API's listen address (issue 14, item 8): parsed as an address, loopback judged on the
// addresses a name resolves to (never on its spelling), the resolved address bound; bad values
// and listen failures are one-line usage errors, from serveApi and from the real fleetd binary.
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { FakeClock } from '../../src/lib/clock.js';
import { UsageError } from '../../src/lib/errors.js';
import { silentLogger } from '../../src/lib/logger.js';
import { MemoryEtcd, MemoryRegistry } from '../../src/registry/memory-registry.js';
import { NO_LOCAL_UNITS } from '../../src/api/local-units.js';
import { createPeerClient } from '../../src/api/peer-client.js';
import { serveApi } from '../../src/api/serve-api.js';
import {
  isLoopbackAddress,
  parseListenAddress,
  resolveListenHost,
  type LookupAll,
} from '../../src/api/listen-address.js';
import { resolveConfig } from '../../src/daemon/config.js';
import { runBin } from '../helpers/cli.js';

const PARSED: readonly [string, { host: string; port: number }][] = [
  ['127.0.0.1:4003', { host: '127.0.0.1', port: 4003 }],
  ['0.0.0.0:0', { host: '0.0.0.0', port: 0 }],
  ['[::1]:4003', { host: '::1', port: 4003 }],
  ['[::]:65535', { host: '::', port: 65535 }],
  ['localhost:4003', { host: 'localhost', port: 4003 }],
  ['127.0.0.1.evil.com:24002', { host: '127.0.0.1.evil.com', port: 24002 }],
  ['fleet-1.example.com:4003', { host: 'fleet-1.example.com', port: 4003 }],
];
for (const [input, expected] of PARSED) {
  test(`parseListenAddress(${input})`, (t) => {
    t.deepEqual(parseListenAddress(input), { ok: expected });
  });
}

const REFUSED: readonly [string, RegExp][] = [
  ['127.0.0.1:99999', /^port 99999 is out of range; use 1–65535 \(or 0 for any free port\)$/],
  ['127.0.0.1:70000', /^port 70000 is out of range/],
  ['127.0.0.1', /^no port; use host:port/],
  ['127.0.0.1:', /^port "" is not a number/],
  ['127.0.0.1:http', /^port "http" is not a number/],
  [':4003', /^no host; use host:port/],
  ['::1:4003', /^put an IPv6 address in brackets, as in \[::1\]:4003$/],
  ['[::1]', /^no port after \[::1\]/],
  ['[::1:4003', /^"\[" without "\]"/],
  ['[example.com]:4003', /^"example\.com" in brackets is not an IPv6 address/],
  ['127.0.0.256:4003', /^"127\.0\.0\.256" is not an IPv4 address/],
  ['127.1:4003', /^"127\.1" is not an IPv4 address/],
  ['bad_host:4003', /^"bad_host" is neither an IP address nor a host name/],
  ['-x.example:4003', /is neither an IP address nor a host name/],
];
for (const [input, problem] of REFUSED) {
  test(`parseListenAddress refuses ${input}`, (t) => {
    const r = parseListenAddress(input);
    t.true('problem' in r, JSON.stringify(r));
    if ('problem' in r) t.regex(r.problem, problem);
  });
}

test('the api-listen setting is a one-line usage error naming the setting', (t) => {
  const err = t.throws(() =>
    resolveConfig([{ name: 'command line', values: { apiListen: '127.0.0.1:99999' } }]),
  );
  t.true(err instanceof UsageError);
  t.is(
    err.message,
    'invalid setting api-listen (from command line: "127.0.0.1:99999"): port 99999 is out of range; use 1–65535 (or 0 for any free port)',
  );
  t.deepEqual(resolveConfig([{ name: 'flags', values: { apiListen: '[::1]:4003' } }]).apiListen, {
    host: '::1',
    port: 4003,
  });
});

test('loopback is 127.0.0.0/8 and ::1 (also IPv4-mapped), nothing else', (t) => {
  for (const a of ['127.0.0.1', '127.1.2.3', '127.255.255.255', '::1', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1'])
    t.true(isLoopbackAddress(a), a);
  for (const a of [
    '0.0.0.0',
    '128.0.0.1',
    '10.0.0.1',
    '::',
    '::ffff:10.0.0.1',
    'fe80::1%lo',
    'localhost',
    '127.0.0.1.evil.com',
  ])
    t.false(isLoopbackAddress(a), a);
});

/** A resolver that answers from a table: what DNS would say for each name. */
function fakeDns(table: Record<string, string[]>): LookupAll {
  return (host) => {
    const found = table[host];
    if (found === undefined) {
      const err: NodeJS.ErrnoException = new Error(`getaddrinfo ENOTFOUND ${host}`);
      err.code = 'ENOTFOUND';
      return Promise.reject(err);
    }
    return Promise.resolve(found.map((address) => ({ address, family: address.includes(':') ? 6 : 4 })));
  };
}

test('resolveListenHost: an IP address is itself; a name is every address it resolves to', async (t) => {
  const dns = fakeDns({ 'both.test': ['127.0.0.1', '::1'], 'mixed.test': ['127.0.0.1', '10.1.2.3'] });
  t.deepEqual(await resolveListenHost('0.0.0.0', dns), [{ address: '0.0.0.0', family: 4, loopback: false }]);
  t.deepEqual(await resolveListenHost('both.test', dns), [
    { address: '127.0.0.1', family: 4, loopback: true },
    { address: '::1', family: 6, loopback: true },
  ]);
  t.deepEqual(
    (await resolveListenHost('mixed.test', dns)).map((a) => a.loopback),
    [true, false],
  );
  const err = await t.throwsAsync(resolveListenHost('nowhere.test', dns));
  t.true(err instanceof UsageError);
  t.is(
    err.message,
    "cannot resolve nowhere.test, the API's listen host (ENOTFOUND); use an IP address such as 127.0.0.1 or 0.0.0.0",
  );
});

function deps() {
  const clock = new FakeClock();
  return {
    registry: new MemoryRegistry({ store: new MemoryEtcd({ clock }), prefix: '/listen/' }),
    machineId: 'm1',
    local: NO_LOCAL_UNITS,
    peers: createPeerClient(),
    registered: () => true,
    clock,
    log: silentLogger,
  };
}

const DNS = fakeDns({
  // What an attacker's zone can answer for a name spelled like loopback.
  '127.0.0.1.evil.com': ['203.0.113.7'],
  'split.test': ['127.0.0.1', '203.0.113.7'],
  'local.test': ['127.0.0.1', '::1'],
});

test('serveApi: a name spelled like loopback that resolves elsewhere needs a token', async (t) => {
  for (const host of ['127.0.0.1.evil.com', 'split.test']) {
    const err = await t.throwsAsync(serveApi(deps(), { tcp: { host, port: 0, lookup: DNS } }));
    t.true(err instanceof UsageError, host);
    t.is(
      err.message,
      `refusing to serve the API on ${host} without authentication: it resolves to 203.0.113.7, which is not loopback; set an API token or TLS client certificates (a CA), or listen on 127.0.0.1`,
    );
  }
  const unknown = await t.throwsAsync(
    serveApi(deps(), { tcp: { host: 'nowhere.test', port: 0, lookup: DNS } }),
  );
  t.true(unknown instanceof UsageError);
  t.regex(unknown.message, /^cannot resolve nowhere\.test/);
});

test('serveApi: a name that resolves to loopback only listens, bound to the address it judged', async (t) => {
  const server = await serveApi(deps(), { tcp: { host: 'local.test', port: 0, lookup: DNS } });
  t.teardown(() => server.close());
  t.regex(server.tcpAddress ?? '', /^http:\/\/127\.0\.0\.1:\d+$/);
  const real = await serveApi(deps(), { tcp: { host: 'localhost', port: 0 } });
  t.teardown(() => real.close());
  t.regex(real.tcpAddress ?? '', /^http:\/\/(127\.0\.0\.1|\[::1\]):\d+$/);
});

test('serveApi: a port in use is a one-line usage error', async (t) => {
  const holder = createServer();
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => holder.close(() => resolve())));
  const address = holder.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  const err = await t.throwsAsync(serveApi(deps(), { tcp: { host: '127.0.0.1', port } }));
  t.true(err instanceof UsageError);
  t.is(
    err.message,
    `cannot serve the API on 127.0.0.1:${port}: the port is in use by another process; pick another port`,
  );
});

// The real binary: these fail before etcd is contacted, so none is needed.
for (const [value, stderr] of [
  [
    '127.0.0.1:99999',
    /^fleetd: invalid setting api-listen \(from command line: "127\.0\.0\.1:99999"\): port 99999 is out of range; use 1–65535 \(or 0 for any free port\)\n$/,
  ],
  // Without network this name does not resolve; with it, it resolves to no loopback address.
  [
    '127.0.0.1.evil.com:24002',
    /^fleetd: (cannot resolve 127\.0\.0\.1\.evil\.com, the API's listen host \(\w+\); use an IP address such as 127\.0\.0\.1 or 0\.0\.0\.0|refusing to serve the API on 127\.0\.0\.1\.evil\.com without authentication: it resolves to .*, which is not loopback; set an API token .*)\n$/,
  ],
] as const) {
  test(`real fleetd: --api-listen ${value} is a usage error (exit 2, one line)`, async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'fleetd-listen-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    // prettier-ignore
    const args = [
      '--api-listen', value, '--state-dir', dir, '--api-socket', join(dir, 'fleetd.sock'),
      '--machine-id', 'listen-test', '--runtime', 'process', '--etcd-endpoints', 'http://127.0.0.1:9',
    ];
    const r = await runBin('fleetd', args, { timeoutMs: 60_000 });
    t.is(r.code, 2, r.stderr);
    t.regex(r.stderr, stderr);
  });
}
