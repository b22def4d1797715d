// The floating address: the pure rule (floating-state.ts), the `ip` output parser, the flags, and
// the loop (floating-address.ts) with two sidekicks on the in-memory etcd, a fake clock and fake
// interfaces that record every add/remove: never up on two hosts, down at 70 % of the TTL without
// acknowledged keepalives, down before the lease is revoked on stop. No sleeps.
import test from 'ava';
import { buildProgram, type CliContext } from '../../src/cli/main.js';
import { BufferOutput } from '../../src/cli/output.js';
import {
  floatingSettings,
  parseFloatingAddress,
  registerFloatingAddress,
} from '../../src/cli/floating-address.js';
import { FloatingAddress } from '../../src/discovery/floating-address.js';
import { decideFloating, fenceAfterMs, type FloatingInput } from '../../src/discovery/floating-state.js';
import { type AddressControl, prefixLengthsOf } from '../../src/discovery/ip-address.js';
import { FakeClock, systemClock } from '../../src/lib/clock.js';
import { silentLogger } from '../../src/lib/logger.js';
import { createRandom } from '../../src/lib/random.js';
import { RegistryKeys } from '../../src/registry/keys.js';
import { KvLeadership } from '../../src/registry/leadership.js';
import { MemoryEtcd, type MemoryKv } from '../../src/registry/memory-kv.js';
import { runBin } from '../helpers/cli.js';

// ——— the rule ———

const base: FloatingInput = {
  now: 10_000,
  hold: { kind: 'held', renewedAt: 9_000 },
  stopping: false,
  tracked: true,
  present: false,
  fenceAfterMs: 2_100,
};
const rules: readonly [string, Partial<FloatingInput>, ReturnType<typeof decideFloating>][] = [
  ['held and renewed: add', {}, { want: 'up', why: 'holder', action: 'add', deadline: 11_100 }],
  [
    'held, already up: nothing',
    { present: true },
    { want: 'up', why: 'holder', action: 'none', deadline: 11_100 },
  ],
  [
    'held, unknown: add (ip addr add of a present address is harmless)',
    { present: undefined },
    { want: 'up', why: 'holder', action: 'add', deadline: 11_100 },
  ],
  [
    '1 ms before the deadline: still up',
    { now: 11_099, present: true },
    { want: 'up', why: 'holder', action: 'none', deadline: 11_100 },
  ],
  [
    'at the deadline: down although still held',
    { now: 11_100, present: true },
    { want: 'down', why: 'unrenewed', action: 'remove', deadline: undefined },
  ],
  [
    'not held, unknown (a predecessor may have left it): remove',
    { hold: { kind: 'none' }, present: undefined },
    { want: 'down', why: 'not_holder', action: 'remove', deadline: undefined },
  ],
  [
    'not held, absent: nothing',
    { hold: { kind: 'none' }, present: false },
    { want: 'down', why: 'not_holder', action: 'none', deadline: undefined },
  ],
  [
    'held, but the tracked service fails: remove (then the key is given up)',
    { tracked: false, present: true },
    { want: 'down', why: 'track_failed', action: 'remove', deadline: undefined },
  ],
  [
    'not held and the tracked service fails: not_holder, nothing to remove',
    { hold: { kind: 'none' }, tracked: false, present: false },
    { want: 'down', why: 'not_holder', action: 'none', deadline: undefined },
  ],
  [
    'stopping while held: remove (before the lease is revoked)',
    { stopping: true, present: true },
    { want: 'down', why: 'stopping', action: 'remove', deadline: undefined },
  ],
];
for (const [name, input, expected] of rules) {
  test(`rule: ${name}`, (t) => {
    t.deepEqual(decideFloating({ ...base, ...input }), expected);
  });
}

test('the fence deadline is 70 % of the TTL, as for fenced units (3.5 s of 5 s)', (t) => {
  t.is(fenceAfterMs(5_000), 3_500);
  t.is(fenceAfterMs(3_000), 2_100);
});

test('prefixLengthsOf reads `ip -o -4 addr show` and matches the whole address', (t) => {
  const out = [
    '2: eth0    inet 10.213.7.2/24 brd 10.213.7.255 scope global eth0\\       valid_lft forever preferred_lft forever',
    '2: eth0    inet 10.213.7.100/24 scope global secondary eth0\\       valid_lft forever preferred_lft forever',
    '2: eth0    inet 10.213.7.10/32 scope global eth0\\       valid_lft forever preferred_lft forever',
  ].join('\n');
  t.deepEqual(prefixLengthsOf(out, '10.213.7.100'), [24]);
  t.deepEqual(prefixLengthsOf(out, '10.213.7.10'), [32]);
  t.deepEqual(prefixLengthsOf(out, '10.213.7.1'), []);
  t.deepEqual(prefixLengthsOf('', '10.213.7.1'), []);
});

