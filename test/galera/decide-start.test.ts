import test from 'ava';
import { clusterAddress, decideStart, hostOf, type StartInput } from '../../src/galera/decide-start.js';
import { markSafeToBootstrap, parseGrastate } from '../../src/galera/grastate.js';
import { clustercheckAnswer } from '../../src/galera/clustercheck.js';
import {
  mariadbdArgs,
  serverCommand,
  clientCommand,
  parseRecoveredPosition,
  recoverCommand,
  type MemberLayout,
} from '../../src/galera/mariadbd-command.js';
import {
  chooseBootstrap,
  type BootstrapView,
  type DataPosition,
  type PublishedPosition,
} from '../../src/galera/choose-bootstrap.js';

const self = { instance: 'mysql@2.unit', host: '10.0.0.12' };
const m = (instance: string, address: string) => ({ instance, address });

const cases: { name: string; input: Omit<StartInput, 'self'>; want: string; reason: RegExp }[] = [
  {
    name: 'nobody: bootstrap',
    input: { running: [], announced: [] },
    want: 'bootstrap',
    reason: /no member runs/,
  },
  {
    name: 'only an earlier life of this instance (its dead host): bootstrap',
    input: {
      running: [m('mysql@2.unit', '10.0.0.13:3306')],
      announced: [m('mysql@2.unit', '10.0.0.13:3306')],
    },
    want: 'bootstrap',
    reason: /earlier records of this member/,
  },
  {
    name: 'a stale key of this host: bootstrap',
    input: { running: [], announced: [m('other', '10.0.0.12:3306')] },
    want: 'bootstrap',
    reason: /earlier records/,
  },
  {
    name: 'a running member that is not announced (a donor, or starting): join it',
    input: { running: [m('mysql@1.unit', '10.0.0.11:3306')], announced: [] },
    want: 'join 10.0.0.11',
    reason: /mysql@1.unit at 10.0.0.11 \(running\)/,
  },
  {
    name: 'running and announced, deduplicated and sorted',
    input: {
      running: [m('mysql@3.unit', '10.0.0.13:3306'), m('mysql@1.unit', '10.0.0.11:3306')],
      announced: [m('mysql@1.unit', '10.0.0.11:3306')],
    },
    want: 'join 10.0.0.11,10.0.0.13',
    reason: /2 live peer/,
  },
  {
    name: 'announced only (a member whose wrapper key lapsed): join it',
    input: { running: [], announced: [m('mysql@1.unit', '10.0.0.11:3306')] },
    want: 'join 10.0.0.11',
    reason: /announced/,
  },
];

for (const c of cases) {
  test(`decideStart: ${c.name}`, (t) => {
    const d = decideStart({ self, ...c.input });
    t.is(d.kind === 'bootstrap' ? 'bootstrap' : `join ${d.peers.join(',')}`, c.want);
    t.regex(d.reason, c.reason);
  });
}

test('clusterAddress and hostOf', (t) => {
  t.is(clusterAddress({ kind: 'bootstrap', reason: '' }), 'gcomm://');
  t.is(
    clusterAddress({ kind: 'join', peers: ['10.0.0.1', 'fd00::1'], reason: '' }),
    'gcomm://10.0.0.1,[fd00::1]',
  );
  t.is(hostOf('10.0.0.1:3306'), '10.0.0.1');
  t.is(hostOf('10.0.0.1'), '10.0.0.1');
  t.is(hostOf('[fd00::1]:3306'), 'fd00::1');
  t.is(hostOf('fd00::1'), 'fd00::1');
});

test('grastate: parse and mark safe_to_bootstrap', (t) => {
  const text =
    '# GALERA saved state\nversion: 2.1\nuuid:    8871c134-e758\nseqno:   -1\nsafe_to_bootstrap: 0\n';
  t.deepEqual(parseGrastate(text), { uuid: '8871c134-e758', seqno: -1, safeToBootstrap: false });
  const marked = markSafeToBootstrap(text);
  t.true(marked?.includes('safe_to_bootstrap: 1'));
  t.is(parseGrastate(marked ?? '').safeToBootstrap, true);
  t.is(markSafeToBootstrap(marked ?? ''), undefined, 'already safe: unchanged');
  t.regex(markSafeToBootstrap('version: 2.1\nseqno: 5') ?? '', /seqno: 5\nsafe_to_bootstrap: 1\n$/);
});

test('clustercheck: 200 only for a fresh Synced', (t) => {
  t.is(clustercheckAnswer(undefined, 0, 5000).status, 503);
  t.is(clustercheckAnswer({ kind: 'state', comment: 'Synced', at: 1000 }, 2000, 5000).status, 200);
  const donor = clustercheckAnswer({ kind: 'state', comment: 'Donor/Desynced', at: 1000 }, 2000, 5000);
  t.is(donor.status, 503);
  t.regex(donor.body, /not synced \(Donor\/Desynced\)/);
  t.regex(
    clustercheckAnswer({ kind: 'state', comment: 'Synced', at: 0 }, 9000, 5000).body,
    /unknown for 9 s/,
  );
  t.regex(clustercheckAnswer({ kind: 'down', reason: 'no socket', at: 0 }, 1, 5000).body, /down: no socket/);
});

