// fleetts commands in-process against a real API, real etcd and the real engine on two hosts
// (see cluster-harness.ts): target-state cycles, blocking, templates, --replace, restart, lists,
// status/journal across hosts, plan, and every kind of bad input with its exit code.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import { asUnitName } from '../../src/cluster/types.js';
import { useEtcd } from '../helpers/etcd.js';
import { startTestCluster, TOKEN, type TestCluster } from './cluster-harness.js';

let cluster: Promise<TestCluster> | undefined;

// Registered before useEtcd's hooks, so that it runs (and closes the cluster) before etcd stops.
test.after.always(async () => {
  await (await cluster?.catch(() => undefined))?.close();
});
const etcd = useEtcd(test);

// Started by the first test (after etcd's before hook), shared by all: unit names differ per test.
function cl(): Promise<TestCluster> {
  return (cluster ??= startTestCluster(etcd().endpoint));
}

const SERVICE = (extra = '') => `[Unit]\nDescription=test\n\n[Service]\nExecStart=/bin/sleep 1000\n${extra}`;
const ON_US = SERVICE('\n[X-Fleet]\nMachineMetadata=region=us\n');

async function file(name: string, text: string): Promise<string> {
  const path = join((await cl()).dir, name);
  await writeFile(path, text);
  return path;
}

interface FileRow {
  unit: string;
  hash: string;
  dstate: string;
  state: string;
  target: string[];
  reason: string | null;
}

async function unitFiles(names: readonly string[]): Promise<FileRow[]> {
  const r = await (
    await cl()
  ).fleetts(['list-unit-files', '-o', 'json', '--fields', 'unit,hash,dstate,state,target,reason']);
  return (JSON.parse(r.stdout) as FileRow[]).filter((row) => names.includes(row.unit));
}

test('a blocking start learns from the event stream that its units are active, not from its next poll', async (t) => {
  await file('news@.unit', SERVICE());
  // One poll at the start (the units are not active yet), then none for 10 minutes: only the
  // event stream's news can make it ask again. The abort after 60 s fails the test without it.
  const signal = AbortSignal.timeout(60_000);
  const r = await (await cl()).fleetts(['start', 'news@1', 'news@2', 'news@3'], { pollMs: 600_000, signal });
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /Unit news@1\.unit launched on /);
  t.regex(r.stdout, /Unit news@3\.unit launched on /);
  t.is((await (await cl()).fleetts(['destroy', 'news@1', 'news@2', 'news@3'])).code, 0);
});

test('100 new instances of a template are stored in one etcd transaction', async (t) => {
  await file('txn@.unit', SERVICE());
  const names = Array.from({ length: 100 }, (_, i) => `txn@${i + 1}.unit`);
  const c = await cl();
  const r = await c.fleetts(['load', '--no-block', ...names]);
  t.is(r.code, 0, r.stderr);
  const revisions = new Set<number>();
  for (const n of names) {
    const unit = await c.registry.getUnit(asUnitName(n));
    t.is(unit?.target, 'loaded', n);
    if (unit !== undefined) revisions.add(unit.modRevision);
  }
  t.is(revisions.size, 1, 'one revision: one transaction');
  t.is((await c.fleetts(['destroy', ...names])).code, 0);
});

