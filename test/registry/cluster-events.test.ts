// The pure derivation of cluster events from etcd key changes (cluster-events.ts): each case is
// one revision's changes, each change with the value it replaced (etcd's prev_kv), and the events
// it must give, reasons and order included.
import test from 'ava';
import { asMachineId, asUnitName, type MachineId, type UnitName } from '../../src/cluster/types.js';
import {
  eventMatches,
  eventsOfRevision,
  eventsOfState,
  formatCursor,
  parseCursor,
  withIds,
  type ClusterEvent,
} from '../../src/registry/cluster-events.js';
import { encodeValue, type StoredValue, type ValueKind } from '../../src/registry/codec.js';
import { RegistryKeys } from '../../src/registry/keys.js';
import type { KeyValue, WatchEvent } from '../../src/registry/kv.js';

const keys = new RegistryKeys('/ev/');
const A = asMachineId('host-a');
const B = asMachineId('host-b');
const web = asUnitName('web@1.unit');
const REV = 100;
const SEEN = '2026-12-06T03:00:00.000Z';
const HASH = 'ab12cd34ef56';

function kv(
  key: string,
  value: string,
  o: { create?: number; mod?: number; version?: number } = {},
): KeyValue {
  return {
    key,
    value,
    createRevision: o.create ?? REV,
    modRevision: o.mod ?? REV,
    version: o.version ?? 1,
    lease: '0',
  };
}
function enc<K extends ValueKind>(kind: K, value: StoredValue<K>): string {
  return encodeValue(kind, value);
}
/** A put of `value` at REV over `prev` (undefined: a create). */
function put(key: string, value: string, prev?: string, prevCreate = 50): WatchEvent {
  return {
    type: 'put',
    kv: kv(key, value, { create: prev === undefined ? REV : prevCreate }),
    ...(prev === undefined ? {} : { prevKv: kv(key, prev, { create: prevCreate, mod: 90 }) }),
  };
}
function del(key: string, prev: string): WatchEvent {
  return {
    type: 'delete',
    kv: { key, value: '', createRevision: 0, modRevision: REV, version: 0, lease: '0' },
    prevKv: kv(key, prev, { create: 50, mod: 90 }),
  };
}
const machine = (ip: string) =>
  enc('machine', { v: 1, ip, metadata: {}, version: '1', startedAt: '2026-12-06T02:00:00.000Z' });
const status = (active: StoredValue<'status'>['active'], more: Partial<StoredValue<'status'>> = {}): string =>
  enc('status', {
    v: 1,
    hash: HASH,
    load: 'loaded',
    active,
    sub: active === 'active' ? 'running' : 'dead',
    since: `2026-12-06T03:00:0${active.length % 10}.000Z`,
    ...more,
  });
const assignment = (more: Partial<StoredValue<'assignment'>> = {}): string =>
  enc('assignment', { v: 1, hash: HASH, target: 'launched', ...more });
const derive = (changes: WatchEvent[]): ClusterEvent[] => eventsOfRevision(keys, changes, SEEN);
const kinds = (events: readonly ClusterEvent[]): string[] =>
  events.map((e) =>
    `${e.kind} ${'unit' in e ? (e.unit ?? '') : ''}@${'machine' in e ? (e.machine ?? '') : ''}`.trim(),
  );
const statusKey = (u: UnitName, m: MachineId) => keys.status(u, m);

test('a host that joins, and one whose lease expired with the statuses of its units', (t) => {
  t.deepEqual(derive([put(keys.machine(A), machine('10.0.0.1'))]), [
    { kind: 'host.joined', revision: REV, time: SEEN, machine: A, ip: '10.0.0.1' },
  ]);
  // A re-registration rewrites the key of a live membership: no event.
  t.deepEqual(derive([put(keys.machine(A), machine('10.0.0.1'), machine('10.0.0.1'))]), []);
  const lost = derive([
    del(keys.machine(A), machine('10.0.0.1')),
    del(statusKey(web, A), status('active')),
    del(statusKey(asUnitName('db.unit'), A), status('active')),
    del(statusKey(asUnitName('x.unit'), B), status('active')),
  ]);
  t.deepEqual(
    kinds(lost),
    ['host.lost @host-a', 'unit.stopped x.unit@host-b'],
    'a unit of a live host stopped',
  );
  t.deepEqual(lost[0], { kind: 'host.lost', revision: REV, time: SEEN, machine: A, units: ['db.unit', web] });
});

