// Every route and error of the API through inject(), on an in-memory registry with the real
// engine's scheduling pass; peers are other apps reached through inject().
import test from 'ava';
import type { LightMyRequestResponse } from 'fastify';
import {
  listUnitsResponse,
  machinesResponse,
  planResponse,
  statusResponse,
  unitDetail,
} from '../../src/api/schemas.js';
import { B, NOWHERE, ON_US, SIMPLE, startCluster, type Cluster } from './fixture.js';

type Method = 'GET' | 'PUT' | 'POST' | 'PATCH' | 'DELETE';

function call(c: Cluster, method: Method, url: string, body?: unknown, host: 'a' | 'b' = 'a') {
  return c.apps[host].inject({ method, url, ...(body === undefined ? {} : { payload: body as object }) });
}

function errorOf(res: LightMyRequestResponse): { code: string; message: string } {
  return res.json<{ error: { code: string; message: string } }>().error;
}

async function withCluster(
  t: { teardown(fn: () => Promise<void>): void },
  options?: Parameters<typeof startCluster>[0],
): Promise<Cluster> {
  const c = await startCluster(options);
  t.teardown(() => c.close());
  return c;
}

test('submit, get the exact text back, resubmit, differ, replace keeping the target', async (t) => {
  const c = await withCluster(t);
  const text = SIMPLE + '# trailing comment without newline';
  let res = await call(c, 'PUT', '/v1/units/web.unit', { text, target: 'launched' });
  t.is(res.statusCode, 200, res.body);
  t.like(res.json(), { name: 'web.unit', target: 'launched', outcome: 'created' });

  res = await call(c, 'GET', '/v1/units/web.unit');
  t.is(res.statusCode, 200);
  const detail = unitDetail.parse(res.json());
  t.is(detail.text, text);
  t.is(detail.target, 'launched');

  res = await call(c, 'PUT', '/v1/units/web.unit', { text });
  t.like(res.json(), { outcome: 'unchanged', target: 'launched' });
  res = await call(c, 'PUT', '/v1/units/web.unit', { text: SIMPLE });
  t.like(res.json(), { outcome: 'differs', target: 'launched' });
  t.is(unitDetail.parse((await call(c, 'GET', '/v1/units/web.unit')).json()).text, text);

  res = await call(c, 'PUT', '/v1/units/web.unit', { text: SIMPLE, replace: true });
  t.like(res.json(), { outcome: 'replaced', target: 'launched' });
  t.is(unitDetail.parse((await call(c, 'GET', '/v1/units/web.unit')).json()).text, SIMPLE);

  res = await call(c, 'PUT', '/v1/units/web.unit', { target: 'loaded' });
  t.like(res.json(), { outcome: 'unchanged', target: 'loaded' });
});

test('templates: an instance is made from the submitted template; a template cannot be started', async (t) => {
  const c = await withCluster(t);
  t.is((await call(c, 'PUT', '/v1/units/app@.unit', { text: SIMPLE })).statusCode, 200);
  let res = await call(c, 'PUT', '/v1/units/app@7.unit', { target: 'launched' });
  t.is(res.statusCode, 200, res.body);
  t.like(res.json(), { name: 'app@7.unit', outcome: 'created', template: 'app@.unit', target: 'launched' });
  t.is(unitDetail.parse((await call(c, 'GET', '/v1/units/app@7.unit')).json()).text, SIMPLE);

  res = await call(c, 'PUT', '/v1/units/app@.unit', { target: 'launched' });
  t.is(res.statusCode, 400);
  t.is(
    errorOf(res).message,
    'app@.unit is a template and cannot be started; use an instance of it, such as app@1.unit',
  );

  res = await call(c, 'PUT', '/v1/units/db@1.unit', { target: 'launched' });
  t.is(res.statusCode, 404);
  t.deepEqual(errorOf(res), {
    code: 'not_found',
    message:
      'unit db@1.unit is not submitted, and neither is its template db@.unit; submit its unit file first (fleetts submit db@.unit)',
  });
});

