// The supervisor's journal file: rotation keeps at most maxBytes × files, newest lines last.

import test from 'ava';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JournalWriter, LineSplitter } from '../../src/runtime/journal-writer.js';

const at = new Date(Date.UTC(2026, 0, 1));

for (const files of [1, 2, 3]) {
  test(`rotation with ${files} file(s) stays within maxBytes × files and keeps the newest lines`, (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'fleetts-jw-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const w = new JournalWriter(join(dir, 'journal.log'), { maxBytes: 1000, files });
    for (let i = 1; i <= 500; i++) w.write('u[1]', `line ${i}`, at);
    w.close();
    const names = readdirSync(dir).sort();
    t.deepEqual(names, [
      'journal.log',
      ...Array.from({ length: files - 1 }, (_, i) => `journal.log.${i + 1}`),
    ]);
    for (const n of names) t.true(statSync(join(dir, n)).size <= 1000, n);
    const current = readFileSync(join(dir, 'journal.log'), 'utf8').trim().split('\n');
    t.is(current.at(-1), '2026-01-01T00:00:00.000Z u[1]: line 500');
  });
}

test('LineSplitter joins chunks into lines, strips CR, and flushes the tail on end', (t) => {
  const lines: string[] = [];
  const s = new LineSplitter((l) => lines.push(l));
  s.push('a\r\nb');
  s.push('c\n\nd');
  s.end();
  t.deepEqual(lines, ['a', 'bc', '', 'd']);
});
