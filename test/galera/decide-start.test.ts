import test from 'ava';
import { clusterAddress, decideStart, hostOf, type StartInput } from '../../src/galera/decide-start.js';
import { markSafeToBootstrap, parseGrastate } from '../../src/galera/grastate.js';
import { clustercheckAnswer } from '../../src/galera/clustercheck.js';
import {
  mariadbdArgs,
  serverCommand,
  clientCommand,
  type MemberLayout,
} from '../../src/galera/mariadbd-command.js';

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