test('batch submit validates every unit before writing any', async (t) => {
  const c = await withCluster(t);
  const bad = '[Service]\nExecStart=/bin/true\n\n[X-Fleet]\nMachineOf=db.unit\nGlobal=true\n';
  let res = await call(c, 'PUT', '/v1/units', {
    units: [
      { name: 'ok.unit', text: SIMPLE, target: 'launched' },
      { name: 'bad.unit', text: bad },
    ],
  });
  t.is(res.statusCode, 400);
  t.deepEqual(errorOf(res), {
    code: 'unit_invalid',
    message: 'bad.unit:6: Global=true cannot be combined with MachineOf=',
  });
  t.is((await call(c, 'GET', '/v1/units/ok.unit')).statusCode, 404, 'nothing was written');

  res = await call(c, 'PUT', '/v1/units', {
    units: [
      { name: 'x.unit', text: SIMPLE },
      { name: 'x.unit', text: SIMPLE },
    ],
  });
  t.is(res.statusCode, 400);
  t.is(errorOf(res).message, 'unit x.unit is given twice');

  // A template and its instances in one batch.
  res = await call(c, 'PUT', '/v1/units', {
    units: [
      { name: 'w@.unit', text: SIMPLE },
      { name: 'w@1.unit', target: 'loaded' },
      { name: 'w@2.unit', target: 'launched' },
    ],
  });
  t.is(res.statusCode, 200, res.body);
  t.deepEqual(
    res
      .json<{ units: { name: string; outcome: string; target: string }[] }>()
      .units.map((u) => [u.name, u.outcome, u.target]),
    [
      ['w@.unit', 'created', 'inactive'],
      ['w@1.unit', 'created', 'loaded'],
      ['w@2.unit', 'created', 'launched'],
    ],
  );
});

const BAD_REQUESTS: readonly [string, Method, string, unknown, number, string, RegExp][] = [
  [
    'malformed unit file',
    'PUT',
    '/v1/units/m.unit',
    { text: '[Service]\nExecStart=\n[Nope]\n' },
    400,
    'unit_invalid',
    /^m\.unit:3: unknown section \[Nope\]/,
  ],
  [
    'bad unit name',
    'PUT',
    '/v1/units/a b.unit',
    { text: SIMPLE },
    400,
    'unit_invalid',
    /invalid unit name "a b\.unit"/,
  ],
  [
    'unknown body field',
    'PUT',
    '/v1/units/m.unit',
    { text: SIMPLE, targte: 'launched' },
    400,
    'invalid',
    /bad request body: .*targte/,
  ],
  [
    'bad target',
    'PUT',
    '/v1/units/m.unit',
    { target: 'running' },
    400,
    'invalid',
    /bad request body: target: /,
  ],
  [
    'unknown unit',
    'GET',
    '/v1/units/none.unit',
    undefined,
    404,
    'not_found',
    /^unit none\.unit is not submitted$/,
  ],
  [
    'destroy unknown unit',
    'DELETE',
    '/v1/units/none.unit',
    undefined,
    404,
    'not_found',
    /^unit none\.unit is not submitted$/,
  ],
  ['bad limit', 'GET', '/v1/units?limit=0', undefined, 400, 'invalid', /bad request query: limit: /],
  ['unknown route', 'GET', '/v2/units', undefined, 404, 'not_found', /^no route GET \/v2\/units$/],
  [
    'status of unknown unit',
    'GET',
    '/v1/units/none.unit/status',
    undefined,
    404,
    'not_found',
    /not submitted/,
  ],
  [
    'journal of unknown unit',
    'GET',
    '/v1/units/none.unit/journal',
    undefined,
    404,
    'not_found',
    /not submitted/,
  ],
  [
    'plan of a template',
    'POST',
    '/v1/plan',
    { units: [{ name: 'w@.unit' }] },
    400,
    'invalid',
    /w@\.unit is a template; plan an instance/,
  ],
  [
    'plan of unknown unit',
    'POST',
    '/v1/plan',
    { units: [{ name: 'q.unit' }] },
    404,
    'not_found',
    /unit q\.unit is not submitted; give its unit file/,
  ],
  [
    'plan of a bad file',
    'POST',
    '/v1/plan',
    { units: [{ name: 'q.unit', text: '[Service]\n' }] },
    400,
    'unit_invalid',
    /^q\.unit/,
  ],
  ['empty batch', 'PUT', '/v1/units', { units: [] }, 400, 'invalid', /units: /],
  [
    'patch of unknown machine',
    'PATCH',
    '/v1/machines',
    [{ op: 'add', path: '/zzzz/metadata/disk', value: 'ssd' }],
    404,
    'not_found',
    /machine zzzz is not in the cluster/,
  ],
  [
    'patch with bad path',
    'PATCH',
    '/v1/machines',
    [{ op: 'add', path: '/aaaa/disk', value: 'ssd' }],
    400,
    'invalid',
    /must be \/<machine id>\/metadata\/<key>/,
  ],
  [
    'replace of a missing key',
    'PATCH',
    '/v1/machines',
    [{ op: 'replace', path: '/aaaa/metadata/disk', value: 'ssd' }],
    404,
    'not_found',
    /has no metadata key disk to replace; use add/,
  ],
  [
    'remove of a configured key',
    'PATCH',
    '/v1/machines',
    [{ op: 'remove', path: '/aaaa/metadata/region' }],
    409,
    'conflict',
    /comes from its fleetd configuration/,
  ],
  [
    'add without value',
    'PATCH',
    '/v1/machines',
    [{ op: 'add', path: '/aaaa/metadata/disk' }],
    400,
    'invalid',
    /needs a value/,
  ],
];