test('submit, load, start, stop, unload, destroy over template instances from a local template', async (t) => {
  await file('cyc@.unit', SERVICE());
  const names = ['cyc@1.unit', 'cyc@2.unit'];
  let r = await (await cl()).fleetts(['submit', 'cyc@1', 'cyc@2']);
  t.is(r.code, 0, r.stderr);
  t.deepEqual(
    (await unitFiles(names)).map((u) => [u.unit, u.dstate, u.state]),
    [
      ['cyc@1.unit', 'inactive', 'inactive'],
      ['cyc@2.unit', 'inactive', 'inactive'],
    ],
  );

  r = await (await cl()).fleetts(['load', 'cyc@1', 'cyc@2']);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /^Unit cyc@1\.unit loaded on \w+\/127\.0\.0\.\d\nUnit cyc@2\.unit loaded on/m);
  t.deepEqual(
    (await unitFiles(names)).map((u) => [u.dstate, u.state, u.target.length]),
    [
      ['loaded', 'loaded', 1],
      ['loaded', 'loaded', 1],
    ],
  );

  r = await (await cl()).fleetts(['start', 'cyc@1.unit', 'cyc@2.unit']);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /Unit cyc@1\.unit launched on /);
  t.deepEqual(
    (await unitFiles(names)).map((u) => u.state),
    ['launched', 'launched'],
  );

  r = await (await cl()).fleetts(['stop', 'cyc@1']);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /^Unit cyc@1\.unit loaded on /);
  t.deepEqual(
    (await unitFiles(names)).map((u) => [u.dstate, u.state]),
    [
      ['loaded', 'loaded'],
      ['launched', 'launched'],
    ],
  );

  r = await (await cl()).fleetts(['unload', 'cyc@1', 'cyc@2']);
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, 'Unit cyc@1.unit inactive\nUnit cyc@2.unit inactive\n');
  t.deepEqual(
    (await unitFiles(names)).map((u) => [u.dstate, u.state, u.target]),
    [
      ['inactive', 'inactive', []],
      ['inactive', 'inactive', []],
    ],
  );

  r = await (await cl()).fleetts(['destroy', 'cyc@1', 'cyc@2']);
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, 'Destroyed cyc@1.unit\nDestroyed cyc@2.unit\n');
  t.deepEqual(await unitFiles(names), []);
});

test('an instance is made from the template in the registry; many units go in one batch', async (t) => {
  const path = await file('reg@.unit', SERVICE());
  let r = await (await cl()).fleetts(['submit', path]);
  t.is(r.code, 0, r.stderr);
  // No local reg@N files nor a local template next to them: the registry's template is used.
  r = await (
    await cl()
  ).fleetts(['start', '--no-block', 'elsewhere/reg@1', 'elsewhere/reg@2', 'elsewhere/reg@3']);
  t.is(r.code, 0, r.stderr);
  t.is(
    r.stdout,
    'Triggered unit reg@1.unit start\nTriggered unit reg@2.unit start\nTriggered unit reg@3.unit start\n',
  );
  const cat = await (await cl()).fleetts(['cat', 'reg@2']);
  t.is(cat.stdout, SERVICE());
});

test('start --replace re-deploys a running unit with the new text; without it a warning', async (t) => {
  await file('rep.unit', SERVICE());
  let r = await (await cl()).fleetts(['start', 'rep.unit']);
  t.is(r.code, 0, r.stderr);
  const [before] = await unitFiles(['rep.unit']);
  await file('rep.unit', SERVICE('Environment=V=2\n'));
  r = await (await cl()).fleetts(['start', 'rep.unit']);
  t.is(r.code, 0, r.stderr);
  t.regex(
    r.stderr,
    /WARNING: unit rep\.unit in the registry differs from the local unit file; kept the registry's \(use --replace to replace it\)/,
  );
  t.is((await unitFiles(['rep.unit']))[0]?.hash, before?.hash);

  r = await (await cl()).fleetts(['start', '--replace', 'rep.unit']);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /^Replaced rep\.unit\nUnit rep\.unit launched on /);
  const [after] = await unitFiles(['rep.unit']);
  t.not(after?.hash, before?.hash);
  t.is(after?.state, 'launched');
  t.is((await (await cl()).fleetts(['cat', 'rep.unit'])).stdout, SERVICE('Environment=V=2\n'));
});

