// `fleetts galera member` in-process: input errors as one-line messages with exit codes 2/1, and a
// real one-member cluster (mariadbd + galera-4 on loopback, real etcd): bootstrap, clustercheck
// 200 once Synced, the history entry, and a clean stop on abort.
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { run } from '../../src/cli/main.js';
import type { Output } from '../../src/cli/output.js';
import { systemClock } from '../../src/lib/clock.js';
import { EtcdKv } from '../../src/registry/etcd-kv.js';
import { GaleraStore } from '../../src/galera/galera-store.js';
import { randomPrefix, useEtcd } from '../helpers/etcd.js';
import { freePorts } from '../helpers/ports.js';

const etcd = useEtcd(test);
let root = '';

test.before(async () => {
  root = await mkdtemp(join(tmpdir(), 'fleetts-galera-cli-'));
  await chmod(root, 0o755); // mariadbd runs as mysql: it must reach the data dir
});
test.after.always(async () => {
  if (root !== '') await rm(root, { recursive: true, force: true });
});

function capture(): Output & { text(): string } {
  let text = '';
  return {
    out: (s: string) => void (text += s + '\n'),
    err: (s: string) => void (text += s + '\n'),
    write: (s: string) => void (text += s),
    isTTY: false,
    progress: () => undefined,
    text: () => text,
  };
}

const base = (dir: string): string[] => [
  'galera',
  'member',
  '--host',
  '127.0.0.1',
  '--instance',
  'db1',
  '--data-dir',
  join(dir, 'data'),
  '--run-dir',
  join(dir, 'run'),
];

const cases: { name: string; args: (dir: string) => string[]; code: number; message: RegExp }[] = [
  {
    name: 'a bad cluster name',
    args: (d) => [...base(d), '--cluster', 'my cluster!'],
    code: 2,
    message: /--cluster 'my cluster!' must be 1-32 letters/,
  },
  {
    name: 'a host that is not an address',
    args: (d) => [...base(d).map((a) => (a === '127.0.0.1' ? 'db.example' : a))],
    code: 2,
    message: /--host 'db.example' must be this host's IPv4 address/,
  },
  {
    name: 'a relative data dir',
    args: (d) => [...base(d).map((a) => (a === join(d, 'data') ? 'data' : a))],
    code: 2,
    message: /--data-dir 'data' must be an absolute path/,
  },
  {
    name: '--runtime docker without an image',
    args: (d) => [...base(d), '--runtime', 'docker'],
    code: 2,
    message: /--runtime docker needs --image/,
  },
  {
    name: 'a missing mariadbd',
    args: (d) => [...base(d), '--mariadbd', '/nonexistent/mariadbd'],
    code: 1,
    message:
      /mariadbd not found at \/nonexistent\/mariadbd: install it \(apt-get install mariadb-server galera-4 rsync\)/,
  },
  {
    name: 'a data dir that cannot be created',
    args: (d) => [...base(d).map((a) => (a === join(d, 'data') ? join(d, 'file', 'data') : a))],
    code: 1,
    message: /cannot use the data dir .*file\/data: ENOTDIR/,
  },
];

for (const c of cases) {
  test(`input error: ${c.name}`, async (t) => {
    const dir = await mkdtemp(join(root, 'case-'));
    await writeFile(join(dir, 'file'), 'not a directory');
    const out = capture();
    const code = await run([...c.args(dir), '--etcd-endpoints', etcd().endpoint], out);
    t.is(code, c.code, out.text());
    t.regex(out.text(), c.message);
    t.is(out.text().trim().split('\n').length, 1, 'one line, no stack trace');
  });
}

test('one real member bootstraps, answers the clustercheck when Synced and stops cleanly', async (t) => {
  t.timeout(120_000);
  if (process.getuid?.() !== 0) return t.fail('this test runs mariadbd as the mysql user: run it as root');
  const dir = await mkdtemp(join(root, 'real-'));
  await chmod(dir, 0o755);
  // Three distinct ports: three freePort() calls one after the other may return the same one.
  const [port, checkPort, gcommPort] = await freePorts(3);
  const prefix = randomPrefix();
  const stop = new AbortController();
  const out = capture();
  const running = run(
    [
      ...base(dir),
      '--cluster',
      'solo',
      '--port',
      String(port),
      '--check-port',
      String(checkPort),
      `--mariadbd-arg=--wsrep-provider-options=gcache.size=16M;gmcast.listen_addr=tcp://127.0.0.1:${gcommPort}`,
      '--etcd-endpoints',
      etcd().endpoint,
      '--etcd-key-prefix',
      prefix,
      '--log-level',
      'warn',
    ],
    out,
    { signal: stop.signal },
  );
  let status = 0;
  const deadline = Date.now() + 90_000;
  while (status !== 200 && Date.now() < deadline) {
    status = await fetch(`http://127.0.0.1:${checkPort}/`)
      .then((r) => r.status)
      .catch(() => 0);
    if (status !== 200) await systemClock.sleep(250);
  }
  t.is(status, 200, `clustercheck never said Synced: ${out.text()}`);
  const kv = new EtcdKv({ endpoints: [etcd().endpoint] }, systemClock);
  const store = new GaleraStore({ kv, clock: systemClock, prefix, cluster: 'solo' });
  const history = await store.listBootstraps();
  t.is(history.length, 1);
  t.is(history[0]?.instance, 'db1');
  t.deepEqual(
    (await store.listMembers()).map((m) => [m.instance, m.role]),
    [['db1', 'bootstrap']],
  );
  stop.abort();
  t.is(await running, 0, out.text());
  t.deepEqual(await store.listMembers(), [], 'the member key goes with the stopped member');
  kv.close();
});

test('force-bootstrap records the operator choice; positions shows it; a bad instance is a usage error', async (t) => {
  const prefix = randomPrefix();
  const etcdArgs = ['--etcd-endpoints', etcd().endpoint, '--etcd-key-prefix', prefix];
  const bad = capture();
  t.is(await run(['galera', 'force-bootstrap', '--instance', 'my sql', ...etcdArgs], bad), 2);
  t.regex(bad.text(), /--instance 'my sql' may only hold letters, digits/);
  const out = capture();
  t.is(
    await run(['galera', 'force-bootstrap', '--instance', 'mysql@2.unit', ...etcdArgs], out),
    0,
    out.text(),
  );
  t.regex(out.text(), /mysql@2.unit bootstraps cluster 'mysql' the next time no member runs/);
  const kv = new EtcdKv({ endpoints: [etcd().endpoint] }, systemClock);
  const store = new GaleraStore({ kv, clock: systemClock, prefix, cluster: 'mysql' });
  t.is((await store.forcedBootstrap())?.instance, 'mysql@2.unit');
  kv.close();
  const listed = capture();
  t.is(await run(['galera', 'positions', ...etcdArgs], listed), 0, listed.text());
  t.regex(listed.text(), /^forced bootstrap: mysql@2.unit \(set /m);
});
