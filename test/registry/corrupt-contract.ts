// Part of the registry contract (run on the in-memory registry and on a real etcd): keys that were
// not written by fleetts — invalid names, nested paths, garbage values, records bound to no lease —
// are reported per key and skipped; they never fail a read, a plan or an election (issue 14).
import type { ExecutionContext, TestFn } from 'ava';
import { createHash } from 'node:crypto';
import type { UnitHash, UnitName } from '../../src/cluster/types.js';
import { asMachineId, asUnitHash, asUnitName } from '../../src/cluster/types.js';
import type { LeaderTerm } from '../../src/registry/leadership.js';
import type { MachineRegistration } from '../../src/registry/registry.js';
import { isRegistryError } from '../../src/registry/registry-error.js';
import { TEST_LEASE, type ContractEnv } from './contract.js';

export function corruptKeysContract(test: TestFn, makeEnv: () => Promise<ContractEnv>): void {
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
    'corrupt keys: invalid names, nested paths, bad and oversized values are reported per key and skipped',
    withEnv(async (t, env) => {
      const r = env.connect({ lease: TEST_LEASE });
      const m1 = await r.register(machine('m1'));
      const good = unit('good.service', '[Service]\nExecStart=/bin/true\n');
      await r.createUnit(good.unit, good.text);
      const value = JSON.stringify({ v: 1, hash: good.unit.hash, target: 'launched' });
      const broken = unit('file.service', '[Service]\nExecStart=/bin/false\n');
      await env.rawPut(
        'units/file.service',
        JSON.stringify({ v: 1, hash: broken.unit.hash, target: 'launched' }),
      );
      await env.rawPut(`unit-files/${broken.unit.hash}`, 'garbage');
      const planted: Record<string, string> = {
        'units/bad name;rm -rf.service': value,
        'units/nested/x.service': value,
        'units/é.service': value,
        'units/web': value,
        'units/notjson.service': '{oops',
        'units/v2.service': JSON.stringify({ v: 2, hash: good.unit.hash, target: 'launched' }),
        'units/target.service': JSON.stringify({ v: 1, hash: good.unit.hash, target: 'flying' }),
        'units/big.service': JSON.stringify({
          v: 1,
          hash: good.unit.hash,
          target: 'launched',
          pad: 'x'.repeat(500_000),
        }),
        'assignments/m1/bad name.service': JSON.stringify({ v: 1, hash: good.unit.hash, target: 'launched' }),
        'status/bad name.service/m1': '{}',
        'unschedulable/bad name.service': '{}',
        'machines/m 2': '{}',
      };
      for (const [key, v] of Object.entries(planted)) await env.rawPut(key, v);

      const s = await r.snapshot();
      t.deepEqual([...s.units.keys()], [asUnitName('file.service'), asUnitName('good.service')]);
      t.deepEqual([...s.machines.keys()], [asMachineId('m1')]);
      t.deepEqual(s.assignments, []);
      t.deepEqual(s.statuses, []);
      t.deepEqual([...s.unschedulable.keys()], []);
      t.false(s.unitFiles.has(broken.unit.hash));
      const problem = (rel: string) => s.problems.find((p) => p.key.endsWith(`/${rel}`));
      for (const rel of [...Object.keys(planted), `unit-files/${broken.unit.hash}`])
        t.truthy(problem(rel), `${rel} is reported (${s.problems.map((p) => p.key).join(', ')})`);
      t.is(s.problems.length, Object.keys(planted).length + 1, 'one problem per bad key');
      t.like(problem('units/bad name;rm -rf.service'), { tree: 'units', name: 'bad name;rm -rf.service' });
      t.regex(
        problem('units/bad name;rm -rf.service')?.message ?? '',
        /bad key: invalid unit name.*character " " is not allowed/,
      );
      t.like(problem('units/nested/x.service'), { tree: 'units', name: 'nested/x.service' });
      t.regex(problem('units/é.service')?.message ?? '', /character "é" is not allowed/);
      t.regex(problem('machines/m 2')?.message ?? '', /segment "m 2" is not printable ASCII/);
      t.regex(problem('units/web')?.message ?? '', /no type suffix/);
      t.regex(problem('units/notjson.service')?.message ?? '', /not JSON/);
      t.regex(problem('units/v2.service')?.message ?? '', /unsupported unit value version 2/);
      t.regex(problem('units/target.service')?.message ?? '', /bad unit value/);
      t.regex(problem('units/big.service')?.message ?? '', /bytes is larger than any fleetts writes/);
      t.like(problem(`unit-files/${broken.unit.hash}`), { tree: 'unitFiles', name: broken.unit.hash });

      // Single-key reads of a corrupt record say so; the listings of other trees report theirs.
      const corrupt = await t.throwsAsync(r.getUnit(asUnitName('notjson.service')));
      t.true(isRegistryError(corrupt, 'corrupt'));
      t.true(isRegistryError(await t.throwsAsync(r.getUnitFile(broken.unit.hash)), 'corrupt'));
      t.is((await r.listStatuses()).problems.length, 1);
      t.deepEqual(
        (await r.listMachines()).items.map((m) => m.id),
        [asMachineId('m1')],
      );
      await m1.close();
    }),
  );

  test(
    'corrupt keys: deleteInvalidUnit removes a key by its stored name, only while it is invalid',
    withEnv(async (t, env) => {
      const r = env.connect({ lease: TEST_LEASE });
      const good = unit('good.service', '[Service]\nExecStart=/bin/true\n');
      await r.createUnit(good.unit, good.text);
      const value = JSON.stringify({ v: 1, hash: good.unit.hash, target: 'launched' });
      await env.rawPut('units/bad name;rm -rf.service', value);
      await env.rawPut('units/nested/x.service', '{oops');
      await env.rawPut('units/notjson.service', '{oops');

      t.true(await r.deleteInvalidUnit('bad name;rm -rf.service'));
      t.true(await r.deleteInvalidUnit('nested/x.service'));
      t.true(await r.deleteInvalidUnit('notjson.service'));
      t.false(await r.deleteInvalidUnit('bad name;rm -rf.service'), 'gone');
      t.false(await r.deleteInvalidUnit('never.service'));
      const valid = await t.throwsAsync(r.deleteInvalidUnit('good.service'));
      t.true(isRegistryError(valid, 'invalid'));
      const s = await r.snapshot();
      t.deepEqual(s.problems, []);
      t.deepEqual([...s.units.keys()], [good.unit.name]);
      t.is(s.unitFiles.get(good.unit.hash), good.text, 'a file a valid unit references stays');
    }),
  );

  test(
    'corrupt keys: a machine record bound to no lease is no live machine, and a plan can unassign from it',
    withEnv(async (t, env) => {
      const r = env.connect({ lease: TEST_LEASE });
      const m1 = await r.register(machine('m1'));
      const u = unit('u.service', '[Service]\nExecStart=/bin/true\n');
      await r.createUnit(u.unit, u.text);
      const fake = 'f'.repeat(32);
      await env.rawPut(
        `machines/${fake}`,
        JSON.stringify({
          v: 1,
          ip: '127.0.0.1',
          metadata: {},
          apiAddress: 'http://127.0.0.1:1',
          version: '0.1.0',
          startedAt: '2026-01-01T00:00:00.000Z',
        }),
      );
      await env.rawPut(
        `assignments/${fake}/u.service`,
        JSON.stringify({ v: 1, hash: u.unit.hash, target: 'launched' }),
      );
      const s = await r.snapshot();
      t.deepEqual([...s.machines.keys()], [asMachineId('m1')]);
      t.regex(s.problems.find((p) => p.tree === 'machines')?.message ?? '', /bound to no lease/);
      t.deepEqual(
        (await r.listMachines()).items.map((m) => m.id),
        [asMachineId('m1')],
      );

      const leadership = r.leadership({ candidate: 'm1', ...TEST_LEASE });
      const term = await leadership.campaign();
      // The machine the plan saw gone is "still gone" while its record is bound to no lease.
      await r.writeAssignments(
        term.fence,
        [{ kind: 'unassign', unit: u.unit.name, machine: asMachineId(fake) }],
        s,
      );
      t.deepEqual((await r.snapshot()).assignments, []);
      await leadership.close();
      await m1.close();
    }),
  );

  test(
    'corrupt keys: a leader key bound to no lease, or garbage, is treated as expired; overwriting a leader ends its term',
    withEnv(async (t, env) => {
      const r = env.connect({ lease: TEST_LEASE });
      await env.rawPut('engine/leader', '{oops');
      t.is(await r.getLeader(), undefined, 'a leader key that does not decode is no leader');
      const la = r.leadership({ candidate: 'a', ...TEST_LEASE });
      const termA = await la.campaign();
      t.is((await r.getLeader())?.candidate, 'a');

      // Someone overwrites the sitting leader's key: the put detaches its lease (the key would
      // outlive the leader), so the term ends and a campaign takes over with a new fence.
      await env.rawPut(
        'engine/leader',
        JSON.stringify({ v: 1, candidate: 'a', since: '2026-01-01T00:00:00Z' }),
      );
      await eventually(env, () => termA.signal.aborted, 4000);
      t.like(termA.signal.reason, { kind: 'key_changed' });
      const rb = env.connect({ lease: TEST_LEASE });
      const lb = rb.leadership({ candidate: 'b', ...TEST_LEASE });
      const termB = await lb.campaign();
      t.true(termB.fence.createRevision > termA.fence.createRevision);
      t.is((await rb.getLeader())?.candidate, 'b');

      // Garbage under a live lease (not a newer fleetts's value) is vacated too.
      await termB.resign();
      const { kv, prefix } = env.kv();
      const lease = await kv.leaseGrant(TEST_LEASE.ttlMs! / 1000);
      await kv.txn({
        compare: [],
        success: [{ kind: 'put', key: `${prefix}engine/leader`, value: 'garbage', lease }],
      });
      const lc = r.leadership({ candidate: 'c', ...TEST_LEASE });
      let termC: LeaderTerm | undefined;
      void lc.campaign().then((term) => (termC = term));
      await eventually(env, () => termC !== undefined, 1000);
      t.is((await r.getLeader())?.candidate, 'c');
      await Promise.all([la.close(), lb.close(), lc.close()]);
    }),
  );
}

async function eventually(env: ContractEnv, cond: () => boolean, budgetMs: number): Promise<void> {
  for (let waited = 0; !cond(); waited += 50) {
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

function machine(id: string): MachineRegistration {
  return {
    id: asMachineId(id),
    ip: '10.0.0.1',
    metadata: {},
    version: '0.1.0',
    startedAt: '2026-01-01T00:00:00.000Z',
  };
}