test('restart stops, waits until stopped, then starts', async (t) => {
  await file('rs.unit', ON_US);
  t.is((await (await cl()).fleetts(['start', 'rs.unit'])).code, 0);
  const history = (await cl()).b.agent.history;
  const mark = history.length;
  const r = await (await cl()).fleetts(['restart', 'rs.unit']);
  t.is(r.code, 0, r.stderr);
  t.is(
    r.stdout,
    'Restarting rs.unit on cccc3333dddd4444/127.0.0.2 (1/1)\nUnit rs.unit stopped\nUnit rs.unit active on cccc3333dddd4444/127.0.0.2\n',
  );
  t.deepEqual(
    history.slice(mark).filter((h) => h.startsWith('rs.unit')),
    ['rs.unit inactive', 'rs.unit active'],
  );
  const no = await (await cl()).fleetts(['restart', '--no-block', 'rs.unit']);
  t.is(no.code, 2);
});

// Serial: host A refusing requests would fail the concurrent tests' commands.
test.serial(
  'fleetd not registered for a while (its lease lapsed under load): a blocking start asks again and goes on',
  async (t) => {
    const c = await cl();
    await file('nr.unit', ON_US);
    const reg = c.registrationOfA;
    const refusedBefore = reg.refused;
    // Host A refuses 3 requests once host B runs the unit: the start's wait, never its write.
    Object.defineProperty(reg, 'registered', {
      configurable: true,
      get: () => !(c.b.agent.observed.get('nr.unit')?.active === 'active' && reg.refused < refusedBefore + 3),
    });
    t.teardown(() => {
      Object.defineProperty(reg, 'registered', { configurable: true, writable: true, value: true });
    });
    const r = await c.fleetts(['start', 'nr.unit']);
    t.is(r.code, 0, r.stderr);
    t.is(reg.refused, refusedBefore + 3);
    t.regex(
      r.stderr,
      /^fleetts: fleetd on machine aaaa1111bbbb2222 is not registered in the cluster .+ \(asking again\)\n$/,
    );
    t.regex(r.stdout, /^Unit nr\.unit launched on cccc3333dddd4444/m);
  },
);

test.serial('fleetd not registered for a while: destroy asks again and destroys every unit', async (t) => {
  const c = await cl();
  await file('nrd@.unit', ON_US);
  const names = ['nrd@1.unit', 'nrd@2.unit', 'nrd@3.unit'];
  t.is((await c.fleetts(['load', '--no-block', ...names])).code, 0);
  const reg = c.registrationOfA;
  const refusedBefore = reg.refused;
  // Host A refuses the first 3 requests of the destroy.
  Object.defineProperty(reg, 'registered', {
    configurable: true,
    get: () => reg.refused >= refusedBefore + 3,
  });
  t.teardown(() => {
    Object.defineProperty(reg, 'registered', { configurable: true, writable: true, value: true });
  });
  const r = await c.fleetts(['destroy', ...names]);
  t.is(r.code, 0, r.stderr);
  t.is(reg.refused, refusedBefore + 3);
  t.regex(r.stderr, /is not registered in the cluster .+ \(asking again\)\n$/);
  t.deepEqual(
    r.stdout.trim().split('\n'),
    names.map((n) => `Destroyed ${n}`),
  );
  for (const n of names) t.is(await c.registry.getUnit(asUnitName(n)), undefined);
});

test('cat returns the submitted bytes exactly', async (t) => {
  const text = '# no trailing newline, CRLF inside\r\n[Service]\nExecStart=/bin/sleep  1000   \n\n\n; end';
  await file('cat.unit', text);
  t.is((await (await cl()).fleetts(['submit', 'cat.unit'])).code, 0);
  const r = await (await cl()).fleetts(['cat', 'cat']);
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, text);
});

