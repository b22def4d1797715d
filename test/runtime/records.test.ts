// The records fleetd leaves behind (records.ts), against files of fleetts 0.1.0 copied from a real
// run (fixtures/release-0.1.0: a process unit running as nobody with a fence, a failed oneshot, and
// the labels of a container made by that release): they decode, the writers write the same bytes,
// a newer version is refused by name, and garbage becomes a problem naming the file and the reason.

import test from 'ava';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fenceOverdueMs, hostMonotonicMs, writeFenceDeadline } from '../../src/runtime/fence.js';
import {
  encodeContainerConfigLabel,
  encodeFence,
  encodeSupervisorConfig,
  encodeSupervisorStatus,
  parseContainerConfigLabel,
  parseFence,
  parseSupervisorConfig,
  parseSupervisorStatus,
  type Decoded,
  type RecordProblem,
} from '../../src/runtime/records.js';
import type { SupervisorStatus } from '../../src/runtime/supervisor-protocol.js';

const FIXTURES = new URL('./fixtures/release-0.1.0/', import.meta.url).pathname;
const fixture = (path: string): string => readFileSync(join(FIXTURES, path), 'utf8');
const labels = JSON.parse(fixture('docker-labels.json')) as Record<string, string>;
const oldLabel = labels['fleetts.config'] ?? '';

function ok<T>(d: Decoded<T>): T {
  if (!d.ok) throw new Error(d.problem.message);
  return d.value;
}

function problem<T>(d: Decoded<T>): RecordProblem {
  if (d.ok) throw new Error(`decoded: ${JSON.stringify(d.value)}`);
  return d.problem;
}

interface Kind {
  readonly name: string;
  readonly text: string;
  readonly decode: (text: string, where: string) => Decoded<unknown>;
  /** Re-encodes what it decoded; undefined when the record cannot be written (not the current form). */
  readonly encode: (text: string) => string;
}

const kinds: Kind[] = [
  {
    name: 'config.json of a unit with every option',
    text: fixture('units/web@1.service/config.json'),
    decode: parseSupervisorConfig,
    encode: (text) => encodeSupervisorConfig(ok(parseSupervisorConfig(text, 'x'))),
  },
  {
    name: 'config.json of a oneshot',
    text: fixture('units/job.service/config.json'),
    decode: parseSupervisorConfig,
    encode: (text) => encodeSupervisorConfig(ok(parseSupervisorConfig(text, 'x'))),
  },
  {
    name: 'status.json of a running unit',
    text: fixture('units/web@1.service/status.json'),
    decode: parseSupervisorStatus,
    encode: (text) => encodeSupervisorStatus(ok(parseSupervisorStatus(text, 'x'))),
  },
  {
    name: 'status.json of a failed unit',
    text: fixture('units/job.service/status.json'),
    decode: parseSupervisorStatus,
    encode: (text) => encodeSupervisorStatus(ok(parseSupervisorStatus(text, 'x'))),
  },
  {
    name: 'fence.json',
    text: fixture('fence.json'),
    decode: parseFence,
    encode: (text) => encodeFence(ok(parseFence(text, 'x'))),
  },
];

