// A batch submit survives the fleetd it was sent to dying in the middle of it: the real `fleetts`
// binary sends 1,500 units to host1's fleetd (two real fleetd processes, a real etcd); host1 is
// killed once the first units are stored, while it is still writing; the CLI sends the batch again
// through host2 (a batch is idempotent) and exits 0 with every unit stored, each exactly once.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { asUnitName } from '../../src/cluster/types.js';
import { createEtcdRegistry } from '../../src/registry/etcd-registry.js';
import { ROOT, runBin } from '../helpers/cli.js';
import { randomPrefix, useEtcd } from '../helpers/etcd.js';
import { waitFor } from '../helpers/wait.js';

const UNITS = 1_500;
const children: { process: ChildProcess; exited: Promise<unknown> }[] = [];
const dirs: string[] = [];
// Registered before useEtcd's hooks, so that the fleetds stop before etcd does.
test.after.always(async () => {
  for (const c of children) {
    if (c.process.exitCode === null && c.process.signalCode === null) c.process.kill('SIGTERM');
    await c.exited;
  }
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});
const etcd = useEtcd(test);

test('fleetd killed in the middle of a 1,500-unit batch: the CLI sends it again through the next endpoint', async (t) => {
  t.timeout(300_000, 'a 1,500-unit batch sent twice on a loaded machine');
  const dir = await mkdtemp(join(tmpdir(), 'fleetts-batch-retry-'));
  dirs.push(dir);
  const prefix = randomPrefix();
  const registry = createEtcdRegistry({ endpoints: [etcd().endpoint], prefix });
  t.teardown(() => registry.close());
  const start = (id: string) => {
    const stateDir = join(dir, id);
    const socket = join(stateDir, 'fleetd.sock');
    // prettier-ignore
    const args = [
      '--etcd-endpoints', etcd().endpoint, '--etcd-key-prefix', prefix, '--machine-id', id,
      '--public-ip', '127.0.0.1', '--state-dir', stateDir, '--api-socket', socket,
      '--runtime', 'process', '--log-level', 'warn',
    ];
    const child = spawn(process.execPath, [`${ROOT}bin/fleetd.js`, ...args], {
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const host = { process: child, exited: new Promise((resolve) => child.once('exit', resolve)) };
    children.push(host);
    return { ...host, socket: `unix://${socket}` };
  };
  const host1 = start('host1');
  const host2 = start('host2');
  await waitFor('both fleetds registered', async () => (await registry.listMachines()).items.length === 2);

  // Instances of a local template: small to send, one stored unit each for fleetd to write.
  await writeFile(join(dir, 's@.unit'), '[Service]\nExecStart=/bin/sleep 1000\n');
  const names = Array.from({ length: UNITS }, (_, i) => `s@${i + 1}.unit`);
  const submit = runBin('fleetts', ['--debug', 'submit', ...names], {
    env: { FLEETTS_ENDPOINT: `${host1.socket},${host2.socket}` },
    cwd: dir,
    timeoutMs: 300_000,
  });
  // Units are written after the whole batch validated, one after the other: kill host1 as soon
  // as the first is stored, while the last is not.
  const ended = submit.then((r) => {
    throw new Error(`fleetts submit ended before the kill (exit ${r.code}): ${r.stderr.slice(-2000)}`);
  });
  ended.catch(() => undefined);
  await Promise.race([
    ended,
    waitFor(
      'the first units stored',
      async () => (await registry.getUnit(asUnitName('s@1.unit'))) !== undefined,
      {
        intervalMs: 20,
        timeoutMs: 120_000,
      },
    ),
  ]);
  host1.process.kill('SIGKILL');
  await host1.exited;
  t.is(
    await registry.getUnit(asUnitName(`s@${UNITS}.unit`)),
    undefined,
    'host1 died with the batch half written',
  );

  const r = await submit;
  t.is(
    r.code,
    0,
    r.stderr
      .split('\n')
      .filter((l) => !l.startsWith('debug: → ') && !l.startsWith('debug: ← '))
      .join('\n'),
  );
  t.regex(r.stderr, /debug: ✗ .* during the batch; sending it again \(attempt 2\)/);
  t.regex(
    r.stderr,
    new RegExp(`debug: → PUT ${host2.socket.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}/v1/units\n`),
  );
  const units = (await registry.snapshot({ unitFiles: 'none' })).units;
  t.is(units.size, UNITS, 'every unit stored');
  t.true(names.every((n) => units.has(asUnitName(n))));
});
