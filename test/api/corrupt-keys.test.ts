// The API over keys that fleetts did not write (issue 14): listings report them beside the good
// records, a request about one answers 422 with the reason (never 500), DELETE removes it, and a
// machine record bound to no lease is never asked anything.
import test from 'ava';
import { asMachineId, asUnitName } from '../../src/cluster/types.js';
import { FakeClock } from '../../src/lib/clock.js';
import { createRandom } from '../../src/lib/random.js';
import { silentLogger } from '../../src/lib/logger.js';
import { buildApp, type ApiApp } from '../../src/api/build-app.js';
import type { PeerClient } from '../../src/api/peer-client.js';
import { Engine } from '../../src/engine/engine.js';
import { MemoryEtcd, MemoryRegistry } from '../../src/registry/memory-registry.js';
import { unitHash } from '../../src/unit/hash.js';
import { FakeLocalUnits } from './fixture.js';

const PREFIX = '/corrupt-test/';
const TEXT = '[Service]\nExecStart=/bin/sleep 1000\n';
const GOOD = JSON.stringify({ v: 1, hash: unitHash(TEXT), target: 'launched' });
const FAKE = asMachineId('f'.repeat(32));

interface Setup {
  app: ApiApp;
  registry: MemoryRegistry;
  put(relativeKey: string, value: string): Promise<void>;
  /** Every peer request: the API address asked and the path. */
  asked: string[];
  schedule(): Promise<void>;
}

async function setup(): Promise<Setup> {
  const clock = new FakeClock();
  const store = new MemoryEtcd({ clock });
  const registry = new MemoryRegistry({ store, prefix: PREFIX });
  const me = asMachineId('aaaa');
  await registry.register({
    id: me,
    ip: '10.0.0.1',
    metadata: {},
    version: 'test',
    startedAt: '2026-01-01T00:00:00Z',
  });
  const asked: string[] = [];
  const peers: PeerClient = {
    get({ apiAddress }, path) {
      asked.push(`${apiAddress}${path}`);
      return Promise.reject(new Error('no peer in this test'));
    },
  };
  const app = buildApp({
    registry,
    machineId: me,
    local: new FakeLocalUnits(),
    peers,
    registered: () => true,
    clock,
    log: silentLogger,
  });
  const raw = store.client();
  const engine = new Engine({
    registry,
    clock,
    random: createRandom(1),
    log: silentLogger,
    candidate: 'test',
  });
  const term = await registry.leadership({ candidate: 'test' }).campaign();
  return {
    app,
    registry,
    asked,
    put: async (key, value) => {
      await raw.txn({ compare: [], success: [{ kind: 'put', key: PREFIX + key, value }] });
    },
    schedule: async () => {
      await engine.runPass(await registry.snapshot(), term);
    },
  };
}

const path = (name: string) => `/v1/units/${encodeURIComponent(name)}`;

