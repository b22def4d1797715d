// Rolling restarts and rollouts, in-process against a real API, real etcd and the real engine on
// two hosts (cluster-harness.ts), with a stand-in sidekick that announces each unit in etcd after
// it became active (as `fleetts announce` does once its check passes): the order of stops, starts
// and announcements, the health gate, a failing file, --dry-run, --rollback and resuming.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import { asMachineId, asUnitName } from '../../src/cluster/types.js';
import type { LeaseHandle } from '../../src/registry/registry.js';
import { useEtcd } from '../helpers/etcd.js';
import { waitFor } from '../helpers/wait.js';
import { startTestCluster, type TestCluster } from './cluster-harness.js';

let cluster: Promise<TestCluster> | undefined;
const sidekicks: Sidekick[] = [];

// Registered before useEtcd's hooks, so that it runs (and closes the cluster) before etcd stops.
test.after.always(async () => {
  for (const s of sidekicks) await s.stop();
  await (await cluster?.catch(() => undefined))?.close();
});
const etcd = useEtcd(test);

function cl(): Promise<TestCluster> {
  return (cluster ??= startTestCluster(etcd().endpoint));
}

// Every unit on host B (region us), so that B's agent history is one order of all their changes.
const WEB = (extra = '') =>
  `[Unit]\nDescription=web %i\n\n[Service]\nExecStart=/bin/sleep 1000\n${extra}\n[X-Fleet]\nMachineMetadata=region=us\n`;
const BROKEN = WEB().replace('ExecStart=/bin/sleep 1000', 'ExecStart=/bin/false');

async function file(name: string, text: string): Promise<void> {
  await writeFile(join((await cl()).dir, name), text);
}

/**
 * Stands in for each unit's `fleetts announce` sidekick on host B: announces `services/web/<unit>`
 * a moment after the unit became active (a new run: another hash or another since), withdraws it
 * while the unit is not active. Announcements go into B's agent history, in order with its changes.
 */
class Sidekick {
  #stopped = false;
  #lease: LeaseHandle | undefined;
  readonly #announced = new Map<string, string>();
  readonly #seen = new Map<string, { run: string; at: number }>();
  readonly #loop: Promise<void>;

  constructor(
    readonly c: TestCluster,
    readonly units: readonly string[],
    readonly delayMs = 300,
  ) {
    this.#loop = this.#run();
  }

