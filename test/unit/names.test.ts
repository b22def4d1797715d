import test from 'ava';
import { UnitFileError } from '../../src/lib/errors.js';
import {
  globMatch,
  instantiate,
  isValidUnitName,
  mangleUnitName,
  parseUnitName,
  templateOf,
  type ParsedUnitName,
} from '../../src/unit/names.js';

const LIMIT =
  "the limit is 255 (the longest file name a host takes: the unit's directory on its host is named after it)";

const valid: readonly (readonly [string, Omit<ParsedUnitName, 'name'>])[] = [
  ['lb.unit', { prefix: 'lb', instance: undefined, type: 'unit', kind: 'plain' }],
  ['lb.service', { prefix: 'lb', instance: undefined, type: 'service', kind: 'plain' }],
  ['web@.unit', { prefix: 'web', instance: undefined, type: 'unit', kind: 'template' }],
  ['web@1.unit', { prefix: 'web', instance: '1', type: 'unit', kind: 'instance' }],
  ['web@.service', { prefix: 'web', instance: undefined, type: 'service', kind: 'template' }],
  ['web@10.0.0.1.service', { prefix: 'web', instance: '10.0.0.1', type: 'service', kind: 'instance' }],
  ['my.app-v2_x:y.unit', { prefix: 'my.app-v2_x:y', instance: undefined, type: 'unit', kind: 'plain' }],
  ['a\\x2db.unit', { prefix: 'a\\x2db', instance: undefined, type: 'unit', kind: 'plain' }],
  ['web@a\\x2fb.unit', { prefix: 'web', instance: 'a\\x2fb', type: 'unit', kind: 'instance' }],
  // The longest: 255 bytes, the file-name limit (NAME_MAX) of the unit's directory on a host.
  ['x'.repeat(250) + '.unit', { prefix: 'x'.repeat(250), instance: undefined, type: 'unit', kind: 'plain' }],
];

for (const [name, expected] of valid) {
  test(`parseUnitName accepts ${name.length > 40 ? `a ${name.length}-character name` : name}`, (t) => {
    t.deepEqual(parseUnitName(name), { name, ...expected });
    t.true(isValidUnitName(name));
  });
}

const invalid: readonly (readonly [string, string])[] = [
  ['', 'it is empty; use a name such as web.unit or web@1.unit'],
  ['x y.unit', 'character " " is not allowed; use letters, digits and : _ . - \\ @'],
  ['web/1.unit', 'character "/" is not allowed; use letters, digits and : _ . - \\ @'],
  ['wéb.unit', 'character "é" is not allowed; use letters, digits and : _ . - \\ @'],
  ['a\tb.unit', 'character "\\x09" is not allowed; use letters, digits and : _ . - \\ @'],
  ['@1.unit', 'it must not start with "@"; put the name before it, as in web@1.unit'],
  ['@.unit', 'it must not start with "@"; put the name before it, as in web@1.unit'],
  ['.unit', 'it must not start with "."'],
  ['.hidden.unit', 'it must not start with "."'],
  ['web', 'it has no type suffix; use web.unit or web.service'],
  ['web@1', 'it has no type suffix; use web@1.unit or web@1.service'],
  ['web.', 'it ends with "."; use a type suffix, .unit or .service'],
  ['db.timer', 'type ".timer" is not supported; use .unit or .service'],
  ['db.Unit', 'type ".Unit" is not supported; use .unit or .service'],
  ['web.un@it', 'type ".un@it" is not supported; use .unit or .service'],
  ['a@b@c.unit', 'it contains more than one "@"'],
  ['a@@.unit', 'it contains more than one "@"'],
  ['x'.repeat(251) + '.unit', `it is 256 characters long; ${LIMIT}`],
];

for (const [name, reason] of invalid) {
  test(`parseUnitName rejects ${JSON.stringify(name.length > 40 ? `${name.length} characters` : name)}`, (t) => {
    const shown = name.replace('\t', '\\x09');
    t.throws(() => parseUnitName(name), {
      instanceOf: UnitFileError,
      message: `invalid unit name "${shown}": ${reason}`,
    });
    t.false(isValidUnitName(name));
  });
}