for (const k of kinds) {
  test(`0.1.0's ${k.name} decodes, and this release writes it byte for byte`, (t) => {
    t.true(k.decode(k.text, 'fixture').ok);
    t.is(k.encode(k.text) + '\n', k.text);
  });

  test(`${k.name} of a future version (v: 99) is refused, saying so`, (t) => {
    const future = { ...(JSON.parse(k.text) as object), v: 99 };
    const p = problem(k.decode(JSON.stringify(future), '/state/units/u/file.json'));
    t.true(p.newer);
    t.is(p.where, '/state/units/u/file.json');
    t.regex(
      p.message,
      /^\/state\/units\/u\/file\.json: unreadable .*: it is format version 99, written by a newer fleetts; this fleetts reads versions up to 1/,
    );
  });

  test(`${k.name} truncated, empty, or not an object is a problem naming the file`, (t) => {
    const truncated = problem(k.decode(k.text.slice(0, Math.floor(k.text.length / 2)), '/f.json'));
    t.regex(truncated.message, /^\/f\.json: unreadable .*: not JSON, cut short or corrupt \(/);
    t.false(truncated.newer);
    t.regex(problem(k.decode('', '/f.json')).reason, /it is empty/);
    t.regex(problem(k.decode('\0\0\0\0', '/f.json')).reason, /not JSON/);
    t.regex(problem(k.decode('[1,2]', '/f.json')).reason, /not a JSON object/);
    const { v: _v, ...noVersion } = JSON.parse(k.text) as { v: number };
    t.regex(problem(k.decode(JSON.stringify(noVersion), '/f.json')).reason, /no format version/);
  });
}

test('a field of the wrong type is named by its path', (t) => {
  const config = JSON.parse(fixture('units/web@1.service/config.json')) as {
    unitConfig: { execStart: { argv: unknown }[] };
  };
  const step = config.unitConfig.execStart[0];
  if (step === undefined) throw new Error('fixture has no ExecStart');
  step.argv = '/bin/sh -c true';
  const p = problem(parseSupervisorConfig(JSON.stringify(config), '/c.json'));
  t.regex(p.reason, /^unitConfig\.execStart\.0\.argv: /);

  const status = { ...(JSON.parse(fixture('units/job.service/status.json')) as object), active: 'running' };
  t.regex(problem(parseSupervisorStatus(JSON.stringify(status), '/s.json')).reason, /^active: /);
});

test('fields added to a version by a later release are ignored by this one', (t) => {
  const status = { ...(JSON.parse(fixture('units/job.service/status.json')) as object), cpuMs: 12 };
  t.is(
    ok(parseSupervisorStatus(JSON.stringify(status), '/s.json')).reason,
    'ExecStart=/bin/sh exited with status 7',
  );
});

test('a writer refuses a value with a field the schema does not know (it would be lost)', (t) => {
  const status = ok(parseSupervisorStatus(fixture('units/job.service/status.json'), 'x'));
  const grown = { ...status, cpuMs: 12 } as SupervisorStatus;
  t.throws(() => encodeSupervisorStatus(grown), { message: /schema does not keep every field/ });
  t.throws(() => encodeSupervisorStatus({ ...status, restarts: -1 }), {
    message: /invalid supervisor status/,
  });
});

test('the fleetts.config label of a 0.1.0 container (no version) reads as version 1; this release writes v: 1', (t) => {
  const where = 'container 0123456789ab (web@1.unit), label fleetts.config';
  const config = ok(parseContainerConfigLabel(oldLabel, where));
  t.like(config, { kind: 'container', unit: 'web@1.unit', image: 'fleetts/apache:latest', atMostOnce: true });
  t.false('v' in config);
  const written = encodeContainerConfigLabel(config);
  t.deepEqual(JSON.parse(written), { v: 1, ...(JSON.parse(oldLabel) as object) });
  t.deepEqual(ok(parseContainerConfigLabel(written, where)), config);

  const future = problem(parseContainerConfigLabel(JSON.stringify({ ...config, v: 99 }), where));
  t.true(future.newer);
  t.regex(
    future.message,
    /^container 0123456789ab \(web@1\.unit\), label fleetts\.config: .*format version 99/,
  );
  t.regex(problem(parseContainerConfigLabel(oldLabel.slice(0, 100), where)).reason, /not JSON/);
});

test('an unreadable fence counts as no deadline and is reported; a readable one is obeyed', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fleetts-fence-'));
  const path = join(dir, 'fence.json');
  const problems: RecordProblem[] = [];
  const report = (p: RecordProblem): void => void problems.push(p);
  t.is(fenceOverdueMs(path, report), undefined, 'missing: no deadline');
  t.is(problems.length, 0, 'a missing fence is normal, not a problem');

  writeFileSync(path, '{"v":1,"unt');
  t.is(fenceOverdueMs(path, report), undefined);
  t.is(problems[0]?.where, path);
  t.regex(problems[0]?.reason ?? '', /not JSON/);

  writeFileSync(path, JSON.stringify({ v: 99, until: 0 }));
  t.is(fenceOverdueMs(path, report), undefined);
  t.true(problems[1]?.newer);

  writeFenceDeadline(path, 0);
  t.is(ok(parseFence(readFileSync(path, 'utf8'), path)).v, 1);
  writeFileSync(path, JSON.stringify({ v: 1, until: hostMonotonicMs() - 1000 }));
  t.true((fenceOverdueMs(path, report) ?? 0) >= 1000);
  writeFenceDeadline(path, undefined);
  t.is(fenceOverdueMs(path, report), undefined);
  t.is(problems.length, 2);
});

test('fence.json is checked field by field without a schema library (the supervisors read it)', (t) => {
  t.regex(
    problem(parseFence('{"v":1,"until":"soon"}', '/f')).reason,
    /^until: expected a number ≥ 0 or null, got "soon"/,
  );
  t.regex(problem(parseFence('{"v":1,"until":-5}', '/f')).reason, /^until: /);
  t.deepEqual(
    ok(parseFence('{"v":1,"until":5,"extra":true}', '/f')),
    { v: 1, until: 5 },
    'unknown fields dropped',
  );
  t.deepEqual(ok(parseFence('{"v":1,"until":null}', '/f')), { v: 1, until: null });
  t.throws(() => encodeFence({ v: 1, until: Number.NaN }), { message: /refusing to write an invalid fence/ });
});