test('list-units, list-unit-files, list-machines: default columns, --fields, --no-legend, -l, -o json, sorted', async (t) => {
  await file('ls-b.unit', ON_US);
  await file('ls-a.unit', ON_US);
  t.is((await (await cl()).fleetts(['start', 'ls-b.unit', 'ls-a.unit'])).code, 0);

  let r = await (await cl()).fleetts(['list-units']);
  t.is(r.code, 0, r.stderr);
  const lines = r.stdout.split('\n');
  t.regex(lines[0] ?? '', /^UNIT +MACHINE +ACTIVE +SUB$/);
  const mine = lines.filter((l) => l.startsWith('ls-'));
  t.is(mine.length, 2);
  t.regex(mine[0] ?? '', /^ls-a\.unit +cccc3333\.\.\.\/127\.0\.0\.2 +active +running$/);
  t.regex(mine[1] ?? '', /^ls-b\.unit +cccc3333\.\.\.\/127\.0\.0\.2 +active +running$/);
  const units = lines
    .slice(1)
    .filter((l) => l !== '')
    .map((l) => l.split(/ +/)[0] ?? '');
  t.deepEqual(units, [...units].sort(), 'sorted by unit');

  r = await (await cl()).fleetts(['list-units', '--no-legend', '-l', '--fields', 'unit,machine,pid']);
  const a = r.stdout.split('\n').find((l) => l.startsWith('ls-a.unit'));
  t.regex(a ?? '', /^ls-a\.unit +cccc3333dddd4444\/127\.0\.0\.2 +\d+$/);
  t.false(r.stdout.startsWith('UNIT'));

  r = await (await cl()).fleetts(['list-units', '-o', 'json']);
  const rows = JSON.parse(r.stdout) as { unit: string; machine: string; active: string; sub: string }[];
  t.deepEqual(
    rows.find((x) => x.unit === 'ls-a.unit'),
    { unit: 'ls-a.unit', machine: 'cccc3333dddd4444', active: 'active', sub: 'running' },
  );

  r = await (await cl()).fleetts(['list-unit-files']);
  t.regex(r.stdout.split('\n')[0] ?? '', /^UNIT +HASH +DSTATE +STATE +TARGET/);
  t.regex(r.stdout, /\nls-a\.unit +[0-9a-f]{7} +launched +launched +cccc3333\.\.\.\/127\.0\.0\.2/);

  r = await (await cl()).fleetts(['list-machines']);
  t.is(
    r.stdout,
    'MACHINE      IP         METADATA\naaaa1111...  127.0.0.1  region=eu\ncccc3333...  127.0.0.2  region=us\n',
  );
  r = await (await cl()).fleetts(['list-machines', '-l', '--no-legend', '--fields', 'machine,ip']);
  t.is(r.stdout, 'aaaa1111bbbb2222  127.0.0.1\ncccc3333dddd4444  127.0.0.2\n');
  r = await (await cl()).fleetts(['list-machines', '-o', 'json', '--fields', 'machine,metadata']);
  t.deepEqual(JSON.parse(r.stdout), [
    { machine: 'aaaa1111bbbb2222', metadata: { region: 'eu' } },
    { machine: 'cccc3333dddd4444', metadata: { region: 'us' } },
  ]);
  r = await (await cl()).fleetts(['list-machines', '--fields', 'machine,colour']);
  t.is(r.code, 2);
  t.is(
    r.stderr,
    'fleetts: unknown field "colour"; known fields: machine, ip, metadata, units, state, version, api\n',
  );
});

