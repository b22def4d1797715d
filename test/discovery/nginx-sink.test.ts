// NginxSink with real files and real shell commands standing in for nginx: atomic swap, rollback
// on a failed check, staged checks ({{src}}), reload retries without rewriting.
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { NginxSink } from '../../src/discovery/nginx-sink.js';
import { systemClock } from '../../src/lib/clock.js';
import { silentLogger } from '../../src/lib/logger.js';

async function dir(t: { teardown(fn: () => Promise<void>): void }): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'fleetts-sink-'));
  t.teardown(() => rm(d, { recursive: true, force: true }));
  return d;
}

const sink = (out: string, checkCmd: string, reloadCmd: string): NginxSink =>
  new NginxSink({ out, checkCmd, reloadCmd, clock: systemClock, log: silentLogger });

test('check after the swap: a failing check puts the previous file back and skips the reload', async (t) => {
  const d = await dir(t);
  const out = join(d, 'up.conf');
  await writeFile(out, 'old\n');
  // The "nginx -t" here rejects any file containing "bad"; the reload appends to a log.
  const s = sink(out, `! grep -q bad ${out}`, `echo reload >> ${d}/reloads`);
  const r = await s.apply('bad\n');
  t.is(r.kind, 'invalid');
  t.is(await readFile(out, 'utf8'), 'old\n');
  t.deepEqual(await readdir(d), ['up.conf'], 'no staged file left, no reload');
  t.deepEqual(await s.apply('good\n'), { kind: 'reloaded', changed: true });
  t.is(await readFile(out, 'utf8'), 'good\n');
  t.deepEqual(await s.apply('good\n'), { kind: 'unchanged' });
  t.is(await readFile(join(d, 'reloads'), 'utf8'), 'reload\n');
});

test('with {{src}} the staged file is checked before the swap; a new file that fails is never created', async (t) => {
  const d = await dir(t);
  const out = join(d, 'up.conf');
  const s = sink(out, '! grep -q bad {{src}}', '');
  t.like(await s.apply('bad\n'), { kind: 'invalid' });
  t.deepEqual(await readdir(d), []);
  t.deepEqual(await s.apply('fine\n'), { kind: 'reloaded', changed: true });
  t.is(await readFile(out, 'utf8'), 'fine\n');
});

test('a failed reload is retried by the next apply without rewriting; at start an equal file is reloaded once', async (t) => {
  const d = await dir(t);
  const out = join(d, 'up.conf');
  await writeFile(out, 'same\n');
  const flag = join(d, 'nginx-up');
  const s = sink(
    out,
    'true',
    `test -e ${flag} && echo r >> ${d}/reloads || { echo nginx is not running >&2; exit 1; }`,
  );
  t.deepEqual(await s.apply('same\n'), { kind: 'reload_failed', output: 'nginx is not running' });
  await writeFile(flag, '');
  t.deepEqual(await s.apply('same\n'), { kind: 'reloaded', changed: false });
  t.deepEqual(await s.apply('same\n'), { kind: 'unchanged' });
  t.is(await readFile(join(d, 'reloads'), 'utf8'), 'r\n');
});

test('an unwritable directory is an io error naming the file', async (t) => {
  const s = sink('/nonexistent-dir/up.conf', 'true', 'true');
  const err = await t.throwsAsync(s.apply('x'));
  t.regex(err?.message ?? '', /^cannot write \/nonexistent-dir\/up\.conf/);
  t.is((err as { code?: string } | undefined)?.code, 'io');
});