// ——— flags ———

test('--address: a prefix length is optional (/32); the address is normalised', (t) => {
  t.deepEqual(parseFloatingAddress('10.0.0.100/24', 'eth0'), {
    address: '10.0.0.100',
    prefixLength: 24,
    device: 'eth0',
  });
  t.deepEqual(parseFloatingAddress('10.0.0.010', 'br-lan.5'), {
    address: '10.0.0.10',
    prefixLength: 32,
    device: 'br-lan.5',
  });
});

test('settings: the holder is $FLEETTS_MACHINE_ID, else the hostname; the TTL in whole seconds', (t) => {
  const flags = { address: '10.0.0.100/24', interface: 'eth0', ttl: '3s', checkInterval: '1s' };
  t.like(floatingSettings(flags, { FLEETTS_MACHINE_ID: 'm7' }, 'host1'), {
    candidate: 'm7',
    ttlMs: 3_000,
    checkIntervalMs: 1_000,
  });
  t.is(floatingSettings(flags, {}, 'host1').candidate, 'host1');
  t.is(floatingSettings(flags, {}, 'host1').track, undefined, 'no --track: always eligible');
});

test('settings: --track takes a tcp:// or http:// check, with its interval, timeout, rise and fall', (t) => {
  const flags = { address: '10.0.0.100/24', interface: 'eth0', ttl: '3s', checkInterval: '1s' };
  t.deepEqual(floatingSettings({ ...flags, track: 'tcp://127.0.0.1:80' }, {}, 'h').track, {
    check: 'tcp://127.0.0.1:80',
    intervalMs: 1_000,
    timeoutMs: 1_000,
    rise: 2,
    fall: 2,
  });
  t.like(
    floatingSettings(
      { ...flags, track: 'http://127.0.0.1/health', trackInterval: '500ms', trackRise: '1', trackFall: '3' },
      {},
      'h',
    ).track,
    { intervalMs: 500, rise: 1, fall: 3 },
  );
  t.throws(() => floatingSettings({ ...flags, track: 'udp://x:1' }, {}, 'h'), {
    message: "--track 'udp://x:1': only http://, https:// and tcp:// checks exist",
  });
  t.throws(() => floatingSettings({ ...flags, track: 'tcp://x:1', trackFall: '0' }, {}, 'h'), {
    message: '--track-fall must be a whole number ≥ 1, not "0"',
  });
});

async function program(): ReturnType<typeof buildProgram> {
  const ctx: CliContext = {
    output: new BufferOutput(),
    exitCode: 0,
    client: () => Promise.reject(new Error('no API client')),
    clock: systemClock,
    cwd: process.cwd(),
    signal: undefined,
    pollMs: 500,
  };
  // main.ts registers floating-address: every case below fails before it reads deps or etcd.
  const p = await buildProgram(ctx);
  if (!p.commands.some((c) => c.name() === 'floating-address'))
    registerFloatingAddress(p, ctx, { env: {}, log: silentLogger, signal: AbortSignal.abort() });
  return p;
}