test('an unplaceable unit: start fails with the reason; list-unit-files, status and plan explain it', async (t) => {
  await file('mars.unit', SERVICE('\n[X-Fleet]\nMachineMetadata=region=mars\n'));
  let r = await (await cl()).fleetts(['start', 'mars.unit']);
  t.is(r.code, 1);
  t.regex(
    r.stderr,
    /^fleetts: 1 unit did not reach the target state:\n {2}mars\.unit: cannot be placed: .+\n$/,
  );
  t.false(r.stderr.includes('    at '));

  r = await (await cl()).fleetts(['list-unit-files']);
  t.regex(r.stdout.split('\n')[0] ?? '', /REASON$/);
  t.regex(r.stdout, /\nmars\.unit +[0-9a-f]{7} +launched +inactive +- +unplaceable: .+/);

  r = await (await cl()).fleetts(['status', 'mars.unit']);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /● mars\.unit\n {3}Target: launched \(now inactive\)/);
  t.regex(r.stdout, /Not placed: .+\n {5}aaaa1111bbbb2222: .*region.*\n {5}cccc3333dddd4444: .*region/);

  r = await (await cl()).fleetts(['plan', 'mars.unit']);
  t.is(r.code, 1);
  t.regex(r.stdout, /^mars\.unit: cannot be placed: /);
  t.regex(r.stdout, /MACHINE +FITS +REASON\n +aaaa1111bbbb2222 +no +.*region/);
  t.is(r.stderr, 'fleetts: cannot be placed: mars.unit\n');

  await file('plan-ok.unit', ON_US);
  r = await (await cl()).fleetts(['plan', 'plan-ok.unit']);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /^plan-ok\.unit: would run on cccc3333dddd4444\n/);
  t.regex(r.stdout, /cccc3333dddd4444 +yes \(#1\) +fits/);
  t.deepEqual(await unitFiles(['plan-ok.unit']), [], 'plan changed nothing');
});

test('a unit that fails: start exits 1 naming it and the reason', async (t) => {
  await file('fails.unit', '[Service]\nExecStart=/bin/false\n');
  const r = await (await cl()).fleetts(['start', 'fails.unit']);
  t.is(r.code, 1);
  t.regex(r.stderr, /fails\.unit: failed on \w+: ExecStart=\/bin\/false exited with code 1/);
});

test('status and journal of a unit on another host, asked of host A (proxied over HTTP with the token)', async (t) => {
  await file('far.unit', ON_US);
  t.is((await (await cl()).fleetts(['start', 'far.unit'])).code, 0);
  (await cl()).b.agent.say('far.unit', 'hello from B');
  let r = await (await cl()).fleetts(['status', 'far.unit']);
  t.is(r.code, 0, r.stderr);
  t.regex(
    r.stdout,
    /Machine: cccc3333dddd4444\/127\.0\.0\.2\n {3}Loaded: loaded\n {3}Active: active \(running\) since \S+\n {3}Main PID: \d+\n\nStarted far\.unit \([0-9a-f]{7}\)\nhello from B\n$/,
  );

  r = await (await cl()).fleetts(['journal', '-n', '1', 'far.unit']);
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, 'hello from B\n');

  // Follow: lines written after the start arrive, then the command ends when aborted.
  const k = await cl();
  const stop = new AbortController();
  const following = k.fleetts(['journal', '-f', '-n', '0', 'far.unit'], { signal: stop.signal });
  for (let n = 0; n < 8; n++) {
    await new Promise((res) => setTimeout(res, 100));
    k.b.agent.say('far.unit', `live ${n}`);
  }
  stop.abort();
  const result = await following;
  t.is(result.code, 0, result.stderr);
  t.regex(result.stdout, /^(live \d+\n){3,}$/, 'several live lines arrived while following');

  // The same through host B's TCP endpoint with the token.
  const tcp = (await cl()).b.server.tcpAddress ?? '';
  r = await (await cl()).fleetts(['--endpoint', tcp, '--token', TOKEN, 'journal', 'far.unit', '-n', '1']);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /^(hello from B|live \d+)\n$/);
});