const layout: MemberLayout = {
  cluster: 'c1',
  instance: 'mysql@1.unit',
  host: '10.0.0.11',
  port: 3306,
  dataDir: '/var/lib/fleetts/mysql/m1/1',
  runDir: '/run/fleetts/m1/mysql@1',
  runtime: { kind: 'process', mariadbd: '/usr/sbin/mariadbd' },
  bufferPool: '32M',
  extraArgs: ['--max-connections=10'],
};

test('mariadbd arguments follow the decision', (t) => {
  const boot = mariadbdArgs(layout, { kind: 'bootstrap', reason: '' });
  t.true(boot.includes('--wsrep-new-cluster'));
  t.true(boot.includes('--wsrep-cluster-address=gcomm://'));
  t.true(boot.includes('--user=mysql'), 'rsync SST writes as the server user');
  t.true(boot.includes('--bind-address=10.0.0.11') && boot.includes('--wsrep-node-address=10.0.0.11'));
  t.is(boot.at(-1), '--max-connections=10', 'extra args last, so they win');
  const join = mariadbdArgs(layout, { kind: 'join', peers: ['10.0.0.12', '10.0.0.13'], reason: '' });
  t.false(join.includes('--wsrep-new-cluster'));
  t.true(join.includes('--wsrep-cluster-address=gcomm://10.0.0.12,10.0.0.13'));
  t.is(serverCommand(layout, { kind: 'bootstrap', reason: '' }).file, '/usr/sbin/mariadbd');
});

test('the container form: docker run --network host with the dirs mounted; docker exec for the client', (t) => {
  const docker: MemberLayout = {
    ...layout,
    runtime: { kind: 'docker', image: 'fleetts/mariadb:latest', container: 'galera-1', docker: 'docker' },
  };
  const cmd = serverCommand(docker, { kind: 'bootstrap', reason: '' });
  t.is(cmd.file, 'docker');
  const args = cmd.args.join(' ');
  t.regex(
    args,
    /^run --rm --name galera-1 --network host -v \/var\/lib\/fleetts\/mysql\/m1\/1:\/var\/lib\/mysql /,
  );
  t.true(cmd.args.includes('--datadir=/var/lib/mysql'));
  t.true(cmd.args.includes('--socket=/run/mysqld/mysqld.sock'));
  const client = clientCommand(docker, ['-e', 'select 1']);
  t.deepEqual([client.file, ...client.args.slice(0, 4)], ['docker', 'exec', '-i', 'galera-1', 'mariadb']);
});

// After a whole-cluster outage: who bootstraps, from the published positions.
const U = '8871c134-e758-11ee-8000-000000000001';
const V = '11111111-e758-11ee-8000-000000000002';
const data = (seqno: number, uuid = U): DataPosition => ({ kind: 'data', uuid, seqno });
const pub = (instance: string, position: DataPosition, at = 1_000): PublishedPosition => ({
  instance,
  position,
  at,
});
const view = (over: Partial<BootstrapView>): BootstrapView => ({
  self: { instance: 'mysql@2.unit', position: data(10) },
  others: [],
  known: ['mysql@1.unit', 'mysql@3.unit'],
  bootstrapped: true,
  firstAt: 1_000,
  now: 2_000,
  waitMs: 60_000,
  ...over,
});

