// `fleetts drain` / `undrain` in-process against a real API, real etcd and the real engine on two
// hosts (cluster-harness.ts): progress lines, the end state in list-machines, a unit that fits
// nowhere else, --deadline, undrain, and bad input.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import { asMachineId, asUnitName } from '../../src/cluster/types.js';
import { useEtcd } from '../helpers/etcd.js';
import { waitFor } from '../helpers/wait.js';
import { startTestCluster, type TestCluster } from './cluster-harness.js';

let cluster: Promise<TestCluster> | undefined;
test.after.always(async () => {
  await (await cluster?.catch(() => undefined))?.close();
});
const etcd = useEtcd(test);
const cl = (): Promise<TestCluster> => (cluster ??= startTestCluster(etcd().endpoint));

const SERVICE = (extra = '') => `[Unit]\nDescription=test\n\n[Service]\nExecStart=/bin/sleep 1000\n${extra}`;

async function file(name: string, text: string): Promise<void> {
  await writeFile(join((await cl()).dir, name), text);
}

async function machinesOf(names: readonly string[]): Promise<Record<string, string[]>> {
  const r = await (await cl()).fleetts(['list-unit-files', '-o', 'json', '--fields', 'unit,target']);
  const rows = JSON.parse(r.stdout) as { unit: string; target: string[] }[];
  return Object.fromEntries(rows.filter((x) => names.includes(x.unit)).map((x) => [x.unit, x.target]));
}