for (const [title, method, url, body, status, code, message] of BAD_REQUESTS) {
  test(`error: ${title} → ${status} ${code}`, async (t) => {
    const c = await withCluster(t);
    const res = await call(c, method, url, body);
    t.is(res.statusCode, status, res.body);
    const error = errorOf(res);
    t.is(error.code, code);
    t.regex(error.message, message);
  });
}

test('error: a body that is not JSON is a 400 in the one error shape', async (t) => {
  const c = await withCluster(t);
  const res = await c.apps.a.inject({
    method: 'PUT',
    url: '/v1/units/x.unit',
    headers: { 'content-type': 'application/json' },
    payload: '{"text":',
  });
  t.is(res.statusCode, 400);
  t.is(errorOf(res).code, 'invalid');
});

test('503 while the host is not registered, and while etcd is unreachable', async (t) => {
  const c = await withCluster(t);
  c.registered = false;
  let res = await call(c, 'GET', '/v1/units');
  t.is(res.statusCode, 503);
  t.is(errorOf(res).code, 'not_registered');
  t.regex(errorOf(res).message, /fleetd on machine aaaa is not registered in the cluster/);
  res = await call(c, 'GET', '/v1/health');
  t.is(res.statusCode, 200);
  t.like(res.json(), { machine: 'aaaa', registered: false });
  // Peers ask for this host's lease exactly when it may be unregistered (docs/fencing.md): it answers.
  res = await call(c, 'GET', '/v1/self/lease');
  t.is(res.statusCode, 200);
  t.deepEqual(res.json(), { machine: 'aaaa', leaseAlive: false, renewedAgoMs: null, liveSinceMs: null });
  c.registered = true;
  c.registry.setFaults({ unavailable: true });
  res = await call(c, 'GET', '/v1/machines');
  t.is(res.statusCode, 503);
  t.is(errorOf(res).code, 'unavailable');
  c.registry.setFaults({});
  t.is((await call(c, 'GET', '/v1/machines')).statusCode, 200);
});

