// `fleetts announce` and `fleetts upstream` flag validation, in process (no etcd is reached: every
// case fails before connecting).
import test from 'ava';
import { registerAnnounce, announceSettings } from '../../src/cli/announce.js';
import { buildProgram, type CliContext } from '../../src/cli/main.js';
import { BufferOutput } from '../../src/cli/output.js';
import { registerUpstream } from '../../src/cli/upstream.js';
import { systemClock } from '../../src/lib/clock.js';
import { silentLogger } from '../../src/lib/logger.js';

async function program(): ReturnType<typeof buildProgram> {
  const ctx: CliContext = {
    output: new BufferOutput(),
    exitCode: 0,
    client: () => Promise.reject(new Error('the discovery commands use no API client')),
    clock: systemClock,
    cwd: process.cwd(),
    signal: undefined,
    pollMs: 500,
  };
  const p = await buildProgram(ctx);
  const deps = { env: {}, log: silentLogger, signal: AbortSignal.abort() };
  if (!p.commands.some((c) => c.name() === 'announce')) registerAnnounce(p, ctx, deps);
  if (!p.commands.some((c) => c.name() === 'upstream')) registerUpstream(p, ctx, deps);
  return p;
}

const usageErrors: readonly [string[], string][] = [
  [['announce', '--service', 'web', '--addr', 'nope'], "--addr: address 'nope' is not host:port"],
  [
    ['announce', '--service', 'web', '--addr', '10.0.0.1:80', '--check', 'ftp://x/'],
    "--check 'ftp://x/': only http://, https:// and tcp:// checks exist",
  ],
  [
    ['announce', '--service', 'web', '--addr', '10.0.0.1:80', '--check', 'tcp://x'],
    "--check 'tcp://x' needs a host and a port: tcp://HOST:PORT",
  ],
  [
    ['announce', '--service', 'web', '--addr', '10.0.0.1:80', '--ttl', '1s'],
    '--ttl must be at least 2000 ms, not "1s"',
  ],
  [
    ['announce', '--service', 'web', '--addr', '10.0.0.1:80', '--fall', '0'],
    '--fall must be a whole number ≥ 1, not "0"',
  ],
  [
    ['announce', '--service', 'we b', '--addr', '10.0.0.1:80'],
    "--service 'we b' may only hold letters, digits and @ . _ : -",
  ],
  [
    ['announce', '--service', 'web', '--addr', '10.0.0.1:80', '--etcd-endpoints', 'localhost:2379'],
    '--etcd-endpoints: must be URLs like http://127.0.0.1:2379',
  ],
  [
    ['announce', '--service', 'web', '--addr', '10.0.0.1:80', '--etcd-key-prefix', 'fleet'],
    '--etcd-key-prefix: must start and end with "/" (example: /fleetts/v1/)',
  ],
  [
    ['upstream', '--service', 'web', '--out', '/tmp/x.conf', '--keepalive', 'many'],
    '--keepalive must be a whole number ≥ 0, not "many"',
  ],
  [
    ['upstream', '--service', 'web', '--out', '/tmp/x.conf', '--keepalive-timeout', '0'],
    '--keepalive-timeout must be at least 1 ms, not "0"',
  ],
  [
    ['upstream', '--service', 'web', '--out', '/tmp/x.conf', '--name', 'a b'],
    "upstream name 'a b' may only hold letters, digits, '_', '.' and '-'",
  ],
  [
    ['upstream', '--service', 'web', '--out', '/tmp/x.conf', '--machine', 'lb/1'],
    "host 'lb/1' (from --machine) may only hold letters, digits and @ . _ : -: give one with --machine",
  ],
  [
    ['upstream', '--service', 'web', '--out', '/tmp/x.conf', '--template', '/nonexistent.tpl'],
    "--template: cannot read /nonexistent.tpl: ENOENT: no such file or directory, open '/nonexistent.tpl'",
  ],
];
for (const [argv, message] of usageErrors) {
  test(`usage error: ${argv.slice(0, 1).concat(argv.slice(-2)).join(' ')}`, async (t) => {
    const err = await t.throwsAsync((await program()).parseAsync(argv, { from: 'user' }));
    t.is(err?.message, message);
    t.is((err as { code?: string } | undefined)?.code, 'usage');
  });
}

test('announce defaults come from the environment the agent gives units', (t) => {
  const flags = {
    service: 'web',
    addr: '10.0.0.5:8080',
    interval: '1s',
    downInterval: '250ms',
    timeout: '1s',
    ttl: '5s',
    rise: '1',
    fall: '1',
  };
  const s = announceSettings(flags, { FLEETTS_MACHINE_ID: 'm7', FLEETTS_UNIT: 'web@3.unit' }, 'host1');
  t.deepEqual(s.target, {
    service: 'web',
    instance: 'web@3.unit',
    address: '10.0.0.5:8080',
    machine: 'm7',
    unit: 'web@3.unit',
  });
  t.deepEqual(s.check, { kind: 'tcp', host: '10.0.0.5', port: 8080 }, 'no --check: a TCP connect to --addr');
  t.like(s, {
    intervalMs: 1000,
    downIntervalMs: 250,
    timeoutMs: 1000,
    ttlMs: 5000,
    thresholds: { rise: 1, fall: 1 },
  });
  t.is(announceSettings(flags, { FLEETTS_MACHINE_ID: 'm7' }, 'host1').target.instance, 'm7-8080');
  t.is(announceSettings(flags, {}, 'host1').target.instance, 'host1-8080');
  t.is(
    announceSettings({ ...flags, unit: 'web@9.unit' }, { FLEETTS_UNIT: 'web-discovery@9.unit' }, 'h').target
      .instance,
    'web@9.unit',
  );
});