const usageErrors: readonly [string[], string][] = [
  [
    ['--address', '10.0.0/24', '--interface', 'eth0'],
    '--address must be an IPv4 address with an optional prefix length, like 10.0.0.100/24, not "10.0.0/24"',
  ],
  [
    ['--address', '10.0.0.300/24', '--interface', 'eth0'],
    '--address must be an IPv4 address with an optional prefix length, like 10.0.0.100/24, not "10.0.0.300/24"',
  ],
  [
    ['--address', '10.0.0.1/33', '--interface', 'eth0'],
    '--address must be an IPv4 address with an optional prefix length, like 10.0.0.100/24, not "10.0.0.1/33"',
  ],
  [
    ['--address', 'fd00::1/64', '--interface', 'eth0'],
    '--address must be an IPv4 address with an optional prefix length, like 10.0.0.100/24, not "fd00::1/64"',
  ],
  [
    ['--address', '127.0.0.5', '--interface', 'eth0'],
    '--address 127.0.0.5 is not a unicast address another host can reach',
  ],
  [
    ['--address', '10.0.0.100/24', '--interface', 'a-very-long-interface-name'],
    '--interface must be an interface name like eth0 (at most 15 characters), not "a-very-long-interface-name"',
  ],
  [
    ['--address', '10.0.0.100/24', '--interface', 'eth0', '--ttl', '1s'],
    '--ttl must be at least 2000 ms, not "1s"',
  ],
  [
    ['--address', '10.0.0.100/24', '--interface', 'eth0', '--ttl', '2500ms'],
    '--ttl must be whole seconds (etcd\'s unit), not "2500ms"',
  ],
  [
    ['--address', '10.0.0.100/24', '--interface', 'eth0', '--etcd-endpoints', 'localhost:2379'],
    '--etcd-endpoints: must be URLs like http://127.0.0.1:2379',
  ],
];
for (const [argv, message] of usageErrors) {
  test(`usage error: ${argv.join(' ')}`, async (t) => {
    const err = await t.throwsAsync(
      (await program()).parseAsync(['floating-address', ...argv], { from: 'user' }),
    );
    t.is(err?.message, message);
    t.is((err as { code?: string } | undefined)?.code, 'usage');
  });
}

test('the real binary: a bad flag is one line on stderr and exit 2', async (t) => {
  const r = await runBin('fleetts', [
    'floating-address',
    '--address',
    '10.0.0.100/24',
    '--interface',
    'eth0/1',
  ]);
  t.is(r.code, 2);
  t.is(
    r.stderr,
    'fleetts: --interface must be an interface name like eth0 (at most 15 characters), not "eth0/1"\n',
  );
});

// ——— the loop: two hosts, one address ———

const TTL_MS = 3_000;
const KEEPALIVE_MS = 500;

/** The segment both hosts are on: who has the address up, and every change in order. */
class Segment {
  readonly events: string[] = [];
  readonly up = new Set<string>();
  /** Most hosts ever up at once (the invariant: at most 1). */
  maxUp = 0;
  constructor(readonly clock: FakeClock) {}
  record(event: string): void {
    this.events.push(`${this.clock.monotonic()} ${event}`);
  }
}

class FakeInterface implements AddressControl {
  announces = 0;
  /** Set to make the next commands fail, as `ip` without CAP_NET_ADMIN does. */
  broken = false;
  constructor(
    readonly host: string,
    readonly segment: Segment,
  ) {}
  present(): Promise<boolean> {
    if (this.broken) return Promise.reject(new Error('RTNETLINK answers: Operation not permitted'));
    return Promise.resolve(this.segment.up.has(this.host));
  }
  add(): Promise<void> {
    if (this.broken) return Promise.reject(new Error('RTNETLINK answers: Operation not permitted'));
    this.segment.up.add(this.host);
    this.segment.maxUp = Math.max(this.segment.maxUp, this.segment.up.size);
    this.segment.record(`${this.host} add`);
    return Promise.resolve();
  }
  remove(): Promise<void> {
    if (this.broken) return Promise.reject(new Error('RTNETLINK answers: Operation not permitted'));
    if (this.segment.up.delete(this.host)) this.segment.record(`${this.host} remove`);
    return Promise.resolve();
  }
  /** Like arping -c 3: about 2 s, cut short by the signal. Never while the address is down. */
  announce(signal: AbortSignal): Promise<void> {
    this.announces++;
    if (!this.segment.up.has(this.host)) this.segment.record(`${this.host} ARP WHILE DOWN`);
    return new Promise((resolve) => {
      const timer = this.segment.clock.setTimer(2_000, () => {
        this.segment.record(`${this.host} arp done`);
        resolve();
      });
      signal.addEventListener(
        'abort',
        () => {
          timer.cancel();
          this.segment.record(`${this.host} arp cancelled`);
          resolve();
        },
        { once: true },
      );
    });
  }
}

interface Sidekick {
  readonly kv: MemoryKv;
  readonly nic: FakeInterface;
  readonly controller: AbortController;
  done: Promise<void>;
}

/** A host's tracked service (its balancer): `passing` is what its next checks answer. */
class FakeService {
  passing = true;
  checks = 0;
}

