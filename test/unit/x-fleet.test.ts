// [X-Fleet] → Placement through parseUnitSpec: every option, alias, specifier, combination rule.

import test from 'ava';
import { NO_PLACEMENT, type Placement } from '../../src/cluster/types.js';
import { UnitFileError } from '../../src/lib/errors.js';
import { parseUnitSpec, specForInstance } from '../../src/unit/unit-spec.js';
import { MAX_PLACEMENT_VALUES } from '../../src/unit/x-fleet.js';

/** A [Service] unit whose [X-Fleet] holds `lines`; the first X-Fleet line is line 4. */
const unitWith = (...lines: string[]): string =>
  ['[Service]', 'ExecStart=/bin/true', '[X-Fleet]', ...lines].join('\n') + '\n';

const placementOf = (name: string, ...lines: string[]): Placement =>
  parseUnitSpec(unitWith(...lines), name).placement;

const errorOf = (name: string, ...lines: string[]): string => {
  try {
    parseUnitSpec(unitWith(...lines), name);
  } catch (error) {
    if (error instanceof UnitFileError) return error.message;
    throw error;
  }
  throw new Error('expected a UnitFileError');
};

const options: { title: string; name: string; lines: string[]; expected: Partial<Placement> }[] = [
  { title: 'no [X-Fleet] entries', name: 'a.unit', lines: [], expected: {} },
  { title: 'MachineID', name: 'a.unit', lines: ['MachineID=abc123'], expected: { machineId: 'abc123' } },
  {
    title: 'MachineID quoted',
    name: 'a.unit',
    lines: ['MachineID="abc123"'],
    expected: { machineId: 'abc123' },
  },
  { title: 'MachineOf', name: 'a.unit', lines: ['MachineOf=db.unit'], expected: { machineOf: ['db.unit'] } },
  {
    title: 'MachineOf, several per line and repeated',
    name: 'a.unit',
    lines: ['MachineOf=db.unit cache.service', 'MachineOf=log@1.unit db.unit'],
    expected: { machineOf: ['db.unit', 'cache.service', 'log@1.unit'] },
  },
  { title: 'Conflicts', name: 'a.unit', lines: ['Conflicts=b*.unit'], expected: { conflicts: ['b*.unit'] } },
  {
    title: 'Conflicts, several per line and repeated',
    name: 'a.unit',
    lines: ['Conflicts=b*.unit "c?.unit"', 'Conflicts=d.unit'],
    expected: { conflicts: ['b*.unit', 'c?.unit', 'd.unit'] },
  },
  {
    title: 'Conflicts= resets the list',
    name: 'a.unit',
    lines: ['Conflicts=b.unit', 'Conflicts=', 'Conflicts=c.unit'],
    expected: { conflicts: ['c.unit'] },
  },
  {
    title: 'Conflicts matching the unit itself is kept (the scheduler ignores self)',
    name: 'web@1.unit',
    lines: ['Conflicts=web@*.unit'],
    expected: { conflicts: ['web@*.unit'] },
  },
  { title: 'Global', name: 'a.unit', lines: ['Global=true'], expected: { global: true } },
  { title: 'AtMostOnce', name: 'a.unit', lines: ['AtMostOnce=true'], expected: { atMostOnce: true } },
  {
    title: 'AtMostOnce, last wins; false is the default and leaves the field out',
    name: 'a.unit',
    lines: ['AtMostOnce=yes', 'AtMostOnce=no'],
    expected: {},
  },
  { title: 'AtMostOnce= resets it', name: 'a.unit', lines: ['AtMostOnce=on', 'AtMostOnce='], expected: {} },
  {
    title: 'AtMostOnce with placement keys',
    name: 'ftp.unit',
    lines: ['AtMostOnce=true', 'MachineMetadata=role=ftp', 'Conflicts=ftp*.unit'],
    expected: { atMostOnce: true, machineMetadata: { role: ['ftp'] }, conflicts: ['ftp*.unit'] },
  },
  {
    title: 'Global, last wins',
    name: 'a.unit',
    lines: ['Global=true', 'Global=false'],
    expected: { global: false },
  },
  {
    title: 'Replaces',
    name: 'a.unit',
    lines: ['Replaces=old-*.unit'],
    expected: { replaces: ['old-*.unit'] },
  },
  {
    title: 'MachineMetadata',
    name: 'a.unit',
    lines: ['MachineMetadata=region=us-east'],
    expected: { machineMetadata: { region: ['us-east'] } },
  },
  {
    title: 'MachineID= resets it',
    name: 'a.unit',
    lines: ['MachineID=abc', 'MachineID='],
    expected: {},
  },
];