test('list units: sorted, paginated, filtered by name, with placement, state and why unplaced', async (t) => {
  const c = await withCluster(t);
  const units = [
    { name: 'e.unit', text: SIMPLE },
    { name: 'c.unit', text: ON_US, target: 'launched' },
    { name: 'a.unit', text: NOWHERE, target: 'launched' },
    { name: 'd.unit', text: ON_US, target: 'loaded' },
    { name: 'b.unit', text: SIMPLE },
  ];
  t.is((await call(c, 'PUT', '/v1/units', { units })).statusCode, 200);
  await c.schedule();
  await c.putStatus(B, 'c.unit', { pid: 42 });

  const page1 = listUnitsResponse.parse((await call(c, 'GET', '/v1/units?limit=2')).json());
  t.deepEqual(
    page1.units.map((u) => u.name),
    ['a.unit', 'b.unit'],
  );
  t.is(page1.nextPageToken, 'b.unit');
  const page2 = listUnitsResponse.parse((await call(c, 'GET', '/v1/units?limit=2&pageToken=b.unit')).json());
  t.deepEqual(
    page2.units.map((u) => u.name),
    ['c.unit', 'd.unit'],
  );
  const page3 = listUnitsResponse.parse((await call(c, 'GET', '/v1/units?limit=2&pageToken=d.unit')).json());
  t.deepEqual(
    page3.units.map((u) => u.name),
    ['e.unit'],
  );
  t.is(page3.nextPageToken, undefined);

  const some = listUnitsResponse.parse((await call(c, 'GET', '/v1/units?names=d.unit,a.unit,c.unit')).json());
  const [a, cu, d] = some.units;
  t.like(a, { name: 'a.unit', target: 'launched', state: 'inactive', placements: [] });
  t.is(a?.unschedulable?.reason !== undefined, true);
  t.regex(a?.unschedulable?.machines['aaaa'] ?? '', /region/);
  t.like(cu, {
    name: 'c.unit',
    state: 'launched',
    placements: [{ machine: 'bbbb', ip: '10.0.0.2', target: 'launched' }],
  });
  t.is(cu?.statuses[0]?.pid, 42);
  t.like(d, {
    name: 'd.unit',
    target: 'loaded',
    state: 'inactive',
    placements: [{ machine: 'bbbb', target: 'loaded' }],
  });

  const states = (await call(c, 'GET', '/v1/state?unit=c.unit')).json<{ states: { machine: string }[] }>();
  t.deepEqual(
    states.states.map((s) => s.machine),
    ['bbbb'],
  );
  const none = (await call(c, 'GET', '/v1/state?machine=aaaa')).json<{ states: unknown[] }>();
  t.deepEqual(none.states, []);
});

test('destroy removes a unit', async (t) => {
  const c = await withCluster(t);
  await call(c, 'PUT', '/v1/units/x.unit', { text: SIMPLE });
  const res = await call(c, 'DELETE', '/v1/units/x.unit');
  t.is(res.statusCode, 204);
  t.is(res.body, '');
  t.is((await call(c, 'GET', '/v1/units/x.unit')).statusCode, 404);
});

test('machines: list with unit counts; metadata add, replace and remove', async (t) => {
  const c = await withCluster(t);
  await call(c, 'PUT', '/v1/units/x.unit', { text: ON_US, target: 'launched' });
  await c.schedule();
  let list = machinesResponse.parse((await call(c, 'GET', '/v1/machines')).json());
  t.deepEqual(
    list.machines.map((m) => [m.id, m.ip, m.metadata, m.units, m.apiAddress]),
    [
      ['aaaa', '10.0.0.1', { region: 'eu' }, 0, 'http://a.test:4003'],
      ['bbbb', '10.0.0.2', { region: 'us' }, 1, 'http://b.test:4003'],
    ],
  );
  let res = await call(c, 'PATCH', '/v1/machines', [
    { op: 'add', path: '/aaaa/metadata/disk', value: 'ssd' },
    { op: 'replace', path: '/bbbb/metadata/region', value: 'eu' },
  ]);
  t.is(res.statusCode, 200, res.body);
  list = machinesResponse.parse(res.json());
  t.deepEqual(
    list.machines.map((m) => m.metadata),
    [{ region: 'eu', disk: 'ssd' }, { region: 'eu' }],
  );
  res = await call(c, 'PATCH', '/v1/machines', [{ op: 'remove', path: '/aaaa/metadata/disk' }]);
  t.deepEqual(machinesResponse.parse(res.json()).machines[0]?.metadata, { region: 'eu' });
});

test('plan: where units would go and why, without changing anything', async (t) => {
  const c = await withCluster(t);
  await call(c, 'PUT', '/v1/units/sub.unit', { text: SIMPLE });
  const res = await call(c, 'POST', '/v1/plan', {
    units: [{ name: 'us.unit', text: ON_US }, { name: 'mars.unit', text: NOWHERE }, { name: 'sub.unit' }],
  });
  t.is(res.statusCode, 200, res.body);
  const [us, mars, sub] = planResponse.parse(res.json()).units;
  t.deepEqual(us?.placedOn, ['bbbb']);
  t.like(us?.machines[0], { machine: 'aaaa', fits: false });
  t.regex(us?.machines[0]?.reason ?? '', /region/);
  t.like(us?.machines[1], { machine: 'bbbb', fits: true, rank: 1 });
  t.deepEqual(mars?.placedOn, []);
  t.is(mars?.decisions[0]?.kind, 'unschedulable');
  t.is(sub?.placedOn.length, 1);
  // Nothing was written.
  t.is((await call(c, 'GET', '/v1/units/us.unit')).statusCode, 404);
  t.like(unitDetail.parse((await call(c, 'GET', '/v1/units/sub.unit')).json()), {
    target: 'inactive',
    placements: [],
  });
});