test('unit name errors carry the unit_invalid code and no file or line', (t) => {
  const error = t.throws(() => parseUnitName('web'), { instanceOf: UnitFileError });
  t.is(error?.code, 'unit_invalid');
  t.is(error?.file, undefined);
  t.is(error?.line, undefined);
});

const templates: readonly (readonly [string, string | undefined])[] = [
  ['web@1.unit', 'web@.unit'],
  ['web@a.b.service', 'web@.service'],
  ['web@.unit', undefined],
  ['lb.unit', undefined],
];

for (const [name, expected] of templates) {
  test(`templateOf(${name}) is ${String(expected)}`, (t) => {
    t.is<string | undefined, string | undefined>(templateOf(parseUnitName(name)), expected);
  });
}

test('instantiate makes a validated instance of a template', (t) => {
  t.deepEqual(instantiate(parseUnitName('web@.unit'), '2'), {
    name: 'web@2.unit',
    prefix: 'web',
    instance: '2',
    type: 'unit',
    kind: 'instance',
  });
  t.is<string, string>(instantiate(parseUnitName('web@.service'), '10.0.0.1').name, 'web@10.0.0.1.service');
});

const badInstances: readonly (readonly [template: string, instance: string, message: string])[] = [
  [
    'lb.unit',
    '1',
    'cannot instantiate "lb.unit": it is not a template; a template has an empty instance, as in lb@.unit',
  ],
  [
    'web@1.unit',
    '2',
    'cannot instantiate "web@1.unit": it is not a template; a template has an empty instance, as in web@.unit',
  ],
  ['web@.unit', '', 'cannot instantiate "web@.unit" with an empty instance'],
  ['web@.unit', 'a@b', 'cannot instantiate "web@.unit" with instance "a@b": it must not contain "@"'],
  [
    'web@.unit',
    'a b',
    'invalid unit name "web@a b.unit": character " " is not allowed; use letters, digits and : _ . - \\ @',
  ],
  [
    'web@.unit',
    'x'.repeat(300),
    `invalid unit name "web@${'x'.repeat(300)}.unit": it is 309 characters long; ${LIMIT}`,
  ],
];

for (const [template, instance, message] of badInstances) {
  test(`instantiate(${template}, ${JSON.stringify(instance.slice(0, 10))}) fails`, (t) => {
    t.throws(() => instantiate(parseUnitName(template), instance), { instanceOf: UnitFileError, message });
  });
}

const mangled: readonly (readonly [string, string])[] = [
  ['web@1', 'web@1.unit'],
  ['lb', 'lb.unit'],
  ['lb.unit', 'lb.unit'],
  ['lb.service', 'lb.service'],
  ['./units/web@.unit', 'web@.unit'],
  ['/etc/fleet/units/lb.service', 'lb.service'],
  ['units/web@1', 'web@1.unit'],
  ['web.v2', 'web.v2.unit'], // an unknown suffix is part of the name
];

for (const [arg, expected] of mangled) {
  test(`mangleUnitName(${arg}) is ${expected}`, (t) => {
    t.is<string, string>(mangleUnitName(arg), expected);
  });
}

const badArgs: readonly (readonly [string, string])[] = [
  ['db.timer', 'invalid unit name "db.timer": type ".timer" is not supported; use .unit or .service'],
  ['units/', 'invalid unit name "units/": it names a directory, not a unit file'],
  ['', 'invalid unit name "": it is empty; use a name such as web.unit or web@1.unit'],
  ['@1', 'invalid unit name "@1.unit": it must not start with "@"; put the name before it, as in web@1.unit'],
  [
    'my unit',
    'invalid unit name "my unit.unit": character " " is not allowed; use letters, digits and : _ . - \\ @',
  ],
];

for (const [arg, message] of badArgs) {
  test(`mangleUnitName(${JSON.stringify(arg)}) fails`, (t) => {
    t.throws(() => mangleUnitName(arg), { instanceOf: UnitFileError, message });
  });
}

test('names re-exports the glob matcher for Conflicts= and Replaces=', (t) => {
  t.true(globMatch('web@*.unit', 'web@3.unit'));
  t.false(globMatch('web@*.unit', 'api@3.unit'));
});