test('placements: new, moved with the reason the engine stored, moved by an older engine, unplaced', (t) => {
  t.deepEqual(
    derive([
      put(
        keys.assignment(A, web),
        assignment({ reason: 'machine host-a fits', at: '2026-12-06T03:00:01.000Z' }),
      ),
    ]),
    [
      {
        kind: 'unit.placed',
        revision: REV,
        time: '2026-12-06T03:00:01.000Z',
        unit: web,
        machine: A,
        reason: 'machine host-a fits',
      },
    ],
  );
  const moved = derive([
    del(keys.assignment(A, web), assignment()),
    put(
      keys.assignment(B, web),
      assignment({
        movedFrom: A,
        reason: 'machine host-a is gone (lease expired)',
        at: '2026-12-06T03:00:02.000Z',
      }),
    ),
  ]);
  t.deepEqual(moved, [
    {
      kind: 'unit.moved',
      revision: REV,
      time: '2026-12-06T03:00:02.000Z',
      unit: web,
      machine: B,
      from: A,
      reason: 'machine host-a is gone (lease expired)',
    },
  ]);
  // Written by an engine that stored no reason: the move is recognised by the deletion beside it.
  const old = derive([
    del(keys.machine(A), machine('10.0.0.1')),
    del(keys.assignment(A, web), assignment()),
    put(keys.assignment(B, web), assignment()),
  ]);
  t.deepEqual(kinds(old), ['host.lost @host-a', 'unit.moved web@1.unit@host-b']);
  t.like(old[1], { from: A, reason: 'machine host-a is gone (lease expired)', time: SEEN });
  t.like(
    derive([del(keys.assignment(A, web), assignment()), put(keys.assignment(B, web), assignment())])[0],
    {
      kind: 'unit.moved',
      reason: 'rescheduled',
    },
  );
  t.deepEqual(kinds(derive([del(keys.assignment(A, web), assignment())])), [
    'unit.unplaced web@1.unit@host-a',
  ]);
  // A target or file change in place is not a placement (its start or stop comes from the status).
  t.deepEqual(derive([put(keys.assignment(A, web), assignment({ target: 'loaded' }), assignment())]), []);
});

test('statuses: started, restarted, failed with its exit, stopped; nothing for a change that is none', (t) => {
  const k = statusKey(web, A);
  const cases: [string, WatchEvent, string[]][] = [
    ['first status, active', put(k, status('active', { pid: 7 })), ['unit.started web@1.unit@host-a']],
    [
      'activating → active',
      put(k, status('active', { pid: 7 }), status('activating')),
      ['unit.started web@1.unit@host-a'],
    ],
    ['active → active, same pid', put(k, status('active', { pid: 7 }), status('active', { pid: 7 })), []],
    [
      'active → active, new pid',
      put(k, status('active', { pid: 8 }), status('active', { pid: 7 })),
      ['unit.started web@1.unit@host-a'],
    ],
    [
      'active → failed',
      put(k, status('failed', { reason: 'exit code 3' }), status('active')),
      ['unit.failed web@1.unit@host-a'],
    ],
    ['failed → failed', put(k, status('failed'), status('failed')), []],
    ['active → inactive', put(k, status('inactive'), status('active')), ['unit.stopped web@1.unit@host-a']],
    ['first status, inactive', put(k, status('inactive')), []],
    ['failed → inactive', put(k, status('inactive'), status('failed')), []],
    ['deleted while active', del(k, status('active')), ['unit.stopped web@1.unit@host-a']],
    ['deleted while inactive', del(k, status('inactive')), []],
    ['corrupt value', put(k, '{"v":1,"oops":true}'), []],
  ];
  for (const [what, change, want] of cases) t.deepEqual(kinds(derive([change])), want, what);
  const failed = derive([
    put(
      k,
      status('failed', { reason: 'exit code 3', lastExit: { code: 3, at: '2026-12-06T03:00:00.000Z' } }),
      status('active'),
    ),
  ])[0];
  t.like(failed, { kind: 'unit.failed', reason: 'exit code 3', exitCode: 3 });
  t.is(
    failed?.time,
    (JSON.parse(status('failed')) as { since: string }).since,
    "a status's time is when its state began",
  );
});

