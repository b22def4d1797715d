import test from 'ava';
import { parseUnitName } from '../../src/unit/names.js';
import {
  expandSpecifiers,
  specifierContextForUnit,
  SpecifierError,
  type SpecifierContext,
} from '../../src/unit/specifiers.js';

const host: SpecifierContext = {
  ...specifierContextForUnit(parseUnitName('web@3.unit')),
  H: 'host-a',
  m: 'c0ffee',
  b: 'b007',
};

const expansions: readonly (readonly [input: string, output: string])[] = [
  ['%n', 'web@3.unit'],
  ['%N', 'web@3'],
  ['%p', 'web'],
  ['%i', '3'],
  ['%H', 'host-a'],
  ['%m', 'c0ffee'],
  ['%b', 'b007'],
  ['%%', '%'],
  ['100%%i', '100%i'],
  ['web@%i.unit', 'web@3.unit'],
  ['/var/lib/%p/%i on %H', '/var/lib/web/3 on host-a'],
  ['no specifiers', 'no specifiers'],
  ['', ''],
  ['100%', '100%'], // a lone % at the end stays, as in systemd
  ['%p%i%%%n', 'web3%web@3.unit'],
];

for (const [input, output] of expansions) {
  test(`expandSpecifiers(${JSON.stringify(input)})`, (t) => {
    t.is(expandSpecifiers(input, host), output);
  });
}

const contexts: readonly (readonly [name: string, ctx: SpecifierContext])[] = [
  ['web@3.unit', { n: 'web@3.unit', N: 'web@3', p: 'web', i: '3' }],
  ['web@.service', { n: 'web@.service', N: 'web@', p: 'web', i: '' }],
  ['lb.service', { n: 'lb.service', N: 'lb', p: 'lb', i: '' }],
  ['my.app.unit', { n: 'my.app.unit', N: 'my.app', p: 'my.app', i: '' }],
];

for (const [name, ctx] of contexts) {
  test(`specifierContextForUnit(${name})`, (t) => {
    t.deepEqual(specifierContextForUnit(parseUnitName(name)), ctx);
  });
}

const submitTime = specifierContextForUnit(parseUnitName('web@3.unit'));
const errors: readonly (readonly [
  input: string,
  ctx: SpecifierContext,
  where: string | undefined,
  message: string,
])[] = [
  [
    'MachineOf=%H',
    submitTime,
    undefined,
    '%H (the host name) is only known on the host at run time; it cannot be used in [X-Fleet]',
  ],
  [
    '%m',
    submitTime,
    'Conflicts=',
    '%m (the machine id) is only known on the host at run time; it cannot be used in Conflicts=',
  ],
  [
    '%b',
    submitTime,
    undefined,
    '%b (the boot id) is only known on the host at run time; it cannot be used in [X-Fleet]',
  ],
  ['%i', {}, 'ExecStart=', '%i (the instance name) is not known in ExecStart='],
  [
    '%u',
    submitTime,
    undefined,
    'unknown specifier "%u" in [X-Fleet]; known specifiers are %n %N %p %i %H %m %b, and %% for a literal %',
  ],
  [
    'a %I b',
    host,
    'ExecStart=',
    'unknown specifier "%I" in ExecStart=; known specifiers are %n %N %p %i %H %m %b, and %% for a literal %',
  ],
];

for (const [input, ctx, where, message] of errors) {
  test(`expandSpecifiers(${JSON.stringify(input)}) fails`, (t) => {
    const error = t.throws(() => expandSpecifiers(input, ctx, where === undefined ? {} : { where }), {
      instanceOf: SpecifierError,
      message,
    });
    t.is(error?.code, 'unit_invalid');
  });
}

test('SpecifierError names the specifier', (t) => {
  const error = t.throws(() => expandSpecifiers('x%Hy', submitTime), { instanceOf: SpecifierError });
  t.is(error?.specifier, '%H');
});