test('status and journal: served by the unit’s own host, proxied from another', async (t) => {
  const c = await withCluster(t);
  await call(c, 'PUT', '/v1/units/x.unit', { text: ON_US, target: 'launched' });
  await c.schedule();
  await c.putStatus(B, 'x.unit', { pid: 7 });
  const hash = unitDetail.parse((await call(c, 'GET', '/v1/units/x.unit')).json()).hash;
  c.local.b.observed.set('x.unit', {
    unit: 'x.unit' as never,
    hash: hash as never,
    load: 'loaded',
    active: 'active',
    sub: 'running',
    pid: 7,
    since: '2026-01-01T00:00:01.000Z',
    lastExit: { code: 1, at: '2026-01-01T00:00:00.500Z' },
  });
  c.local.b.journals.set('x.unit', ['one', 'two', 'three']);

  for (const host of ['a', 'b'] as const) {
    const res = await call(c, 'GET', '/v1/units/x.unit/status?lines=2', undefined, host);
    t.is(res.statusCode, 200, res.body);
    const s = statusResponse.parse(res.json());
    t.is(s.unit.state, 'launched');
    t.is(s.hosts.length, 1);
    t.like(s.hosts[0], {
      machine: 'bbbb',
      ip: '10.0.0.2',
      observed: { pid: 7, lastExit: { code: 1 } },
      log: ['two', 'three'],
    });

    const j = await call(c, 'GET', '/v1/units/x.unit/journal?lines=5', undefined, host);
    t.is(j.statusCode, 200);
    t.is(j.headers['content-type'], 'text/plain; charset=utf-8');
    t.is(j.body, 'one\ntwo\nthree\n');
  }
  const wrong = await call(c, 'GET', '/v1/units/x.unit/journal?machine=aaaa');
  t.is(wrong.statusCode, 404);
  t.is(errorOf(wrong).message, 'unit x.unit is not placed on machine aaaa; it is on: bbbb');
});

test('status of an unplaced unit says why; journal of it is a clear 404', async (t) => {
  const c = await withCluster(t);
  await call(c, 'PUT', '/v1/units/m.unit', { text: NOWHERE, target: 'launched' });
  await c.schedule();
  const s = statusResponse.parse((await call(c, 'GET', '/v1/units/m.unit/status')).json());
  t.deepEqual(s.hosts, []);
  t.truthy(s.unit.unschedulable);
  t.regex(s.unit.unschedulable?.machines['bbbb'] ?? '', /region/);
  const j = await call(c, 'GET', '/v1/units/m.unit/journal');
  t.is(j.statusCode, 404);
  t.is(
    errorOf(j).message,
    'unit m.unit is not placed on any machine, so it has no journal; start it first (fleetts start m.unit)',
  );
});

test('status degrades to the registry view when the unit’s host cannot be reached; journal is 502', async (t) => {
  const c = await withCluster(t, { bAddress: 'http://gone.test:4003' });
  await call(c, 'PUT', '/v1/units/x.unit', { text: ON_US, target: 'launched' });
  await c.schedule();
  await c.putStatus(B, 'x.unit');
  const s = statusResponse.parse((await call(c, 'GET', '/v1/units/x.unit/status')).json());
  t.like(s.hosts[0], { machine: 'bbbb', observed: null, log: [] });
  t.regex(
    s.hosts[0]?.error ?? '',
    /cannot reach machine bbbb at http:\/\/gone\.test:4003: connection refused/,
  );
  t.is(s.unit.statuses[0]?.active, 'active');
  const j = await call(c, 'GET', '/v1/units/x.unit/journal');
  t.is(j.statusCode, 502);
  t.is(errorOf(j).code, 'unreachable');
});

