// [X-Health] → HealthSpec through parseUnitSpec: defaults, every key, specifiers, and the errors.

import test from 'ava';
import { UnitFileError } from '../../src/lib/errors.js';
import { HEALTH_DEFAULTS, type HealthSpec } from '../../src/unit/health.js';
import { parseUnitSpec } from '../../src/unit/unit-spec.js';

/** A [Service] unit whose [X-Health] holds `lines`; the first X-Health line is line 4. */
const unitWith = (...lines: string[]): string =>
  ['[Service]', 'ExecStart=/bin/true', '[X-Health]', ...lines].join('\n') + '\n';

const healthOf = (name: string, ...lines: string[]): HealthSpec | undefined =>
  parseUnitSpec(unitWith(...lines), name).health;

const errorOf = (text: string, name = 'web@1.service'): string => {
  try {
    parseUnitSpec(text, name);
  } catch (error) {
    if (error instanceof UnitFileError) return error.message;
    throw error;
  }
  throw new Error('expected a UnitFileError');
};

test('no [X-Health]: no check', (t) => {
  t.is(parseUnitSpec('[Service]\nExecStart=/bin/true\n', 'a.service').health, undefined);
});

test('Check= alone takes the defaults', (t) => {
  t.deepEqual(healthOf('a.service', 'Check=tcp://127.0.0.1:80'), {
    check: 'tcp://127.0.0.1:80',
    ...HEALTH_DEFAULTS,
  });
});

test('every key, with time spans and the instance specifier', (t) => {
  t.deepEqual(
    healthOf(
      'web@2.service',
      'Check=http://127.0.0.1:808%i/health',
      'IntervalSec=2',
      'TimeoutSec=500ms',
      'Retries=5',
      'StartPeriodSec=1min',
    ),
    {
      check: 'http://127.0.0.1:8082/health',
      intervalMs: 2_000,
      timeoutMs: 500,
      retries: 5,
      startPeriodMs: 60_000,
    },
  );
});

test('an empty Check= resets an earlier one; then the section has no check', (t) => {
  t.regex(
    errorOf(unitWith('Check=tcp://127.0.0.1:80', 'Check=')),
    /web@1\.service:3: \[X-Health\] has no Check=; give one, as in Check=http:\/\/127\.0\.0\.1:8080\/health/,
  );
});

const bad: { title: string; line: string; message: RegExp }[] = [
  { title: 'a word that is no URL', line: 'Check=localhost', message: /:4: Check=localhost: is not a URL/ },
  { title: 'a TCP check without a port', line: 'Check=tcp://127.0.0.1', message: /needs a host and a port/ },
  {
    title: 'another scheme',
    line: 'Check=ftp://127.0.0.1:21',
    message: /only http:\/\/, https:\/\/ and tcp:\/\/ checks exist/,
  },
  { title: 'two words', line: 'Check=tcp://a:1 tcp://b:2', message: /Check= takes one URL/ },
  { title: 'Retries=0', line: 'Retries=0', message: /Retries=0: out of range; use 1…1000/ },
  { title: 'Retries=many', line: 'Retries=many', message: /not a whole number/ },
  { title: 'IntervalSec=10ms', line: 'IntervalSec=10ms', message: /too short; use at least 100 ms/ },
  { title: 'IntervalSec=infinity', line: 'IntervalSec=infinity', message: /finite time span/ },
  {
    title: 'a misspelt key',
    line: 'Retrys=3',
    message: /unknown \[X-Health\] key "Retrys".*did you mean Retries\?/,
  },
];
for (const b of bad) {
  test(`rejected with file, line and key: ${b.title}`, (t) => {
    const text = unitWith('Check=tcp://127.0.0.1:80', b.line).replace(
      'Check=tcp://127.0.0.1:80\n',
      b.line.startsWith('Check=') ? '' : 'Check=tcp://127.0.0.1:80\n',
    );
    t.regex(errorOf(text), b.message);
  });
}

test('a container unit cannot have [X-Health] (its image has HEALTHCHECK)', (t) => {
  t.regex(
    errorOf('[Container]\nImage=debian\n[X-Health]\nCheck=tcp://127.0.0.1:80\n', 'c.unit'),
    /c\.unit:3: \[X-Health\] applies to \[Service\] units/,
  );
});