test.serial(
  'drain moves every unit off the host, says how each went, and ends drained; undrain',
  async (t) => {
    const c = await cl();
    const names = ['dr1.unit', 'dr2.unit', 'dr3.unit', 'dr4.unit'];
    for (const n of names) await file(n, SERVICE());
    await file('dr-eu.unit', SERVICE('\n[X-Fleet]\nMachineMetadata=region=eu\n'));
    t.is((await c.fleetts(['start', ...names, 'dr-eu.unit'])).code, 0);
    const before = await machinesOf(names);
    const onA = names.filter((n) => before[n]?.[0] === 'aaaa1111bbbb2222');
    t.true(onA.length > 0, 'host A runs some of them');

    const r = await c.fleetts(['drain', 'aaaa']);
    t.is(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    t.is(lines[0], `Draining aaaa1111...: ${onA.length + 1} units on it`);
    // Steps the engine finished between two polls get no `Moving` line; every unit gets its outcome.
    for (const n of onA) {
      t.true(lines.includes(`${n}: active (running) on cccc3333.../127.0.0.2`), r.stdout);
    }
    t.true(
      lines.some((l) =>
        /^dr-eu\.unit: stopped, not placed: no machine fits \(rejected by drained on 1 machine, metadata on 1 machine\)$/.test(
          l,
        ),
      ),
      r.stdout,
    );
    t.regex(lines.at(-1) ?? '', /^Machine aaaa1111\.\.\. drained: no units left \(.+\)$/);
    t.deepEqual(
      Object.values(await machinesOf(names)).flat(),
      names.map(() => 'cccc3333dddd4444'),
    );
    let ls = await c.fleetts(['list-machines']);
    t.is(
      ls.stdout,
      'MACHINE      IP         METADATA   STATE\naaaa1111...  127.0.0.1  region=eu  drained\ncccc3333...  127.0.0.2  region=us  -\n',
    );
    const again = await c.fleetts(['drain', 'aaaa1111bbbb2222']);
    t.is(again.stdout, 'Machine aaaa1111... is drained: no units on it\n');

    const u = await c.fleetts(['undrain', 'aaaa']);
    t.is(u.code, 0, u.stderr);
    t.is(u.stdout, 'Machine aaaa1111... undrained: it takes new placements again\n');
    ls = await c.fleetts(['list-machines']);
    t.is(
      ls.stdout,
      'MACHINE      IP         METADATA\naaaa1111...  127.0.0.1  region=eu\ncccc3333...  127.0.0.2  region=us\n',
    );
    // The unit that fits only there goes back; nothing else moves.
    await waitFor(
      'dr-eu.unit placed again',
      async () => (await machinesOf(['dr-eu.unit']))['dr-eu.unit']?.[0] === 'aaaa1111bbbb2222',
    );
    t.deepEqual(
      Object.values(await machinesOf(names)).flat(),
      names.map(() => 'cccc3333dddd4444'),
    );
    t.is((await c.fleetts(['undrain', 'aaaa'])).code, 1, 'not drained any more');
  },
);

test.serial(
  'fleetd not registered for a while (its lease lapsed under load): drain asks again and goes on',
  async (t) => {
    const c = await cl();
    await file('dr-ann.unit', SERVICE());
    t.is((await c.fleetts(['start', 'dr-ann.unit'])).code, 0);
    t.deepEqual((await machinesOf(['dr-ann.unit']))['dr-ann.unit'], [c.a.id], 'placed on the emptier host A');
    const lease = await c.registry.openLease({ ttlMs: 5_000 });
    t.teardown(() => lease.close());
    const announce = (machine: string, ip: string) =>
      c.registry.announce(lease, {
        service: 'drt',
        instance: 'dr-ann.unit',
        address: `${ip}:9000`,
        machine: asMachineId(machine),
        unit: asUnitName('dr-ann.unit'),
        since: new Date().toISOString(),
      });
    await announce(c.a.id, '127.0.0.1');

    const drain = c.fleetts(['drain', 'aaaa', '--deadline', '10m']);
    // The unit runs on B; the drain waits for it to be announced there.
    await waitFor('dr-ann.unit released and active on host B', async () => {
      const moving = (await c.registry.snapshot()).drains.get(c.a.id)?.moving ?? [];
      return (
        moving.some((m) => m.unit === 'dr-ann.unit') &&
        c.b.agent.observed.get('dr-ann.unit')?.active === 'active'
      );
    });
    // The command has polled since (it has seen the step); then host A stops answering for a while.
    const asked = c.registrationOfA.asked;
    await waitFor('drain to poll the step', () => c.registrationOfA.asked >= asked + 2);
    await c.registry.withdraw('drt', 'dr-ann.unit');
    c.registrationOfA.registered = false;
    await waitFor('drain to ask again while host A is not registered', () => c.registrationOfA.refused >= 3);
    c.registrationOfA.registered = true;
    await announce(c.b.id, '127.0.0.2');

    const r = await drain;
    t.is(r.code, 0, r.stderr);
    t.regex(
      r.stderr,
      /^fleetts: fleetd on machine aaaa1111bbbb2222 is not registered in the cluster .+ \(the drain goes on; asking again\)\n$/,
    );
    const lines = r.stdout.trim().split('\n');
    t.true(
      lines.includes('dr-ann.unit: active (running) on cccc3333.../127.0.0.2, announced under services/drt'),
      r.stdout,
    );
    t.regex(lines.at(-1) ?? '', /^Machine aaaa1111\.\.\. drained: no units left/);
    t.is((await c.fleetts(['undrain', 'aaaa'])).code, 0);
    t.is((await c.fleetts(['destroy', 'dr-ann.unit'])).code, 0);
  },
);

test.serial('--deadline: exit 1 naming what is left and what the drain waits for', async (t) => {
  const c = await cl();
  await file('dr-fails.unit', SERVICE('ExecStart=/bin/false\n').replace('ExecStart=/bin/sleep 1000\n', ''));
  await c.fleetts(['start', '--block-attempts', '1', 'dr-fails.unit']);
  const where = (await machinesOf(['dr-fails.unit']))['dr-fails.unit']?.[0] ?? '';
  t.not(where, '');
  const r = await c.fleetts(['drain', where, '--deadline', '1s']);
  t.is(r.code, 1, r.stdout);
  t.regex(r.stderr, /^fleetts: .+ is not drained after 1s: units left on it: /);
  t.regex(r.stderr, /waiting for dr-fails\.unit: failed/);
  t.is((await c.fleetts(['undrain', where])).code, 0);
});

test.serial('bad input: an unknown host, a bad --deadline', async (t) => {
  const c = await cl();
  let r = await c.fleetts(['drain', 'nosuch']);
  t.is(r.code, 1);
  t.regex(r.stderr, /^fleetts: no machine "nosuch"; the hosts are: aaaa1111bbbb2222/);
  r = await c.fleetts(['drain', 'aaaa', '--deadline', 'soon']);
  t.is(r.code, 2);
  t.regex(r.stderr, /^fleetts: --deadline soon: /);
});