const BAD_INPUT: readonly [string, (dir: string) => string[], number, RegExp][] = [
  [
    'malformed unit file',
    () => ['submit', 'broken.unit'],
    1,
    /^fleetts: broken\.unit:\d+: \[Service\] has neither ExecStart= nor ExecStop=.+\n$/,
  ],
  ['unknown command', () => ['frobnicate'], 2, /unknown command 'frobnicate'/],
  ['unknown unit (status)', () => ['status', 'nope.unit'], 1, /^fleetts: unit nope\.unit is not submitted/],
  ['unknown unit (stop)', () => ['stop', 'nope.unit'], 1, /^fleetts: nope\.unit: not submitted/],
  [
    'unknown unit (destroy)',
    () => ['destroy', 'nope.unit'],
    1,
    /^fleetts: nope\.unit: not submitted, nothing to destroy\n$/,
  ],
  ['unknown unit (cat)', () => ['cat', 'nope.unit'], 1, /^fleetts: unit nope\.unit is not submitted\n$/],
  [
    'unknown instance without a template',
    () => ['start', 'nope@1.unit'],
    1,
    /not submitted, and neither is its template nope@\.unit/,
  ],
  [
    'bad endpoint',
    () => ['--endpoint', 'localhost:4003', 'list-units'],
    2,
    /^fleetts: bad endpoint "localhost:4003"/,
  ],
  [
    'unreachable endpoint',
    (dir) => ['--endpoint', `unix://${dir}/none.sock`, 'list-units'],
    1,
    /^fleetts: cannot reach fleetd at unix:\/\/.*none\.sock: no such socket/,
  ],
  [
    'bad --block-attempts',
    () => ['start', '--block-attempts', 'many', 'x.unit'],
    2,
    /--block-attempts must be a whole number/,
  ],
  [
    'bad unit name',
    () => ['status', 'db.timer'],
    1,
    /type "\.timer" is not supported; use \.unit or \.service/,
  ],
  [
    'starting a template',
    () => ['start', 'tmpl@.unit'],
    1,
    /tmpl@\.unit is a template and cannot be started; use an instance/,
  ],
  [
    'bad --request-timeout',
    () => ['--request-timeout', '-1', 'list-units'],
    2,
    /--request-timeout must be a number of seconds/,
  ],
  ['missing argument', () => ['start'], 2, /missing required argument 'unit'/],
];

for (const [title, argv, code, message] of BAD_INPUT) {
  test(`bad input: ${title} → exit ${code}`, async (t) => {
    await file('broken.unit', '[Service]\nExecStart=\n');
    await file('tmpl@.unit', SERVICE());
    const r = await (await cl()).fleetts(argv((await cl()).dir));
    t.is(r.code, code, r.stderr);
    t.regex(r.stderr, message);
    t.false(r.stderr.includes('    at '), 'no stack trace');
  });
}

test('bad input: a refused token is a clear error', async (t) => {
  const tcp = (await cl()).a.server.tcpAddress ?? '';
  let r = await (await cl()).fleetts(['--endpoint', tcp, '--token', 'wrong', 'list-units']);
  t.is(r.code, 1);
  t.is(r.stderr, 'fleetts: the bearer token was refused; check --token / FLEETTS_TOKEN\n');
  r = await (await cl()).fleetts(['--endpoint', tcp, 'list-machines']);
  t.is(r.code, 1);
  t.is(r.stderr, 'fleetts: this fleetd requires a bearer token (fleetts --token, or FLEETTS_TOKEN)\n');
});

test('help for every command has examples; --version prints the version', async (t) => {
  for (const cmd of [
    'submit',
    'load',
    'start',
    'stop',
    'unload',
    'destroy',
    'restart',
    'list-units',
    'list-unit-files',
    'list-machines',
    'status',
    'journal',
    'cat',
    'plan',
    'verify',
  ]) {
    const r = await (await cl()).fleetts([cmd, '--help']);
    t.is(r.code, 0, cmd);
    t.regex(r.stdout, new RegExp(`Usage: fleetts ${cmd} `), cmd);
    t.regex(r.stdout, /Examples:\n {2}fleetts /, cmd);
  }
  const v = await (await cl()).fleetts(['--version']);
  t.regex(v.stdout, /^\d+\.\d+\.\d+\n$/);
});

test('on a terminal, waiting shows progress in place', async (t) => {
  await file('tty.unit', ON_US);
  const r = await (await cl()).fleetts(['load', 'tty.unit'], { tty: true });
  t.is(r.code, 0, r.stderr);
  t.is(r.progress.at(-1), '', 'the progress line is cleared at the end');
  t.regex(r.stdout, /^Unit tty\.unit loaded on /);
});
