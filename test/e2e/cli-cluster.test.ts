// End to end: the real `fleetts` and `fleetd` binaries (dist/) on a real etcd, two hosts (separate
// fleetd processes with their own machine ids, state dirs and API sockets; host A also on loopback
// TCP with a token) running real [Service] units under the process runtime. Every assertion about
// a unit's processes is checked against the OS (/proc), not only against what fleetd reports.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import type { RunResult } from '../helpers/cli.js';
import { useEtcd } from '../helpers/etcd.js';
import { waitFor } from '../helpers/wait.js';
import { pgrep, startLocalHosts, type LocalHosts, type UnitProcess } from './local-hosts.js';

let cluster: LocalHosts | undefined;
/** Waits on the OS's process table (a pgrep or /proc scan per try): the default limit, slower polls. */
const POLL = { intervalMs: 200 };

// Serial hooks wait for every hook registered before them, and concurrent ones for the serial ones
// before them: so the hosts start after etcd did, and stop (their units with them) before it does.
test.serial.after.always(async () => {
  await cluster?.close();
});
const etcd = useEtcd(test);

test.serial.before(async () => {
  cluster = await startLocalHosts({
    etcdEndpoint: etcd().endpoint,
    hosts: [
      { name: 'a', tcp: true },
      { name: 'b', tcp: false },
    ],
    // A loaded 2-core machine can stall a fleetd's event loop for a second or more: with a 2 s TTL
    // (keepalive 0.67 s, fence at 1.4 s) that alone fenced a host and stopped its units mid-test.
    // No test here waits for a lease to expire, so a long TTL costs no time.
    leaseTtlMs: 10_000,
  });
});

function c(): LocalHosts {
  if (cluster === undefined) throw new Error('the two fleetd hosts did not start (see the before hook)');
  return cluster;
}
const A = () => c().host('a');
const B = () => c().host('b');
/** fleetts through host A's unix socket (the default), or the given endpoint. */
const fleetts = (args: readonly string[], endpoint?: string): Promise<RunResult> =>
  c().fleetts(args, endpoint === undefined ? {} : { endpoint });
/** fleetts through host A's TCP endpoint with the token. */
const overTcp = (args: readonly string[]): Promise<RunResult> =>
  c().fleetts(['--token', c().token, ...args], { endpoint: c().tcpEndpoint('a') });

/** A [Service] unit whose main process is the marked `sleep` (found in /proc by the harness). */
function service(echo: string, xfleet = ''): string {
  const unit = `[Unit]\nDescription=e2e %n\n\n[Service]\nExecStart=/bin/sh -c 'echo ${echo}; exec ${c().sleep} 1000'\n`;
  return xfleet === '' ? unit : `${unit}\n[X-Fleet]\n${xfleet}\n`;
}

async function file(name: string, text: string): Promise<void> {
  await writeFile(join(c().unitDir, name), text);
}

function ok(t: ExecutionContext, r: RunResult, what: string): void {
  t.is(r.code, 0, `${what}: exit ${String(r.code)}\n${r.stdout}${r.stderr}`);
}

/** Destroys the units when the test ends, whatever happened (later tests count processes). */
function destroyAfter(t: ExecutionContext, names: readonly string[]): void {
  t.teardown(async () => {
    await fleetts(['destroy', ...names]);
    await waitFor(
      `${names.join(', ')} gone`,
      async () => ((await c().unitProcesses()).some((p) => names.includes(p.unit)) ? undefined : true),
      POLL,
    );
  });
}

/**
 * The unit processes of `names`, once exactly `count` of them run, none with a pid in `not` (a
 * unit may be on its way up or down even after the command returned).
 */
function processesOf(
  names: readonly string[],
  count: number,
  not: readonly UnitProcess[] = [],
): Promise<UnitProcess[]> {
  return waitFor(
    `${count} processes of ${names.join(', ')}`,
    async () => {
      const ps = (await c().unitProcesses()).filter((p) => names.includes(p.unit));
      const fresh = ps.every((p) => !not.some((o) => o.pid === p.pid));
      return ps.length === count && fresh ? ps : undefined;
    },
    POLL,
  );
}

/** True while `pid` exists and is not a zombie (an exited child its supervisor has not reaped yet). */
async function alive(pid: number): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Waits until `pid` has exited; false if it still runs after CONVERGE_MS. */
async function exits(pid: number): Promise<boolean> {
  return waitFor(`pid ${pid} to exit`, async () => ((await alive(pid)) ? undefined : true), POLL).catch(
    () => false,
  );
}

