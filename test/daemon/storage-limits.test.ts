// What one client may store (issue 14): fleetd refuses a submit that would take the cluster over
// --max-units or --max-unit-file-bytes, before writing anything, with 507 and a message naming the
// limit; what is already stored still answers, and a destroy makes room again. Real fleetd binary,
// TCP API and etcd; the CLI shows the refusal as one line and exit 1.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { runBin } from '../helpers/cli.js';
import { useEtcd } from '../helpers/etcd.js';
import { errorOf, startTcpFleetd, TEST_TOKEN, type TcpFleetd } from '../helpers/fleetd.js';

const etcd = useEtcd(test);
const fleetds: TcpFleetd[] = [];
test.after.always(async () => {
  for (const f of fleetds) await f.stop();
});

async function fleetd(machine: string, args: string[]): Promise<TcpFleetd> {
  const f = await startTcpFleetd({ etcdEndpoint: etcd().endpoint, machineId: machine.repeat(32), args });
  fleetds.push(f);
  return f;
}

const service = (n: number, pad = 0): string =>
  `[Service]\nExecStart=/bin/sleep ${1000 + n}\n${pad > 0 ? `# ${'x'.repeat(pad)}\n` : ''}`;

async function unitNames(f: TcpFleetd): Promise<string[]> {
  const res = await f.request('GET', '/v1/units');
  return ((await res.json()) as { units: { name: string }[] }).units.map((u) => u.name);
}

test('--max-units: a batch over the limit is refused whole with 507; destroy makes room', async (t) => {
  const f = await fleetd('a', ['--max-units', '4']);
  const first = await f.request('PUT', '/v1/units', {
    units: [1, 2, 3].map((n) => ({ name: `u${n}.service`, text: service(n) })),
  });
  t.is(first.status, 200);
  const over = await f.request('PUT', '/v1/units', {
    units: [4, 5].map((n) => ({ name: `u${n}.service`, text: service(n) })),
  });
  t.is(over.status, 507);
  const err = await errorOf(over);
  t.is(err.code, 'storage_limit');
  t.regex(err.message, /holds 3 units and this submit adds 2: over the limit of 4 \(fleetd --max-units\)/);
  t.deepEqual(
    await unitNames(f),
    ['u1.service', 'u2.service', 'u3.service'],
    'nothing of the refused batch was written',
  );
  // What is stored still works: resubmitting it and changing its target add nothing.
  const same = await f.request('PUT', '/v1/units/u1.service', { text: service(1), target: 'loaded' });
  t.is(same.status, 200);
  t.is(
    (await f.request('PUT', '/v1/units', { units: [{ name: 'u4.service', text: service(4) }] })).status,
    200,
  );
  t.is(
    (await f.request('PUT', '/v1/units', { units: [{ name: 'u5.service', text: service(5) }] })).status,
    507,
  );
  t.is((await f.request('DELETE', '/v1/units/u4.service')).status, 204);
  t.is(
    (await f.request('PUT', '/v1/units', { units: [{ name: 'u5.service', text: service(5) }] })).status,
    200,
  );
});

test('--max-unit-file-bytes: new texts count, a text already stored (template instances) does not', async (t) => {
  const f = await fleetd('b', ['--max-unit-file-bytes', '5000']);
  t.is((await f.request('PUT', '/v1/units/big1.service', { text: service(1, 2000) })).status, 200);
  t.is((await f.request('PUT', '/v1/units/big2.service', { text: service(2, 2000) })).status, 200);
  const over = await f.request('PUT', '/v1/units/big3.service', { text: service(3, 2000) });
  t.is(over.status, 507);
  t.regex(
    (await errorOf(over)).message,
    /bytes of unit files and this submit adds \d+: over the limit of 5000 \(fleetd --max-unit-file-bytes\)/,
  );
  // Instances share their template's text: stored once, so they fit.
  const template = await f.request('PUT', '/v1/units', {
    units: [
      { name: 'big@.service', text: service(1, 2000) },
      ...[1, 2, 3].map((n) => ({ name: `big@${n}.service` })),
    ],
  });
  t.is(template.status, 200, await template.text());
  t.deepEqual(await unitNames(f), [
    'big1.service',
    'big2.service',
    'big@.service',
    'big@1.service',
    'big@2.service',
    'big@3.service',
  ]);
});

test('the CLI shows a refusal as one line naming the limit, and exits 1', async (t) => {
  const f = await fleetd('c', ['--max-units', '1']);
  const dir = await mkdtemp(join(tmpdir(), 'limits-cli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'one.service'), service(1));
  await writeFile(join(dir, 'two.service'), service(2));
  const env = { FLEETTS_ENDPOINT: f.url, FLEETTS_TOKEN: TEST_TOKEN };
  const ok = await runBin('fleetts', ['submit', join(dir, 'one.service')], { env });
  t.is(ok.code, 0, ok.stderr);
  const refused = await runBin('fleetts', ['submit', join(dir, 'two.service')], { env });
  t.is(refused.code, 1);
  t.regex(refused.stderr, /over the limit of 1 \(fleetd --max-units\)/);
  t.is(refused.stderr.trim().split('\n').length, 1, refused.stderr);
  t.notRegex(refused.stderr, /\n\s+at /, 'no stack trace');
});

test('a bad limit is a usage error: one line, exit 2', async (t) => {
  const r = await runBin('fleetd', ['--max-units', 'many', '--etcd-endpoints', etcd().endpoint]);
  t.is(r.code, 2);
  t.regex(r.stderr, /max-units.*whole number/);
});
