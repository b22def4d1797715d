import test from 'ava';
import fc from 'fast-check';
import { asMachineId, asUnitHash, asUnitName } from '../../src/cluster/types.js';
import { RegistryKeys, prefixEnd } from '../../src/registry/keys.js';
import { isRegistryError } from '../../src/registry/registry-error.js';
import { isValidUnitName } from '../../src/unit/names.js';

const keys = new RegistryKeys();
const m = asMachineId('0a1b2c');
const u = asUnitName('web@1.service');

test('every key builds under the prefix and parses back', (t) => {
  const cases: [string, string, unknown][] = [
    ['machine', keys.machine(m), { kind: 'machine', machine: m }],
    ['metadata', keys.machineMetadata(m), { kind: 'machine-metadata', machine: m }],
    ['assignment', keys.assignment(m, u), { kind: 'assignment', machine: m, unit: u }],
    ['unit', keys.unit(u), { kind: 'unit', unit: u }],
    ['unit file', keys.unitFile(asUnitHash('ab12')), { kind: 'unit-file', hash: 'ab12' }],
    ['status', keys.status(u, m), { kind: 'status', unit: u, machine: m }],
    ['unschedulable', keys.unschedulable(u), { kind: 'unschedulable', unit: u }],
    ['leader', keys.leader(), { kind: 'leader' }],
    ['service', keys.service('web', '1'), { kind: 'service', service: 'web', instance: '1' }],
    ['floating', keys.floatingAddress('10.0.0.100'), { kind: 'floating', address: '10.0.0.100' }],
  ];
  for (const [what, key, parsed] of cases) {
    t.true(key.startsWith('/fleetts/v1/'), what);
    t.deepEqual(keys.parse(key), parsed, what);
  }
  t.is(keys.assignment(m, u), '/fleetts/v1/assignments/0a1b2c/web@1.service');
});

test('listing one tree never picks up another', (t) => {
  const machines = keys.tree('machines');
  for (const other of [keys.assignment(m, u), keys.machineMetadata(m), keys.status(u, m)]) {
    t.false(other >= machines.start && other < machines.end, other);
  }
  const ofM1 = keys.assignmentsOf(asMachineId('m1'));
  const ofM10 = keys.assignment(asMachineId('m10'), u);
  t.false(ofM10 >= ofM1.start && ofM10 < ofM1.end, 'm10 is not under m1');
});

test('keys outside the layout parse to undefined', (t) => {
  for (const key of [
    '/other/machines/x',
    '/fleetts/v1/machines/',
    '/fleetts/v1/machines/a/b',
    '/fleetts/v1/nope/x',
    '/fleetts/v1/engine/x',
  ]) {
    t.is(keys.parse(key), undefined, key);
  }
});

test('segments with a slash, spaces or nothing are refused with the reason', (t) => {
  for (const bad of ['a/b', '', 'a b', 'é']) {
    const error = t.throws(() => keys.unit(asUnitName(bad)));
    t.true(isRegistryError(error, 'invalid'));
    t.regex(error.message, /invalid unit name .* must be non-empty printable ASCII without '\/'/);
  }
  t.throws(() => new RegistryKeys('fleet'), { message: /must start and end with '\/'/ });
  t.is(new RegistryKeys('/x/').unit(u), '/x/units/web@1.service');
});

test('prefixEnd is the next key after every key with the prefix', (t) => {
  t.is(prefixEnd('/a/'), '/a0');
  t.true('/a/zzz' < prefixEnd('/a/'));
});

test('a unit segment parses exactly when parseUnitName accepts it (the fast path included)', (t) => {
  const chars = [...'aZ09:_.-\\@ /é;'];
  const name = fc
    .tuple(
      fc.array(fc.constantFrom(...chars), { maxLength: 12 }).map((cs) => cs.join('')),
      fc.constantFrom('', '.unit', '.service', '.timer', '.'),
    )
    .map(([stem, suffix]) => stem + suffix);
  fc.assert(
    fc.property(
      name,
      (n) => keys.inspect(`/fleetts/v1/units/${n}`).ok === (isValidUnitName(n) && !n.includes('/')),
    ),
    { numRuns: 2000 },
  );
  for (const n of [
    'web@.unit',
    'web@1.service',
    'a\\x2d.unit',
    '.hidden.unit',
    '@x.unit',
    'x'.repeat(252) + '.unit',
  ])
    t.is(keys.inspect(`/fleetts/v1/units/${n}`).ok, isValidUnitName(n), n);
  t.false(keys.inspect(`/fleetts/v1/units/${'x'.repeat(252)}.service`).ok, 'over the length limit');
});
