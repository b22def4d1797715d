import test from 'ava';
import { decodeOrThrow, decodeValue, encodeValue } from '../../src/registry/codec.js';
import { isRegistryError } from '../../src/registry/registry-error.js';

const hash = 'ab'.repeat(32);

test('values round-trip and carry their version', (t) => {
  const raw = encodeValue('unit', { v: 1, hash, target: 'launched' });
  t.is(raw, `{"v":1,"hash":"${hash}","target":"launched"}`);
  t.deepEqual(decodeValue('unit', 'k', raw), { ok: true, value: { v: 1, hash, target: 'launched' } });
});

test('bad values become problems naming the key and the reason', (t) => {
  const cases: [string, string, RegExp][] = [
    ['not json', '{nope', /not JSON/],
    ['newer version', `{"v":2,"hash":"${hash}","target":"launched"}`, /unsupported unit value version 2/],
    ['bad target', `{"v":1,"hash":"${hash}","target":"running"}`, /bad unit value: .*target/],
    ['missing hash', '{"v":1,"target":"loaded"}', /bad unit value: .*hash/],
  ];
  for (const [what, raw, message] of cases) {
    const decoded = decodeValue('unit', '/fleetts/v1/units/x.service', raw);
    t.false(decoded.ok, what);
    if (!decoded.ok) {
      t.is(decoded.problem.key, '/fleetts/v1/units/x.service', what);
      t.regex(decoded.problem.message, message, what);
    }
  }
  const error = t.throws(() => decodeOrThrow('unit', '/k', '{}'));
  t.true(isRegistryError(error, 'corrupt'));
  t.regex(error.message, /corrupt value at etcd key \/k: /);
});

test('encoding refuses a value its schema rejects', (t) => {
  const error = t.throws(() => encodeValue('assignment', { v: 1, hash: 'XYZ', target: 'loaded' }));
  t.true(isRegistryError(error, 'invalid'));
  t.regex(error.message, /refusing to store an invalid assignment value/);
});