test('local routes: a unit this host does not know', async (t) => {
  const c = await withCluster(t);
  const res = await call(c, 'GET', '/v1/local/units/x.unit/status');
  t.deepEqual(res.json(), { machine: 'aaaa', observed: null, log: [] });
  const j = await call(c, 'GET', '/v1/local/units/x.unit/journal');
  t.is(j.statusCode, 404);
  t.is(errorOf(j).message, 'unit x.unit is not known on machine aaaa');
});

const AUTH_CASES: readonly [string, Record<string, string>, number, string | undefined][] = [
  ['no token', {}, 401, 'this fleetd requires a bearer token (fleetts --token, or FLEETTS_TOKEN)'],
  [
    'wrong token',
    { authorization: 'Bearer nope' },
    401,
    'the bearer token was refused; check --token / FLEETTS_TOKEN',
  ],
  [
    'not a bearer',
    { authorization: 'Basic czNjcmV0' },
    401,
    'this fleetd requires a bearer token (fleetts --token, or FLEETTS_TOKEN)',
  ],
  ['right token', { authorization: 'Bearer s3cret-s3cret-s3cret' }, 200, undefined],
];

for (const [title, headers, status, message] of AUTH_CASES) {
  test(`token auth: ${title} → ${status}`, async (t) => {
    const c = await withCluster(t, { auth: { kind: 'token', token: 's3cret-s3cret-s3cret' } });
    const res = await c.apps.a.inject({ method: 'GET', url: '/v1/machines', headers });
    t.is(res.statusCode, status);
    if (message !== undefined) t.deepEqual(errorOf(res), { code: 'unauthorized', message });
  });
}

test('the OpenAPI document covers every route with its schemas and the error shape', async (t) => {
  const c = await withCluster(t);
  const res = await call(c, 'GET', '/openapi.json');
  t.is(res.statusCode, 200);
  const doc = res.json<{
    openapi: string;
    paths: Record<
      string,
      Record<string, { operationId: string; responses: Record<string, unknown>; requestBody?: unknown }>
    >;
    components: { schemas: Record<string, unknown> };
  }>();
  t.is(doc.openapi, '3.1.0');
  const ops = Object.entries(doc.paths).flatMap(([path, methods]) =>
    Object.entries(methods).map(([m, op]) => `${m.toUpperCase()} ${path} ${op.operationId}`),
  );
  t.deepEqual(ops.sort(), [
    'DELETE /v1/machines/{id}/drain undrainMachine',
    'DELETE /v1/units/{name} deleteUnit',
    'GET /v1/events streamEvents',
    'GET /v1/health health',
    'GET /v1/local/units/{name}/journal localUnitJournal',
    'GET /v1/local/units/{name}/status localUnitStatus',
    'GET /v1/machines listMachines',
    'GET /v1/machines/{id}/drain getDrain',
    'GET /v1/self/heartbeat selfHeartbeat',
    'GET /v1/self/lease selfLease',
    'GET /v1/self/peers selfPeers',
    'GET /v1/services listServiceInstances',
    'GET /v1/state listUnitStates',
    'GET /v1/units listUnits',
    'GET /v1/units/{name} getUnit',
    'GET /v1/units/{name}/journal unitJournal',
    'GET /v1/units/{name}/rollout getRollout',
    'GET /v1/units/{name}/status unitStatus',
    'PATCH /v1/machines patchMachineMetadata',
    'POST /v1/plan plan',
    'PUT /v1/machines/{id}/drain drainMachine',
    'PUT /v1/units putUnits',
    'PUT /v1/units/{name} putUnit',
    'PUT /v1/units/{name}/rollout beginRollout',
  ]);
  t.truthy(doc.components.schemas['Error']);
  t.regex(
    JSON.stringify(doc.paths['/v1/events']?.['get']?.responses['200']),
    /text\/event-stream.*unit\.moved/,
    'the event stream documents its messages',
  );
  const put = doc.paths['/v1/units/{name}']?.['put'];
  t.truthy(put?.requestBody);
  t.deepEqual(Object.keys(put?.responses ?? {}).sort(), [
    '200',
    '400',
    '401',
    '404',
    '409',
    '422',
    '503',
    '507',
  ]);
  t.regex(JSON.stringify(doc.paths['/v1/units']?.['get']), /nextPageToken/);
});