const short = (id: string): string => (id.length <= 8 ? id : `${id.slice(0, 8)}...`);
/** A table's rows as cells (columns are two or more spaces apart; no cell holds two spaces). */
const cells = (out: string): string[][] =>
  out
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => l.split(/ {2,}/));

/** Journal lines without their timestamps (every line must have one). */
function journalLines(t: ExecutionContext, out: string): string[] {
  return out
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      const m = /^\d{4}-\d\d-\d\dT[\d:.]+Z (.*)$/.exec(l);
      t.truthy(m, `a timestamped journal line: ${JSON.stringify(l)}`);
      return m?.[1] ?? l;
    });
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
  const r = await fleetts([
    'list-unit-files',
    '-o',
    'json',
    '--fields',
    'unit,hash,dstate,state,target,reason',
  ]);
  if (r.code !== 0) throw new Error(`list-unit-files failed: ${r.stderr}`);
  return (JSON.parse(r.stdout) as FileRow[]).filter((u) => names.includes(u.unit));
}

test.serial('submit, load, start, stop, unload, destroy over template instances', async (t) => {
  await file('cyc@.unit', service('started %i on $FLEETTS_MACHINE_ID', 'Conflicts=cyc@*.unit'));
  const names = ['cyc@1.unit', 'cyc@2.unit'];
  destroyAfter(t, names);

  let r = await fleetts(['submit', 'cyc@1', 'cyc@2']);
  ok(t, r, 'submit');
  t.deepEqual(
    (await unitFiles(names)).map((u) => [u.unit, u.dstate, u.state, u.target]),
    [
      ['cyc@1.unit', 'inactive', 'inactive', []],
      ['cyc@2.unit', 'inactive', 'inactive', []],
    ],
  );

  r = await fleetts(['load', 'cyc@1', 'cyc@2']);
  ok(t, r, 'load');
  t.regex(r.stdout, /^Unit cyc@1\.unit loaded on e2e-[ab]-\w+\/127\.0\.0\.1\nUnit cyc@2\.unit loaded on /);
  const loaded = await unitFiles(names);
  t.deepEqual(
    loaded.map((u) => [u.dstate, u.state]),
    [
      ['loaded', 'loaded'],
      ['loaded', 'loaded'],
    ],
  );
  t.deepEqual(
    loaded.flatMap((u) => u.target).sort(),
    [A().machineId, B().machineId].sort(),
    'Conflicts= puts one instance on each host',
  );
  t.deepEqual(await c().unitProcesses(), [], 'loaded units do not run');

  r = await fleetts(['start', 'cyc@1.unit', 'cyc@2.unit']);
  ok(t, r, 'start');
  t.regex(r.stdout, /Unit cyc@1\.unit launched on e2e-\w-\w+\/127\.0\.0\.1\n/);
  const running = await processesOf(names, 2);
  t.deepEqual(
    running.map((p) => [p.unit, p.machine]),
    loaded.map((u) => [u.unit, u.target[0]]),
    'each instance runs where it was loaded',
  );
  const journal = await fleetts(['journal', 'cyc@2']);
  ok(t, journal, 'journal');
  t.regex(journal.stdout, new RegExp(`cyc@2\\.unit\\[\\d+\\]: started 2 on ${running[1]?.machine}\\n`));

  r = await fleetts(['stop', 'cyc@1']);
  ok(t, r, 'stop');
  t.regex(r.stdout, /^Unit cyc@1\.unit loaded on /);
  t.deepEqual(
    (await processesOf(names, 1)).map((p) => p.unit),
    ['cyc@2.unit'],
  );
  t.true(await exits(running[0]?.pid ?? 0), 'the stopped instance exited');
  t.deepEqual(
    (await unitFiles(names)).map((u) => [u.dstate, u.state, u.target.length]),
    [
      ['loaded', 'loaded', 1],
      ['launched', 'launched', 1],
    ],
  );

  r = await fleetts(['unload', 'cyc@1', 'cyc@2']);
  ok(t, r, 'unload');
  t.is(r.stdout, 'Unit cyc@1.unit inactive\nUnit cyc@2.unit inactive\n');
  await processesOf(names, 0);
  t.deepEqual(
    (await unitFiles(names)).map((u) => [u.dstate, u.state, u.target]),
    [
      ['inactive', 'inactive', []],
      ['inactive', 'inactive', []],
    ],
  );

  r = await fleetts(['destroy', 'cyc@1', 'cyc@2']);
  ok(t, r, 'destroy');
  t.is(r.stdout, 'Destroyed cyc@1.unit\nDestroyed cyc@2.unit\n');
  t.deepEqual(await unitFiles(names), []);
});

