// The MySQL (MariaDB + Galera) cluster end to end on a 4-host dev cluster: three members of
// examples/process/mysql@.unit started together (Conflicts= puts them on three hosts; the fourth
// is the spare), exactly one bootstrap decided through etcd, replication through every member,
// then a member's host powered off: the others keep serving and the instance rejoins on the spare.
import test from 'ava';
import { GaleraCluster } from '../galera/galera-cluster.js';

let cluster: GaleraCluster | undefined;
const rows = new Map<number, string>();

function c(): GaleraCluster {
  if (cluster === undefined) throw new Error('the dev cluster did not come up (see the first failure)');
  return cluster;
}

test.before(async () => {
  cluster = await GaleraCluster.up(4);
  await cluster.writeUnits();
});

test.after.always(async () => {
  await cluster?.close();
});

test.serial(
  'three members started at once form one cluster through etcd, with exactly one bootstrap',
  async (t) => {
    t.timeout(300_000);
    await c().start([1, 2, 3]);
    const members = await c().until(
      'three Synced members announced under services/mysql',
      async () => {
        const a = await c().announced();
        return a.size === 3 ? a : undefined;
      },
      240_000,
    );
    const hosts = [...members.values()].map((a) => c().hostOfAddress(a));
    t.is(new Set(hosts).size, 3, `one member per host: ${[...members].join(', ')}`);
    const boots = await c().bootstraps();
    t.is(boots.length, 1, `bootstraps: ${JSON.stringify(boots)}`);
    t.regex(boots[0]?.reason ?? '', /no member runs/);
    t.true(members.has(boots[0]?.instance ?? '?'), `the bootstrapper ${boots[0]?.instance} is a member`);

    const [first, ...others] = [...members.values()];
    const w = await c().sqlUntil(
      first ?? '',
      "INSERT INTO notes VALUES (1, 'written through the first member')",
      30_000,
    );
    t.true(w.ok, w.stderr);
    rows.set(1, 'written through the first member');
    for (const address of others) {
      const r = await c().sqlUntil(address, 'SELECT body FROM notes WHERE id = 1', 30_000);
      t.true(r.ok, `${address}: ${r.stderr}`);
      t.is(r.stdout.trim(), rows.get(1) ?? '?', `read through ${address}`);
    }
    const size = await c().sql(first ?? '', "SHOW STATUS LIKE 'wsrep_cluster_size'");
    t.is(size.stdout.trim().split('\t')[1], '3', size.stderr);
  },
);

test.serial(
  'a powered-off member host: the others keep serving, the instance rejoins on the spare with the data',
  async (t) => {
    t.timeout(300_000);
    const before = await c().announced();
    const victimAddress = before.get('mysql@2.unit');
    if (victimAddress === undefined)
      return t.fail(`mysql@2.unit is not announced: ${[...before].join(', ')}`);
    const victim = c().hostOfAddress(victimAddress) ?? '?';
    const survivors = [...before].filter(([u]) => u !== 'mysql@2.unit').map(([, a]) => a);
    await c().demo.dev.powerOff(victim);

    // Quorum is 2 of 3: after Galera evicts the dead member (a few seconds), writes go on.
    const w = await c().sqlUntil(
      survivors[0] ?? '',
      "INSERT INTO notes VALUES (2, 'written while a host was off')",
      60_000,
    );
    t.true(w.ok, w.stderr);
    rows.set(2, 'written while a host was off');
    const r = await c().sqlUntil(survivors[1] ?? '', 'SELECT body FROM notes WHERE id = 2', 30_000);
    t.is(r.stdout.trim(), rows.get(2) ?? '?', r.stderr);

    const moved = await c().until(
      'mysql@2.unit Synced and announced on another host',
      async () => {
        const a = (await c().announced()).get('mysql@2.unit');
        return a !== undefined && c().hostOfAddress(a) !== victim ? a : undefined;
      },
      240_000,
    );
    t.not(c().hostOfAddress(moved), victim);
    t.false(before.has(c().hostOfAddress(moved) ?? '?'));
    const back = await c().sqlUntil(moved, 'SELECT id, body FROM notes ORDER BY id', 30_000);
    t.true(back.ok, back.stderr);
    t.deepEqual(
      back.stdout.trim().split('\n'),
      [...rows].map(([id, body]) => `${id}\t${body}`),
      'the rejoined member has the earlier row and the one written meanwhile',
    );
    const size = await c().sql(moved, "SHOW STATUS LIKE 'wsrep_cluster_size'");
    t.is(size.stdout.trim().split('\t')[1], '3');
    t.is((await c().bootstraps()).length, 1, 'the rejoin was a join, not a second bootstrap');
    t.log(`mysql@2.unit: ${victim} (${victimAddress}) → ${c().hostOfAddress(moved)} (${moved})`);
  },
);