test('leader changes, services announced and withdrawn; other keys give nothing', (t) => {
  const leader = (candidate: string) => enc('leader', { v: 1, candidate, since: '2026-12-06T03:00:05.000Z' });
  t.deepEqual(derive([put(keys.leader(), leader('host-b'))]), [
    { kind: 'leader.changed', revision: REV, time: '2026-12-06T03:00:05.000Z', machine: 'host-b' },
  ]);
  t.deepEqual(derive([put(keys.leader(), leader('host-b'), leader('host-b'), REV)]), [], 'the same term');
  t.deepEqual(derive([del(keys.leader(), leader('host-b'))]), [], 'a vacancy is no leader yet');
  const svc = (address: string) =>
    enc('service', { v: 1, address, machine: A, unit: web, since: '2026-12-06T03:00:06.000Z' });
  const key = keys.service('web', '1');
  t.deepEqual(derive([put(key, svc('10.0.0.1:80'))]), [
    {
      kind: 'service.announced',
      revision: REV,
      time: '2026-12-06T03:00:06.000Z',
      service: 'web',
      instance: '1',
      address: '10.0.0.1:80',
      machine: A,
      unit: web,
    },
  ]);
  t.deepEqual(derive([put(key, svc('10.0.0.1:80'), svc('10.0.0.1:80'))]), [], 're-announced unchanged');
  t.deepEqual(kinds(derive([put(key, svc('10.0.0.2:80'), svc('10.0.0.1:80'))])), [
    'service.announced web@1.unit@host-a',
  ]);
  t.like(derive([del(key, svc('10.0.0.1:80'))])[0], {
    kind: 'service.withdrawn',
    address: '10.0.0.1:80',
    time: SEEN,
  });
  t.deepEqual(
    derive([
      put(keys.unit(web), enc('unit', { v: 1, hash: HASH, target: 'launched' })),
      put(keys.claim(web), enc('claim', { v: 1, machine: A, since: SEEN })),
      put('/ev/units/not a unit', '{}'),
      put('/elsewhere/x', '{}'),
    ]),
    [],
  );
});

test('within a revision: the lost host first, then units, then services; ids number them', (t) => {
  const events = derive([
    del(keys.service('web', '1'), enc('service', { v: 1, address: '10.0.0.1:80', since: SEEN })),
    del(keys.assignment(A, web), assignment()),
    put(keys.assignment(B, web), assignment({ movedFrom: A, reason: 'gone' })),
    del(keys.machine(A), machine('10.0.0.1')),
  ]);
  t.deepEqual(kinds(events), ['host.lost @host-a', 'unit.moved web@1.unit@host-b', 'service.withdrawn @']);
  t.deepEqual(
    withIds(events, REV).map((e) => e.id),
    ['100:1', '100:2', '100:3'],
  );
  t.deepEqual(
    withIds(events, REV, 4).map((e) => e.id),
    ['100:4', '100:5', '100:6'],
    'a revision that came in two batches goes on counting',
  );
});

test('the state as events: one per live record, oldest key first, marked as a snapshot', (t) => {
  const at = (key: string, value: string, create: number, mod = create) => kv(key, value, { create, mod });
  const events = eventsOfState(
    keys,
    [
      at(keys.machine(A), machine('10.0.0.1'), 5),
      at(keys.leader(), enc('leader', { v: 1, candidate: A, since: SEEN }), 7),
      at(keys.assignment(A, web), assignment({ reason: 'fits', at: SEEN }), 9),
      at(statusKey(web, A), status('active', { pid: 3 }), 10, 12),
      at(statusKey(asUnitName('db.unit'), A), status('inactive'), 11),
      at(keys.service('web', '1'), enc('service', { v: 1, address: '10.0.0.1:80', since: SEEN }), 13),
      at(keys.unit(web), enc('unit', { v: 1, hash: HASH, target: 'launched' }), 3),
    ],
    SEEN,
  );
  t.deepEqual(
    events.map((e) => `${e.revision} ${e.kind}`),
    ['5 host.joined', '7 leader.changed', '9 unit.placed', '12 unit.started', '13 service.announced'],
  );
  t.true(events.every((e) => e.snapshot === true && e.id === undefined));
});

test('cursors and filters', (t) => {
  t.deepEqual(parseCursor('1234'), { revision: 1234 });
  t.deepEqual(parseCursor('1234:2'), { revision: 1234, index: 2 });
  t.deepEqual(parseCursor('1234:0'), { revision: 1233 }, 'none of 1234 seen: all of 1233 was');
  for (const bad of ['', 'x', '-1', '12:', ':3', '1.5', '99999999999999999'])
    t.is(parseCursor(bad), undefined, bad);
  t.is(formatCursor({ revision: 9, index: 3 }), '9:3');
  const moved: ClusterEvent = {
    kind: 'unit.moved',
    revision: 1,
    time: SEEN,
    unit: web,
    machine: B,
    from: A,
    reason: 'x',
  };
  const lost: ClusterEvent = { kind: 'host.lost', revision: 1, time: SEEN, machine: A, units: [web] };
  const joined: ClusterEvent = { kind: 'host.joined', revision: 1, time: SEEN, machine: B, ip: '' };
  const isWeb = (n: string) => n === web;
  t.true(eventMatches(moved, { machine: A }), 'the machine it left');
  t.true(eventMatches(moved, { machine: B, unit: isWeb }));
  t.true(eventMatches(lost, { unit: isWeb }), 'a lost host names its units');
  t.false(eventMatches(joined, { unit: isWeb }));
  t.false(eventMatches(joined, { machine: A }));
  t.true(eventMatches(joined, {}));
  const reloaded: ClusterEvent = {
    kind: 'upstream.reloaded',
    revision: 1,
    time: SEEN,
    service: 'web',
    host: A,
    servers: 2,
  };
  t.true(eventMatches(reloaded, { machine: A }), 'a reload names the host of its nginx');
  t.false(eventMatches(reloaded, { machine: B }));
  t.false(eventMatches(reloaded, { unit: isWeb }));
});