test('a corrupt unit key: listed with its reason, 422 for requests about it, removed by DELETE; the rest is served', async (t) => {
  const s = await setup();
  t.is(
    (
      await s.app.inject({
        method: 'PUT',
        url: path('good.service'),
        payload: { text: TEXT, target: 'launched' },
      })
    ).statusCode,
    200,
  );
  await s.put('units/notjson.service', '{oops');
  await s.put('units/bad name;rm -rf.service', GOOD);
  await s.put('units/nested/x.service', GOOD);
  await s.put('units/file.service', JSON.stringify({ v: 1, hash: 'ab'.repeat(32), target: 'launched' }));
  await s.put(`unit-files/${'ab'.repeat(32)}`, 'garbage');
  await s.schedule();

  const list = await s.app.inject({ method: 'GET', url: '/v1/units' });
  t.is(list.statusCode, 200);
  const body = list.json<{
    units: { name: string }[];
    problems: { key: string; unit?: string; reason: string }[];
  }>();
  t.deepEqual(
    body.units.map((u) => u.name),
    ['file.service', 'good.service'],
  );
  // Unit files are not read by a listing (the engine reports a corrupt one as the unit's reason).
  t.deepEqual(body.problems.map((p) => p.unit).sort(), [
    'bad name;rm -rf.service',
    'nested/x.service',
    'notjson.service',
  ]);
  t.regex(body.problems.find((p) => p.unit === 'notjson.service')?.reason ?? '', /not JSON/);

  for (const [name, reason] of [
    [
      'notjson.service',
      /unit notjson.service is corrupt in etcd \(.*etcd key \/corrupt-test\/units\/notjson.service: not JSON.*fleetts destroy notjson.service/,
    ],
    ['bad name;rm -rf.service', /invalid unit name.*fleetts destroy 'bad name;rm -rf.service'/],
    ['file.service', /unit file.service is corrupt in etcd .*unit-files.*not JSON/],
  ] as const) {
    for (const [method, url, payload] of [
      ['GET', path(name), undefined],
      ['PUT', path(name), { text: TEXT }],
      ['PUT', '/v1/units', { units: [{ name, text: TEXT }] }],
      ['GET', `${path(name)}/status`, undefined],
      ['GET', `${path(name)}/journal`, undefined],
    ] as const) {
      // Only the file of file.service is corrupt: reading its text is what fails (its record is
      // fine, so PUT replaces nothing and status answers with why it is unplaced, below).
      if (name === 'file.service' && url !== path(name)) continue;
      if (name === 'file.service' && method !== 'GET') continue;
      const res = await s.app.inject({ method, url, ...(payload === undefined ? {} : { payload }) });
      t.is(res.statusCode, 422, `${method} ${url}`);
      const error = res.json<{ error: { code: string; message: string } }>().error;
      t.is(error.code, 'corrupt', `${method} ${url}`);
      t.regex(error.message, reason, `${method} ${url}`);
    }
  }
  // The engine left the corrupt file's unit unplaced and said why.
  const file = (await s.app.inject({ method: 'GET', url: `${path('file.service')}/status` })).json<{
    unit: { unschedulable?: { reason: string } };
  }>();
  t.regex(file.unit.unschedulable?.reason ?? '', /its unit file is corrupt in etcd/);

  for (const url of ['/v1/units/good.service', '/v1/state', '/v1/machines', '/v1/units/good.service/status'])
    t.is((await s.app.inject({ method: 'GET', url })).statusCode, 200, url);
  t.is(
    (await s.app.inject({ method: 'POST', url: '/v1/plan', payload: { units: [{ name: 'good.service' }] } }))
      .statusCode,
    200,
  );

  for (const name of ['notjson.service', 'bad name;rm -rf.service', 'nested/x.service'])
    t.is((await s.app.inject({ method: 'DELETE', url: path(name) })).statusCode, 204, name);
  const invalid = await s.app.inject({ method: 'DELETE', url: path('no such;name.service') });
  t.is(invalid.statusCode, 400);
  t.regex(invalid.json<{ error: { message: string } }>().error.message, /invalid unit name/);
  const after = (await s.app.inject({ method: 'GET', url: '/v1/units' })).json<{ problems?: unknown }>();
  t.is(after.problems, undefined);
  await s.registry.close();
});

test('a machine record bound to no lease gets no units and no request', async (t) => {
  const s = await setup();
  await s.put(
    `machines/${FAKE}`,
    JSON.stringify({
      v: 1,
      ip: '10.0.0.9',
      metadata: {},
      apiAddress: 'http://fake.test:4003',
      version: 'test',
      startedAt: '2026-01-01T00:00:00Z',
    }),
  );
  const pinned = `${TEXT}\n[X-Fleet]\nMachineID=${FAKE}\n`;
  const global = `${TEXT}\n[X-Fleet]\nGlobal=true\n`;
  for (const [name, text] of [
    ['pinned.service', pinned],
    ['global.service', global],
  ] as const)
    t.is(
      (await s.app.inject({ method: 'PUT', url: path(name), payload: { text, target: 'launched' } }))
        .statusCode,
      200,
    );
  // As if it had been placed there and reported before: the API would ask that host.
  await s.put(
    `assignments/${FAKE}/pinned.service`,
    JSON.stringify({ v: 1, hash: unitHash(pinned), target: 'launched' }),
  );
  await s.put(
    `status/pinned.service/${FAKE}`,
    JSON.stringify({
      v: 1,
      hash: unitHash(pinned),
      load: 'loaded',
      active: 'active',
      sub: 'running',
      since: '2026-01-01T00:00:00Z',
    }),
  );
  await s.schedule();

  const snapshot = await s.registry.snapshot();
  t.deepEqual(
    snapshot.assignments.map((a) => `${a.unit}@${a.machine}`),
    ['global.service@aaaa'],
  );
  t.regex(snapshot.unschedulable.get(asUnitName('pinned.service'))?.reason ?? '', /not registered/);
  const machines = (await s.app.inject({ method: 'GET', url: '/v1/machines' })).json<{
    machines: { id: string }[];
    problems: { key: string; reason: string }[];
  }>();
  t.deepEqual(
    machines.machines.map((m) => m.id),
    ['aaaa'],
  );
  t.regex(machines.problems[0]?.reason ?? '', /bound to no lease/);
  const status = await s.app.inject({ method: 'GET', url: `${path('pinned.service')}/status` });
  t.is(status.statusCode, 200);
  t.regex(JSON.stringify(status.json()), /has left the cluster/);
  const journal = await s.app.inject({ method: 'GET', url: `${path('pinned.service')}/journal` });
  t.is(journal.statusCode, 502);
  t.deepEqual(s.asked, [], 'no request to the address of a machine bound to no lease');
  await s.registry.close();
});