function setup(): {
  clock: FakeClock;
  store: MemoryEtcd;
  segment: Segment;
  start(host: string, service?: FakeService): Sidekick;
} {
  const clock = new FakeClock();
  const store = new MemoryEtcd({ clock });
  const segment = new Segment(clock);
  const keys = new RegistryKeys();
  let seed = 1;
  return {
    clock,
    store,
    segment,
    start(host, service) {
      const kv = store.client();
      const nic = new FakeInterface(host, segment);
      const target = { address: '10.0.0.100', prefixLength: 24, device: 'eth0' };
      const leadership = new KvLeadership({
        kv,
        clock,
        random: createRandom(seed++),
        keys,
        key: keys.floatingAddress(target.address),
        options: { candidate: host, ttlMs: TTL_MS, keepaliveMs: KEEPALIVE_MS },
      });
      const floating = new FloatingAddress({
        leadership,
        control: nic,
        clock,
        log: silentLogger,
        target,
        fenceAfterMs: fenceAfterMs(TTL_MS),
        checkIntervalMs: 1_000,
        ...(service === undefined
          ? {}
          : {
              track: {
                describe: `tcp://${host}:80`,
                intervalMs: 500,
                thresholds: { rise: 1, fall: 2 },
                check: () => {
                  service.checks++;
                  return Promise.resolve(
                    service.passing
                      ? { kind: 'pass' as const, detail: 'connected' }
                      : { kind: 'fail' as const, reason: 'connection refused' },
                  );
                },
              },
            }),
      });
      const controller = new AbortController();
      return { kv, nic, controller, done: floating.run(controller.signal) };
    },
  };
}

async function stop(s: { clock: FakeClock }, k: Sidekick): Promise<void> {
  k.controller.abort();
  await s.clock.advance(0);
  await k.done;
}

test('one holder: the first sidekick brings the address up and announces it; the second waits', async (t) => {
  const s = setup();
  const a = s.start('a');
  await s.clock.advance(0);
  const b = s.start('b');
  await s.clock.advance(5_000);
  t.deepEqual([...s.segment.up], ['a']);
  t.is(a.nic.announces, 1, 'one gratuitous ARP run after the add');
  t.is(b.nic.announces, 0);
  t.is(s.segment.maxUp, 1);
  await stop(s, b);
  await stop(s, a);
  t.deepEqual([...s.segment.up], []);
  t.deepEqual(s.store.leases(), [], 'both leases revoked');
});

test('a holder cut off from etcd takes the address down at 70 % of the TTL, before the other host can get it', async (t) => {
  const s = setup();
  const a = s.start('a');
  await s.clock.advance(0);
  const b = s.start('b');
  // Keepalives at 500, 1000: the one sent at 1000 is the last acknowledged.
  await s.clock.advance(1_000);
  a.kv.setFaults({ unavailable: true });
  await s.clock.advance(2_099);
  t.deepEqual([...s.segment.up], ['a'], 'up until renewedAt + 2100 ms');
  await s.clock.advance(1);
  t.deepEqual([...s.segment.up], [], 'down at renewedAt + 2100 ms');
  t.true(s.segment.events.includes('3100 a remove'), s.segment.events.join('\n'));
  // etcd expires a's lease at 1000 + 3000 at the earliest: only then may b have the key.
  await s.clock.advance(5_000);
  t.deepEqual([...s.segment.up], ['b']);
  const bAdd = s.segment.events.find((e) => e.endsWith('b add')) ?? '';
  t.true(Number(bAdd.split(' ')[0]) >= 4_000, s.segment.events.join('\n'));
  t.is(s.segment.maxUp, 1, s.segment.events.join('\n'));
  t.true(s.segment.events.includes('3100 a arp cancelled') || s.segment.events.includes('2000 a arp done'));
  // Healed, a finds the key taken by b and stays down.
  a.kv.setFaults({});
  await s.clock.advance(5_000);
  t.deepEqual([...s.segment.up], ['b']);
  t.is(s.segment.maxUp, 1);
  await stop(s, a);
  await stop(s, b);
});

test('stopped (SIGTERM): the address goes first, then the lease is revoked and the other host takes over at once', async (t) => {
  const s = setup();
  const a = s.start('a');
  await s.clock.advance(0);
  const b = s.start('b');
  await s.clock.advance(100);
  t.deepEqual([...s.segment.up], ['a']);
  const at = s.clock.monotonic();
  await stop(s, a);
  await s.clock.advance(0);
  t.deepEqual([...s.segment.up], ['b'], s.segment.events.join('\n'));
  t.deepEqual(
    s.segment.events.filter((e) => !e.includes('arp')),
    ['0 a add', `${at} a remove`, `${at} b add`],
    'b took over without waiting for a TTL',
  );
  t.true(
    s.segment.events.indexOf(`${at} a arp cancelled`) < s.segment.events.indexOf(`${at} a remove`),
    'the gratuitous ARP in flight was stopped before the address went',
  );
  t.is(s.segment.maxUp, 1);
  await stop(s, b);
});

