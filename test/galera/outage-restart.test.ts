// A whole-cluster outage with real servers: two `fleetts galera member` processes (the real binary,
// process runtime, mariadbd + galera-4) on loopback addresses of their own and a real etcd. The
// member that went down last, by a crash (seqno -1: its position comes from --wsrep-recover), holds
// a row the other lacks; the other restarts first, yet must wait, and the crashed one bootstraps.
import { execFile, type ChildProcess } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { systemClock } from '../../src/lib/clock.js';
import { EtcdKv } from '../../src/registry/etcd-kv.js';
import { GaleraStore } from '../../src/galera/galera-store.js';
import { parseGrastate } from '../../src/galera/grastate.js';
import { randomPrefix, useEtcd } from '../helpers/etcd.js';
import { freePort } from '../helpers/ports.js';
import { startMember, untilSynced, type Member, type MemberSetup } from './member-process.js';

const exec = promisify(execFile);
const etcd = useEtcd(test);
let root = '';
const children: ChildProcess[] = [];

test.before(async () => {
  root = await mkdtemp(join(tmpdir(), 'fleetts-galera-outage-'));
  await chmod(root, 0o755); // mariadbd runs as mysql: it must reach the data dirs
});

test.after.always(async () => {
  for (const c of children) {
    if (c.exitCode !== null || c.signalCode !== null) continue;
    const gone = new Promise((resolve) => c.once('exit', resolve));
    c.kill('SIGTERM');
    await gone;
  }
  if (root !== '') await rm(root, { recursive: true, force: true });
});

type Setup = MemberSetup;

function track(m: Member): Member {
  children.push(m.child);
  return m;
}

const sql = (s: Setup, q: string): Promise<string> =>
  exec('mariadb', ['--no-defaults', `--socket=${join(s.runDir, 'mysqld.sock')}`, '-N', '-B', '-e', q]).then(
    (r) => r.stdout.trim(),
  );

test('after a whole-cluster outage the member with the newest row bootstraps, though the other starts first', async (t) => {
  t.timeout(240_000);
  if (process.getuid?.() !== 0) return t.fail('this test runs mariadbd as the mysql user: run it as root');
  const net = `127.${randomInt(100, 250)}.${randomInt(0, 250)}`;
  const prefix = randomPrefix();
  const setup = async (n: number): Promise<Setup> => ({
    cluster: 'outage',
    instance: `db${n}`,
    host: `${net}.${n + 1}`,
    port: await freePort(),
    checkPort: await freePort(),
    dataDir: join(root, `m${n}`, 'data'),
    runDir: join(root, `m${n}`, 'run'),
    gcomm: `${net}.${n + 1}:4567`,
    etcdEndpoint: etcd().endpoint,
    prefix,
  });
  const [a, b] = [await setup(1), await setup(2)];
  const kv = new EtcdKv({ endpoints: [etcd().endpoint] }, systemClock);
  const store = new GaleraStore({ kv, clock: systemClock, prefix, cluster: 'outage' });
  try {
    // The cluster's first life: a bootstraps, b joins, one row everywhere.
    const a1 = track(startMember(a, ['--recovery-wait', '60s']));
    t.is(await untilSynced(a1, a), 200, `a never Synced:\n${a1.log()}`);
    await sql(
      a,
      "CREATE DATABASE farm; CREATE TABLE farm.t (id INT PRIMARY KEY, v VARCHAR(20)); INSERT INTO farm.t VALUES (1, 'both')",
    );
    const b1 = track(startMember(b, ['--recovery-wait', '60s']));
    t.is(await untilSynced(b1, b), 200, `b never Synced:\n${b1.log()}`);
    t.is(await sql(b, 'SELECT v FROM farm.t WHERE id = 1'), 'both');

    // b goes first (clean: its grastate has a seqno); a commits one more row, then crashes.
    b1.child.kill('SIGTERM');
    t.deepEqual(await b1.exited, { code: 0, signal: null }, b1.log());
    await sql(a, "INSERT INTO farm.t VALUES (2, 'only on a')");
    const pid = Number((await readFile(join(a.runDir, 'mysqld.pid'), 'utf8')).trim());
    process.kill(pid, 'SIGKILL');
    t.is((await a1.exited).code, 137, a1.log());
    const bState = parseGrastate(await readFile(join(b.dataDir, 'grastate.dat'), 'utf8'));
    const aState = parseGrastate(await readFile(join(a.dataDir, 'grastate.dat'), 'utf8'));
    t.is(aState.seqno, -1, 'a crashed: its position needs --wsrep-recover');
    t.true((bState.seqno ?? -1) >= 0, `b shut down cleanly: ${JSON.stringify(bState)}`);

    // b restarts first: it publishes its position and waits for a (a known member).
    const b2 = track(startMember(b, ['--recovery-wait', '60s']));
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline && !/galera\.wait_for_better/.test(b2.log())) await systemClock.sleep(200);
    t.regex(b2.log(), /waiting for the positions of db1/, b2.log());
    t.deepEqual(
      (await store.listPositions()).map((p) => [p.instance, p.position]),
      [['db2', { kind: 'data', uuid: bState.uuid, seqno: bState.seqno }]],
    );
    t.is((await store.listBootstraps()).length, 1, 'b did not bootstrap');

    const a2 = track(startMember(a, ['--recovery-wait', '60s']));
    t.is(await untilSynced(a2, a), 200, `a never Synced after the outage:\n${a2.log()}`);
    t.regex(a2.log(), /"source":"recovered"/, 'a learned its position from --wsrep-recover');
    t.is(await untilSynced(b2, b), 200, `b never joined:\n${b2.log()}`);
    t.regex(b2.log(), new RegExp(`galera\\.join.*${a.host.replace(/\./g, '\\.')}`));
    const history = await store.listBootstraps();
    t.deepEqual(
      history.map((h) => h.instance),
      ['db1', 'db1'],
      'the restart was bootstrapped by a, the member with the newer row',
    );
    const chosen = new RegExp(`the most advanced data: ${aState.uuid}:(\\d+) `).exec(
      history[1]?.reason ?? '',
    );
    t.true(
      Number(chosen?.[1] ?? -1) > (bState.seqno ?? 0),
      `a's recovered seqno beats b's ${bState.seqno}: ${history[1]?.reason}`,
    );
    t.is(await sql(b, 'SELECT v FROM farm.t WHERE id = 2'), 'only on a', 'the newer row survived, on b too');
    t.deepEqual(await store.listPositions(), [], 'the bootstrap cleared the positions');
    a2.child.kill('SIGTERM');
    b2.child.kill('SIGTERM');
    t.is((await b2.exited).code, 0, b2.log());
    t.is((await a2.exited).code, 0, a2.log());
  } finally {
    kv.close();
  }
});