for (const { title, name, lines, expected } of options) {
  test(`option: ${title}`, (t) => {
    t.deepEqual(placementOf(name, ...lines), { ...NO_PLACEMENT, ...expected });
  });
}

const aliases: { line: string; expected: Partial<Placement> }[] = [
  { line: 'X-ConditionMachineID=abc', expected: { machineId: 'abc' } },
  { line: 'X-ConditionMachineOf=db.service', expected: { machineOf: ['db.service'] } },
  {
    line: 'X-ConditionMachineMetadata="role=web" "disk=ssd"',
    expected: { machineMetadata: { role: ['web'], disk: ['ssd'] } },
  },
  { line: 'X-Conflicts=b@*.service', expected: { conflicts: ['b@*.service'] } },
];

for (const { line, expected } of aliases) {
  test(`legacy alias: ${line}`, (t) => {
    t.deepEqual(placementOf('a.service', line), { ...NO_PLACEMENT, ...expected });
  });
}

test('a legacy alias and its new name accumulate into one list', (t) => {
  t.deepEqual(placementOf('a.unit', 'X-Conflicts=b.unit', 'Conflicts=c.unit').conflicts, [
    'b.unit',
    'c.unit',
  ]);
});

const metadata: { lines: string[]; expected: Record<string, string[]> }[] = [
  {
    lines: ['MachineMetadata="region=us-east" "disk=ssd"'],
    expected: { region: ['us-east'], disk: ['ssd'] },
  },
  { lines: ['MachineMetadata=region=us-east region=us-west'], expected: { region: ['us-east', 'us-west'] } },
  {
    lines: ['MachineMetadata=region=us-east', 'MachineMetadata=disk=ssd', 'MachineMetadata=region=eu'],
    expected: { region: ['us-east', 'eu'], disk: ['ssd'] },
  },
  {
    lines: ['MachineMetadata=region=us-east', 'MachineMetadata=region=us-east'],
    expected: { region: ['us-east'] },
  },
  { lines: ['MachineMetadata=a=b=c'], expected: { a: ['b=c'] } },
  { lines: ['MachineMetadata="rack=a b"'], expected: { rack: ['a b'] } },
  {
    lines: ['MachineMetadata=region=us', 'MachineMetadata=', 'MachineMetadata=disk=ssd'],
    expected: { disk: ['ssd'] },
  },
];

for (const { lines, expected } of metadata) {
  test(`metadata: ${lines.join(' | ')}`, (t) => {
    t.deepEqual(placementOf('a.unit', ...lines).machineMetadata, expected);
  });
}

test('metadata keys are data, even __proto__', (t) => {
  const m = placementOf('a.unit', 'MachineMetadata=__proto__=x').machineMetadata;
  t.deepEqual(Object.keys(m), ['__proto__']);
  t.deepEqual(Object.getPrototypeOf(m), Object.prototype);
});

const globalSpellings: [string, boolean][] = [
  ['true', true],
  ['TRUE', true],
  ['yes', true],
  ['Yes', true],
  ['1', true],
  ['on', true],
  ['ON', true],
  ['t', true],
  ['y', true],
  ['false', false],
  ['False', false],
  ['no', false],
  ['0', false],
  ['off', false],
  ['OFF', false],
  ['', false],
];

for (const [value, expected] of globalSpellings) {
  test(`Global=${value} is ${expected}`, (t) => {
    t.is(placementOf('a.unit', `Global=${value}`).global, expected);
  });
}

