// GET /v1/events against a REAL etcd, over a real TCP listener with a token: `since` resumes
// exactly (no gap, no duplicate, even in the middle of a revision), the state comes first without
// it, compacted history is a clear 410, and a reader that goes away leaves no etcd watch behind.
import { request, type ClientRequest, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import test from 'ava';
import { Etcd3 } from 'etcd3';
import { buildApp, type ApiApp } from '../../src/api/build-app.js';
import { EventStreamStats } from '../../src/api/event-stream.js';
import { ReloadRecorder } from '../../src/discovery/reload-recorder.js';
import { NO_LOCAL_UNITS } from '../../src/api/local-units.js';
import type { EventMessage } from '../../src/api/schemas.js';
import { eventMessage } from '../../src/api/schemas.js';
import { run } from '../../src/cli/main.js';
import { BufferOutput } from '../../src/cli/output.js';
import { SseReader } from '../../src/cli/sse-reader.js';
import { asMachineId, asUnitName } from '../../src/cluster/types.js';
import { systemClock } from '../../src/lib/clock.js';
import { FleetError } from '../../src/lib/errors.js';
import { silentLogger } from '../../src/lib/logger.js';
import { createRandom } from '../../src/lib/random.js';
import { encodeValue } from '../../src/registry/codec.js';
import { EtcdKv } from '../../src/registry/etcd-kv.js';
import { RegistryKeys } from '../../src/registry/keys.js';
import { KvRegistry } from '../../src/registry/kv-registry.js';
import type { TxnOp } from '../../src/registry/kv.js';
import { randomPrefix, useEtcd } from '../helpers/etcd.js';
import { waitFor } from '../helpers/wait.js';

const etcd = useEtcd(test);
const TOKEN = 'events-test-token-0123456789';
const A = asMachineId('host-a');
const B = asMachineId('host-b');
const web1 = asUnitName('web@1.unit');
const web2 = asUnitName('web@2.unit');
const HASH = 'ab12cd34ef56';
const T = '2026-12-06T03:00:00.000Z';

interface Env {
  readonly keys: RegistryKeys;
  readonly registry: KvRegistry;
  readonly kv: EtcdKv;
  readonly app: ApiApp;
  readonly url: string;
  readonly stats: EventStreamStats;
  txn(...ops: TxnOp[]): Promise<number>;
  close(): Promise<void>;
}

async function setUp(): Promise<Env> {
  const prefix = randomPrefix();
  const endpoint = etcd().endpoint;
  const kv = new EtcdKv({ endpoints: [endpoint] }, systemClock);
  const registry = new KvRegistry({
    kv: new EtcdKv({ endpoints: [endpoint] }, systemClock),
    clock: systemClock,
    random: createRandom(7),
    prefix,
  });
  const stats = new EventStreamStats();
  const app = buildApp({
    registry,
    machineId: 'host-a',
    local: NO_LOCAL_UNITS,
    peers: { get: () => Promise.reject(new FleetError('unreachable', 'no peers in this test')) },
    registered: () => true,
    clock: systemClock,
    log: silentLogger,
    auth: { kind: 'token', token: TOKEN },
    eventStats: stats,
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as AddressInfo;
  return {
    keys: new RegistryKeys(prefix),
    registry,
    kv,
    app,
    url: `http://127.0.0.1:${port}`,
    stats,
    async txn(...ops) {
      return (await kv.txn({ compare: [], success: ops })).revision;
    },
    async close() {
      await app.close();
      await registry.close();
      kv.close();
    },
  };
}

/** An open GET /v1/events: the messages so far, in order. */
interface Stream {
  readonly status: number;
  readonly messages: EventMessage[];
  readonly ids: (string | undefined)[];
  /** Resolves once `done` holds for the messages received (the stream ending fails it). */
  until(what: string, done: (messages: readonly EventMessage[]) => boolean): Promise<void>;
  /** The body of an error answer. */
  readonly errorBody: Promise<string>;
  readonly ended: Promise<void>;
  close(): void;
}

function open(env: Env, query: string, headers: Record<string, string> = {}): Promise<Stream> {
  return new Promise((resolve, reject) => {
    const req: ClientRequest = request(
      `${env.url}/v1/events${query}`,
      { headers: { authorization: `Bearer ${TOKEN}`, accept: 'text/event-stream', ...headers } },
      (res: IncomingMessage) => {
        const messages: EventMessage[] = [];
        const ids: (string | undefined)[] = [];
        const reader = new SseReader();
        let text = '';
        let finished = false;
        const ended = new Promise<void>((done) => res.once('close', done));
        void ended.then(() => (finished = true));
        res.on('data', (chunk: Buffer) => {
          if (res.statusCode !== 200) return void (text += chunk.toString());
          for (const m of reader.push(chunk.toString())) {
            messages.push(eventMessage.parse(JSON.parse(m.data)));
            ids.push(m.lastEventId);
          }
        });
        resolve({
          status: res.statusCode ?? 0,
          messages,
          ids,
          errorBody: ended.then(() => text),
          ended,
          until: async (what, done) => {
            await waitFor(what, () => {
              if (done(messages)) return true;
              if (finished) throw new Error(`the stream ended before ${what}: ${JSON.stringify(messages)}`);
              return false;
            });
          },
          close: () => req.destroy(),
        });
      },
    );
    req.on('error', (err) => reject(err));
    req.end();
  });
}

const put = (key: string, value: string, lease?: string): TxnOp => ({
  kind: 'put',
  key,
  value,
  ...(lease === undefined ? {} : { lease }),
});
const machine = (ip: string) =>
  encodeValue('machine', { v: 1, ip, metadata: {}, version: '1', startedAt: T });
const running = (pid: number) =>
  encodeValue('status', {
    v: 1,
    hash: HASH,
    load: 'loaded',
    active: 'active',
    sub: 'running',
    pid,
    since: T,
  });

/** Its cluster content without the time fleetd saw it (a deletion's time is when it was read). */
const content = (m: EventMessage): unknown => {
  const { time: _time, ...rest } = m as EventMessage & { time?: string };
  return rest;
};
const isFinal = (ms: readonly EventMessage[]) =>
  ms.some((m) => m.kind === 'service.announced' && m.address === '10.0.0.2:80');

/** etcd's own count of the watchers it serves (its /metrics). */
async function etcdWatchers(): Promise<number> {
  const text = await (await fetch(`${etcd().endpoint}/metrics`)).text();
  const line = /^etcd_debugging_mvcc_watcher_total (\d+)/m.exec(text);
  if (line === null) throw new Error('etcd /metrics has no etcd_debugging_mvcc_watcher_total');
  return Number(line[1]);
}

test.serial(
  'since resumes exactly, even in the middle of a revision; a reader that leaves closes its watch',
  async (t) => {
    const env = await setUp();
    t.teardown(() => env.close());
    const { keys } = env;
    const start = (await env.kv.range(keys.leader())).revision;
    const lease = await env.kv.leaseGrant(60);
    const watchersBefore = await etcdWatchers();

    // Part one of the cluster's life: hosts, a leader, two placements in one transaction, a unit
    // running and one failed, a service instance.
    await env.txn(put(keys.machine(A), machine('10.0.0.1'), lease));
    await env.txn(put(keys.machine(B), machine('10.0.0.2')));
    await env.txn(put(keys.leader(), encodeValue('leader', { v: 1, candidate: B, since: T })));
    const placedAt = await env.txn(
      put(
        keys.assignment(A, web1),
        encodeValue('assignment', {
          v: 1,
          hash: HASH,
          target: 'launched',
          reason: 'machine host-a fits',
          at: T,
        }),
      ),
      put(keys.assignment(A, web2), encodeValue('assignment', { v: 1, hash: HASH, target: 'launched' })),
    );
    await env.txn(put(keys.status(web1, A), running(11), lease));
    await env.txn(
      put(
        keys.status(web2, A),
        encodeValue('status', {
          v: 1,
          hash: HASH,
          load: 'loaded',
          active: 'failed',
          sub: 'failed',
          since: T,
          reason: 'exit code 2',
          lastExit: { code: 2, at: T },
        }),
        lease,
      ),
    );
    await env.txn(
      put(
        keys.service('web', '1'),
        encodeValue('service', { v: 1, address: '10.0.0.1:80', machine: A, unit: web1, since: T }),
        lease,
      ),
    );

    // A reader gets the first events and goes away after the first of the two placements.
    const first = await open(env, `?since=${start}`);
    t.is(first.status, 200);
    await first.until('the first placement', (ms) => ms.some((m) => m.kind === 'unit.placed'));
    const cut = first.messages.findIndex((m) => m.kind === 'unit.placed') + 1;
    const seen = first.messages.slice(0, cut);
    const lastId = first.ids[cut - 1];
    t.is(lastId, `${placedAt}:1`, 'the cut is inside a revision');
    t.is(env.stats.open, 1);
    t.is(await etcdWatchers(), watchersBefore + 1, 'one etcd watch per reader');
    first.close();
    await waitFor('the stream to close', () => env.stats.open === 0);
    await waitFor('etcd to drop the watch', async () => (await etcdWatchers()) === watchersBefore);

    // Part two while nobody reads: host-a's lease ends (its key, statuses and service go in one
    // revision), the engine moves web@1 to host-b, where it starts and is announced.
    await env.kv.leaseRevoke(lease);
    await env.txn(
      { kind: 'delete', key: keys.assignment(A, web1) },
      put(
        keys.assignment(B, web1),
        encodeValue('assignment', {
          v: 1,
          hash: HASH,
          target: 'launched',
          movedFrom: A,
          reason: 'machine host-a is gone (lease expired)',
          at: T,
        }),
      ),
    );
    await env.txn(put(keys.status(web1, B), running(22)));
    await env.txn(
      put(
        keys.service('web', '1'),
        encodeValue('service', { v: 1, address: '10.0.0.2:80', machine: B, unit: web1, since: T }),
      ),
    );

    const resumed = await open(env, `?since=${encodeURIComponent(lastId ?? '')}`);
    await resumed.until('the last change', isFinal);
    resumed.close();
    const full = await open(env, `?since=${start}`);
    await full.until('the last change', isFinal);
    full.close();

    t.deepEqual(
      full.messages.map((m) => `${m.kind} ${'unit' in m ? (m.unit ?? '') : ''}`.trim()),
      [
        'host.joined',
        'host.joined',
        'leader.changed',
        'unit.placed web@1.unit',
        'unit.placed web@2.unit',
        'unit.started web@1.unit',
        'unit.failed web@2.unit',
        'service.announced web@1.unit',
        'host.lost',
        'service.withdrawn web@1.unit',
        'unit.moved web@1.unit',
        'unit.started web@1.unit',
        'service.announced web@1.unit',
      ],
    );
    t.like(full.messages[8], { kind: 'host.lost', machine: A, units: [web1, web2] });
    t.like(full.messages[10], {
      kind: 'unit.moved',
      from: A,
      machine: B,
      reason: 'machine host-a is gone (lease expired)',
    });
    t.deepEqual(
      [...seen, ...resumed.messages].map(content),
      full.messages.map(content),
      'no gap, no duplicate',
    );
    t.deepEqual(resumed.ids[0], `${placedAt}:2`);
    t.is(new Set(full.ids).size, full.ids.length, 'every id once');
    await waitFor('every stream to close', () => env.stats.open === 0);
    await waitFor('etcd to drop every watch', async () => (await etcdWatchers()) === watchersBefore);
  },
);

test.serial(
  'without since: the state first, then changes; Last-Event-ID resumes; follow=false ends',
  async (t) => {
    const env = await setUp();
    t.teardown(() => env.close());
    const { keys } = env;
    await env.txn(put(keys.machine(A), machine('10.0.0.1')));
    await env.txn(
      put(keys.assignment(A, web1), encodeValue('assignment', { v: 1, hash: HASH, target: 'launched' })),
    );
    await env.txn(put(keys.status(web1, A), running(5)));

    const live = await open(env, '');
    await live.until('the end of the state', (ms) => ms.some((m) => m.kind === 'stream.synced'));
    t.deepEqual(
      live.messages.map((m) => `${m.kind}${'snapshot' in m && m.snapshot === true ? ' (state)' : ''}`),
      ['host.joined (state)', 'unit.placed (state)', 'unit.started (state)', 'stream.synced'],
    );
    const synced = live.messages.at(-1);
    if (synced?.kind !== 'stream.synced') return t.fail('no stream.synced');
    t.is(live.ids.at(-1), synced.id, 'the synced message carries the id to resume from');
    t.is(live.ids[0], undefined, 'state events carry no id');

    const changed = await env.txn(put(keys.machine(B), machine('10.0.0.2')));
    await live.until('the change', (ms) => ms.some((m) => m.kind === 'host.joined' && m.machine === B));
    t.like(live.messages.at(-1), { kind: 'host.joined', machine: B, revision: changed, id: `${changed}:1` });
    live.close();

    // What an EventSource sends when it reconnects: the last id it got, whatever the URL says.
    await env.txn(put(keys.leader(), encodeValue('leader', { v: 1, candidate: A, since: T })));
    const again = await open(env, '?since=1', { 'last-event-id': synced.id });
    await again.until('the leader', (ms) => ms.some((m) => m.kind === 'leader.changed'));
    t.deepEqual(
      again.messages.map((m) => m.kind),
      ['host.joined', 'leader.changed'],
    );
    again.close();

    const once = await open(env, '?follow=false&unit=web@*');
    await once.ended;
    t.deepEqual(
      once.messages.map((m) => m.kind),
      ['unit.placed', 'unit.started'],
      'only the web units, and the stream ends',
    );
    await waitFor('every stream to close', () => env.stats.open === 0);
  },
);

test.serial('a drain and an undrain as events, live and in the state', async (t) => {
  const env = await setUp();
  t.teardown(() => env.close());
  const { keys } = env;
  await env.txn(put(keys.machine(A), machine('10.0.0.1')));
  const live = await open(env, '');
  await live.until('the end of the state', (ms) => ms.some((m) => m.kind === 'stream.synced'));
  const drainedAt = await env.txn(put(keys.drain(A), encodeValue('drain', { v: 1, since: T })));
  // The engine's steps rewrite the key: no event.
  await env.txn(
    put(keys.drain(A), encodeValue('drain', { v: 1, since: T, moving: [{ unit: web1, services: [] }] })),
  );
  const state = await open(env, '?follow=false');
  await state.ended;
  t.like(
    state.messages.find((m) => m.kind === 'host.drained'),
    { kind: 'host.drained', machine: A, time: T, snapshot: true, revision: drainedAt },
  );
  await env.txn({ kind: 'delete', key: keys.drain(A) });
  await live.until('the undrain', (ms) => ms.some((m) => m.kind === 'host.undrained'));
  t.deepEqual(live.messages.filter((m) => !('snapshot' in m) && m.kind !== 'stream.synced').map(content), [
    { kind: 'host.drained', machine: A, revision: drainedAt, id: `${drainedAt}:1` },
    { kind: 'host.undrained', machine: A, revision: drainedAt + 2, id: `${drainedAt + 2}:1` },
  ]);
  const drained = live.messages.find((m) => m.kind === 'host.drained' && !('snapshot' in m));
  t.is(drained?.kind === 'host.drained' ? drained.time : undefined, T, 'the time the drain was asked for');
  live.close();
  await waitFor('every stream to close', () => env.stats.open === 0);
});

test.serial(
  'a reload recorded by `fleetts upstream` is upstream.reloaded, live, in the state and in `fleetts events`',
  async (t) => {
    const env = await setUp();
    t.teardown(() => env.close());
    const clock = { ...systemClock, now: () => Date.parse(T) };
    const recorder = new ReloadRecorder({
      registry: env.registry,
      clock,
      log: silentLogger,
      host: 'lb1',
      service: 'web',
    });
    t.teardown(() => recorder.close());
    const live = await open(env, '');
    await live.until('the end of the state', (ms) => ms.some((m) => m.kind === 'stream.synced'));
    recorder.record({ text: 'upstream web { server 10.0.0.1:80; }\n', servers: 1, revision: 5 });
    await live.until('the reload', (ms) => ms.some((m) => m.kind === 'upstream.reloaded'));
    const reloaded = live.messages.find((m) => m.kind === 'upstream.reloaded');
    t.like(reloaded, { kind: 'upstream.reloaded', service: 'web', host: 'lb1', servers: 1, time: T });
    t.is(reloaded?.snapshot, undefined);
    const stored = await env.kv.range(env.keys.upstream('lb1', 'web'));
    t.not(stored.kvs[0]?.lease, '0', 'under the sidekick’s lease');

    const once = new BufferOutput();
    t.is(await run(['--endpoint', env.url, '--token', TOKEN, 'events'], once), 0, once.stderr);
    t.deepEqual(
      once.stdout
        .trim()
        .split('\n')
        .map((l) => l.split(/ {2,}/)),
      [[T, 'upstream.reloaded', 'web', 'nginx on lb1 reloaded with 1 server(s) (state)']],
    );

    // The sidekick stopping revokes its lease: the key goes, and with it the state's reload.
    await recorder.close();
    const state = await open(env, '?follow=false');
    await state.ended;
    t.deepEqual(
      state.messages.filter((m) => m.kind !== 'stream.synced'),
      [],
    );
    live.close();
    await waitFor('every stream to close', () => env.stats.open === 0);
  },
);

test.serial(
  'compacted history is a 410 that says to start again; bad cursors and no token are refused',
  async (t) => {
    const env = await setUp();
    t.teardown(() => env.close());
    const before = await env.txn(put(env.keys.machine(A), machine('10.0.0.1')));
    const after = await env.txn(put(env.keys.machine(A), machine('10.0.0.9')));
    const client = new Etcd3({ hosts: etcd().endpoint });
    try {
      await client.kv.compact({ revision: String(after), physical: true });
    } finally {
      client.close();
    }
    const gone = await open(env, `?since=${before - 1}`);
    t.is(gone.status, 410);
    const body = JSON.parse(await gone.errorBody) as { error: { code: string; message: string } };
    t.is(body.error.code, 'compacted');
    t.regex(body.error.message, /compacted.*start again without since/);

    for (const [query, status, pattern] of [
      ['?since=yesterday', 400, /not an event id/],
      [`?since=${after + 1000}`, 400, /ahead of the cluster/],
      ['?unit=%5B', 400, /unit filter/],
    ] as const) {
      const res = await open(env, query);
      t.is(res.status, status, query);
      t.regex(await res.errorBody, pattern, query);
    }
    const anonymous = await open(env, '', { authorization: '' });
    t.is(anonymous.status, 401);
    await anonymous.ended;
    t.is(env.stats.open, 0);
  },
);

test.serial(
  'fleetts events prints the state and exits; with -f it prints changes as they come',
  async (t) => {
    const env = await setUp();
    t.teardown(() => env.close());
    const { keys } = env;
    await env.txn(put(keys.machine(A), machine('10.0.0.1')));
    await env.txn(put(keys.status(web1, A), running(5)));
    const global = ['--endpoint', env.url, '--token', TOKEN];

    const once = new BufferOutput();
    t.is(await run([...global, 'events'], once), 0, once.stderr);
    const lines = once.stdout.trim().split('\n');
    t.is(lines.length, 2, once.stdout);
    const columns = lines.map((l) => l.split(/ {2,}/));
    t.deepEqual(columns, [
      ['2026-12-06T03:00:00.000Z', 'host.joined', 'host-a', '10.0.0.1 (state)'],
      ['2026-12-06T03:00:00.000Z', 'unit.started', 'web@1.unit', 'on host-a (pid 5) (state)'],
    ]);
    t.is(lines[0]?.indexOf('host-a'), lines[1]?.indexOf('web@1.unit'), 'columns line up');

    const json = new BufferOutput();
    t.is(await run([...global, 'events', '-o', 'json', '--machine', 'host-a', '--unit', 'web@*'], json), 0);
    t.like(JSON.parse(json.stdout.trim()), {
      kind: 'unit.started',
      unit: web1,
      machine: A,
      pid: 5,
      snapshot: true,
    });

    const follow = new BufferOutput();
    const stop = new AbortController();
    const following = run([...global, 'events', '-f', '-o', 'json'], follow, { signal: stop.signal });
    await waitFor('the state', () => follow.stdout.includes('stream.synced'));
    const revision = await env.txn({ kind: 'delete', key: keys.status(web1, A) });
    await waitFor('the stop', () => follow.stdout.includes('unit.stopped'));
    stop.abort();
    t.is(await following, 0, follow.stderr);
    t.like(JSON.parse(follow.stdout.trim().split('\n').at(-1) ?? ''), {
      kind: 'unit.stopped',
      unit: web1,
      id: `${revision}:1`,
    });

    const bad = new BufferOutput();
    t.is(await run([...global, 'events', '--since', 'later'], bad), 2);
    t.regex(bad.stderr, /--since "later" is not an event id/);
    await waitFor('every stream to close', () => env.stats.open === 0);
  },
);
