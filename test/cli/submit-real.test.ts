// `fleetts submit` through the real binaries: one real fleetd (process runtime) on a real etcd.
// Issue 14: a large batch the server completes is not reported failed (item 7); a unit name over
// the host's file-name limit is refused at submit and one at the limit runs (item 9); missing
// files, broken links, directories and FIFOs get clear answers, a FIFO at once (item 10).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { UNIT_NAME_MAX } from '../../src/unit/names.js';
import { createEtcdRegistry } from '../../src/registry/etcd-registry.js';
import { parseEndpoint, readText, sendRequest } from '../../src/api/http-transport.js';
import { ROOT, runBin, type RunResult } from '../helpers/cli.js';
import { randomPrefix, useEtcd } from '../helpers/etcd.js';
import { waitFor } from '../helpers/wait.js';

interface Host {
  readonly dir: string;
  readonly socket: string;
  readonly child: ChildProcess;
  readonly exited: Promise<unknown>;
  stderr: string;
}

let started: Promise<Host> | undefined;

// Registered before useEtcd's hooks, so that fleetd stops before etcd does.
test.after.always(async () => {
  const h = await started?.catch(() => undefined);
  if (h === undefined) return;
  h.child.kill('SIGTERM');
  await h.exited;
  await rm(h.dir, { recursive: true, force: true });
});
const etcd = useEtcd(test);

/** The fleetd every test uses, started by the first (after etcd's before hook). */
function fleetd(): Promise<Host> {
  return (started ??= startFleetd());
}