// The format asserted by the issue: `<file>:<line>: <Key>=<value> cannot be combined with <Other>=`,
// on the line of the later of the two keys.
const combinations: { lines: string[]; message: string }[] = [
  {
    lines: ['MachineID=abc', 'MachineOf=db.unit'],
    message: 'web@.unit:5: MachineOf=db.unit cannot be combined with MachineID=',
  },
  {
    lines: ['MachineOf=db.unit', 'MachineID=abc'],
    message: 'web@.unit:5: MachineID=abc cannot be combined with MachineOf=',
  },
  {
    lines: ['MachineID=abc', 'Conflicts=x*'],
    message: 'web@.unit:5: Conflicts=x* cannot be combined with MachineID=',
  },
  {
    lines: ['MachineID=abc', 'Global=true'],
    message: 'web@.unit:5: Global=true cannot be combined with MachineID=',
  },
  {
    lines: ['MachineID=abc', 'Replaces=x*'],
    message: 'web@.unit:5: Replaces=x* cannot be combined with MachineID=',
  },
  {
    lines: ['MachineOf=db.unit', 'Global=yes'],
    message: 'web@.unit:5: Global=yes cannot be combined with MachineOf=',
  },
  {
    lines: ['Global=on', 'MachineOf=db.unit'],
    message: 'web@.unit:5: MachineOf=db.unit cannot be combined with Global=',
  },
  { lines: ['Global=1', 'Replaces=x*'], message: 'web@.unit:5: Replaces=x* cannot be combined with Global=' },
  {
    lines: ['Conflicts=x*', 'Replaces=y*'],
    message: 'web@.unit:5: Replaces=y* cannot be combined with Conflicts=',
  },
  {
    lines: ['X-ConditionMachineOf=db.unit', 'X-ConditionMachineID=abc'],
    message: 'web@.unit:5: X-ConditionMachineID=abc cannot be combined with X-ConditionMachineOf=',
  },
  {
    lines: ['Global=true', 'AtMostOnce=true'],
    message:
      'web@.unit:5: AtMostOnce=true cannot be combined with Global=true: a Global unit runs on every machine, while AtMostOnce=true means it must never run on two machines at once; remove one of them',
  },
  {
    lines: ['AtMostOnce=1', 'Global=yes'],
    message:
      'web@.unit:5: Global=yes cannot be combined with AtMostOnce=true: a Global unit runs on every machine, while AtMostOnce=true means it must never run on two machines at once; remove one of them',
  },
  // The issue's own example: Global on line 7, MachineOf earlier.
  {
    lines: ['MachineOf=db.unit', 'Conflicts=x*', 'MachineMetadata=a=b', 'Global=true'],
    message: 'web@.unit:7: Global=true cannot be combined with MachineOf=',
  },
];

for (const { lines, message } of combinations) {
  test(`rejected: ${lines.join(' + ')}`, (t) => {
    t.is(errorOf('web@.unit', ...lines), message);
  });
}

const allowed: string[][] = [
  ['Global=false', 'MachineOf=db.unit'],
  ['Global=true', 'MachineOf='],
  ['Global=true', 'Conflicts=x*', 'MachineMetadata=role=web'],
  ['MachineID=abc', 'MachineMetadata=role=web'],
  ['MachineOf=db.unit', 'Replaces=old.unit'],
  ['MachineOf=db.unit', 'Conflicts=x*'],
  ['Global=true', 'AtMostOnce=false'],
  ['AtMostOnce=true', 'Global=false'],
  ['AtMostOnce=true', 'MachineID=abc'],
];

for (const lines of allowed) {
  test(`allowed: ${lines.join(' + ')}`, (t) => {
    t.notThrows(() => placementOf('web@1.unit', ...lines));
  });
}

const selfAndPeer: { name: string; lines: string[]; message: string }[] = [
  {
    name: 'web@1.unit',
    lines: ['MachineOf=web@1.unit'],
    message:
      'web@1.unit:4: MachineOf=web@1.unit: names the unit itself (web@1.unit); MachineOf= lists other units that this one must run beside',
  },
  {
    name: 'web@1.unit',
    lines: ['MachineOf=%n'],
    message:
      'web@1.unit:4: MachineOf=%n: names the unit itself (web@1.unit); MachineOf= lists other units that this one must run beside',
  },
  {
    name: 'web@1.unit',
    lines: ['Replaces=web@*.unit'],
    message:
      'web@1.unit:4: Replaces=web@*.unit: "web@*.unit" matches the unit itself (web@1.unit); a unit cannot replace itself, so narrow the pattern',
  },
  {
    name: 'side@1.unit',
    lines: ['MachineOf=web@1.unit', 'Conflicts=web@*.unit'],
    message:
      'side@1.unit:5: MachineOf=web@1.unit is matched by Conflicts=web@*.unit: the unit cannot both run beside web@1.unit and conflict with it; remove one of them',
  },
  {
    name: 'side@1.unit',
    lines: ['Replaces=web@*.unit', 'MachineOf=web@1.unit'],
    message:
      'side@1.unit:5: MachineOf=web@1.unit is matched by Replaces=web@*.unit: the unit cannot both run beside web@1.unit and replace it; remove one of them',
  },
];

