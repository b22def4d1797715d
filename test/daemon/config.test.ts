import test from 'ava';
import { configFromEnv, parseConfigFile, resolveConfig } from '../../src/daemon/config.js';

test('defaults fill every setting that has one', (t) => {
  const c = resolveConfig([]);
  t.deepEqual(c.etcdEndpoints, ['http://127.0.0.1:2379']);
  t.is(c.etcdKeyPrefix, '/fleetts/v1/');
  t.is(c.leaseTtlMs, 5000);
  t.deepEqual(c.metadata, {});
  t.is(c.machineId, undefined);
  t.is(c.fencePolicy, 'per-unit', 'only AtMostOnce units fence by default');
});

test('fence policies: per-unit, stop and keep-running; anything else names the three', (t) => {
  for (const policy of ['per-unit', 'stop', 'keep-running'] as const)
    t.is(resolveConfig([{ name: 'flags', values: { fencePolicy: policy } }]).fencePolicy, policy);
  t.throws(() => resolveConfig([{ name: 'flags', values: { fencePolicy: 'fence' } }]), {
    message: 'invalid setting fence-policy (from flags: "fence"): must be per-unit, stop or keep-running',
  });
});

test('later sources win: file < env < flags', (t) => {
  const c = resolveConfig([
    { name: 'fleet.conf', values: parseConfigFile('lease_ttl_ms = 9000\nmetadata = "a=1"\n', 'fleet.conf') },
    { name: 'environment', values: configFromEnv({ FLEETTS_LEASE_TTL_MS: '7000', FLEETTS_METADATA: 'a=2' }) },
    { name: 'flags', values: { metadata: 'region=eu, disk=ssd' } },
  ]);
  t.is(c.leaseTtlMs, 7000);
  t.deepEqual(c.metadata, { region: 'eu', disk: 'ssd' });
});

const bad: [Record<string, unknown>, string][] = [
  [
    { leaseTtlMs: 'abc' },
    'invalid setting lease-ttl-ms (from flags: "abc"): must be a number of milliseconds',
  ],
  [{ leaseTtlMs: '500' }, 'invalid setting lease-ttl-ms (from flags: "500"): must be at least 2000'],
  [{ metadata: 'foo' }, 'invalid setting metadata (from flags: "foo"): "foo" is not key=value'],
  [
    { metadata: 'region=eu,__proto__=x' },
    'invalid setting metadata (from flags: "region=eu,__proto__=x"): "__proto__=x": "__proto__" is reserved',
  ],
  [
    { metadata: 'disk type=ssd' },
    'invalid setting metadata (from flags: "disk type=ssd"): "disk type=ssd": character " " is not allowed in a key',
  ],
  [
    { etcdEndpoints: 'x' },
    'invalid setting etcd-endpoints (from flags: "x"): must be URLs like http://127.0.0.1:2379',
  ],
  [{ publicIp: '1.2.3' }, 'invalid setting public-ip (from flags: "1.2.3"): must be an IPv4 or IPv6 address'],
  [{ etcdKeyPrefix: 'x' }, 'invalid setting etcd-key-prefix (from flags: "x"): must start and end with "/"'],
  [{ machineId: 'a b' }, 'invalid setting machine-id (from flags: "a b"): must be 1–64 letters'],
  [
    { apiToken: '' },
    'invalid setting api-token (from flags: value hidden): must be at least 16 characters, got 0',
  ],
  [
    { apiToken: 'x' },
    'invalid setting api-token (from flags: value hidden): must be at least 16 characters, got 1',
  ],
  [
    { apiToken: 'sixteen chars ok' },
    'invalid setting api-token (from flags: value hidden): must be printable ASCII without spaces',
  ],
];
for (const [values, message] of bad) {
  test(`bad value is a one-line error naming the setting: ${JSON.stringify(values)}`, (t) => {
    const err = t.throws(() => resolveConfig([{ name: 'flags', values }]));
    t.true(err.message.startsWith(message), err.message);
    t.false(err.message.includes('\n'));
  });
}

test('config file: unknown setting and malformed line name the line', (t) => {
  t.throws(() => parseConfigFile('# ok\nbogus = 1\n', '/etc/fleetts/fleet.conf'), {
    message: /^\/etc\/fleetts\/fleet\.conf:2: unknown setting "bogus"; known settings: etcd-endpoints, /,
  });
  t.throws(() => parseConfigFile('etcd-endpoints\n', 'f.conf'), {
    message: 'f.conf:1: expected "setting = value", got "etcd-endpoints"',
  });
});