test.serial('start --replace re-deploys running units: new pid, new text in cat', async (t) => {
  const names = ['rep@1.unit', 'rep@2.unit'];
  destroyAfter(t, names);
  const v1 = service('rep %i v1', 'Conflicts=rep@*.unit');
  const v2 = service('rep %i v2 on $FLEETTS_MACHINE_ID', 'Conflicts=rep@*.unit');
  await file('rep@1.unit', v1);
  await file('rep@2.unit', v1);
  ok(t, await fleetts(['start', 'rep@1.unit', 'rep@2.unit']), 'start v1');
  const before = await processesOf(names, 2);

  await file('rep@1.unit', v2);
  await file('rep@2.unit', v2);
  let r = await fleetts(['start', 'rep@1.unit', 'rep@2.unit']);
  ok(t, r, 'start without --replace');
  t.regex(
    r.stderr,
    /^WARNING: unit rep@1\.unit in the registry differs from the local unit file; kept the registry's \(use --replace to replace it\)$/m,
  );
  t.is((await fleetts(['cat', 'rep@1'])).stdout, v1, 'without --replace the registry keeps v1');
  t.deepEqual(await processesOf(names, 2), before, 'nothing was restarted');

  r = await fleetts(['start', '--replace', 'rep@1.unit', 'rep@2.unit']);
  ok(t, r, 'start --replace');
  t.regex(r.stdout, /^Replaced rep@1\.unit\nReplaced rep@2\.unit\n/);
  t.regex(r.stdout, /^Unit rep@1\.unit launched on /m);
  t.regex(r.stdout, /^Unit rep@2\.unit launched on /m);
  const after = await processesOf(names, 2, before);
  for (const [i, p] of after.entries()) {
    const old = before[i];
    t.is(old?.unit, p.unit);
    t.not(p.pid, old?.pid, `${p.unit} runs as a new process`);
    t.true(await exits(old?.pid ?? 0), `${p.unit}'s old process is gone`);
  }
  const [cat1, cat2, journal] = await Promise.all([
    fleetts(['cat', 'rep@1.unit']),
    fleetts(['cat', 'rep@2.unit']),
    fleetts(['journal', '-n', '5', 'rep@2']),
  ]);
  for (const cat of [cat1, cat2]) {
    ok(t, cat, 'cat');
    t.is(cat.stdout, v2, 'cat shows the new text');
  }
  const rep2 = after.find((p) => p.unit === 'rep@2.unit');
  t.true(
    journalLines(t, journal.stdout).includes(`rep@2.unit[${rep2?.pid}]: rep 2 v2 on ${rep2?.machine}`),
    journal.stdout,
  );
});

test.serial('restart: the unit is really stopped, then started as a new process', async (t) => {
  destroyAfter(t, ['rst.unit']);
  await file('rst.unit', service('rst up'));
  ok(t, await fleetts(['start', 'rst.unit']), 'start');
  const [first] = await processesOf(['rst.unit'], 1);

  const r = await fleetts(['restart', 'rst']);
  ok(t, r, 'restart');
  // The rolling restart's lines (d32554a), as test/cli/commands.test.ts has them.
  t.regex(
    r.stdout,
    /^Restarting rst\.unit on (\S+) \(1\/1\)\nUnit rst\.unit stopped\nUnit rst\.unit active on \1\n$/,
  );
  const [second] = await processesOf(['rst.unit'], 1, first === undefined ? [] : [first]);
  t.not(second?.pid, first?.pid, 'a new main process');
  t.true(await exits(first?.pid ?? 0), 'the old main process exited');

  // The host's journal shows the whole sequence, in order: old pid, stop, start, new pid.
  const journal = await fleetts(['journal', '-n', '50', 'rst.unit']);
  ok(t, journal, 'journal');
  const steps = [
    `Started (main pid ${first?.pid}).`,
    'Stopping.',
    'Stopped.',
    'Starting.',
    `Started (main pid ${second?.pid}).`,
  ];
  let at = -1;
  for (const step of steps) {
    const next = journal.stdout.indexOf(`rst.unit: ${step}`, at + 1);
    t.true(next > at, `journal has "${step}" after the previous step:\n${journal.stdout}`);
    at = next;
  }
});

