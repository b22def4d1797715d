// A member that goes silent (its host powered off or cut off: no reset, no refusal) must cost the
// survivors neither their watches nor their leases. On a real etcd reached two ways: straight, and
// through a TCP relay that iptables silences (its packets dropped both ways, as a pulled cable).
// etcd3 is made to pick members in a fixed order with the relay first, so that without the member
// gate (src/registry/member-gate.ts) each reconnect goes back to the silent member and waits for a
// TCP connect the kernel gives up on after about two minutes: these tests then fail.
import { execFile } from 'node:child_process';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { promisify } from 'node:util';
import anyTest, { type TestFn } from 'ava';
import { ConnectionPool } from 'etcd3/lib/connection-pool.js';
import { systemClock } from '../../src/lib/clock.js';
import { EtcdKv } from '../../src/registry/etcd-kv.js';
import { hostAndPort } from '../../src/registry/member-gate.js';
import { leaseTimeToLive, randomPrefix, useEtcd } from '../helpers/etcd.js';
import { waitFor } from '../helpers/wait.js';

const run = promisify(execFile);
const test = anyTest as TestFn<unknown>;
const etcd = useEtcd(test);

// The relay is the last endpoint, so etcd3 tries it first on every call and stream.
ConnectionPool.deterministicOrder = true;

/** A TCP relay to etcd on a port of its own; `silence()` drops its packets both ways. */
class Relay {
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  #rules: string[][] = [];
  port = 0;

  constructor(target: { host: string; port: number }) {
    this.#server = createServer((inbound) => {
      const outbound = createConnection(target);
      for (const s of [inbound, outbound]) {
        this.#sockets.add(s);
        s.on('error', () => undefined);
        s.on('close', () => this.#sockets.delete(s));
      }
      inbound.pipe(outbound).pipe(inbound);
    });
  }

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    const address = this.#server.address();
    this.port = typeof address === 'object' && address !== null ? address.port : 0;
    return `http://127.0.0.1:${this.port}`;
  }

  async silence(): Promise<void> {
    this.#rules = [
      ['INPUT', '-i', 'lo', '-p', 'tcp', '--dport', String(this.port), '-j', 'DROP'],
      ['INPUT', '-i', 'lo', '-p', 'tcp', '--sport', String(this.port), '-j', 'DROP'],
    ];
    for (const rule of this.#rules) await run('iptables', ['-I', ...rule]);
  }

  async close(): Promise<void> {
    for (const rule of this.#rules) await run('iptables', ['-D', ...rule]).catch(() => undefined);
    this.#rules = [];
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

async function withRelay<T>(fn: (direct: string, relayed: string, relay: Relay) => Promise<T>): Promise<T> {
  const direct = etcd().endpoint;
  const relay = new Relay(hostAndPort(direct));
  const relayed = await relay.start();
  try {
    return await fn(direct, relayed, relay);
  } finally {
    await relay.close();
  }
}

test.serial('a watch on a member that falls silent goes on delivering through another', async (t) => {
  await withRelay(async (direct, relayed, relay) => {
    const kv = new EtcdKv({ endpoints: [direct, relayed], requestTimeoutMs: 2_000 }, systemClock);
    const writer = new EtcdKv({ endpoints: [direct] }, systemClock);
    let watch: { cancel(): void } | undefined;
    try {
      const prefix = randomPrefix();
      const seen = new Set<string>();
      const start = await writer.range(prefix, `${prefix}\uffff`);
      watch = kv.watch(prefix, `${prefix}\uffff`, start.revision + 1, {
        onEvents: (events) => events.forEach((e) => seen.add(e.kv.key)),
        onError: (e) => t.fail(`watch failed: ${e.message}`),
      });
      const put = (key: string) => writer.txn({ compare: [], success: [{ kind: 'put', key, value: 'x' }] });
      await put(`${prefix}before`);
      await waitFor('the first event', () => seen.has(`${prefix}before`), 10_000);
      await relay.silence();
      // A key a second while the watch finds its way off the silent member; it must see them all.
      const keys: string[] = [];
      for (let i = 0; i < 5; i++) {
        keys.push(`${prefix}after-${i}`);
        await put(`${prefix}after-${i}`);
        await systemClock.sleep(1_000);
      }
      // Two minutes is when the kernel gives up connecting to a silent member: far beyond this.
      await waitFor(
        'the events written after the member fell silent',
        () => keys.every((k) => seen.has(k)),
        30_000,
      );
      t.pass();
    } finally {
      watch?.cancel();
      kv.close();
      writer.close();
    }
  });
});

test.serial('a lease renewed through a member that falls silent stays alive', async (t) => {
  await withRelay(async (direct, relayed, relay) => {
    const kv = new EtcdKv({ endpoints: [direct, relayed], requestTimeoutMs: 2_000 }, systemClock);
    try {
      const lease = await kv.leaseGrant(5);
      const renewals: string[] = [];
      let stop = false;
      const renewing = (async () => {
        while (!stop) {
          const outcome = await kv.leaseKeepAlive(lease, { timeoutMs: 1_000 }).then(
            (ttl) => `ttl ${ttl}`,
            (e: Error) => e.message,
          );
          renewals.push(outcome);
          await systemClock.sleep(500);
        }
      })();
      await systemClock.sleep(1_500);
      await relay.silence();
      // Three TTLs: without the gate every new keepalive stream opens on the silent member again.
      await systemClock.sleep(15_000);
      stop = true;
      await renewing;
      const { ttl } = await leaseTimeToLive(direct, lease);
      t.true(ttl > 0, `the lease expired; keepalives: ${renewals.join('; ')}`);
      t.regex(
        renewals.at(-1) ?? '',
        /^ttl /,
        `the last keepalive failed; keepalives: ${renewals.join('; ')}`,
      );
    } finally {
      kv.close();
    }
  });
});

test.serial('reads go to the answering member once one fell silent', async (t) => {
  await withRelay(async (direct, relayed, relay) => {
    const kv = new EtcdKv({ endpoints: [direct, relayed], requestTimeoutMs: 2_000 }, systemClock);
    try {
      const prefix = randomPrefix();
      await kv.range(prefix, `${prefix}\uffff`);
      await relay.silence();
      // The first read may wait its deadline on the silent member; that tells the gate.
      await kv.range(prefix, `${prefix}\uffff`).catch(() => undefined);
      await systemClock.sleep(1_500);
      // Spread over several seconds, so that a circuit breaker alone would let some try it again.
      const failures: string[] = [];
      for (let i = 0; i < 12; i++) {
        await kv.range(prefix, `${prefix}\uffff`).catch((e: Error) => failures.push(e.message));
        await systemClock.sleep(400);
      }
      t.deepEqual(failures, []);
    } finally {
      kv.close();
    }
  });
});

test.serial(
  'a read sent to a member as it falls silent is answered: sent again to another once the member is found silent',
  async (t) => {
    await withRelay(async (direct, relayed, relay) => {
      const kv = new EtcdKv({ endpoints: [direct, relayed], requestTimeoutMs: 5_000 }, systemClock);
      try {
        const prefix = randomPrefix();
        await kv.range(prefix, `${prefix}\uffff`);
        await relay.silence();
        // It goes to the silent member first; the gate finds it silent while the read waits.
        const res = await kv.range(prefix, `${prefix}\uffff`);
        t.true(res.revision > 0);
      } finally {
        kv.close();
      }
    });
  },
);
