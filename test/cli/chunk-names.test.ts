// Listing many units by name splits the names over several requests, each URL within its limit.
import test from 'ava';
import { chunkNames } from '../../src/cli/client.js';

test('names are split so that each encoded filter stays within 6,000 characters, in order', (t) => {
  const names = Array.from({ length: 1_500 }, (_, i) => `web@${i + 1}.unit`);
  const chunks = chunkNames(names);
  t.true(chunks.length > 1);
  t.deepEqual(chunks.flat(), names, 'every name once, in order');
  for (const chunk of chunks) t.true(chunk.map(encodeURIComponent).join(',').length <= 6_000);
});

test('a few names are one request; a name longer than the limit still goes, alone', (t) => {
  t.deepEqual(chunkNames(['a.unit', 'b.unit']), [['a.unit', 'b.unit']]);
  const long = `${'x'.repeat(250)}@${'%'.repeat(4)}.unit`;
  const many = Array.from({ length: 40 }, () => long);
  for (const chunk of chunkNames(many)) t.true(chunk.length >= 1);
  t.deepEqual(chunkNames([]), []);
});