test.serial(
  'cat returns the submitted bytes exactly (CRLF, no final newline, comments, UTF-8)',
  async (t) => {
    const crlf = `[Unit]\r\nDescription=crlf é ✓\r\n\r\n[Service]\r\nExecStart=/bin/sh -c 'echo crlf runs; exec ${c().sleep} 1000'`;
    const odd =
      `# a comment first\n; and another\n[Unit]\nDescription=  spaced   out  \n\n[Service]\n` +
      `ExecStart=/bin/sh -c \\\n  'exec ${c().sleep} 1000'\n\n\n`;
    const template = `[Unit]\r\nDescription=template %i\r\n\r\n[Service]\r\nExecStart=/bin/sh -c 'exec ${c().sleep} 1000'\r\n`;
    await file('crlf.unit', crlf);
    await file('odd.unit', odd);
    await file('ct@.unit', template);
    destroyAfter(t, ['crlf.unit', 'odd.unit', 'ct@.unit', 'ct@1.unit']);
    ok(t, await fleetts(['submit', 'odd.unit', 'ct@.unit', 'ct@1']), 'submit');
    ok(t, await fleetts(['start', 'crlf.unit']), 'start crlf.unit');

    const expected = [
      ['crlf.unit', crlf],
      ['odd.unit', odd],
      ['ct@.unit', template],
      ['ct@1.unit', template],
    ] as const;
    const cats = await Promise.all(expected.map(([name]) => fleetts(['cat', name])));
    for (const [i, [name, text]] of expected.entries()) {
      const r = cats[i];
      ok(t, r ?? { code: null, signal: null, stdout: '', stderr: 'no result' }, `cat ${name}`);
      t.true(
        Buffer.from(r?.stdout ?? '').equals(Buffer.from(text)),
        `cat ${name}: ${JSON.stringify(r?.stdout)}`,
      );
    }
    // What cat printed, submitted again, is the same unit (same hash: no "differs" warning).
    await file('crlf.unit', cats[0]?.stdout ?? '');
    await file('odd.unit', cats[1]?.stdout ?? '');
    const again = await fleetts(['submit', 'crlf.unit', 'odd.unit']);
    ok(t, again, 'submit what cat printed');
    t.is(again.stderr, '', 'the registry holds exactly what cat printed');
    // The CRLF file runs: no carriage return crept into its command.
    const journal = await fleetts(['journal', 'crlf.unit']);
    t.regex(journal.stdout, /crlf\.unit\[\d+\]: crlf runs\n/);
  },
);