const choices: { name: string; view: BootstrapView; want: 'bootstrap' | 'wait'; reason: RegExp }[] = [
  {
    name: 'a brand-new cluster (no history, no known member, no data): bootstrap at once',
    view: view({
      self: { instance: 'mysql@2.unit', position: { kind: 'empty' } },
      known: [],
      bootstrapped: false,
    }),
    want: 'bootstrap',
    reason: /no member runs or is announced \(a new cluster\)/,
  },
  {
    name: 'a new cluster whose first bootstrapper failed (its empty position is left): still new',
    view: view({
      self: { instance: 'mysql@2.unit', position: { kind: 'empty' } },
      others: [pub('mysql@1.unit', { kind: 'empty' })],
      known: [],
      bootstrapped: false,
    }),
    want: 'bootstrap',
    reason: /a new cluster/,
  },
  {
    name: 'the highest seqno, every known member published: bootstrap',
    view: view({ others: [pub('mysql@1.unit', data(7)), pub('mysql@3.unit', data(9))] }),
    want: 'bootstrap',
    reason: new RegExp(
      `the most advanced data: ${U}:10 \\(others: mysql@1.unit=${U}:7, mysql@3.unit=${U}:9\\)`,
    ),
  },
  {
    name: 'another member has a higher seqno: wait for it',
    view: view({ others: [pub('mysql@1.unit', data(12)), pub('mysql@3.unit', data(9))] }),
    want: 'wait',
    reason: new RegExp(`mysql@1.unit has more advanced data \\(${U}:12 > ${U}:10\\)`),
  },
  {
    name: 'equal seqnos: the lower instance name bootstraps (never a stall)',
    view: view({ others: [pub('mysql@1.unit', data(10)), pub('mysql@3.unit', data(10))] }),
    want: 'wait',
    reason: /mysql@1.unit has more advanced data/,
  },
  {
    name: 'equal seqnos, this member has the lowest name: bootstrap',
    view: view({
      self: { instance: 'mysql@1.unit', position: data(10) },
      known: ['mysql@2.unit'],
      others: [pub('mysql@2.unit', data(10))],
    }),
    want: 'bootstrap',
    reason: /the most advanced data/,
  },
  {
    name: 'the best so far, a known member has not published yet: wait (time left)',
    view: view({ others: [pub('mysql@1.unit', data(3))], now: 11_000 }),
    want: 'wait',
    reason: /waiting for the positions of mysql@3.unit \(50 s left/,
  },
  {
    name: 'the best so far, the wait since the first position is over: bootstrap without it',
    view: view({ others: [pub('mysql@1.unit', data(3))], now: 61_000 }),
    want: 'bootstrap',
    reason: /mysql@3.unit published nothing within 60 s/,
  },
  {
    name: 'an empty data dir never bootstraps over a member with data',
    view: view({
      self: { instance: 'mysql@2.unit', position: { kind: 'empty' } },
      others: [pub('mysql@1.unit', data(3)), pub('mysql@3.unit', data(5))],
      now: 999_000,
    }),
    want: 'wait',
    reason: new RegExp(`this data dir is empty and mysql@3.unit has data \\(${U}:5\\)`),
  },
  {
    name: 'an empty data dir of a cluster that existed, nobody with data: wait for the operator',
    view: view({ self: { instance: 'mysql@2.unit', position: { kind: 'empty' } }, now: 999_000 }),
    want: 'wait',
    reason: /fleetts galera force-bootstrap --instance mysql@2.unit/,
  },
  {
    name: 'forced: this member bootstraps whatever the positions',
    view: view({
      self: { instance: 'mysql@2.unit', position: { kind: 'empty' } },
      others: [pub('mysql@1.unit', data(99))],
      forced: 'mysql@2.unit',
    }),
    want: 'bootstrap',
    reason: /forced by the operator \(position empty\)/,
  },
  {
    name: 'another member forced: wait for it even with the best data',
    view: view({ others: [pub('mysql@1.unit', data(1))], forced: 'mysql@3.unit' }),
    want: 'wait',
    reason: /the operator forced mysql@3.unit/,
  },
  {
    name: 'a position of another cluster uuid is not comparable (noted, not ranked)',
    view: view({ others: [pub('mysql@1.unit', data(500, V)), pub('mysql@3.unit', data(2))] }),
    want: 'bootstrap',
    reason: /mysql@1.unit hold another cluster uuid \(not comparable\)/,
  },
  {
    name: 'a crashed member whose recovery failed (seqno -1) loses to any known seqno',
    view: view({
      self: { instance: 'mysql@1.unit', position: data(-1) },
      known: ['mysql@2.unit'],
      others: [pub('mysql@2.unit', data(0))],
    }),
    want: 'wait',
    reason: /mysql@2.unit has more advanced data/,
  },
];

for (const c of choices) {
  test(`chooseBootstrap: ${c.name}`, (t) => {
    const got = chooseBootstrap(c.view);
    t.is(got.kind, c.want, got.reason);
    t.regex(got.reason, c.reason);
  });
}

test('wsrep-recover: the command line and its output', (t) => {
  const cmd = recoverCommand(layout);
  t.is(cmd.file, '/usr/sbin/mariadbd');
  t.true(cmd.args.includes('--wsrep-recover'));
  t.true(cmd.args.includes('--skip-networking'));
  t.true(cmd.args.includes(`--datadir=${layout.dataDir}`));
  t.false(
    cmd.args.some((a) => a.endsWith('/mysqld.pid')),
    'not the server pid file',
  );
  const docker = recoverCommand({
    ...layout,
    runtime: { kind: 'docker', image: 'img', container: 'galera-x', docker: 'docker' },
  });
  t.true(docker.args.includes('galera-x-recover'), 'its own one-shot container');
  const log = `2026-11-23 17:11:26 0 [Note] Plugin 'FEEDBACK' is disabled.\n2026-11-23 17:11:26 0 [Note] WSREP: Recovered position: ${U}:42\n`;
  t.deepEqual(parseRecoveredPosition(log), { uuid: U, seqno: 42 });
  t.deepEqual(parseRecoveredPosition(`WSREP: Recovered position: ${U}:-1`), { uuid: U, seqno: -1 });
  t.is(parseRecoveredPosition('InnoDB: Aborting'), undefined);
  t.true(
    mariadbdArgs(layout, { kind: 'join', peers: ['10.0.0.1'], reason: '' }, `${U}:42`).includes(
      `--wsrep-start-position=${U}:42`,
    ),
  );
});