  async #run(): Promise<void> {
    const { registry, b } = this.c;
    this.#lease = await registry.openLease({ ttlMs: 5_000 });
    while (!this.#stopped) {
      for (const unit of this.units) {
        const o = b.agent.observed.get(unit);
        const run = o?.active === 'active' ? `${o.hash}/${o.since}` : undefined;
        const was = this.#announced.get(unit);
        if (was !== undefined && was !== run) {
          await registry.withdraw('web', unit);
          this.#announced.delete(unit);
          b.agent.history.push(`${unit} withdrawn`);
        }
        if (run === undefined || this.#announced.get(unit) === run) continue;
        const seen = this.#seen.get(unit);
        if (seen?.run !== run) {
          this.#seen.set(unit, { run, at: Date.now() });
          continue;
        }
        if (Date.now() - seen.at < this.delayMs) continue;
        await registry.announce(this.#lease, {
          service: 'web',
          instance: unit,
          address: `127.0.0.2:${8080 + this.units.indexOf(unit)}`,
          machine: asMachineId(b.id),
          unit: asUnitName(unit),
          since: new Date().toISOString(),
        });
        this.#announced.set(unit, run);
        b.agent.history.push(`${unit} announced`);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  announced(unit: string): boolean {
    return this.#announced.has(unit);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#loop.catch(() => undefined);
    await this.#lease?.close().catch(() => undefined);
  }
}

async function startFarm(prefix: string): Promise<{ c: TestCluster; names: string[]; sidekick: Sidekick }> {
  const c = await cl();
  await file(`${prefix}@.unit`, WEB());
  const names = [1, 2, 3].map((i) => `${prefix}@${i}.unit`);
  const r = await c.fleetts(['start', ...names]);
  if (r.code !== 0) throw new Error(r.stderr);
  const sidekick = new Sidekick(c, names);
  sidekicks.push(sidekick);
  await waitFor('every instance announced', () => names.every((n) => sidekick.announced(n)));
  return { c, names, sidekick };
}

/** B's history of `names` since `mark`, without repeated reports. */
function historyOf(c: TestCluster, mark: number, names: readonly string[]): string[] {
  return c.b.agent.history.slice(mark).filter((h) => names.some((n) => h.startsWith(`${n} `)));
}

async function hashes(c: TestCluster, names: readonly string[]): Promise<Record<string, string>> {
  const r = await c.fleetts(['list-unit-files', '-o', 'json', '-l', '--fields', 'unit,hash']);
  const rows = JSON.parse(r.stdout) as { unit: string; hash: string }[];
  return Object.fromEntries(rows.filter((x) => names.includes(x.unit)).map((x) => [x.unit, x.hash]));
}

test('restart of several units is rolling: each is active and announced again before the next stops', async (t) => {
  const { c, names } = await startFarm('rr');
  const mark = c.b.agent.history.length;
  const r = await c.fleetts(['restart', ...names]);
  t.is(r.code, 0, r.stderr);
  t.deepEqual(historyOf(c, mark, names), [
    'rr@1.unit inactive',
    'rr@1.unit withdrawn',
    'rr@1.unit active',
    'rr@1.unit announced',
    'rr@2.unit inactive',
    'rr@2.unit withdrawn',
    'rr@2.unit active',
    'rr@2.unit announced',
    'rr@3.unit inactive',
    'rr@3.unit withdrawn',
    'rr@3.unit active',
    'rr@3.unit announced',
  ]);
  t.regex(
    r.stdout,
    /^Restarting rr@1\.unit on cccc3333dddd4444\/127\.0\.0\.2 \(1\/3\)\nUnit rr@1\.unit stopped\n/,
  );
  t.regex(
    r.stdout,
    /Unit rr@3\.unit active on cccc3333dddd4444\/127\.0\.0\.2, announced as services\/web\/rr@3\.unit \(127\.0\.0\.2:8082\)\n$/,
  );
});

// Serial: host A refusing requests would fail the concurrent tests' commands.
test.serial(
  'fleetd not registered for a while (its lease lapsed under load): a rolling restart asks again and goes on',
  async (t) => {
    const { c, names } = await startFarm('rn');
    const mark = c.b.agent.history.length;
    const asked = c.registrationOfA.asked;
    const restart = c.fleetts(['restart', ...names]);
    await waitFor(
      'rn@1 stopped, and the restart polling',
      () => historyOf(c, mark, names).includes('rn@1.unit inactive') && c.registrationOfA.asked >= asked + 3,
    );
    c.registrationOfA.registered = false;
    await waitFor(
      'the restart to ask again while host A is not registered',
      () => c.registrationOfA.refused >= 3,
    );
    c.registrationOfA.registered = true;
    const r = await restart;
    t.is(r.code, 0, r.stderr);
    t.regex(
      r.stderr,
      /^fleetts: fleetd on machine aaaa1111bbbb2222 is not registered in the cluster .+ \(asking again until --health-timeout\)\n$/,
    );
    t.deepEqual(
      historyOf(c, mark, names).filter((h) => /(in)?active$/.test(h)),
      names.flatMap((n) => [`${n} inactive`, `${n} active`]),
    );
    t.regex(r.stdout, /Unit rn@3\.unit active on .+, announced as services\/web\/rn@3\.unit/);
  },
);

test('restart --all-at-once stops every unit before starting any (the old behaviour)', async (t) => {
  const { c, names } = await startFarm('ra');
  const mark = c.b.agent.history.length;
  const r = await c.fleetts(['restart', '--all-at-once', ...names]);
  t.is(r.code, 0, r.stderr);
  const changes = historyOf(c, mark, names).filter((h) => h.endsWith(' inactive') || h.endsWith(' active'));
  t.deepEqual(
    changes.slice(0, 3).map((h) => h.split(' ')[1]),
    ['inactive', 'inactive', 'inactive'],
  );
  t.deepEqual(
    changes.slice(3).map((h) => h.split(' ')[1]),
    ['active', 'active', 'active'],
  );
});

test('a rolling restart stops at a unit that does not come back, with exit 1 and the reason', async (t) => {
  const { c, names, sidekick } = await startFarm('rt');
  // The middle instance's sidekick never announces again: its health timeout runs out.
  const stuck = new Set([names[1]]);
  await sidekick.stop();
  const partial = new Sidekick(
    c,
    names.filter((n) => !stuck.has(n)),
  );
  sidekicks.push(partial);
  await waitFor(
    'the others announced',
    () => partial.announced(names[0] ?? '') && partial.announced(names[2] ?? ''),
  );
  // rt@2 is announced under the stopped sidekick's lease, which was revoked: announce it once by hand.
  const lease = await c.registry.openLease({ ttlMs: 5_000 });
  await c.registry.announce(lease, {
    service: 'web',
    instance: names[1] ?? '',
    address: '127.0.0.2:9',
    machine: asMachineId(c.b.id),
    unit: asUnitName(names[1] ?? ''),
    since: new Date().toISOString(),
  });
  const mark = c.b.agent.history.length;
  const r = await c.fleetts(['restart', '--health-timeout', '10s', ...names]);
  await lease.close();
  t.is(r.code, 1, r.stdout);
  t.regex(
    r.stderr,
    /restart stopped at rt@2\.unit: not back within --health-timeout 10s \(active, not announced again yet as services\/web\/rt@2\.unit\); see fleetts status rt@2\.unit\nnot restarted: rt@3\.unit/,
  );
  t.false(historyOf(c, mark, names).some((h) => h.startsWith('rt@3.unit')));
});

test('rollout: --dry-run prints the plan and changes nothing; then one instance at a time, each announced before the next', async (t) => {
  const { c, names } = await startFarm('ro');
  const before = await hashes(c, ['ro@.unit', ...names]);
  await file('ro@.unit', WEB('Environment=PAGE=v2\n'));
  const dry = await c.fleetts(['rollout', '--dry-run', '--max-unavailable', '2', 'ro@.unit']);
  t.is(dry.code, 0, dry.stderr);
  t.regex(
    dry.stdout,
    /^Rollout of ro@\.unit: [0-9a-f]{12} → [0-9a-f]{12}, at most 2 instances unavailable at a time\n/,
  );
  t.regex(
    dry.stdout,
    / {2}batch 1: ro@1\.unit on cccc3333dddd4444\/127\.0\.0\.2; ro@2\.unit on cccc3333dddd4444\/127\.0\.0\.2\n {2}batch 2: ro@3\.unit on cccc3333dddd4444\/127\.0\.0\.2\n$/,
  );
  t.deepEqual(await hashes(c, ['ro@.unit', ...names]), before);

  const mark = c.b.agent.history.length;
  const r = await c.fleetts(['rollout', 'ro@.unit']);
  t.is(r.code, 0, r.stderr);
  const after = await hashes(c, ['ro@.unit', ...names]);
  const fresh = after['ro@.unit'];
  t.not(fresh, before['ro@.unit']);
  for (const n of names) t.is(after[n], fresh, n);
  // The stand-in agent replaces a unit in place: it reports it active with the new file.
  t.deepEqual(historyOf(c, mark, names), [
    'ro@1.unit active',
    'ro@1.unit withdrawn',
    'ro@1.unit announced',
    'ro@2.unit active',
    'ro@2.unit withdrawn',
    'ro@2.unit announced',
    'ro@3.unit active',
    'ro@3.unit withdrawn',
    'ro@3.unit announced',
  ]);
  t.regex(r.stdout, /Batch 1\/3: replacing ro@1\.unit on cccc3333dddd4444\/127\.0\.0\.2\n/);
  t.regex(r.stdout, /Rolled out ro@\.unit \([0-9a-f]{12}\): 3 running instances replaced\n$/);
  t.is((await c.fleetts(['cat', 'ro@2.unit'])).stdout, WEB('Environment=PAGE=v2\n'));

  // Again: nothing left to do.
  const again = await c.fleetts(['rollout', 'ro@.unit']);
  t.is(again.code, 0, again.stderr);
  t.regex(again.stdout, /has this file already/);
  t.regex(again.stdout, /0 running instances replaced, 3 had it already/);

  // --rollback: the previous file, kept in etcd, on every instance.
  const back = await c.fleetts(['rollout', '--rollback', 'ro@.unit']);
  t.is(back.code, 0, back.stderr);
  // The template was not submitted (the instances came from the local file): the rollout
  // submitted it with their file, which is the one rolled back to.
  t.is(before['ro@.unit'], undefined);
  const old = before['ro@1.unit'];
  t.deepEqual(await hashes(c, ['ro@.unit', ...names]), { ...before, 'ro@.unit': old });
  t.is((await c.fleetts(['cat', 'ro@3.unit'])).stdout, WEB());
});

test('rollout of a broken file stops after the first instance, the others keep the old file; rollback restores it', async (t) => {
  const { c, names } = await startFarm('rb');
  const before = await hashes(c, ['rb@.unit', ...names]);
  await file('rb@.unit', BROKEN);
  const r = await c.fleetts(['rollout', 'rb@.unit']);
  t.is(r.code, 1);
  t.regex(
    r.stderr,
    /rollout of rb@\.unit stopped in batch 1\/3: rb@1\.unit: failed on cccc3333dddd4444: ExecStart=\/bin\/false exited with code 1\nstill on the previous file, and serving: rb@2\.unit, rb@3\.unit\n/,
  );
  const after = await hashes(c, ['rb@.unit', ...names]);
  t.not(after['rb@1.unit'], before['rb@1.unit']);
  t.is(after['rb@2.unit'], before['rb@2.unit']);
  t.is(after['rb@3.unit'], before['rb@3.unit']);
  t.is(c.b.agent.observed.get('rb@2.unit')?.active, 'active');
  t.is(c.b.agent.observed.get('rb@3.unit')?.active, 'active');

  const back = await c.fleetts(['rollout', '--rollback', 'rb@.unit']);
  t.is(back.code, 0, back.stderr);
  t.regex(
    back.stdout,
    /Rolled back rb@\.unit \([0-9a-f]{12}\): 1 running instance replaced, 2 had it already\n$/,
  );
  t.deepEqual(await hashes(c, ['rb@.unit', ...names]), { ...before, 'rb@.unit': before['rb@1.unit'] });
  t.is(c.b.agent.observed.get('rb@1.unit')?.active, 'active');
});

test('rollout: bad input is a clear error', async (t) => {
  const c = await cl();
  await file('solo.unit', WEB());
  const notTemplate = await c.fleetts(['rollout', 'solo.unit']);
  t.is(notTemplate.code, 2);
  t.regex(notTemplate.stderr, /solo\.unit is not a template; rollout replaces the instances of a template/);
  // A global unit: one record every host runs, so a new file would reach them all at once.
  await file('everywhere.unit', WEB().replace('MachineMetadata=region=us', 'Global=true'));
  const global = await c.fleetts(['rollout', 'everywhere.unit']);
  t.is(global.code, 2);
  t.is(global.stdout, '');
  t.regex(
    global.stderr,
    /everywhere\.unit is a global unit \(Global=true in \[X-Fleet\]\); rollout cannot replace it one host at a time yet: every host runs its one record and file, so a new file reaches all of them at once\. To replace it everywhere at once: fleetts start --replace everywhere\.unit\. To roll it out host by host: run it as a template with one instance per host \(everywhere@\.unit with Conflicts=everywhere@\*\.unit instead of Global=true\), then fleetts rollout everywhere@\.unit\n$/,
  );
  t.is((await c.fleetts(['cat', 'everywhere.unit'])).code, 1, 'nothing was submitted');
  await file('nosuch@.unit', WEB());
  const missing = await c.fleetts(['rollout', 'nosuch@.unit']);
  t.is(missing.code, 1);
  t.regex(missing.stderr, /nosuch@\.unit is not submitted/);
  const noRecord = await c.fleetts(['rollout', '--rollback', 'nosuch@.unit']);
  t.is(noRecord.code, 1);
  t.regex(noRecord.stderr, /nosuch@\.unit has had no rollout/);
  const badN = await c.fleetts(['rollout', '--max-unavailable', '0', 'nosuch@.unit']);
  t.is(badN.code, 2);
  t.regex(badN.stderr, /--max-unavailable must be a whole number ≥ 1, not "0"/);
  const noFile = await c.fleetts(['rollout', 'gone@.unit']);
  t.is(noFile.code, 1);
  t.regex(noFile.stderr, /gone@\.unit: no such file/);
  for (const x of [notTemplate, global, missing, noRecord, badN, noFile]) t.notRegex(x.stderr, /\n\s+at /);
});