test.serial('list-units, list-unit-files, list-machines in every format', async (t) => {
  await file('lst@.unit', service('listed %i', 'Conflicts=lst@*.unit'));
  const names = ['lst@1.unit', 'lst@2.unit'];
  destroyAfter(t, names);
  ok(t, await fleetts(['start', 'lst@1', 'lst@2']), 'start');
  const procs = await processesOf(names, 2);
  const machineOf = new Map(procs.map((p) => [p.unit, p.machine]));

  const [units, unitsCustom, unitsJson, files, filesFull, filesJson, machines, machinesFull, machinesJson] =
    await Promise.all([
      fleetts(['list-units']),
      fleetts(['list-units', '--fields', 'unit,machine,pid', '--no-legend', '-l']),
      fleetts(['list-units', '-o', 'json', '--fields', 'unit,machine,ip,load,active,sub,hash,pid,since']),
      fleetts(['list-unit-files']),
      fleetts(['list-unit-files', '--full', '--fields', 'unit,hash,target']),
      fleetts(['list-unit-files', '-o', 'json']),
      fleetts(['list-machines']),
      fleetts(['list-machines', '-l', '--no-legend', '--fields', 'machine,api,units']),
      fleetts(['list-machines', '-o', 'json']),
    ]);
  for (const r of [
    units,
    unitsCustom,
    unitsJson,
    files,
    filesFull,
    filesJson,
    machines,
    machinesFull,
    machinesJson,
  ])
    ok(t, r, 'list');

  // list-units: default columns, ids shortened, rows sorted.
  const u = cells(units.stdout);
  t.deepEqual(u[0], ['UNIT', 'MACHINE', 'ACTIVE', 'SUB']);
  t.deepEqual(
    u.slice(1),
    names.map((n) => [n, `${short(machineOf.get(n) ?? '?')}/127.0.0.1`, 'active', 'running']),
  );
  // --fields, --no-legend, -l: the pid is the real process's.
  t.deepEqual(
    cells(unitsCustom.stdout),
    procs.map((p) => [p.unit, `${p.machine}/127.0.0.1`, String(p.pid)]),
  );
  // -o json.
  const hash = (JSON.parse(filesJson.stdout) as FileRow[])[0]?.hash ?? '';
  t.regex(hash, /^[0-9a-f]{64}$/);
  const uj = JSON.parse(unitsJson.stdout) as Record<string, unknown>[];
  t.deepEqual(
    uj.map(({ since, ...rest }) => {
      t.true(typeof since === 'string' && !Number.isNaN(Date.parse(since)), `since ${String(since)}`);
      return rest;
    }),
    procs.map((p) => ({
      unit: p.unit,
      machine: p.machine,
      ip: '127.0.0.1',
      load: 'loaded',
      active: 'active',
      sub: 'running',
      hash,
      pid: p.pid,
    })),
  );

  // list-unit-files: default columns (no REASON: everything is placed), short hash; --full.
  const f = cells(files.stdout);
  t.deepEqual(f[0], ['UNIT', 'HASH', 'DSTATE', 'STATE', 'TARGET']);
  t.deepEqual(
    f.slice(1),
    names.map((n) => [
      n,
      hash.slice(0, 7),
      'launched',
      'launched',
      `${short(machineOf.get(n) ?? '?')}/127.0.0.1`,
    ]),
  );
  t.deepEqual(cells(filesFull.stdout), [
    ['UNIT', 'HASH', 'TARGET'],
    ...names.map((n) => [n, hash, `${machineOf.get(n) ?? '?'}/127.0.0.1`]),
  ]);
  t.deepEqual(
    JSON.parse(filesJson.stdout),
    names.map((n) => ({ unit: n, hash, dstate: 'launched', state: 'launched', target: [machineOf.get(n)] })),
  );

  // list-machines: sorted by id (a before b).
  t.deepEqual(cells(machines.stdout), [
    ['MACHINE', 'IP', 'METADATA'],
    [short(A().machineId), '127.0.0.1', 'host=a'],
    [short(B().machineId), '127.0.0.1', 'host=b'],
  ]);
  t.deepEqual(cells(machinesFull.stdout), [
    [A().machineId, c().tcpEndpoint('a'), '1'],
    [B().machineId, B().socket, '1'],
  ]);
  t.deepEqual(JSON.parse(machinesJson.stdout), [
    { machine: A().machineId, ip: '127.0.0.1', metadata: { host: 'a' } },
    { machine: B().machineId, ip: '127.0.0.1', metadata: { host: 'b' } },
  ]);

  const bad = await fleetts(['list-units', '--fields', 'unit,colour']);
  t.is(bad.code, 2);
  t.is(
    bad.stderr,
    'fleetts: unknown field "colour"; known fields: unit, machine, ip, load, active, sub, hash, pid, since\n',
  );
});

test.serial('an unplaceable unit is explained: start, list-unit-files and status say why', async (t) => {
  destroyAfter(t, ['nowhere.unit']);
  await file('nowhere.unit', service('never', 'MachineMetadata=host=nowhere'));
  const why = 'no machine fits (rejected by metadata on 2 machines)';

  const r = await fleetts(['start', 'nowhere.unit']);
  t.is(r.code, 1);
  t.is(
    r.stderr,
    `fleetts: 1 unit did not reach the target state:\n  nowhere.unit: cannot be placed: ${why}\n`,
  );

  const [files, json, status] = await Promise.all([
    fleetts(['list-unit-files']),
    unitFiles(['nowhere.unit']),
    fleetts(['status', 'nowhere.unit']),
  ]);
  const rows = cells(files.stdout);
  t.deepEqual(rows[0], ['UNIT', 'HASH', 'DSTATE', 'STATE', 'TARGET', 'REASON'], 'REASON appears');
  t.deepEqual(rows.find((row) => row[0] === 'nowhere.unit')?.slice(2), [
    'launched',
    'inactive',
    '-',
    `unplaceable: ${why}`,
  ]);
  t.deepEqual(
    json.map((u) => [u.dstate, u.state, u.target, u.reason]),
    [['launched', 'inactive', [], why]],
  );
  ok(t, status, 'status');
  t.regex(status.stdout, /^● nowhere\.unit\n {3}Target: launched \(now inactive\) {2}Hash: [0-9a-f]{12}\n/);
  t.true(
    status.stdout.endsWith(
      `   Not placed: ${why}\n` +
        `     ${A().machineId}: metadata host=a does not match host=nowhere\n` +
        `     ${B().machineId}: metadata host=b does not match host=nowhere\n`,
    ),
    status.stdout,
  );
});

