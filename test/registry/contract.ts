// The registry contract: ONE suite run against the in-memory registry (fake clock) and a real etcd,
// so that the simulation's registry cannot drift from the real one.
import type { ExecutionContext, TestFn } from 'ava';
import { createHash } from 'node:crypto';
import type { Assignment, UnitHash, UnitName, UnitStatus } from '../../src/cluster/types.js';
import { asMachineId, asUnitHash, asUnitName } from '../../src/cluster/types.js';
import type { LeaderTerm } from '../../src/registry/leadership.js';
import type {
  AssignmentChange,
  LeaseOptions,
  MachineRegistration,
  Registry,
  UnitRecord,
  Wake,
  WatchedSet,
} from '../../src/registry/registry.js';
import type { Kv } from '../../src/registry/kv.js';
import { isRegistryError, type RegistryError } from '../../src/registry/registry-error.js';

export interface ContractEnv {
  /** A new connection (as another fleetd would have) to the same store, under this test's prefix. */
  connect(options?: { lease?: LeaseOptions }): Registry;
  /** Lets time pass: advances the fake clock, or sleeps on real etcd. */
  pass(ms: number): Promise<void>;
  /** From now on, this connection's keepalives never reach the store (a frozen/partitioned host). */
  dropKeepalives(registry: Registry): void;
  /** Writes a raw value at `<prefix><relativeKey>` (to plant corrupt data). */
  rawPut(relativeKey: string, value: string): Promise<void>;
  /** A raw Kv connection to the same store and this test's key prefix (closed with the env). */
  kv(): { kv: Kv; prefix: string };
  /** Compacts the store's history up to its current revision. */
  compact(): Promise<void>;
  close(): Promise<void>;
}

/** Short leases so that expiry tests on real etcd take seconds (2 s is etcd's minimum TTL). */
export const TEST_LEASE: LeaseOptions = { ttlMs: 2000, keepaliveMs: 500 };
/**
 * The engine term of tests that write plans but do not test leadership: a 2 s lease ends after
 * about 1.5 s of event-loop stall, which a loaded 2-core machine reaches (a fresh-clone CI run
 * lost its term in the middle of the plan-basis test).
 */
const TERM_LEASE: LeaseOptions = { ttlMs: 15_000, keepaliveMs: 3_000 };
/**
 * The lease of registries in tests that do not test expiry (they revoke, or need none): with 2 s,
 * a fresh-clone run under load lost memberships mid-test ("lease not found").
 */
const STEADY_LEASE: LeaseOptions = TERM_LEASE;

