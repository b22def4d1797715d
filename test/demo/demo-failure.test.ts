// How `npm run demo` reports a failure (demo-failure.ts) and what it checks before it makes anything
// (preflight.ts): every foreseen error is one line saying what, why and what to do, plus what became
// of the cluster; only an unforeseen one says it is a bug and shows its stack. Pure tests, and the
// check that the program lists cover what the units run.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import { describeFailure, formatFailure, MAX_DETAIL, type Aftermath } from '../../src/demo/demo-failure.js';
import { DemoError } from '../../src/demo/demo-error.js';
import { keepHints } from '../../src/demo/demo-report.js';
import {
  existingClusterMessage,
  FARM_PROGRAMS,
  HOSTING_PROGRAMS,
  missingProgramsMessage,
  stateDirFlag,
} from '../../src/demo/preflight.js';
import { DevError } from '../../src/dev/dev-error.js';
import { ROOT } from '../helpers/cli.js';

const nothing: Aftermath = { kind: 'nothing-made' };
const removed: Aftermath = { kind: 'removed' };
const leftUp: Aftermath = { kind: 'left-up', flag: ' --state-dir /tmp/s' };

// The last words of etcd 3.4 when a port is taken, as DevCluster reports them (a log tail).
const etcdBindFailure = new DevError(
  'dev_step_failed',
  "etcd exited during start-up: [WARNING] Deprecated '--logger=capnslog' flag is set; use '--logger=zap' flag instead\n" +
    '2026-12-05 18:15:32.412338 C | etcdmain: listen tcp 10.213.0.1:2380: bind: address already in use',
);

const cases: readonly {
  title: string;
  err: unknown;
  after: Aftermath;
  line: RegExp;
  detail?: number;
  exitCode?: number;
}[] = [
  {
    title: 'a port etcd needs is taken: the address, who to ask, and that what was made is gone',
    err: etcdBindFailure,
    after: removed,
    line: /^etcd cannot listen on 10\.213\.0\.1:2380: another program has that port \(`ss -ltnp 'sport = :2380'` shows which\); stop it and run the demo again \(what the demo had made is removed again\)$/,
  },
  {
    title: 'a dev cluster already up: the message as it is, nothing made',
    err: new DemoError(
      'demo_cluster_exists',
      existingClusterMessage({ phase: 'up' }, true, '/var/lib/fleetts-dev', '') ?? '',
    ),
    after: nothing,
    line: /^a dev cluster is already up in \/var\/lib\/fleetts-dev .*`sudo fleetts dev down` and run the demo again$/,
  },
  {
    title: 'a program missing',
    err: new DemoError('demo_missing_program', missingProgramsMessage([FARM_PROGRAMS[2]!]) ?? ''),
    after: nothing,
    line: /^not installed: nginx \(\/usr\/sbin\/nginx\); install it with `sudo bash scripts\/ensure-deps\.sh nginx`/,
  },
  {
    title: 'a step timed out with the farm up: the cluster is left up, and how to remove it',
    err: new DemoError(
      'demo_timeout',
      'timed out after 90000 ms waiting for every farm unit active; see `fleetts list-units`',
    ),
    after: leftUp,
    line: /^timed out .*see `fleetts list-units`; the cluster is left up to look at \(fleetts list-units, fleetts journal UNIT\): `sudo fleetts dev down --state-dir \/tmp\/s` removes it$/,
  },
  {
    title: 'a host that did not register: the first line, then the log tail as detail',
    err: new DevError(
      'dev_timeout',
      'host2 did not register within 60000 ms; last log lines:\nhost2: a\nb\n',
    ),
    after: { kind: 'not-removed', flag: '', why: 'removing it failed: ip netns del: busy' },
    line: /^host2 did not register within 60000 ms; last log lines \(below\); the dev cluster is not removed \(removing it failed: ip netns del: busy\): `sudo fleetts dev down` removes it$/,
    detail: 2,
  },
  {
    title: 'a long command output is capped',
    err: new DemoError('demo_step_failed', `\`fleetts start lb.unit\` failed (exit 1):\n${'x\n'.repeat(40)}`),
    after: leftUp,
    line: /^`fleetts start lb\.unit` failed \(exit 1\) \(below\); the cluster is left up/,
    detail: MAX_DETAIL,
  },
  {
    title: 'a bad option: exit 2 and where the usage is',
    err: new DemoError('demo_usage', 'unknown option --kep'),
    after: nothing,
    line: /^unknown option --kep \(see npm run demo -- --help\)$/,
    exitCode: 2,
  },
];

for (const c of cases)
  test(`describeFailure: ${c.title}`, (t) => {
    const f = describeFailure(c.err, c.after);
    t.regex(f.line, c.line);
    t.false(f.line.includes('\n'));
    t.is(f.detail.length, c.detail ?? 0, f.detail.join('\n'));
    t.is(f.exitCode, c.exitCode ?? 1);
    t.false(f.bug);
    t.false(/^\s*at /m.test(formatFailure(f)), 'no stack');
  });