test('drains: drained when `fleetts drain` writes the key, undrained when it is deleted; the engine’s steps are no events', (t) => {
  const since = '2026-12-06T03:00:05.000Z';
  const drain = (more: Partial<StoredValue<'drain'>> = {}) => enc('drain', { v: 1, since, ...more });
  t.deepEqual(derive([put(keys.drain(A), drain())]), [
    { kind: 'host.drained', revision: REV, time: since, machine: A },
  ]);
  t.deepEqual(
    derive([put(keys.drain(A), drain({ moving: [{ unit: web, services: ['web'] }] }), drain())]),
    [],
    'the engine recording its step',
  );
  t.deepEqual(derive([del(keys.drain(A), drain())]), [
    { kind: 'host.undrained', revision: REV, time: SEEN, machine: A },
  ]);
  // The drain and the engine's first move in one revision: the drain comes first.
  const both = derive([
    del(keys.assignment(A, web), assignment()),
    put(keys.assignment(B, web), assignment({ movedFrom: A, reason: 'machine host-a is drained' })),
    put(keys.drain(A), drain()),
  ]);
  t.deepEqual(kinds(both), ['host.drained @host-a', 'unit.moved web@1.unit@host-b']);
  t.deepEqual(eventsOfState(keys, [kv(keys.drain(A), drain(), { create: 40, mod: 60 })], SEEN), [
    { kind: 'host.drained', revision: 40, time: since, machine: A, snapshot: true },
  ]);
  t.true(eventMatches({ kind: 'host.drained', revision: 1, time: since, machine: A }, { machine: A }));
});

test('upstreams: every write of upstreams/<host>/<service> is a reload; its deletion (the sidekick gone) is none', (t) => {
  const reloadedAt = '2026-12-06T03:00:07.000Z';
  const reload = (servers: number, at = reloadedAt) =>
    enc('upstream', { v: 1, servers, checksum: 'a'.repeat(64), revision: 42, reloadedAt: at });
  const key = keys.upstream('lb1', 'web');
  t.deepEqual(derive([put(key, reload(3))]), [
    { kind: 'upstream.reloaded', revision: REV, time: reloadedAt, service: 'web', host: 'lb1', servers: 3 },
  ]);
  t.deepEqual(
    derive([put(key, reload(2, '2026-12-06T03:00:09.000Z'), reload(3))]),
    [
      {
        kind: 'upstream.reloaded',
        revision: REV,
        time: '2026-12-06T03:00:09.000Z',
        service: 'web',
        host: 'lb1',
        servers: 2,
      },
    ],
    'a reload after the first rewrites the key',
  );
  t.deepEqual(derive([del(key, reload(3))]), [], 'the lease of the sidekick ended');
  t.deepEqual(derive([put(key, '{"v":1,"servers":-1}')]), [], 'a corrupt value is no event');
  // The instance that went and the reload without it, in one revision: the withdrawal first.
  const both = derive([
    put(key, reload(0)),
    del(keys.service('web', 'web-1'), enc('service', { v: 1, address: '10.0.0.1:80', since: SEEN })),
  ]);
  t.deepEqual(
    both.map((e) => e.kind),
    ['service.withdrawn', 'upstream.reloaded'],
  );
  t.deepEqual(eventsOfState(keys, [kv(key, reload(3), { create: 40, mod: 60 })], SEEN), [
    {
      kind: 'upstream.reloaded',
      revision: 60,
      time: reloadedAt,
      service: 'web',
      host: 'lb1',
      servers: 3,
      snapshot: true,
    },
  ]);
  t.is(keys.parse(key)?.kind, 'upstream');
  t.is(keys.inspect(`/ev/upstreams/lb1`).ok, false, 'a host without a service');
});