test.serial("status and journal of a unit on host B, asked through host A's endpoints", async (t) => {
  destroyAfter(t, ['far.unit', 'near.unit']);
  await file('far.unit', service('far says hello on $FLEETTS_MACHINE_ID', 'MachineMetadata=host=b'));
  await file('near.unit', service('near says hello on $FLEETTS_MACHINE_ID', 'MachineMetadata=host=a'));
  // Started through A's TCP endpoint (with the token): every command works there.
  const r = await overTcp(['start', 'far.unit', 'near.unit']);
  ok(t, r, 'start over TCP');
  // Each unit is reported when it got there, so the two lines come in either order.
  t.deepEqual(r.stdout.split('\n').sort(), [
    '',
    `Unit far.unit launched on ${B().machineId}/127.0.0.1`,
    `Unit near.unit launched on ${A().machineId}/127.0.0.1`,
  ]);
  const [far, near] = await processesOf(['far.unit', 'near.unit'], 2);
  t.is(far?.machine, B().machineId);
  t.is(near?.machine, A().machineId);

  const [status, statusJson, journalTcp, journalSocket, reverse] = await Promise.all([
    overTcp(['status', 'far.unit']),
    fleetts(['status', '-o', 'json', 'far.unit']),
    overTcp(['journal', '-n', '3', 'far.unit']),
    fleetts(['journal', '-n', '3', 'far']),
    // And the other way: B's socket asks A's TCP API (with the token every host has).
    fleetts(['status', 'near.unit'], B().socket),
  ]);
  // The supervisor's "Started" line and the unit's first output may land in either order.
  const farLines = [
    `far.unit[${far?.pid}]: far says hello on ${B().machineId}`,
    `fleetts-supervisor: far.unit: Started (main pid ${far?.pid}).`,
    'fleetts-supervisor: far.unit: Starting.',
  ];
  const anySupervisor = (lines: string[]) =>
    lines.map((l) => l.replace(/^fleetts-supervisor\[\d+\]/, 'fleetts-supervisor')).sort();

  ok(t, status, 'status over TCP');
  const [head, log = ''] = status.stdout.split('\n\n');
  t.regex(
    head ?? '',
    new RegExp(
      `^● far\\.unit\\n {3}Target: launched \\(now launched\\) {2}Hash: [0-9a-f]{12}\\n` +
        ` {3}Machine: ${B().machineId}/127\\.0\\.0\\.1\\n {3}Loaded: loaded\\n` +
        ` {3}Active: active \\(running\\) since \\S+\\n {3}Main PID: ${far?.pid}$`,
    ),
  );
  t.deepEqual(anySupervisor(journalLines(t, log)), farLines, 'status shows the last log lines from B');

  ok(t, statusJson, 'status -o json');
  const parsed = JSON.parse(statusJson.stdout) as {
    unit: { name: string };
    hosts: { machine: string; observed?: { pid?: number; active: string }; log: string[] }[];
  }[];
  t.is(parsed[0]?.unit.name, 'far.unit');
  t.deepEqual(
    parsed[0]?.hosts.map((h) => [h.machine, h.observed?.active, h.observed?.pid, h.log.length]),
    [[B().machineId, 'active', far?.pid, 3]],
  );

  ok(t, journalTcp, 'journal over TCP');
  t.deepEqual(anySupervisor(journalLines(t, journalTcp.stdout)), farLines, 'journal over TCP');
  ok(t, journalSocket, 'journal over the socket');
  t.is(journalSocket.stdout, journalTcp.stdout, 'the same journal through either endpoint of A');

  ok(t, reverse, 'status through B');
  t.regex(reverse.stdout, new RegExp(`^ {3}Main PID: ${near?.pid}$`, 'm'));
  t.regex(
    reverse.stdout,
    new RegExp(`^\\S+ near\\.unit\\[${near?.pid}\\]: near says hello on ${A().machineId}$`, 'm'),
  );
});