for (const { name, lines, message } of selfAndPeer) {
  test(`rejected for ${name}: ${lines.join(' + ')}`, (t) => {
    t.is(errorOf(name, ...lines), message);
  });
}

test('an unknown key names the known keys and the nearest one', (t) => {
  const text = [
    '[Unit]',
    'Description=web',
    '',
    '[Service]',
    'ExecStart=/bin/true',
    '',
    '[X-Fleet]',
    'Global=false',
    'Conflict=web@*.unit',
  ].join('\n');
  const error = t.throws(() => parseUnitSpec(text, 'web@.unit'), { instanceOf: UnitFileError });
  t.is(
    error?.message,
    'web@.unit:9: unknown [X-Fleet] key "Conflict"; known keys: MachineID, MachineOf, MachineMetadata, Conflicts, Global, Replaces, AtMostOnce (and legacy aliases X-ConditionMachineID, X-ConditionMachineOf, X-ConditionMachineMetadata, X-Conflicts); did you mean Conflicts?',
  );
  t.is(error?.line, 9);
});

test('keys are case-sensitive, as in systemd', (t) => {
  t.regex(
    errorOf('a.unit', 'global=true'),
    /^a\.unit:4: unknown \[X-Fleet\] key "global"; .*did you mean Global\?$/,
  );
});

test('a misspelt AtMostOnce gets a guess', (t) => {
  t.regex(
    errorOf('a.unit', 'AtMostOne=true'),
    /^a\.unit:4: unknown \[X-Fleet\] key "AtMostOne"; .*did you mean AtMostOnce\?$/,
  );
  t.regex(errorOf('a.unit', 'atmostonce=true'), /did you mean AtMostOnce\?$/);
});

test('an unknown key unlike any known one gets no guess', (t) => {
  t.notRegex(errorOf('a.unit', 'Affinity=x'), /did you mean/);
});

const badValues: { lines: string[]; message: string }[] = [
  {
    lines: ['AtMostOnce=sometimes'],
    message: 'a.unit:4: AtMostOnce=sometimes: not a boolean; use true/yes/1/on or false/no/0/off',
  },
  {
    lines: ['Global=maybe'],
    message: 'a.unit:4: Global=maybe: not a boolean; use true/yes/1/on or false/no/0/off',
  },
  {
    lines: ['MachineID=a b'],
    message: 'a.unit:4: MachineID=a b: MachineID= takes exactly one machine id',
  },
  {
    lines: ['MachineID=not/valid'],
    message:
      'a.unit:4: MachineID=not/valid: not a machine id (character "/" is not allowed); a machine id is 1–64 letters, digits, "_" or "-" (such as the 32 hex characters of /etc/machine-id), or a unique prefix of one, as `fleetts list-machines` shows',
  },
  {
    lines: ['MachineOf=db'],
    message:
      'a.unit:4: MachineOf=db: invalid unit name "db": it has no type suffix; use db.unit or db.service',
  },
  {
    lines: ['MachineMetadata=region'],
    message:
      'a.unit:4: MachineMetadata=region: "region" is not key=value; use e.g. MachineMetadata=region=us-east "disk=ssd"',
  },
  {
    lines: ['MachineMetadata==x'],
    message:
      'a.unit:4: MachineMetadata==x: "=x" is not key=value; use e.g. MachineMetadata=region=us-east "disk=ssd"',
  },
  {
    lines: ['MachineMetadata=region='],
    message:
      'a.unit:4: MachineMetadata=region=: "region=" is not key=value; use e.g. MachineMetadata=region=us-east "disk=ssd"',
  },
  {
    lines: ['Conflicts=web[.unit'],
    message:
      'a.unit:4: Conflicts=web[.unit: invalid glob pattern "web[.unit": a "[" class is not closed with "]"',
  },
];