async function startFleetd(): Promise<Host> {
  const dir = await mkdtemp(join(tmpdir(), 'fleetts-submit-'));
  const prefix = randomPrefix();
  const socket = join(dir, 'fleetd.sock');
  // prettier-ignore
  const args = [
    '--etcd-endpoints', etcd().endpoint, '--etcd-key-prefix', prefix, '--machine-id', 'submit-real',
    '--public-ip', '127.0.0.1', '--state-dir', join(dir, 'state'), '--api-socket', socket,
    '--runtime', 'process', '--log-level', 'warn',
  ];
  const child = spawn(process.execPath, [`${ROOT}bin/fleetd.js`, ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const h: Host = { dir, socket, child, exited, stderr: '' };
  child.stderr?.on('data', (d: Buffer) => (h.stderr = (h.stderr + d.toString()).slice(-4000)));
  const registry = createEtcdRegistry({ endpoints: [etcd().endpoint], prefix });
  try {
    await waitFor('fleetd registered', async () => (await registry.listMachines()).items.length === 1);
  } finally {
    await registry.close();
  }
  return h;
}

async function fleetts(args: readonly string[], cwd: string, timeoutMs = 120_000): Promise<RunResult> {
  const h = await fleetd();
  return runBin('fleetts', ['--endpoint', `unix://${h.socket}`, ...args], { cwd, timeoutMs });
}

async function workDir(): Promise<string> {
  const dir = join((await fleetd()).dir, `work-${Math.random().toString(36).slice(2)}`);
  await mkdir(dir);
  return dir;
}

const SERVICE = '[Service]\nExecStart=/bin/sleep 1000\n';

test.serial(
  'item 7: a batch of 1,000 units that takes fleetd longer than the request timeout succeeds',
  async (t) => {
    const dir = await workDir();
    const names = Array.from({ length: 1_000 }, (_, i) => `batch${String(i).padStart(4, '0')}.service`);
    await Promise.all(names.map((n) => writeFile(join(dir, n), `${SERVICE}# ${n}\n`)));
    // The request timeout is the limit for a small request; fleetd stores 1,000 units in far more
    // than 0.5 s (seconds on any machine), so without a limit that grows with the batch this failed
    // with "did not answer within 500 ms" while every unit landed.
    const r = await fleetts(['--request-timeout', '0.5', 'submit', ...names], dir);
    t.is(r.code, 0, r.stderr);
    t.is(r.stderr, '');
    const listed = await fleetts(['list-unit-files', '-o', 'json', '--fields', 'unit'], dir);
    t.is(listed.code, 0, listed.stderr);
    const units = (JSON.parse(listed.stdout) as { unit: string }[]).map((u) => u.unit);
    t.is(units.filter((u) => u.startsWith('batch')).length, names.length);
  },
);

test.serial(
  'item 9: a name over the limit is refused at submit; one at the limit runs on the host',
  async (t) => {
    const dir = await workDir();
    const long = `${'l'.repeat(UNIT_NAME_MAX + 1 - '.service'.length)}.service`;
    const reason = `it is ${UNIT_NAME_MAX + 1} characters long; the limit is ${UNIT_NAME_MAX} (the longest file name a host takes: the unit's directory on its host is named after it)`;

    // Through the CLI (checked before anything is sent)…
    const cli = await fleetts(['submit', long], dir);
    t.is(cli.code, 1);
    t.is(cli.stderr, `fleetts: invalid unit name "${long}": ${reason}\n`);
    // …and through fleetd's API, for clients that skip the CLI.
    const res = await sendRequest(parseEndpoint(`unix://${(await fleetd()).socket}`), {
      method: 'PUT',
      path: '/v1/units',
      body: { units: [{ name: long, text: SERVICE, target: 'launched' }] },
    });
    const body = JSON.parse(await readText(res)) as { error?: { message?: string } };
    t.is(res.status, 400);
    t.is(body.error?.message, `invalid unit name "${long}": ${reason}`);

    // A name at the limit is placed, and its supervisor runs it from <state-dir>/units/<name>/.
    const atLimit = `${'m'.repeat(UNIT_NAME_MAX - '.service'.length)}.service`;
    await writeFile(join(dir, atLimit), SERVICE);
    const start = await fleetts(['start', atLimit], dir);
    t.is(start.code, 0, `${start.stderr}\n${(await fleetd()).stderr}`);
    t.regex(start.stdout, new RegExp(`^Unit ${atLimit} launched on submit-real/127\\.0\\.0\\.1\\n$`));
    const unitDir = join((await fleetd()).dir, 'state', 'units', atLimit);
    t.true(existsSync(join(unitDir, 'status.json')));
    const status = await fleetts(['list-units', '-o', 'json', '--fields', 'unit,active'], dir);
    t.like(
      (JSON.parse(status.stdout) as { unit: string; active: string }[]).find((u) => u.unit === atLimit),
      {
        active: 'active',
      },
    );
    // Its supervisor is fleetd's to stop: destroy it and wait until the host removed it.
    t.is((await fleetts(['destroy', atLimit], dir)).code, 0);
    await waitFor('the unit removed from its host', () => !existsSync(unitDir));
  },
);

test.serial(
  'item 10: a missing file or a link to nothing is named, with where it was looked for',
  async (t) => {
    const dir = await workDir();
    const missing = join(dir, 'nowhere', 'missing.service');
    const r = await fleetts(['submit', missing], dir);
    t.is(r.code, 1);
    t.is(
      r.stderr,
      `fleetts: ${missing}: no such file, and unit missing.service is not submitted; give the path of its unit file\n`,
    );

    const r2 = await fleetts(['submit', 'missing2.service'], dir);
    t.is(r2.code, 1);
    t.is(
      r2.stderr,
      `fleetts: missing2.service (${join(dir, 'missing2.service')}): no such file, and unit missing2.service is not submitted; give the path of its unit file\n`,
    );

    await symlink(join(dir, 'gone.service'), join(dir, 'link.service'));
    const r3 = await fleetts(['start', './link.service'], dir);
    t.is(r3.code, 1);
    t.is(
      r3.stderr,
      `fleetts: ./link.service (${join(dir, 'link.service')}): a symbolic link to ${join(dir, 'gone.service')}, which does not exist, and unit link.service is not submitted; give the path of its unit file\n`,
    );

    const r4 = await fleetts(['submit', 'nope@1.service'], dir);
    t.is(r4.code, 1);
    t.is(
      r4.stderr,
      `fleetts: nope@1.service (${join(dir, 'nope@1.service')}): no such file, nor is there a template file ${join(dir, 'nope@.service')}; unit nope@1.service is not submitted, and neither is its template nope@.service: give the path of the unit or template file\n`,
    );

    // A unit already submitted needs no local file (fleetctl's rule): no error then.
    await writeFile(join(dir, 'here.service'), SERVICE);
    t.is((await fleetts(['submit', 'here.service'], dir)).code, 0);
    await rm(join(dir, 'here.service'));
    const again = await fleetts(['submit', 'here.service'], dir);
    t.is(again.code, 0, again.stderr);
  },
);

test.serial('item 10: a directory, with or without "/", is the same usage error', async (t) => {
  const dir = await workDir();
  await mkdir(join(dir, 'adir'));
  const plain = await fleetts(['submit', 'adir'], dir);
  const slash = await fleetts(['submit', 'adir/'], dir);
  const message =
    'fleetts: adir is a directory, not a unit file; give the unit files in it (such as adir/*.unit)\n';
  t.is(plain.code, 2, plain.stderr);
  t.is(plain.stderr, message);
  t.is(slash.code, 2, slash.stderr);
  t.is(slash.stderr, message);
});

test.serial('item 10: a FIFO is refused at once, never read (which would block)', async (t) => {
  const dir = await workDir();
  const fifo = join(dir, 'pipe.service');
  const made = spawnSync('mkfifo', [fifo]);
  t.is(made.status, 0, made.stderr.toString());
  // Without the check the command blocks for good: runBin's limit (60 s) would kill it (code null).
  const r = await fleetts(['submit', fifo], dir, 60_000);
  t.is(r.code, 2, r.stderr);
  t.is(r.stderr, `fleetts: ${fifo}: not a regular file (a FIFO); give a unit file\n`);
  const v = await runBin('fleetts', ['verify', fifo], { cwd: dir, timeoutMs: 60_000 });
  t.is(v.code, 1);
  t.is(v.stderr, `${fifo}: not a regular file (a FIFO); give a unit file\n`);
});