test.serial('bad input: clear messages, the right exit codes, no stack traces', async (t) => {
  await file('broken.unit', '[Unit]\nDescription=broken\n\n[Service]\nExecStart=\n');
  await file('header.unit', '[Unit]\nDescription=bad header\n[Service\nExecStart=/bin/true\n');
  const tcp = c().tcpEndpoint('a');
  const cases: readonly [string, readonly string[], number, RegExp][] = [
    [
      'malformed unit (missing ExecStart)',
      ['submit', 'broken.unit'],
      1,
      /^fleetts: broken\.unit:4: \[Service\] has neither ExecStart= nor ExecStop=; add ExecStart=\/absolute\/path\/to\/program\n$/,
    ],
    [
      'malformed unit (section header)',
      ['start', 'header.unit'],
      1,
      /^fleetts: header\.unit:3: section header "\[Service" has no closing "\]"; write \[Name\]\n$/,
    ],
    ['unknown command', ['frobnicate'], 2, /^error: unknown command 'frobnicate'/],
    [
      'unknown unit (status)',
      ['status', 'nope.unit'],
      1,
      /^fleetts: unit nope\.unit is not submitted \(see fleetts list-unit-files\)\n$/,
    ],
    ['unknown unit (journal)', ['journal', 'nope'], 1, /^fleetts: unit nope\.unit is not submitted/],
    ['unknown unit (cat)', ['cat', 'nope.unit'], 1, /^fleetts: unit nope\.unit is not submitted/],
    [
      'unknown unit (stop)',
      ['stop', 'nope.unit'],
      1,
      /^fleetts: nope\.unit: not submitted \(see fleetts list-unit-files\)\n$/,
    ],
    [
      'unknown unit (destroy)',
      ['destroy', 'nope.unit'],
      1,
      /^fleetts: nope\.unit: not submitted, nothing to destroy\n$/,
    ],
    [
      'malformed endpoint',
      ['--endpoint', 'localhost:4003', 'list-units'],
      2,
      /^fleetts: bad endpoint "localhost:4003"/,
    ],
    [
      'nothing listening on the endpoint',
      ['--endpoint', 'http://127.0.0.1:1', 'list-units'],
      1,
      /^fleetts: cannot reach fleetd at http:\/\/127\.0\.0\.1:1: connection refused \(is fleetd running there\? set --endpoint or FLEETTS_ENDPOINT\)\n$/,
    ],
    [
      'no socket at the endpoint',
      ['--endpoint', `unix://${c().root}/none.sock`, 'list-units'],
      1,
      /^fleetts: cannot reach fleetd at unix:\/\/\S+\/none\.sock: no such socket/,
    ],
    [
      'token refused on the TCP endpoint',
      ['--endpoint', tcp, '--token', 'not-the-token', 'list-units'],
      1,
      /^fleetts: the bearer token was refused; check --token \/ FLEETTS_TOKEN\n$/,
    ],
    [
      'no token on the TCP endpoint',
      ['--endpoint', tcp, 'start', 'rst.unit'],
      1,
      /^fleetts: this fleetd requires a bearer token \(fleetts --token, or FLEETTS_TOKEN\)\n$/,
    ],
  ];
  const results = await Promise.all(cases.map(([, argv]) => fleetts(argv)));
  for (const [i, [title, , code, message]] of cases.entries()) {
    const r = results[i];
    t.is(r?.code, code, `${title}: exit code (stderr: ${r?.stderr ?? ''})`);
    t.regex(r?.stderr ?? '', message, title);
    t.is(r?.stdout, '', `${title}: nothing on stdout`);
    t.false((r?.stderr ?? '').includes('    at '), `${title}: no stack trace`);
  }
  // Nothing was submitted by any of them.
  t.deepEqual(await unitFiles(['broken.unit', 'header.unit', 'rst.unit', 'nope.unit']), []);
});

test.serial('destroying every unit leaves no unit process behind', async (t) => {
  const r = await fleetts(['list-unit-files', '-o', 'json', '--fields', 'unit']);
  ok(t, r, 'list-unit-files');
  const left = (JSON.parse(r.stdout) as { unit: string }[]).map((u) => u.unit);
  if (left.length > 0) ok(t, await fleetts(['destroy', ...left]), 'destroy');
  await waitFor(
    'no unit processes',
    async () => ((await pgrep(c().sleep)).length === 0 ? true : undefined),
    POLL,
  );
  t.deepEqual(await pgrep(c().sleep), []);
});