for (const { lines, message } of badValues) {
  test(`bad value: ${lines.join(' | ')}`, (t) => {
    t.is(errorOf('a.unit', ...lines), message);
  });
}

test('an unterminated quote names the entry', (t) => {
  t.regex(errorOf('a.unit', 'Conflicts="b.unit'), /^a\.unit:4: Conflicts="b\.unit: /);
});

// Specifiers: %n full name, %N without suffix, %p prefix, %i instance ('' for templates).
const specifiers: { name: string; line: string; expected: Partial<Placement> }[] = [
  { name: 'side@1.unit', line: 'MachineOf=web@%i.unit', expected: { machineOf: ['web@1.unit'] } },
  { name: 'side@1.unit', line: 'Conflicts=%n', expected: { conflicts: ['side@1.unit'] } },
  { name: 'side@1.unit', line: 'Conflicts=%N-*', expected: { conflicts: ['side@1-*'] } },
  { name: 'side@1.unit', line: 'Replaces=old-%p@*.unit', expected: { replaces: ['old-side@*.unit'] } },
  { name: 'side@1.unit', line: 'MachineMetadata=shard=%i', expected: { machineMetadata: { shard: ['1'] } } },
  { name: 'side@1.unit', line: 'MachineID=m%i', expected: { machineId: 'm1' } },
  { name: 'side@.unit', line: 'MachineOf=web@%i.unit', expected: { machineOf: ['web@.unit'] } },
  { name: 'side@.unit', line: 'Conflicts=%N*', expected: { conflicts: ['side@*'] } },
  { name: 'lb.unit', line: 'Conflicts=%p-*', expected: { conflicts: ['lb-*'] } },
  { name: 'lb.service', line: 'Conflicts=%N.unit', expected: { conflicts: ['lb.unit'] } },
  { name: 'lb.unit', line: 'Conflicts=100%%', expected: { conflicts: ['100%'] } },
];

for (const { name, line, expected } of specifiers) {
  test(`specifier for ${name}: ${line}`, (t) => {
    t.deepEqual(placementOf(name, line), { ...NO_PLACEMENT, ...expected });
  });
}

test('a host specifier is rejected at submit, naming the entry', (t) => {
  t.is(
    errorOf('a.unit', 'MachineOf=%H.unit'),
    'a.unit:4: MachineOf=%H.unit: %H (the host name) is only known on the host at run time; it cannot be used in MachineOf=',
  );
});

test('specForInstance expands the template for the instance', (t) => {
  const text = unitWith('MachineOf=web@%i.unit', 'Conflicts=%p@*.unit');
  t.deepEqual(specForInstance(text, 'side@7.unit').placement, {
    ...NO_PLACEMENT,
    machineOf: ['web@7.unit'],
    conflicts: ['side@*.unit'],
  });
  t.deepEqual(parseUnitSpec(text, 'side@.unit').placement.machineOf, ['web@.unit']);
});

test(`more than ${MAX_PLACEMENT_VALUES} values for one key is an error`, (t) => {
  const many = Array.from({ length: MAX_PLACEMENT_VALUES + 1 }, (_, i) => `c${i}.unit`).join(' ');
  t.regex(
    errorOf('a.unit', `Conflicts=${many}`),
    /^a\.unit:4: Conflicts=.*: more than 256 values for Conflicts= \(MAX_PLACEMENT_VALUES\)/,
  );
  t.notThrows(() => placementOf('a.unit', `Conflicts=${many.split(' ').slice(1).join(' ')}`));
});

test('[X-Fleet] sections are merged', (t) => {
  const text = [
    '[Service]',
    'ExecStart=/bin/true',
    '[X-Fleet]',
    'Conflicts=a*',
    '[X-Fleet]',
    'Conflicts=b*',
  ].join('\n');
  t.deepEqual(parseUnitSpec(text, 'x.unit').placement.conflicts, ['a*', 'b*']);
});
