// The API's error shape holds for what fastify answers by itself, through the real fleetd binary,
// its TCP listener and a real etcd: a path segment over the router's limit (414), a URL that does
// not decode (400), a wrong method on a known path (405 with Allow), and machine metadata keys that
// would reach JavaScript's prototype chain (400), while a key like toString is an ordinary key.
import test from 'ava';
import { useEtcd } from '../helpers/etcd.js';
import { errorOf, startTcpFleetd, type TcpFleetd } from '../helpers/fleetd.js';

const etcd = useEtcd(test);
const MACHINE = 'e'.repeat(32);
let started: Promise<TcpFleetd> | undefined;
test.after.always(async () => {
  await (await started?.catch(() => undefined))?.stop();
});

/** A request to the one fleetd of this file, started on first use (after useEtcd's before hook). */
async function call(method: string, path: string, body?: unknown): Promise<Response> {
  started ??= startTcpFleetd({ etcdEndpoint: etcd().endpoint, machineId: MACHINE });
  return (await started).request(method, path, body);
}

test('a 10,000-character unit name: 414 in the API shape, naming the limit', async (t) => {
  const res = await call('GET', `/v1/units/${'a'.repeat(10_000)}.unit`);
  t.is(res.status, 414);
  const error = await errorOf(res);
  t.is(error.code, 'too_long');
  t.regex(error.message, /longer than 512 characters \(unit names are at most 255\)/);
});

test('a URL that does not decode (%FF%FE): 400 in the API shape', async (t) => {
  const res = await call('GET', '/v1/units/%FF%FE');
  t.is(res.status, 400);
  const error = await errorOf(res);
  t.is(error.code, 'invalid');
  t.regex(error.message, /bad percent-encoding/);
});

test('a wrong method on a known path: 405 with Allow; an unknown path stays 404', async (t) => {
  let res = await call('DELETE', '/v1/machines');
  t.is(res.status, 405);
  t.is(res.headers.get('allow'), 'GET, HEAD, PATCH');
  t.deepEqual(await errorOf(res), {
    code: 'method_not_allowed',
    message: 'DELETE is not allowed on /v1/machines; use GET or HEAD or PATCH',
  });
  res = await call('POST', '/v1/units/web.unit');
  t.is(res.status, 405);
  t.regex(res.headers.get('allow') ?? '', /^DELETE, GET, HEAD, PUT$/);
  res = await call('GET', '/v1/nothing-here');
  t.is(res.status, 404);
  t.is((await errorOf(res)).code, 'not_found');
});

for (const key of ['__proto__', 'constructor', 'prototype']) {
  test(`metadata key ${key}: 400, nothing stored`, async (t) => {
    const res = await call('PATCH', '/v1/machines', [
      { op: 'add', path: `/${MACHINE}/metadata/${key}`, value: 'x' },
    ]);
    t.is(res.status, 400);
    const error = await errorOf(res);
    t.is(error.code, 'invalid');
    t.regex(error.message, new RegExp(`"${key}" is reserved`));
    const machines = (await (await call('GET', '/v1/machines')).json()) as {
      machines: { metadata: Record<string, string> }[];
    };
    t.false(Object.hasOwn(machines.machines[0]?.metadata ?? {}, key));
  });
}

test('metadata key toString is an ordinary key: replace of it missing is 404, add then remove work', async (t) => {
  const path = `/${MACHINE}/metadata/toString`;
  let res = await call('PATCH', '/v1/machines', [{ op: 'replace', path, value: 'x' }]);
  t.is(res.status, 404, 'toString is not there to replace');
  res = await call('PATCH', '/v1/machines', [{ op: 'add', path, value: 'yes' }]);
  t.is(res.status, 200);
  const after = (await res.json()) as { machines: { metadata: Record<string, string> }[] };
  t.deepEqual(
    Object.entries(after.machines[0]?.metadata ?? {}).filter(([k]) => k === 'toString'),
    [['toString', 'yes']],
  );
  res = await call('PATCH', '/v1/machines', [{ op: 'remove', path }]);
  t.is(res.status, 200, 'removing a dynamic key is no conflict');
  res = await call('PATCH', '/v1/machines', [{ op: 'remove', path }]);
  t.is(res.status, 404, 'and then it is gone');
});