test('a stale address left by a killed predecessor is removed at start while another host holds it', async (t) => {
  const s = setup();
  const a = s.start('a');
  await s.clock.advance(100);
  s.segment.up.add('b');
  const b = s.start('b');
  await s.clock.advance(0);
  t.deepEqual([...s.segment.up], ['a']);
  t.true(s.segment.events.includes('100 b remove'));
  await stop(s, b);
  await stop(s, a);
});

test('the key deleted behind its back ends the term: down at once, then up again once re-elected', async (t) => {
  const s = setup();
  const a = s.start('a');
  await s.clock.advance(100);
  const key = new RegistryKeys().floatingAddress('10.0.0.100');
  s.store.txn({ compare: [], success: [{ kind: 'delete', key }] });
  await s.clock.advance(0);
  t.true(s.segment.events.includes('100 a remove'), s.segment.events.join('\n'));
  await s.clock.advance(1_000);
  t.deepEqual([...s.segment.up], ['a']);
  t.is(a.nic.announces, 2, 'announced again');
  await stop(s, a);
});

test('an address removed by someone else is added back within the check interval', async (t) => {
  const s = setup();
  const a = s.start('a');
  await s.clock.advance(2_500);
  s.segment.up.delete('a');
  await s.clock.advance(1_000);
  t.deepEqual([...s.segment.up], ['a']);
  t.is(a.nic.announces, 2);
  await stop(s, a);
});

test('failing `ip` commands are retried; once they work the address comes up', async (t) => {
  const s = setup();
  const a = s.start('a');
  a.nic.broken = true;
  await s.clock.advance(2_000);
  t.deepEqual([...s.segment.up], []);
  a.nic.broken = false;
  await s.clock.advance(300);
  t.deepEqual([...s.segment.up], ['a']);
  await stop(s, a);
});

// ——— --track: keepalived's track_script ———

test('--track: a host whose balancer fails its check never campaigns; a healthy one takes the address', async (t) => {
  const s = setup();
  const sickService = new FakeService();
  sickService.passing = false;
  const a = s.start('a', sickService);
  await s.clock.advance(2_000);
  t.deepEqual([...s.segment.up], [], 'a started first, but its balancer fails');
  const b = s.start('b', new FakeService());
  await s.clock.advance(100);
  t.deepEqual([...s.segment.up], ['b']);
  t.true(sickService.checks >= 4, 'a kept checking');
  t.false(
    s.segment.events.some((e) => e.endsWith('a add')),
    s.segment.events.join('\n'),
  );
  await stop(s, a);
  await stop(s, b);
});

test('--track: the holder whose balancer fails takes the address down first, then gives the key up, and a healthy host takes over at once', async (t) => {
  const s = setup();
  const aService = new FakeService();
  const a = s.start('a', aService);
  await s.clock.advance(100);
  const b = s.start('b', new FakeService());
  await s.clock.advance(2_000);
  t.deepEqual([...s.segment.up], ['a']);
  aService.passing = false;
  // fall 2 at a 500 ms interval: down after the second failed check, within 1 s.
  await s.clock.advance(1_000);
  t.deepEqual([...s.segment.up], ['b'], s.segment.events.join('\n'));
  const events = s.segment.events.filter((e) => !e.includes('arp'));
  const aRemove = events.findIndex((e) => e.endsWith('a remove'));
  const bAdd = events.findIndex((e) => e.endsWith('b add'));
  t.true(aRemove >= 0 && aRemove < bAdd, events.join('\n'));
  const at = (e: string | undefined): number => Number((e ?? '').split(' ')[0]);
  t.true(at(events[bAdd]) - at(events[aRemove]) < TTL_MS, 'without waiting for a TTL: the key was given up');
  t.is(s.segment.maxUp, 1);
  // a's balancer comes back: a campaigns again but b holds the key; a takes over when b stops.
  aService.passing = true;
  await s.clock.advance(2_000);
  t.deepEqual([...s.segment.up], ['b']);
  await stop(s, b);
  await s.clock.advance(0);
  t.deepEqual([...s.segment.up], ['a'], s.segment.events.join('\n'));
  t.is(s.segment.maxUp, 1);
  await stop(s, a);
  t.deepEqual(s.store.leases(), [], 'every lease revoked');
});