export function registryContract(test: TestFn, makeEnv: () => Promise<ContractEnv>): void {
  const withEnv =
    (fn: (t: ExecutionContext, env: ContractEnv) => Promise<void>) =>
    async (t: ExecutionContext): Promise<void> => {
      const env = await makeEnv();
      try {
        await fn(t, env);
      } finally {
        await env.close();
      }
    };

  test(
    'kv: compares on missing keys and ranges, txn limits and leases behave as etcd',
    withEnv(async (t, env) => {
      const { kv, prefix } = env.kv();
      const a = prefix + 'a';
      const end = prefix + 'z';
      const put = await kv.txn({ compare: [], success: [{ kind: 'put', key: a, value: '1' }] });
      const noop = await kv.txn({ compare: [], success: [{ kind: 'delete', key: prefix + 'missing' }] });
      // (Whether the revision moved cannot be asserted here: other tests share the real etcd.)
      t.true(noop.revision >= put.revision);
      t.deepEqual(noop.results, [{ kind: 'delete', deleted: 0 }]);
      const read = await kv.range(a);
      t.like(read.kvs[0], {
        key: a,
        value: '1',
        createRevision: put.revision,
        modRevision: put.revision,
        version: 1,
        lease: '0',
      });

      const cases: [string, Parameters<Kv['txn']>[0]['compare'][number], boolean][] = [
        [
          'missing key has version 0',
          { target: 'version', key: prefix + 'nope', op: '==', version: 0 },
          true,
        ],
        [
          'missing key has create revision 0',
          { target: 'create', key: prefix + 'nope', op: '==', revision: 0 },
          true,
        ],
        [
          'missing key fails any value compare',
          { target: 'value', key: prefix + 'nope', op: '!=', value: 'x' },
          false,
        ],
        [
          'range: every key unchanged since',
          { target: 'mod', key: prefix, end, op: '<', revision: put.revision + 1 },
          true,
        ],
        [
          'range: a key changed at the revision',
          { target: 'mod', key: prefix, end, op: '<', revision: put.revision },
          false,
        ],
        [
          'empty range compares as a zero key',
          { target: 'mod', key: prefix + 'x', end: prefix + 'y', op: '>', revision: 0 },
          false,
        ],
        ['lease of an unleased key is 0', { target: 'lease', key: a, op: '==', lease: '0' }, true],
      ];
      for (const [what, compare, expected] of cases) {
        const res = await kv.txn({ compare: [compare], success: [] });
        t.is(res.succeeded, expected, what);
      }

      const tooMany = await t.throwsAsync(
        kv.txn({
          compare: [],
          success: Array.from({ length: kv.maxTxnOps + 1 }, (_, i) => ({
            kind: 'put' as const,
            key: `${prefix}k${i}`,
            value: '',
          })),
        }),
      );
      t.true(isRegistryError(tooMany, 'invalid'), tooMany.message);
      const dup = await t.throwsAsync(
        kv.txn({
          compare: [],
          success: [
            { kind: 'put', key: a, value: '1' },
            { kind: 'put', key: a, value: '2' },
          ],
        }),
      );
      t.true(isRegistryError(dup, 'invalid'), dup.message);
      const noLease = await t.throwsAsync(
        kv.txn({ compare: [], success: [{ kind: 'put', key: a, value: '1', lease: '12345' }] }),
      );
      t.true(isRegistryError(noLease, 'lease_lost'), noLease.message);

      const lease = await kv.leaseGrant(2);
      t.is(await kv.leaseKeepAlive(lease, { timeoutMs: 2000 }), 2);
      await kv.leaseRevoke(lease);
      t.is(await kv.leaseKeepAlive(lease, { timeoutMs: 2000 }), 0, 'a revoked lease renews to TTL 0');
      await kv.leaseRevoke(lease);
    }),
  );

  // Serial: ava runs serial tests before concurrent ones, so compaction cannot disturb the others.
  test.serial(
    'a watch whose start revision was compacted resyncs instead of going silent',
    withEnv(async (t, env) => {
      const r = env.connect({ lease: STEADY_LEASE });
      const first = await r.snapshot();
      const a = unit('c1.service', 'c1');
      await r.createUnit(a.unit, a.text);
      await r.setTargetState(a.unit.name, 'loaded');
      await env.compact();
      const wakes: Wake[] = [];
      const sub = r.watchCluster(['units'], first.revision, (w) => wakes.push(w));
      await eventually(env, () => wakes.some((w) => w.reasons.some((x) => x.kind === 'resync')), 5000);
      const b = unit('c2.service', 'c2');
      await r.createUnit(b.unit, b.text);
      await eventually(
        env,
        () => wakes.some((w) => w.reasons.some((x) => x.kind === 'unit_changed' && x.unit === b.unit.name)),
        3000,
      );
      t.pass();
      sub.close();
    }),
  );

  test(
    'units asked for at once (a start of many instances) are each answered as if asked alone',
    withEnv(async (t, env) => {
      const r = env.connect();
      // More than one transaction holds (etcd's default limit is 128 operations).
      const stored = Array.from({ length: 140 }, (_, i) => unit(`many@${i}.service`, `text ${i % 3}`));
      await r.createUnits(stored);
      await r.setTargetState(stored[5]!.unit.name, 'inactive');
      const names = [
        ...stored.map((u) => u.unit.name),
        ...Array.from({ length: 10 }, (_, i) => asUnitName(`missing@${i}.service`)),
      ];
      const together = await Promise.all(names.map((n) => r.getUnit(n)));
      const alone: (UnitRecord | undefined)[] = [];
      for (const n of names) alone.push(await r.getUnit(n));
      t.deepEqual(together, alone);
      t.is(together.filter((u) => u === undefined).length, 10);
      t.like(together[5], { name: stored[5]!.unit.name, target: 'inactive' });
      t.like(together[6], { name: stored[6]!.unit.name, hash: stored[6]!.unit.hash, target: 'launched' });
    }),
  );

  test(
    'units: create is idempotent per content, refuses other content and bad hashes',
    withEnv(async (t, env) => {
      const r = env.connect();
      const a = unit('web.service', 'A');
      const created = await r.createUnit(a.unit, a.text);
      t.like(created, { name: a.unit.name, hash: a.unit.hash, target: 'launched' });
      t.true(created.modRevision > 0);
      t.deepEqual(await r.getUnit(a.unit.name), created);
      t.is(await r.getUnitFile(a.unit.hash), a.text);

      const again = await r.createUnit({ ...a.unit, target: 'inactive' }, a.text);
      t.is(again.target, 'launched', 'resubmitting the same content leaves the target alone');
      t.is(again.modRevision, created.modRevision);

      const b = unit('web.service', 'B');
      const exists = await t.throwsAsync(r.createUnit(b.unit, b.text));
      t.true(isRegistryError(exists, 'exists'));
      t.regex(exists.message, /web\.service already exists with different content.*destroy it first/);

      const bad = await t.throwsAsync(
        r.createUnit({ ...b.unit, name: asUnitName('x.service') }, 'other text'),
      );
      t.true(isRegistryError(bad, 'invalid'));
      t.regex(bad.message, /is not the sha256 of its text/);
      t.is(await r.getUnit(asUnitName('x.service')), undefined);
    }),
  );

  test(
    'units: target state changes, missing units and stale hashes are reported',
    withEnv(async (t, env) => {
      const r = env.connect();
      const a = unit('db.service', 'db');
      const created = await r.createUnit(a.unit, a.text);
      const loaded = await r.setTargetState(a.unit.name, 'loaded');
      t.is(loaded.target, 'loaded');
      t.true(loaded.modRevision > created.modRevision);
      const same = await r.setTargetState(a.unit.name, 'loaded');
      t.is(same.modRevision, loaded.modRevision, 'setting the current target writes nothing');

      const missing = await t.throwsAsync(r.setTargetState(asUnitName('nope.service'), 'launched'));
      t.true(isRegistryError(missing, 'not_found'));
      t.regex(missing.message, /unit nope\.service does not exist/);

      const stale = await t.throwsAsync(
        r.setTargetState(a.unit.name, 'launched', { expectHash: asUnitHash('ab'.repeat(32)) }),
      );
      t.true(isRegistryError(stale, 'conflict'));
      t.true(isRegistryError(stale) && stale.recoverable);
    }),
  );

  /** Lets time pass until `hash`'s unit file is gone (the sweep after a delete runs on a timer). */
  async function collected(env: ContractEnv, r: Registry, hash: UnitHash): Promise<boolean> {
    for (let i = 0; i < 60; i++) {
      if ((await r.getUnitFile(hash)) === undefined) return true;
      await env.pass(500);
    }
    return false;
  }

  test(
    'units: unit files are swept after deletes, only once no unit references them',
    withEnv(async (t, env) => {
      const r = env.connect();
      const one = unit('a@1.service', 'same text');
      const two = { unit: { ...one.unit, name: asUnitName('a@2.service') }, text: one.text };
      const other = unit('b.service', 'other text');
      const kept = unit('c.service', 'kept text');
      await r.createUnit(one.unit, one.text);
      await r.createUnit(two.unit, two.text);
      await r.createUnit(other.unit, other.text);
      await r.createUnit(kept.unit, kept.text);

      t.true(await r.deleteUnit(one.unit.name));
      t.true(await r.deleteUnit(other.unit.name));
      t.is(await r.getUnit(one.unit.name), undefined);
      t.true(await collected(env, r, other.unit.hash), 'the sweep after the deletes collected b');
      t.is(await r.getUnitFile(one.unit.hash), one.text, 'still referenced by a@2');

      t.true(await r.deleteUnit(two.unit.name));
      t.true(await collected(env, r, one.unit.hash), 'collected once its last reference went');
      t.is(await r.getUnitFile(kept.unit.hash), kept.text);
      t.false(await r.deleteUnit(two.unit.name), 'deleting a missing unit says so');
      t.is(await r.collectUnitFiles(), 0);
    }),
  );

  test(
    'statuses: many puts and deletes in one call, in as many transactions as etcd allows, under the lease',
    withEnv(async (t, env) => {
      const r = env.connect({ lease: STEADY_LEASE });
      const m = await r.register(machine('m1'));
      const hash = asUnitHash('ab'.repeat(32));
      // More than a transaction holds (maxTxnOps, 128 by default).
      const many = Array.from({ length: 300 }, (_, i) => status(`s${i}.service`, 'm1', hash));
      await r.writeStatuses(m, many, []);
      const listed = await r.listStatuses();
      t.is(listed.items.length, 300);
      // Other tests share a real etcd's revisions: count the revisions of these keys only.
      const { kv, prefix } = env.kv();
      const raw = await kv.range(prefix + 'status/', prefix + 'status0');
      t.is(raw.kvs.length, 300);
      const revisions = new Set(raw.kvs.map((x) => x.modRevision));
      t.true(revisions.size <= 3, `${revisions.size} transactions for 300 puts`);
      t.true(
        raw.kvs.every((x) => x.lease === m.leaseId),
        'under the membership lease',
      );
      const changed = many.slice(0, 10).map((s) => ({ ...s, active: 'failed' as const, sub: 'failed' }));
      await r.writeStatuses(
        m,
        changed,
        many.slice(100).map((s) => ({ unit: s.unit, machine: s.machine })),
      );
      const after = await r.listStatuses();
      t.is(after.items.length, 100);
      t.is(after.items.filter((s) => s.active === 'failed').length, 10);
      await m.close();
    }),
  );

  test(
    'units: replace writes the new file and record in one step, keeping the target; stale or gone is refused',
    withEnv(async (t, env) => {
      const r = env.connect();
      const v1 = unit('r.service', 'version 1');
      const v2 = unit('r.service', 'version 2');
      const created = await r.createUnit({ ...v1.unit, target: 'launched' }, v1.text);
      const replaced = await r.replaceUnit(created, { ...v2.unit, target: 'launched' }, v2.text);
      t.like(replaced, { name: v2.unit.name, hash: v2.unit.hash, target: 'launched' });
      t.like(await r.getUnit(v2.unit.name), { hash: v2.unit.hash, target: 'launched' });
      t.is(await r.getUnitFile(v2.unit.hash), v2.text);
      t.true(await collected(env, r, v1.unit.hash), 'the old file is swept');

      const stale = await r.replaceUnit(created, v1.unit, v1.text).catch((e: unknown) => e);
      t.true(isRegistryError(stale, 'conflict'), String(stale));
      t.like(await r.getUnit(v2.unit.name), { hash: v2.unit.hash }, 'a refused replace changes nothing');
      const wrongHash = await r
        .replaceUnit(replaced, { ...v1.unit, hash: v2.unit.hash }, v1.text)
        .catch((e: unknown) => e);
      t.true(isRegistryError(wrongHash, 'invalid'), String(wrongHash));

      t.true(await r.deleteUnit(v2.unit.name));
      const gone = await r.replaceUnit(replaced, v1.unit, v1.text).catch((e: unknown) => e);
      t.true(isRegistryError(gone, 'not_found'), String(gone));
      t.is(await r.getUnit(v1.unit.name), undefined, 'a replace never re-creates a destroyed unit');
    }),
  );

  test(
    'snapshot: one revision, merged metadata, every kind of record, corrupt keys reported and skipped',
    withEnv(async (t, env) => {
      const r = env.connect({ lease: STEADY_LEASE });
      const m1 = await r.register(machine('m1', { region: 'eu' }));
      const a = unit('web.service', 'web');
      const created = await r.createUnit(a.unit, a.text);
      await r.patchMachineMetadata(asMachineId('m1'), { disk: 'ssd' });
      await r.putStatus(m1, status('web.service', 'm1', a.unit.hash));
      const leadership = r.leadership({ candidate: 'm1', ...TERM_LEASE });
      const term = await leadership.campaign();
      const basis = await r.snapshot();
      await r.writeAssignments(
        term.fence,
        [
          {
            kind: 'assign',
            assignment: {
              unit: a.unit.name,
              machine: asMachineId('m1'),
              hash: a.unit.hash,
              target: 'launched',
            },
          },
          {
            kind: 'mark_unschedulable',
            record: {
              unit: asUnitName('z.service'),
              hash: a.unit.hash,
              reason: 'no machine',
              machines: { m1: 'conflict' },
            },
          },
        ],
        basis,
      );
      await env.rawPut('units/broken.service', '{"v":1,"hash":42}');
      await env.rawPut('machines/m9', 'not json');

      const s = await r.snapshot();
      t.deepEqual([...s.machines.keys()], [asMachineId('m1')]);
      t.deepEqual(s.machines.get(asMachineId('m1'))?.metadata, { region: 'eu', disk: 'ssd' });
      t.deepEqual(s.machines.get(asMachineId('m1'))?.configuredMetadata, { region: 'eu' });
      t.deepEqual([...s.units.values()], [created]);
      t.deepEqual(s.assignments, [
        { unit: a.unit.name, machine: asMachineId('m1'), hash: a.unit.hash, target: 'launched' },
      ]);
      t.deepEqual(s.statuses, [status('web.service', 'm1', a.unit.hash)]);
      t.deepEqual(s.unschedulable.get(asUnitName('z.service'))?.machines, { m1: 'conflict' });
      t.is(s.unitFiles.get(a.unit.hash), a.text);
      t.true(s.revision >= created.modRevision);
      t.deepEqual(s.problems.map((p) => p.key.replace(/^.*\/(units|machines)\//, '$1/')).sort(), [
        'machines/m9',
        'units/broken.service',
      ]);
      t.regex(s.problems.find((p) => p.key.endsWith('broken.service'))?.message ?? '', /bad unit value/);

      const cached = await r.snapshot({ knownUnitFiles: new Set([a.unit.hash]) });
      t.is(cached.unitFiles.size, 0, 'known unit files are not read again');
      await leadership.close();
      await term.resign();
      await m1.close();
    }),
  );

  test(
    'snapshot: unchanged units are not decoded again; changed, deleted and corrupt ones are read afresh',
    withEnv(async (t, env) => {
      const r = env.connect();
      const a = unit('a.service', 'a');
      const b = unit('b.service', 'b');
      await r.createUnits([a, b]);
      const first = await r.snapshot({ unitFiles: 'none' });
      const second = await r.snapshot({ unitFiles: 'none' });
      t.is(second.units.get(a.unit.name), first.units.get(a.unit.name), 'same mod revision: same record');
      const loaded = await r.setTargetState(a.unit.name, 'loaded');
      await r.deleteUnit(b.unit.name);
      await env.rawPut('units/c.service', '{"v":1,"hash":42}');
      const third = await r.snapshot({ unitFiles: 'none' });
      t.deepEqual(third.units.get(a.unit.name), loaded, 'a changed unit is decoded again');
      t.false(third.units.has(b.unit.name), 'a deleted unit is gone');
      const fourth = await r.snapshot({ unitFiles: 'none' });
      t.deepEqual(
        [third, fourth].map((s) => s.problems.map((p) => p.key.replace(/^.*\/units\//, ''))),
        [['c.service'], ['c.service']],
        'a corrupt value is reported by every snapshot',
      );
      await env.rawPut('units/c.service', JSON.stringify({ v: 1, hash: a.unit.hash, target: 'launched' }));
      const fifth = await r.snapshot({ unitFiles: 'none' });
      t.is(fifth.units.get(asUnitName('c.service'))?.hash, a.unit.hash, 'a repaired value is read');
      t.deepEqual(fifth.problems, []);
    }),
  );

  test(
    'watchCluster from a snapshot revision misses nothing written in between and wakes per batch',
    withEnv(async (t, env) => {
      const r = env.connect({ lease: STEADY_LEASE });
      const w = env.connect({ lease: STEADY_LEASE });
      const s = await r.snapshot();
      // Written after the snapshot but BEFORE the watch exists.
      const a = unit('early.service', 'early');
      await w.createUnit(a.unit, a.text);
      const wakes: Wake[] = [];
      const sub = r.watchCluster(['machines', 'units'], s.revision, (wake) => wakes.push(wake));
      await eventually(env, () => wakes.length >= 1);
      t.deepEqual(wakes[0]?.reasons, [{ kind: 'unit_changed', unit: a.unit.name }]);

      const m = await w.register(machine('m2'));
      await eventually(env, () => wakes.some((x) => x.reasons.some((y) => y.kind === 'machine_joined')));
      await w.putStatus(m, status('early.service', 'm2', a.unit.hash));
      await m.close();
      await eventually(env, () => wakes.some((x) => x.reasons.some((y) => y.kind === 'machine_left')));
      t.false(
        wakes.some((x) => x.reasons.some((y) => y.kind === 'status_changed')),
        'statuses were not among the watched topics',
      );
      sub.close();
    }),
  );

  test(
    'membership: a lease that is no longer renewed expires and removes the machine',
    withEnv(async (t, env) => {
      const engine = env.connect({ lease: STEADY_LEASE });
      const host = env.connect({ lease: TEST_LEASE });
      const start = await engine.snapshot();
      const wakes: Wake[] = [];
      const sub = engine.watchCluster(['machines'], start.revision, (w) => wakes.push(w));
      const m = await host.register(machine('m3'));
      await host.putStatus(m, status('x.service', 'm3', asUnitHash('cd'.repeat(32))));
      t.deepEqual(
        (await engine.listMachines()).items.map((x) => x.id),
        [asMachineId('m3')],
      );
      let lost: unknown;
      m.onLost((loss) => (lost = loss));
      const renewed = m.renewedAt();

      await env.pass(1200);
      t.false(m.signal.aborted, 'keepalives hold the lease past its first TTL/2');
      t.true(m.renewedAt() > renewed, 'keepalives are acknowledged');

      env.dropKeepalives(host);
      await eventually(env, async () => (await engine.listMachines()).items.length === 0, 8000);
      t.deepEqual((await engine.listStatuses()).items, [], 'statuses bound to the lease went with it');
      await eventually(env, () => m.signal.aborted, 4000);
      // Whichever the host notices first: its own deadline passing or the key's deletion.
      t.true(
        ['unrenewed', 'key_deleted', 'expired'].includes((lost as { kind: string }).kind),
        JSON.stringify(lost),
      );
      await eventually(env, () =>
        wakes.some((w) => w.reasons.some((x) => x.kind === 'machine_left' && x.machine === 'm3')),
      );
      sub.close();
    }),
  );

  test(
    'membership: a machine id held by a live lease cannot be registered again',
    withEnv(async (t, env) => {
      const first = env.connect({ lease: STEADY_LEASE });
      const second = env.connect({ lease: STEADY_LEASE });
      const m = await first.register(machine('m4'));
      const taken = await t.throwsAsync(second.register(machine('m4', {}, '10.0.0.9')));
      t.true(isRegistryError(taken, 'machine_id_taken'));
      t.regex(taken.message, /machine id m4 is already registered by a live fleetd/);
      t.is((await first.listMachines()).items[0]?.ip, '10.0.0.1', 'the holder is untouched');
      await m.close();
      t.true(m.signal.aborted);
      const again = await second.register(machine('m4', {}, '10.0.0.9'));
      t.is((await first.listMachines()).items[0]?.ip, '10.0.0.9');
      t.true(again.createRevision > m.createRevision);
      await again.close();
    }),
  );

  test(
    'membership: a restarted fleetd resumes its released lease and keeps its membership',
    withEnv(async (t, env) => {
      const observer = env.connect({ lease: TEST_LEASE });
      const old = env.connect({ lease: TEST_LEASE });
      const m = await old.register(machine('m6'));
      await old.putStatus(m, status('s.service', 'm6', asUnitHash('56'.repeat(32))));
      const start = await observer.snapshot();
      const wakes: Wake[] = [];
      const sub = observer.watchCluster(['machines', 'statuses'], start.revision, (w) => wakes.push(w));
      await old.close(); // a restart: keepalives stop, nothing is revoked
      t.like(m.signal.reason, { kind: 'released' });

      const successor = env.connect({ lease: TEST_LEASE });
      const again = await successor.register(machine('m6', { new: 'config' }), { resumeLeaseId: m.leaseId });
      t.is(again.leaseId, m.leaseId);
      t.is(again.createRevision, m.createRevision, 'the membership key was never recreated');
      await env.pass(2500); // longer than the TTL: the successor keeps the lease alive
      const machines = await observer.listMachines();
      t.deepEqual(
        machines.items.map((x) => x.metadata),
        [{ new: 'config' }],
      );
      t.is((await observer.listStatuses()).items.length, 1, "the old process's statuses survive");
      t.false(
        wakes.some((w) => w.reasons.some((r) => r.kind === 'machine_left')),
        'the engine never saw the machine leave',
      );

      const stale = await t.throwsAsync(
        env.connect({ lease: TEST_LEASE }).register(machine('m6'), { resumeLeaseId: '999999' }),
      );
      t.true(isRegistryError(stale, 'machine_id_taken'), 'a dead lease id falls back to a new lease');
      sub.close();
      await again.close();
    }),
  );

  test(
    'membership: dynamic metadata merges over configured metadata and survives re-registration',
    withEnv(async (t, env) => {
      const r = env.connect({ lease: STEADY_LEASE });
      const id = asMachineId('m5');
      const m = await r.register(machine('m5', { region: 'eu', disk: 'hdd' }));
      t.deepEqual(await r.patchMachineMetadata(id, { disk: 'ssd', gpu: 'yes' }), { disk: 'ssd', gpu: 'yes' });
      t.deepEqual(await r.patchMachineMetadata(id, { gpu: null, zone: 'a' }), { disk: 'ssd', zone: 'a' });
      const merged = { region: 'eu', disk: 'ssd', zone: 'a' };
      t.deepEqual((await r.listMachines()).items[0]?.metadata, merged);
      await m.close();
      t.deepEqual((await r.listMachines()).items, []);
      const again = await r.register(machine('m5', { region: 'eu', disk: 'hdd' }));
      t.deepEqual((await r.listMachines()).items[0]?.metadata, merged, 'dynamic metadata outlives the lease');
      await again.close();
    }),
  );

  test(
    'leadership: one leader; when its lease expires another leads and the deposed one is fenced',
    withEnv(async (t, env) => {
      const ra = env.connect({ lease: TEST_LEASE });
      const rb = env.connect({ lease: TEST_LEASE });
      const la = ra.leadership({ candidate: 'a', ...TEST_LEASE });
      const lb = rb.leadership({ candidate: 'b', ...TEST_LEASE });
      const termA = await la.campaign();
      let termB: LeaderTerm | undefined;
      const campaignB = lb.campaign().then((term) => (termB = term));
      await env.pass(1500);
      t.is(termB, undefined, 'a follower waits while the leader holds the key');
      t.deepEqual((await rb.getLeader())?.candidate, 'a');
      const basis = await ra.snapshot();
      const change: AssignmentChange = {
        kind: 'assign',
        assignment: {
          unit: asUnitName('u.service'),
          machine: asMachineId('m1'),
          hash: asUnitHash('ef'.repeat(32)),
          target: 'launched',
        },
      };
      await ra.writeAssignments(termA.fence, [change], basis);

      env.dropKeepalives(ra);
      await eventually(env, () => termB !== undefined, 8000);
      await campaignB;
      t.is((await rb.getLeader())?.candidate, 'b');
      t.true(termB !== undefined && termB.fence.createRevision > termA.fence.createRevision);
      await eventually(env, () => termA.signal.aborted, 4000);
      t.true(['lease_lost', 'key_changed'].includes((termA.signal.reason as { kind: string }).kind));

      // The deposed leader's plan, even if it has not noticed, cannot land.
      const fenced = await t.throwsAsync(
        rb.writeAssignments(
          termA.fence,
          [{ kind: 'unassign', unit: change.assignment.unit, machine: asMachineId('m1') }],
          basis,
        ),
      );
      t.true(isRegistryError(fenced, 'fenced'));
      t.regex(fenced.message, /engine a is no longer leader.*0 of 1 transactions of the plan were applied/);
      t.is((await rb.snapshot()).assignments.length, 1);

      // A resigning leader hands over at once (well within a TTL).
      const rc = env.connect({ lease: TEST_LEASE });
      const lc = rc.leadership({ candidate: 'c', ...TEST_LEASE });
      let termC: LeaderTerm | undefined;
      const campaignC = lc.campaign().then((term) => (termC = term));
      await env.pass(100);
      await termB?.resign();
      t.true(termB?.signal.aborted);
      await eventually(env, () => termC !== undefined, 1000);
      await campaignC;
      t.is((await rc.getLeader())?.candidate, 'c');
      await Promise.all([la.close(), lb.close(), lc.close()]);
    }),
  );

  test(
    'writeAssignments: batches above the txn limit, keeps a unit in one txn, and detects stale plans',
    withEnv(async (t, env) => {
      const r = env.connect({ lease: STEADY_LEASE });
      const leadership = r.leadership({ candidate: 'e', ...TERM_LEASE });
      const term = await leadership.campaign();
      const hash = asUnitHash('12'.repeat(32));
      const changes: AssignmentChange[] = [];
      for (let i = 0; i < 300; i++) {
        changes.push({
          kind: 'assign',
          assignment: {
            unit: asUnitName(`w@${i}.service`),
            machine: asMachineId(`m${i % 3}`),
            hash,
            target: 'launched',
          },
        });
      }
      // A global unit on 200 machines: more ops than one txn holds, split in order.
      for (let i = 0; i < 200; i++) {
        changes.push({
          kind: 'assign',
          assignment: {
            unit: asUnitName('g.service'),
            machine: asMachineId(`h${i}`),
            hash,
            target: 'loaded',
          },
        });
      }
      const basis = await r.snapshot();
      const result = await r.writeAssignments(term.fence, changes, basis);
      t.is(
        result.transactions,
        5,
        '500 ops in txns of at most 128 ops and 128 compares (fence, units, machines)',
      );
      const after = await r.snapshot();
      t.is(after.assignments.length, 500);

      const dup = await t.throwsAsync(
        r.writeAssignments(
          term.fence,
          [changes[0] as AssignmentChange, changes[0] as AssignmentChange],
          after,
        ),
      );
      t.true(isRegistryError(dup, 'invalid'));

      // A unit changed after the plan's snapshot: the plan must be recomputed.
      const u = unit('w@1.service', 'w1');
      await r.createUnit(u.unit, u.text);
      const stale = await t.throwsAsync(
        r.writeAssignments(
          term.fence,
          [{ kind: 'unassign', unit: u.unit.name, machine: asMachineId('m1') }],
          after,
        ),
      );
      t.true(isRegistryError(stale, 'conflict'));
      t.true(isRegistryError(stale) && stale.recoverable);
      t.regex(stale.message, /unit w@1\.service changed since the plan's snapshot/);
      const fresh = await r.snapshot();
      await r.writeAssignments(
        term.fence,
        [{ kind: 'unassign', unit: u.unit.name, machine: asMachineId('m1') }],
        fresh,
      );
      t.is((await r.snapshot()).assignments.length, 499);
      await term.resign();
      await leadership.close();
    }),
  );

  test(
    'watchAssignments: each machine sees only its own assignments, level-triggered',
    withEnv(async (t, env) => {
      const engine = env.connect({ lease: STEADY_LEASE });
      const agent1 = env.connect({ lease: STEADY_LEASE });
      const agent2 = env.connect({ lease: STEADY_LEASE });
      const leadership = engine.leadership({ candidate: 'e', ...TERM_LEASE });
      const term = await leadership.campaign();
      const hash = asUnitHash('34'.repeat(32));
      const assign = (u: string, m: string): AssignmentChange => ({
        kind: 'assign',
        assignment: { unit: asUnitName(u), machine: asMachineId(m), hash, target: 'launched' },
      });
      await engine.writeAssignments(term.fence, [assign('pre.service', 'm1')], await engine.snapshot());

      const seen1: WatchedSet<Assignment>[] = [];
      const seen2: WatchedSet<Assignment>[] = [];
      const s1 = await agent1.watchAssignments(asMachineId('m1'), (s) => seen1.push(s));
      const s2 = await agent2.watchAssignments(asMachineId('m10'), (s) => seen2.push(s));
      t.deepEqual(names(seen1.at(-1)), ['pre.service'], 'the first call carries the current set');
      t.deepEqual(names(seen2.at(-1)), [], 'm10 is not confused with m1 (key prefixes end with /)');

      await engine.writeAssignments(
        term.fence,
        [assign('a.service', 'm1'), assign('b.service', 'm10')],
        await engine.snapshot(),
      );
      await eventually(env, () => names(seen1.at(-1)).length === 2 && names(seen2.at(-1)).length === 1);
      t.deepEqual(names(seen1.at(-1)), ['a.service', 'pre.service']);
      t.deepEqual(names(seen2.at(-1)), ['b.service']);
      const calls2 = seen2.length;
      await engine.writeAssignments(
        term.fence,
        [{ kind: 'unassign', unit: asUnitName('pre.service'), machine: asMachineId('m1') }],
        await engine.snapshot(),
      );
      await eventually(env, () => names(seen1.at(-1)).length === 1);
      t.deepEqual(names(seen1.at(-1)), ['a.service']);
      await env.pass(200);
      t.is(seen2.length, calls2, "another machine's change does not wake m10");
      s1.close();
      s2.close();
      await term.resign();
      await leadership.close();
    }),
  );

  test(
    'services: announced instances live as long as the announcer lease',
    withEnv(async (t, env) => {
      const lb = env.connect({ lease: STEADY_LEASE });
      const sidekick = env.connect({ lease: STEADY_LEASE });
      const seen: string[][] = [];
      const sub = await lb.watchServiceInstances('web', (s) =>
        seen.push(s.items.map((i) => `${i.instance}=${i.address}`)),
      );
      const lease = await sidekick.openLease();
      await sidekick.announce(lease, {
        service: 'web',
        instance: '1',
        address: '10.0.0.1:80',
        machine: asMachineId('m1'),
        since: '2026-01-01T00:00:00.000Z',
      });
      await sidekick.announce(lease, {
        service: 'webx',
        instance: '1',
        address: '10.0.0.2:80',
        since: '2026-01-01T00:00:00.000Z',
      });
      await eventually(env, () => seen.at(-1)?.length === 1);
      t.deepEqual(seen.at(-1), ['1=10.0.0.1:80']);
      t.like((await lb.listServiceInstances('web')).items[0], { machine: 'm1', address: '10.0.0.1:80' });
      await lease.close();
      await eventually(env, () => seen.at(-1)?.length === 0);
      t.deepEqual((await lb.listServiceInstances('webx')).items, []);
      sub.close();
    }),
  );

  test(
    'createUnits: a batch larger than one transaction, idempotent for the same content, exists for other content',
    withEnv(async (t, env) => {
      const r = env.connect();
      const text = '[Service]\nExecStart=/bin/true\n';
      const hash = createHash('sha256').update(text).digest('hex') as UnitHash;
      const units = Array.from({ length: 300 }, (_, i) => ({
        unit: { name: `batch@${i}.unit` as UnitName, hash, target: 'launched' as const },
        text,
      }));
      const created = await r.createUnits(units);
      t.is(created.length, 300);
      const snap = await r.snapshot();
      t.is(snap.units.size, 300);
      t.is(snap.unitFiles.get(hash), text);
      // Again, with one unit set to another target meanwhile: the stored target is kept.
      await r.setTargetState('batch@7.unit' as UnitName, 'inactive');
      const again = await r.createUnits(units.slice(0, 10));
      t.is(again.find((u) => u.name === 'batch@7.unit')?.target, 'inactive');
      const other = '[Service]\nExecStart=/bin/false\n';
      const otherHash = createHash('sha256').update(other).digest('hex') as UnitHash;
      const err = await t.throwsAsync(
        r.createUnits([
          { unit: { name: 'fresh.unit' as UnitName, hash: otherHash, target: 'loaded' }, text: other },
          { unit: { name: 'batch@1.unit' as UnitName, hash: otherHash, target: 'loaded' }, text: other },
        ]),
      );
      t.is((err as RegistryError).code, 'exists');
      t.is(
        (await r.getUnit('fresh.unit' as UnitName))?.target,
        'loaded',
        'the other units of the batch are created',
      );
    }),
  );

  test(
    'plan basis: a plan made while a machine was gone does not land after it came back, nor one for a machine that re-registered',
    withEnv(async (t, env) => {
      const r = env.connect({ lease: STEADY_LEASE });
      const a = unit('moving.service', 'moving');
      await r.createUnit(a.unit, a.text);
      const term = await r.leadership({ candidate: 'engine', ...TERM_LEASE }).campaign();
      const m1 = await r.register(machine('m1'));
      const assign = (m: string): AssignmentChange => ({
        kind: 'assign',
        assignment: { unit: a.unit.name, machine: asMachineId(m), hash: a.unit.hash, target: 'launched' },
      });
      await r.writeAssignments(term.fence, [assign('m1')], await r.snapshot());
      // m1 goes away; the engine plans to move the unit to m2 from a snapshot without m1 …
      await m1.close();
      const m2 = await r.register(machine('m2'));
      const stale = await r.snapshot();
      t.false(stale.machines.has(asMachineId('m1')));
      // … and m1 comes back before the plan lands.
      await r.register(machine('m1'));
      const err = await t.throwsAsync(
        r.writeAssignments(
          term.fence,
          [{ kind: 'unassign', unit: a.unit.name, machine: asMachineId('m1') }, assign('m2')],
          stale,
        ),
      );
      t.true(isRegistryError(err, 'conflict'), String(err));
      t.regex(err.message, /machine membership changed \(machines\/m1\)/);
      t.deepEqual(
        (await r.snapshot()).assignments.map((x) => x.machine),
        [asMachineId('m1')],
        'the unit stays on the machine that came back',
      );
      // An assignment to a machine whose membership is not the one the plan saw is refused too.
      const before = await r.snapshot();
      await m2.close();
      await r.register(machine('m2'));
      const err2 = await t.throwsAsync(r.writeAssignments(term.fence, [assign('m2')], before));
      t.true(isRegistryError(err2, 'conflict'), String(err2));
      await term.resign();
    }),
  );

  test(
    'run claims: one holder at a time, idempotent for the holder, released by it or with its lease',
    withEnv(async (t, env) => {
      const r = env.connect({ lease: STEADY_LEASE });
      const m1 = await r.register(machine('m1'));
      const m2 = await r.register(machine('m2'));
      const u = asUnitName('db.service');
      t.deepEqual(await r.claimUnit(m1, u, asMachineId('m1')), { ok: true });
      t.deepEqual(await r.claimUnit(m1, u, asMachineId('m1')), { ok: true }, 'idempotent');
      t.deepEqual(await r.claimUnit(m2, u, asMachineId('m2')), { ok: false, holder: asMachineId('m1') });
      await r.releaseUnit(m2, u); // not the holder: no effect
      t.deepEqual(await r.claimUnit(m2, u, asMachineId('m2')), { ok: false, holder: asMachineId('m1') });
      await r.releaseUnit(m1, u);
      t.deepEqual(await r.claimUnit(m2, u, asMachineId('m2')), { ok: true });
      // The holder's lease ends (a dead host): its claim goes with it.
      await m2.close();
      t.deepEqual(await r.claimUnit(m1, u, asMachineId('m1')), { ok: true });
      await m1.close();
    }),
  );

  test(
    'run claims asked at once (a burst of starts) are answered each as if asked alone',
    withEnv(async (t, env) => {
      const r = env.connect({ lease: STEADY_LEASE });
      const m1 = await r.register(machine('m1'));
      const m2 = await r.register(machine('m2'));
      const units = Array.from({ length: 30 }, (_, i) => asUnitName(`b@${i}.service`));
      // All free: every claim is m1's.
      t.deepEqual(
        await Promise.all(units.map((u) => r.claimUnit(m1, u, asMachineId('m1')))),
        units.map(() => ({ ok: true })),
      );
      await Promise.all(units.map((u) => r.releaseUnit(m1, u)));
      // Two are held already, one by m2 and one by m1 itself.
      t.deepEqual(await r.claimUnit(m2, units[3]!, asMachineId('m2')), { ok: true });
      t.deepEqual(await r.claimUnit(m1, units[7]!, asMachineId('m1')), { ok: true });
      const answers = await Promise.all(units.map((u) => r.claimUnit(m1, u, asMachineId('m1'))));
      t.deepEqual(
        answers,
        units.map((_, i) => (i === 3 ? { ok: false, holder: asMachineId('m2') } : { ok: true })),
      );
      // Each is held by the one it was answered to.
      t.deepEqual(
        await Promise.all(units.map((u) => r.claimUnit(m2, u, asMachineId('m2')))),
        units.map((_, i) => (i === 3 ? { ok: true } : { ok: false, holder: asMachineId('m1') })),
      );
      await m1.close();
      await m2.close();
    }),
  );

  test(
    'run claims: taken over from a holder the caller says is dead, while its lease lives on',
    withEnv(async (t, env) => {
      const r = env.connect({ lease: STEADY_LEASE });
      const m1 = await r.register(machine('m1'));
      const m2 = await r.register(machine('m2'));
      const u = asUnitName('web.service');
      t.deepEqual(await r.claimUnit(m1, u, asMachineId('m1')), { ok: true });
      t.deepEqual(
        await r.claimUnit(m2, u, asMachineId('m2'), { takeFrom: (h) => h === asMachineId('m3') }),
        { ok: false, holder: asMachineId('m1') },
        'not from a holder that is not said dead',
      );
      t.deepEqual(await r.claimUnit(m2, u, asMachineId('m2'), { takeFrom: (h) => h === asMachineId('m1') }), {
        ok: true,
        takenFrom: asMachineId('m1'),
      });
      t.deepEqual(
        await r.claimUnit(m1, u, asMachineId('m1')),
        { ok: false, holder: asMachineId('m2') },
        'm1 lost it',
      );
      await r.releaseUnit(m1, u); // no longer the holder: no effect
      t.deepEqual(await r.claimUnit(m2, u, asMachineId('m2')), { ok: true }, 'm2 holds it');
      await m1.close();
      await m2.close();
    }),
  );

  test(
    "run claims: the engine releases one held by a machine found dead, and only that holder's",
    withEnv(async (t, env) => {
      const r = env.connect({ lease: STEADY_LEASE });
      const m1 = await r.register(machine('m1'));
      const m2 = await r.register(machine('m2'));
      const u = asUnitName('web.service');
      t.false(await r.releaseDeadHolder(u, asMachineId('m1')), 'no claim: nothing released');
      t.deepEqual(await r.claimUnit(m1, u, asMachineId('m1')), { ok: true });
      t.false(await r.releaseDeadHolder(u, asMachineId('m3')), 'held by another machine: kept');
      t.deepEqual(await r.claimUnit(m2, u, asMachineId('m2')), { ok: false, holder: asMachineId('m1') });
      t.true(await r.releaseDeadHolder(u, asMachineId('m1')));
      t.deepEqual(await r.claimUnit(m2, u, asMachineId('m2')), { ok: true }, 'free for the new host');
      t.false(await r.releaseDeadHolder(u, asMachineId('m1')), 'm2 holds it now: kept');
      t.deepEqual(await r.claimUnit(m1, u, asMachineId('m1')), { ok: false, holder: asMachineId('m2') });
      await m1.close();
      await m2.close();
    }),
  );
}

/** Polls `cond`, letting time pass between tries, until it holds or `budgetMs` of time passed. */
async function eventually(
  env: ContractEnv,
  cond: () => boolean | Promise<boolean>,
  budgetMs = 3000,
): Promise<void> {
  for (let waited = 0; ; waited += 50) {
    if (await cond()) return;
    if (waited >= budgetMs) throw new Error(`condition not met within ${budgetMs} ms: ${cond.toString()}`);
    await env.pass(50);
  }
}

function unit(
  name: string,
  text: string,
): { unit: { name: UnitName; hash: UnitHash; target: 'launched' }; text: string } {
  const hash = asUnitHash(createHash('sha256').update(text).digest('hex'));
  return { unit: { name: asUnitName(name), hash, target: 'launched' }, text };
}

function machine(id: string, metadata: Record<string, string> = {}, ip = '10.0.0.1'): MachineRegistration {
  return { id: asMachineId(id), ip, metadata, version: '0.1.0', startedAt: '2026-01-01T00:00:00.000Z' };
}

function status(u: string, m: string, hash: UnitHash): UnitStatus {
  return {
    unit: asUnitName(u),
    machine: asMachineId(m),
    hash,
    load: 'loaded',
    active: 'active',
    sub: 'running',
    pid: 42,
    since: '2026-01-01T00:00:00.000Z',
  };
}

function names(set: WatchedSet<Assignment> | undefined): string[] {
  return (set?.items ?? []).map((a) => a.unit);
}
