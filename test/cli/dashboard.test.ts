// `fleetts dashboard` in-process: its settings' errors, the address of a TCP fleetd, and the
// loopback port it serves a unix socket on (its token, reads only, the first socket that answers),
// in front of the real API app on a unix socket. The page itself: test/dev/dashboard-browser.test.ts.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { run } from '../../src/cli/main.js';
import { BufferOutput } from '../../src/cli/output.js';
import { waitFor } from '../helpers/wait.js';
import { startCluster } from '../api/fixture.js';

test('a --listen off loopback, or not host:port, is a usage error', async (t) => {
  for (const [listen, message] of [
    ['0.0.0.0:8080', /--listen 0\.0\.0\.0:8080: the dashboard port is served on loopback only/],
    ['8080', /--listen "8080" is not host:port; e\.g\. 127\.0\.0\.1:8080/],
  ] as const) {
    const out = new BufferOutput();
    const code = await run(['--endpoint', 'unix:///nowhere.sock', 'dashboard', '--listen', listen], out);
    t.is(code, 2, listen);
    t.regex(out.stderr, message);
  }
});

test('with a TCP endpoint it prints that fleetd’s /ui', async (t) => {
  const out = new BufferOutput();
  t.is(await run(['--endpoint', 'http://10.0.0.2:4003', 'dashboard'], out), 0);
  t.regex(out.stdout, /^dashboard: http:\/\/10\.0\.0\.2:4003\/ui /);
});

test('on unix sockets: serves the page, passes reads with its token to the first socket that answers', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'fleetts-dashboard-'));
  const c = await startCluster();
  const live = join(dir, 'live.sock');
  await c.apps.a.listen({ path: live });
  const stop = new AbortController();
  t.teardown(async () => {
    stop.abort();
    await c.close();
    await rm(dir, { recursive: true, force: true });
  });
  const out = new BufferOutput();
  const serving = run(
    ['--endpoint', `unix://${join(dir, 'dead.sock')},unix://${live}`, 'dashboard', '--listen', '127.0.0.1:0'],
    out,
    { signal: stop.signal },
  );
  const [, url, token] = await waitFor(
    'the address and token',
    () => /^dashboard: (\S+)\ntoken: +(\S+)/m.exec(out.stdout) ?? undefined,
  );
  const at = (path: string) => new URL(path, url ?? '');
  const page = await fetch(at('/ui'));
  t.is(page.status, 200);
  t.regex(await page.text(), /<script src="\/ui\/app\.js"/);
  t.is((await fetch(at('/v1/machines'))).status, 401);
  t.is((await fetch(at('/v1/machines'), { headers: { authorization: 'Bearer wrong' } })).status, 401);
  const auth = { authorization: `Bearer ${token ?? ''}` };
  const machines = await fetch(at('/v1/machines'), { headers: auth });
  t.is(machines.status, 200);
  t.deepEqual(((await machines.json()) as { machines: { id: string }[] }).machines.map((m) => m.id).sort(), [
    'aaaa',
    'bbbb',
  ]);
  const put = await fetch(at('/v1/units/x.unit'), { method: 'PUT', headers: auth, body: '{}' });
  t.is(put.status, 405);
  stop.abort();
  t.is(await serving, 0);
});