test("describeFailure: this machine's error (EACCES, ENOENT …) is not called a bug", async (t) => {
  const err: unknown = await readFile('/nonexistent-fleetts-dir/x').catch((e: unknown) => e);
  const f = describeFailure(err, nothing);
  t.regex(
    f.line,
    /^ENOENT: no such file or directory, open '\/nonexistent-fleetts-dir\/x' \(a problem of this machine/,
  );
  t.false(f.bug);
  t.deepEqual(f.detail, []);
});

test('describeFailure: an unforeseen error says it is a bug and keeps its stack', (t) => {
  const f = describeFailure(new TypeError("Cannot read properties of undefined (reading 'x')"), leftUp);
  t.true(f.bug);
  t.regex(
    f.line,
    /^unexpected error \(a bug in the demo; please report it\): Cannot read .*; the cluster is left up/,
  );
  t.true(f.detail.length > 0 && f.detail.every((l) => l.startsWith('at ')), f.detail.join('\n'));
  t.is(f.exitCode, 1);
});

test('formatFailure: the prefixed line, then the detail indented', (t) => {
  t.is(
    formatFailure({ line: 'it broke', detail: ['a', 'b'], exitCode: 1, bug: false }),
    'fleetts demo: it broke\n    a\n    b',
  );
});

test('missingProgramsMessage: none is no message; several name every path and package once', (t) => {
  t.is(missingProgramsMessage([]), undefined);
  t.is(
    missingProgramsMessage([FARM_PROGRAMS[0]!, FARM_PROGRAMS[1]!, FARM_PROGRAMS[2]!]),
    'not installed: etcd, apache2 (/usr/sbin/apache2), nginx (/usr/sbin/nginx); install them with ' +
      '`sudo bash scripts/ensure-deps.sh etcd-server apache2 nginx` (npm run demo does so before it starts)',
  );
});

test('existingClusterMessage: no state or a cluster brought down is fine; up or left over is not', (t) => {
  t.is(existingClusterMessage(undefined, false, '/s', ''), undefined);
  t.is(existingClusterMessage({ phase: 'down' }, false, '/s', ''), undefined);
  t.regex(
    existingClusterMessage({ phase: 'up' }, true, '/s', ' --state-dir /s') ?? '',
    /already up in \/s .*`sudo fleetts dev down --state-dir \/s`/,
  );
  t.regex(
    existingClusterMessage({ phase: 'starting' }, false, '/s', '') ?? '',
    /^an earlier run left a dev cluster behind in \/s .*nothing of it runs.*`sudo fleetts dev down`/,
  );
});

test('stateDirFlag: nothing for the default dir', (t) => {
  t.is(stateDirFlag('/var/lib/fleetts-dev', '/var/lib/fleetts-dev'), '');
  t.is(stateDirFlag('/tmp/x', '/var/lib/fleetts-dev'), ' --state-dir /tmp/x');
});

test('keepHints: every dev command carries the state dir; the balancer address is filled in', (t) => {
  const text = keepHints({
    lb: '10.213.7.12:80',
    flag: ' --state-dir /tmp/s',
    wrapper: 'installed',
    wrapperPath: '/usr/local/bin/fleetts',
    unitsDir: '/srv/fleetts/shared/units',
    dashboard: { apis: ['10.213.7.11:4003', '10.213.7.12:4003'], tokenFile: '/tmp/s/api-token' },
  });
  t.regex(text, /curl -s http:\/\/10\.213\.7\.12:80\//);
  t.regex(
    text,
    /^ {2}The live dashboard: http:\/\/10\.213\.7\.11:4003\/ui or http:\/\/10\.213\.7\.12:4003\/ui\n.*sudo cat \/tmp\/s\/api-token\)$/m,
  );
  t.regex(text, /fleetts dashboard +the dashboard through the sockets, at http:\/\/127\.0\.0\.1:8080\/ui/);
  t.regex(text, /fleetts restart web@1 web@2 web@3 +restart the backends one at a time/);
  t.regex(text, /cd \/srv\/fleetts\/shared\/units; fleetts rollout web@\.unit +after changing WEB_RELEASE/);
  t.regex(
    text,
    /fleetts drain host3 +move host3's units to the other hosts one at a time.*fleetts undrain host3/,
  );
  const devLines = text.split('\n').filter((l) => l.includes('fleetts dev '));
  t.is(devLines.length, 3);
  for (const l of devLines) t.regex(l, /fleetts dev [a-z-]+( host2)? --state-dir \/tmp\/s/);
});

// The programs the preflight checks must cover what the units run: a unit that gains a program
// (ExecStart=/usr/sbin/x) without an entry here would fail later, as a timeout, not as one line.
test('the program lists cover every program the farm and hosting units run', async (t) => {
  const units = [
    'web@.unit',
    'lb.unit',
    'mysql@.unit',
    'ftp.unit',
    'web-discovery@.unit',
    'lb-upstream.unit',
    'lb-discovery.unit',
    'lb-address.unit',
    'mysql-discovery@.unit',
    'ftp-discovery.unit',
  ];
  const known = new Set([...FARM_PROGRAMS, ...HOSTING_PROGRAMS].map((p) => p.path));
  // Coreutils, the shell, and env, which runs the fleetts the demo installs.
  const base = new Set(['/bin/mkdir', '/bin/rm', '/bin/cp', '/bin/sh', '/usr/bin/env']);
  for (const u of units) {
    const text = await readFile(join(ROOT, 'examples', 'process', u), 'utf8');
    for (const m of text.matchAll(/^Exec[A-Za-z]*=[-@+!:]*(\/\S+)/gm)) {
      const program = m[1] ?? '';
      if (!base.has(program))
        t.true(known.has(program), `${u} runs ${program}, which preflight.ts does not check`);
    }
  }
});
