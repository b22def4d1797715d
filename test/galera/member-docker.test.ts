// The container form of a Galera member for real: `fleetts galera member --runtime docker --image
// fleetts/mariadb:latest` (the real binary, as units/mysql@.unit runs it) on loopback with a real
// etcd: bootstrap through `mariadb-install-db` in a one-shot container, clustercheck 200 once
// Synced, the init SQL through `docker exec`, SQL from the host's client over TCP and over the
// bind-mounted socket, and SIGTERM to the wrapper: exit 0, the container gone, the member key gone.
// Then the restarts Restart=always makes: on the same data dir, and after the wrapper was killed
// (SIGKILL, TimeoutStopSec's end) with its container left running. And a second member, on a
// loopback address of its own, joining the first by rsync SST inside the image.
import { execFile, type ChildProcess } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { chmod, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { systemClock } from '../../src/lib/clock.js';
import { EtcdKv } from '../../src/registry/etcd-kv.js';
import { GaleraStore } from '../../src/galera/galera-store.js';
import { ensureDockerImages, removeContainersNamed } from '../helpers/docker.js';
import { randomPrefix, useEtcd } from '../helpers/etcd.js';
import { freePort } from '../helpers/ports.js';
import { startMember, untilSynced, type Member, type MemberSetup } from './member-process.js';

const exec = promisify(execFile);
const IMAGE = 'fleetts/mariadb:latest';
const etcd = useEtcd(test);
const container = `galera-test-${process.pid}-${randomBytes(3).toString('hex')}`;
let root = '';
const members: ChildProcess[] = [];
const containers: string[] = [];

test.before(async () => {
  if (process.getuid?.() !== 0)
    throw new Error('this test needs root (dockerd, bind mounts): run it as root');
  await ensureDockerImages(['mariadb']);
  root = await mkdtemp(join(tmpdir(), 'fleetts-galera-docker-'));
});

test.after.always(async () => {
  for (const m of members) if (m.exitCode === null && m.signalCode === null) m.kill('SIGKILL');
  // Whatever happened: the server's container and the one-shot mariadb-install-db container.
  removeContainersNamed(containers);
  if (root !== '') await rm(root, { recursive: true, force: true });
});

async function containerExists(name: string): Promise<boolean> {
  return exec('docker', ['container', 'inspect', name]).then(
    () => true,
    () => false,
  );
}

interface Setup extends MemberSetup {
  readonly container: string;
  readonly initSql?: string;
}

/** A member of the container form: the image, its container name, --init-sql when given. */
function startDockerMember(s: Setup): Member {
  const m = startMember(s, [
    '--runtime',
    'docker',
    '--image',
    IMAGE,
    '--container',
    s.container,
    ...(s.initSql === undefined ? [] : ['--init-sql', s.initSql]),
  ]);
  containers.push(s.container, `${s.container}-init`, `${s.container}-recover`);
  members.push(m.child);
  return m;
}

test('a member in the mariadb image bootstraps, serves SQL, stops cleanly, and restarts on its data', async (t) => {
  t.timeout(120_000);
  const password = `pw-${randomBytes(6).toString('hex')}`;
  const initSql = join(root, 'init.sql');
  const s: Setup = {
    cluster: 'solo',
    instance: 'db1',
    host: '127.0.0.1',
    port: await freePort(),
    checkPort: await freePort(),
    dataDir: join(root, 'solo', 'data'),
    runDir: join(root, 'solo', 'run'),
    container,
    etcdEndpoint: etcd().endpoint,
    prefix: randomPrefix(),
    gcomm: `127.0.0.1:${await freePort()}`,
    initSql,
  };
  await writeFile(
    initSql,
    `CREATE DATABASE IF NOT EXISTS farm;
CREATE TABLE IF NOT EXISTS farm.hits (id INT PRIMARY KEY, what VARCHAR(32)) ENGINE=InnoDB;
CREATE USER IF NOT EXISTS 'probe'@'127.0.0.1' IDENTIFIED BY '${password}';
GRANT ALL ON farm.* TO 'probe'@'127.0.0.1';
`,
  );
  await chmod(initSql, 0o600);
  const sql = (q: string): Promise<string> =>
    exec('mariadb', [
      '--no-defaults',
      '--protocol=TCP',
      '-h',
      '127.0.0.1',
      '-P',
      String(s.port),
      '-u',
      'probe',
      `-p${password}`,
      '-N',
      '-B',
      '-e',
      q,
    ]).then((r) => r.stdout.trim());
  /** The init SQL runs after Synced (the lock is released after it): poll for its user. */
  const sqlSoon = async (q: string, m: Member): Promise<string> => {
    let last = '';
    const deadline = Date.now() + 20_000;
    for (;;) {
      const r = await sql(q).then(
        (out) => ({ out }),
        (err: Error) => ((last = err.message), undefined),
      );
      if (r !== undefined) return r.out;
      if (Date.now() > deadline) throw new Error(`no SQL over TCP: ${last}\n${m.log()}`);
      await systemClock.sleep(250);
    }
  };
  const kv = new EtcdKv({ endpoints: [etcd().endpoint] }, systemClock);
  const store = new GaleraStore({ kv, clock: systemClock, prefix: s.prefix, cluster: 'solo' });
  try {
    // 1. A new cluster: install-db in a one-shot container, then the server in the named one.
    const first = startDockerMember(s);
    t.is(await untilSynced(first, s), 200, `clustercheck never said Synced:\n${first.log()}`);
    t.true(await containerExists(container), 'the server runs in the named container');
    t.false(await containerExists(`${container}-init`), 'the mariadb-install-db container is gone');
    t.deepEqual(
      (await store.listBootstraps()).map((b) => [b.instance, b.address]),
      [['db1', `127.0.0.1:${s.port}`]],
    );
    t.deepEqual(
      (await store.listMembers()).map((m) => [m.instance, m.role]),
      [['db1', 'bootstrap']],
    );
    await sqlSoon("INSERT INTO farm.hits VALUES (1, 'from the host')", first);
    t.is(await sql('SELECT what FROM farm.hits WHERE id = 1'), 'from the host');
    // root@localhost authenticates by unix socket: the host's root through the bind-mounted socket.
    const viaSocket = await exec('mariadb', [
      '--no-defaults',
      `--socket=${join(s.runDir, 'mysqld.sock')}`,
      '-N',
      '-B',
      '-e',
      "SELECT COUNT(*) FROM farm.hits; SHOW GLOBAL STATUS LIKE 'wsrep_cluster_size'",
    ]);
    t.deepEqual(viaSocket.stdout.trim().split('\n'), ['1', 'wsrep_cluster_size\t1']);
    // The image's mysql user (fixed ids 3306) owns the host's dirs, and no other host user gets in.
    for (const path of [s.dataDir, s.runDir, join(s.dataDir, 'ibdata1')]) {
      const st = await stat(path);
      t.deepEqual([st.uid, st.gid], [3306, 3306], `owner of ${path}`);
    }
    t.is((await stat(s.dataDir)).mode & 0o777, 0o750, 'the data dir is 0750');
    t.is((await stat(s.runDir)).mode & 0o777, 0o750, 'the run dir is 0750');
    first.child.kill('SIGTERM');
    t.deepEqual(await first.exited, { code: 0, signal: null }, first.log());
    t.false(await containerExists(container), 'docker run --rm removed the container');
    t.deepEqual(await store.listMembers(), [], 'the member key goes with the stopped member');
    t.regex(first.log(), /galera\.bootstrap/);
    t.regex(first.log(), /galera\.server_exit/);

    // 2. Restarted on the same data dir: bootstraps from it (no install-db), the row is there.
    const second = startDockerMember(s);
    t.is(await untilSynced(second, s), 200, `no Synced after a restart:\n${second.log()}`);
    t.is(await sqlSoon('SELECT what FROM farm.hits WHERE id = 1', second), 'from the host');
    t.notRegex(second.log(), /galera\.install_db/);
    // The init SQL (DDL, replicated in total order) runs again after Synced and could abort a
    // concurrent INSERT with a deadlock error: write once the bootstrap is done (lock released).
    const doneBy = Date.now() + 30_000;
    while (!/galera\.lock_released/.test(second.log()) && Date.now() < doneBy) await systemClock.sleep(100);
    await sql("INSERT INTO farm.hits VALUES (2, 'before the kill')");
    // The wrapper killed outright (TimeoutStopSec's SIGKILL): its container runs on, orphaned.
    second.child.kill('SIGKILL');
    await second.exited;
    t.true(await containerExists(container), 'the orphaned container outlives its wrapper');

    // 3. The next start removes the orphan by name and bootstraps from the same data dir
    //    (grastate.dat marked safe_to_bootstrap: the orphan was killed, not shut down).
    const third = startDockerMember(s);
    t.is(await untilSynced(third, s), 200, `no Synced after the orphan:\n${third.log()}`);
    t.is(await sqlSoon('SELECT COUNT(*) FROM farm.hits', third), '2');
    t.regex(third.log(), /safe_to_bootstrap/);
    t.is((await store.listBootstraps()).length, 3, 'each start of the only member was a bootstrap');
    third.child.kill('SIGTERM');
    t.deepEqual(await third.exited, { code: 0, signal: null }, third.log());
    t.false(await containerExists(container), 'the container is gone');
  } finally {
    kv.close();
  }
});

test('a second member in the image joins the first by rsync SST and reads its rows', async (t) => {
  t.timeout(120_000);
  // Each member on a loopback address of its own: Galera's fixed ports (4568 IST, 4444 SST) are
  // per address, as on real hosts, and the joiner reaches its peer at <address>:4567.
  const net = `127.${randomInt(100, 250)}.${randomInt(0, 250)}`;
  const prefix = randomPrefix();
  const setup = async (n: number): Promise<Setup> => {
    const host = `${net}.${n + 1}`;
    return {
      cluster: 'pair',
      instance: `db${n}`,
      host,
      port: await freePort(),
      checkPort: await freePort(),
      dataDir: join(root, `pair-${n}`, 'data'),
      runDir: join(root, `pair-${n}`, 'run'),
      container: `${container}-pair${n}`,
      etcdEndpoint: etcd().endpoint,
      prefix,
      gcomm: `${host}:4567`,
    };
  };
  const [a, b] = [await setup(1), await setup(2)];
  const root1 = (q: string, s: Setup): Promise<string> =>
    exec('mariadb', ['--no-defaults', `--socket=${join(s.runDir, 'mysqld.sock')}`, '-N', '-B', '-e', q]).then(
      (r) => r.stdout.trim(),
    );
  const kv = new EtcdKv({ endpoints: [etcd().endpoint] }, systemClock);
  const store = new GaleraStore({ kv, clock: systemClock, prefix, cluster: 'pair' });
  try {
    const first = startDockerMember(a);
    t.is(await untilSynced(first, a), 200, `the first member never said Synced:\n${first.log()}`);
    await root1(
      "CREATE DATABASE farm; CREATE TABLE farm.t (id INT PRIMARY KEY, v VARCHAR(20)); INSERT INTO farm.t VALUES (1, 'before the join')",
      a,
    );
    const second = startDockerMember(b);
    t.is(
      await untilSynced(second, b),
      200,
      `the joiner never said Synced:\n${second.log()}\n--- first:\n${first.log()}`,
    );
    t.regex(second.log(), new RegExp(`galera\\.join.*${a.host.replace(/\./g, '\\.')}`));
    t.is(await root1('SELECT v FROM farm.t WHERE id = 1', b), 'before the join', 'the SST brought the row');
    await root1("INSERT INTO farm.t VALUES (2, 'on the joiner')", b);
    t.is(await root1('SELECT v FROM farm.t WHERE id = 2', a), 'on the joiner', 'replicated back');
    t.is(await root1("SHOW GLOBAL STATUS LIKE 'wsrep_cluster_size'", a), 'wsrep_cluster_size\t2');
    t.deepEqual(
      (await store.listBootstraps()).map((r) => r.instance),
      ['db1'],
      'one bootstrap: the second member joined',
    );
    second.child.kill('SIGTERM');
    first.child.kill('SIGTERM');
    t.deepEqual(await second.exited, { code: 0, signal: null }, second.log());
    t.deepEqual(await first.exited, { code: 0, signal: null }, first.log());
    t.false(await containerExists(a.container));
    t.false(await containerExists(b.container));
  } finally {
    kv.close();
  }
});
