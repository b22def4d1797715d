// [Service] → ServiceSpec through parseUnitSpec: every key, systemd's defaults, and bad values.

import test from 'ava';
import { UnitFileError } from '../../src/lib/errors.js';
import type { ServiceSpec } from '../../src/unit/service.js';
import { DEFAULT_SUPERVISION } from '../../src/unit/supervision.js';
import { parseUnitSpec } from '../../src/unit/unit-spec.js';

/** A unit whose [Service] holds `lines`; its first line is line 2. */
const serviceText = (...lines: string[]): string => ['[Service]', ...lines].join('\n') + '\n';

const serviceOf = (...lines: string[]): ServiceSpec => {
  const spec = parseUnitSpec(serviceText(...lines), 'svc.unit');
  if (spec.run.kind !== 'service') throw new Error('expected a service');
  return spec.run.service;
};

const errorOf = (text: string): string => {
  try {
    parseUnitSpec(text, 'svc.unit');
  } catch (error) {
    if (error instanceof UnitFileError) return error.message;
    throw error;
  }
  throw new Error('expected a UnitFileError');
};

test("defaults are systemd's", (t) => {
  const s = serviceOf('ExecStart=/usr/bin/sleep 1');
  t.like(s, {
    type: 'simple',
    restart: 'no',
    restartMs: 100,
    startLimitBurst: 5,
    startLimitIntervalMs: 10_000,
    timeoutStartMs: 90_000,
    timeoutStopMs: 90_000,
    killSignal: 'SIGTERM',
    killMode: 'control-group',
    remainAfterExit: false,
  });
  t.deepEqual(DEFAULT_SUPERVISION, {
    restart: 'no',
    restartMs: 100,
    startLimitBurst: 5,
    startLimitIntervalMs: 10_000,
    timeoutStartMs: 90_000,
    timeoutStopMs: 90_000,
  });
  t.deepEqual(s.environment, {});
  t.deepEqual(s.environmentFiles, []);
  t.deepEqual(s.successExitStatus, { codes: [], signals: [] });
  t.false('workingDirectory' in s);
  t.false('user' in s);
  t.false('group' in s);
  t.deepEqual(s.execStartPre, []);
  t.deepEqual(s.execStop, []);
});

test('ExecStart is parsed into a command', (t) => {
  const [start] = serviceOf('ExecStart=-/usr/bin/env echo "a b" ${X}').execStart;
  t.like(start, { path: '/usr/bin/env', ignoreFailure: true });
  t.deepEqual(start?.argv, ['/usr/bin/env', 'echo', 'a b', '${X}']);
});

const execKeys = ['ExecStartPre', 'ExecStartPost', 'ExecStop', 'ExecStopPost', 'ExecReload'] as const;
const fieldOf = {
  ExecStartPre: 'execStartPre',
  ExecStartPost: 'execStartPost',
  ExecStop: 'execStop',
  ExecStopPost: 'execStopPost',
  ExecReload: 'execReload',
} as const;

for (const key of execKeys) {
  test(`${key}= accumulates and an empty value resets it`, (t) => {
    const paths = (s: ServiceSpec): string[] => s[fieldOf[key]].map((c) => c.path);
    t.deepEqual(paths(serviceOf('ExecStart=/bin/true', `${key}=/bin/a`, `${key}=/bin/b x`)), [
      '/bin/a',
      '/bin/b',
    ]);
    t.deepEqual(paths(serviceOf('ExecStart=/bin/true', `${key}=/bin/a`, `${key}=`, `${key}=/bin/c`)), [
      '/bin/c',
    ]);
  });
}

test('ExecStartPre= takes several commands separated by ";"', (t) => {
  const s = serviceOf('ExecStart=/bin/true', 'ExecStartPre=/bin/a ; /bin/b');
  t.deepEqual(
    s.execStartPre.map((c) => c.path),
    ['/bin/a', '/bin/b'],
  );
});

const types: { lines: string[]; type: ServiceSpec['type']; starts: number }[] = [
  { lines: ['ExecStart=/bin/a'], type: 'simple', starts: 1 },
  { lines: ['Type=simple', 'ExecStart=/bin/a'], type: 'simple', starts: 1 },
  { lines: ['Type=exec', 'ExecStart=/bin/a'], type: 'exec', starts: 1 },
  { lines: ['Type=oneshot', 'ExecStart=/bin/a', 'ExecStart=/bin/b'], type: 'oneshot', starts: 2 },
  { lines: ['Type=oneshot', 'RemainAfterExit=yes', 'ExecStop=/bin/a'], type: 'oneshot', starts: 0 },
  // systemd: without Type= and ExecStart=, the type is oneshot.
  { lines: ['RemainAfterExit=yes', 'ExecStop=/bin/a'], type: 'oneshot', starts: 0 },
  { lines: ['Type=exec', 'ExecStart=/bin/a', 'ExecStart=', 'ExecStart=/bin/b'], type: 'exec', starts: 1 },
];

for (const { lines, type, starts } of types) {
  test(`type: ${lines.join(' | ')}`, (t) => {
    const s = serviceOf(...lines);
    t.is(s.type, type);
    t.is(s.execStart.length, starts);
  });
}

const typeErrors: { lines: string[]; message: string }[] = [
  {
    lines: ['Type=forking', 'ExecStart=/usr/sbin/apache2'],
    message:
      'svc.unit:2: Type=forking: not supported by fleetts: it supervises the main process directly; run the daemon in the foreground (e.g. apache2 -DFOREGROUND, nginx -g "daemon off;") with Type=simple',
  },
  {
    lines: ['Type=notify', 'ExecStart=/bin/a'],
    message:
      'svc.unit:2: Type=notify: not supported by fleetts (it has no sd_notify socket); use Type=simple, or Type=exec to fail the start when the program cannot be executed',
  },
  {
    lines: ['Type=dbus', 'ExecStart=/bin/a'],
    message: 'svc.unit:2: Type=dbus: not supported by fleetts (it does not watch the D-Bus); use Type=simple',
  },
  {
    lines: ['Type=fast', 'ExecStart=/bin/a'],
    message: 'svc.unit:2: Type=fast: invalid value; expected one of simple, exec, oneshot',
  },
  {
    lines: ['Type=simple'],
    message:
      'svc.unit:1: [Service] has no ExecStart=; Type=simple needs exactly one ExecStart= (Type=oneshot allows none or several)',
  },
  {
    lines: ['Type=exec', 'ExecStart=/bin/a', 'ExecStart='],
    message:
      'svc.unit:1: [Service] has no ExecStart=; Type=exec needs exactly one ExecStart= (Type=oneshot allows none or several)',
  },
  {
    // Without Type=, a [Service] with no ExecStart= is a oneshot (systemd), which needs ExecStart= or ExecStop=.
    lines: ['ExecStart=/bin/a', 'ExecStart='],
    message:
      'svc.unit:1: [Service] has neither ExecStart= nor ExecStop=; add ExecStart=/absolute/path/to/program',
  },
  {
    lines: ['ExecStart=/bin/a', 'Restart=always', 'ExecStart=/bin/b'],
    message:
      'svc.unit:4: ExecStart= gives 2 commands; Type=simple allows exactly one (use Type=oneshot to run several commands in turn, or ExecStartPre=/ExecStartPost=)',
  },
  {
    lines: ['Type=oneshot'],
    message:
      'svc.unit:1: [Service] has neither ExecStart= nor ExecStop=; add ExecStart=/absolute/path/to/program',
  },
  {
    lines: ['Restart=always'],
    message:
      'svc.unit:1: [Service] has neither ExecStart= nor ExecStop=; add ExecStart=/absolute/path/to/program',
  },
];

for (const { lines, message } of typeErrors) {
  test(`rejected: ${lines.join(' | ')}`, (t) => {
    t.is(errorOf(serviceText(...lines)), message);
  });
}

test('an unparsable ExecStart= names the entry', (t) => {
  t.regex(errorOf(serviceText('ExecStart="/bin/a')), /^svc\.unit:2: ExecStart="\/bin\/a: /);
});

const restarts = [
  'no',
  'on-success',
  'on-failure',
  'on-abnormal',
  'on-abort',
  'on-watchdog',
  'always',
] as const;
for (const restart of restarts) {
  test(`Restart=${restart}`, (t) => {
    t.is(serviceOf('ExecStart=/bin/a', `Restart=${restart}`).restart, restart);
  });
}

const values: { lines: string[]; expected: Partial<ServiceSpec> }[] = [
  { lines: ['Restart=always', 'Restart='], expected: { restart: 'no' } },
  { lines: ['RestartSec=5'], expected: { restartMs: 5000 } },
  { lines: ['RestartSec=250ms'], expected: { restartMs: 250 } },
  { lines: ['RestartSec=1min 30s'], expected: { restartMs: 90_000 } },
  { lines: ['RestartSec=0'], expected: { restartMs: 0 } },
  { lines: ['StartLimitBurst=3'], expected: { startLimitBurst: 3 } },
  { lines: ['StartLimitIntervalSec=30s'], expected: { startLimitIntervalMs: 30_000 } },
  { lines: ['StartLimitInterval=20'], expected: { startLimitIntervalMs: 20_000 } },
  { lines: ['StartLimitIntervalSec=0'], expected: { startLimitIntervalMs: 0 } },
  { lines: ['TimeoutStartSec=10s'], expected: { timeoutStartMs: 10_000, timeoutStopMs: 90_000 } },
  { lines: ['TimeoutStartSec=0'], expected: { timeoutStartMs: Infinity } },
  { lines: ['TimeoutStartSec=infinity'], expected: { timeoutStartMs: Infinity } },
  { lines: ['TimeoutStopSec=5'], expected: { timeoutStartMs: 90_000, timeoutStopMs: 5000 } },
  { lines: ['TimeoutSec=7'], expected: { timeoutStartMs: 7000, timeoutStopMs: 7000 } },
  { lines: ['TimeoutSec=7', 'TimeoutStopSec=3'], expected: { timeoutStartMs: 7000, timeoutStopMs: 3000 } },
  { lines: ['TimeoutStopSec=3', 'TimeoutSec=7'], expected: { timeoutStartMs: 7000, timeoutStopMs: 7000 } },
  { lines: ['TimeoutSec=7', 'TimeoutSec='], expected: { timeoutStartMs: 90_000, timeoutStopMs: 90_000 } },
  { lines: ['KillSignal=SIGTERM'], expected: { killSignal: 'SIGTERM' } },
  { lines: ['KillSignal=TERM'], expected: { killSignal: 'SIGTERM' } },
  { lines: ['KillSignal=15'], expected: { killSignal: 'SIGTERM' } },
  { lines: ['KillSignal=sigquit'], expected: { killSignal: 'SIGQUIT' } },
  { lines: ['KillSignal=9'], expected: { killSignal: 'SIGKILL' } },
  { lines: ['KillSignal=SIGWINCH'], expected: { killSignal: 'SIGWINCH' } },
  { lines: ['KillMode=control-group'], expected: { killMode: 'control-group' } },
  { lines: ['KillMode=process'], expected: { killMode: 'process' } },
  { lines: ['KillMode=mixed'], expected: { killMode: 'mixed' } },
  { lines: ['KillMode=none'], expected: { killMode: 'none' } },
  { lines: ['RemainAfterExit=yes'], expected: { remainAfterExit: true } },
  { lines: ['RemainAfterExit=off'], expected: { remainAfterExit: false } },
  { lines: ['User=www-data', 'Group=33'], expected: { user: 'www-data', group: '33' } },
  {
    lines: ['WorkingDirectory=/srv/app'],
    expected: { workingDirectory: { path: '/srv/app', optional: false } },
  },
  {
    lines: ['WorkingDirectory=-/srv/app'],
    expected: { workingDirectory: { path: '/srv/app', optional: true } },
  },
  { lines: ['WorkingDirectory=~'], expected: { workingDirectory: { path: '~', optional: false } } },
];

for (const { lines, expected } of values) {
  test(`value: ${lines.join(' | ')}`, (t) => {
    t.like(serviceOf('ExecStart=/bin/a', ...lines), expected);
  });
}

test('User= reset removes the field', (t) => {
  t.false('user' in serviceOf('ExecStart=/bin/a', 'User=www-data', 'User='));
});

test('StartLimit* are read from [Unit] and [Service]; the later line wins', (t) => {
  const spec = (text: string): ServiceSpec => {
    const s = parseUnitSpec(text, 'svc.unit').run;
    if (s.kind !== 'service') throw new Error('expected a service');
    return s.service;
  };
  t.like(spec('[Unit]\nStartLimitBurst=2\nStartLimitIntervalSec=1min\n[Service]\nExecStart=/bin/a\n'), {
    startLimitBurst: 2,
    startLimitIntervalMs: 60_000,
  });
  t.like(spec('[Unit]\nStartLimitBurst=2\n[Service]\nExecStart=/bin/a\nStartLimitBurst=9\n'), {
    startLimitBurst: 9,
  });
  t.like(spec('[Service]\nExecStart=/bin/a\nStartLimitBurst=9\n[Unit]\nStartLimitBurst=2\n'), {
    startLimitBurst: 2,
  });
});

test('Environment= accumulates, later assignments win, empty resets', (t) => {
  t.deepEqual(
    serviceOf('ExecStart=/bin/a', 'Environment=A=1 "B=two words"', 'Environment=A=3 C=').environment,
    {
      A: '3',
      B: 'two words',
      C: '',
    },
  );
  t.deepEqual(
    serviceOf('ExecStart=/bin/a', 'Environment=A=1', 'Environment=', 'Environment=B=2').environment,
    { B: '2' },
  );
});

test('EnvironmentFile= accumulates, with - for optional files', (t) => {
  t.deepEqual(
    serviceOf('ExecStart=/bin/a', 'EnvironmentFile=/etc/a', 'EnvironmentFile=-/etc/b').environmentFiles,
    [
      { path: '/etc/a', optional: false },
      { path: '/etc/b', optional: true },
    ],
  );
  t.deepEqual(
    serviceOf('ExecStart=/bin/a', 'EnvironmentFile=/etc/a', 'EnvironmentFile=').environmentFiles,
    [],
  );
});

test('SuccessExitStatus= takes codes and signals, accumulating', (t) => {
  t.deepEqual(
    serviceOf('ExecStart=/bin/a', 'SuccessExitStatus=143 SIGKILL', 'SuccessExitStatus=3 TERM 143')
      .successExitStatus,
    {
      codes: [143, 3],
      signals: ['SIGKILL', 'SIGTERM'],
    },
  );
  t.deepEqual(serviceOf('ExecStart=/bin/a', 'SuccessExitStatus=1', 'SuccessExitStatus=').successExitStatus, {
    codes: [],
    signals: [],
  });
});

const badValues: { line: string; message: string }[] = [
  {
    line: 'Restart=sometimes',
    message:
      'svc.unit:3: Restart=sometimes: invalid value; expected one of no, on-success, on-failure, on-abnormal, on-abort, on-watchdog, always',
  },
  {
    line: 'RestartSec=infinity',
    message: 'svc.unit:3: RestartSec=infinity: must be a finite time span such as 30s',
  },
  {
    line: 'StartLimitBurst=-1',
    message: 'svc.unit:3: StartLimitBurst=-1: not a whole number; use 0…1000000',
  },
  {
    line: 'StartLimitBurst=five',
    message: 'svc.unit:3: StartLimitBurst=five: not a whole number; use 0…1000000',
  },
  {
    line: 'KillSignal=SIGFOO',
    message:
      'svc.unit:3: KillSignal=SIGFOO: not a signal; use a name such as SIGTERM (or TERM) or a number such as 15',
  },
  {
    line: 'KillSignal=99',
    message:
      'svc.unit:3: KillSignal=99: not a signal; use a name such as SIGTERM (or TERM) or a number such as 15',
  },
  {
    line: 'KillMode=group',
    message: 'svc.unit:3: KillMode=group: invalid value; expected one of control-group, process, mixed, none',
  },
  {
    line: 'RemainAfterExit=perhaps',
    message: 'svc.unit:3: RemainAfterExit=perhaps: not a boolean; use true/yes/1/on or false/no/0/off',
  },
  {
    line: 'EnvironmentFile=etc/env',
    message:
      'svc.unit:3: EnvironmentFile=etc/env: not an absolute path; write /path/to/file, or -/path/to/file if it may be missing',
  },
  {
    line: 'WorkingDirectory=srv',
    message:
      'svc.unit:3: WorkingDirectory=srv: not an absolute path; use /path/to/dir, ~ for the home directory, or a - prefix',
  },
  {
    line: 'User=bad user',
    message:
      'svc.unit:3: User=bad user: not a user or group name; use a name such as www-data or a numeric id',
  },
  {
    line: 'SuccessExitStatus=300',
    message:
      'svc.unit:3: SuccessExitStatus=300: "300" is neither an exit code (0…255) nor a signal name; use e.g. SuccessExitStatus=143 SIGTERM',
  },
  {
    line: 'Environment=1A=x',
    message:
      'svc.unit:3: Environment=1A=x: invalid environment assignment "1A=x": "1A" is not a valid variable name; use letters, digits and _, not starting with a digit',
  },
];

for (const { line, message } of badValues) {
  test(`bad value: ${line}`, (t) => {
    t.is(errorOf(serviceText('ExecStart=/bin/a', line)), message);
  });
}

test('a bad time span names the entry and the span', (t) => {
  t.regex(
    errorOf(serviceText('ExecStart=/bin/a', 'TimeoutStopSec=soon')),
    /^svc\.unit:3: TimeoutStopSec=soon: invalid time span "soon": /,
  );
});

test('a systemd key that fleetts does not implement says so', (t) => {
  t.regex(
    errorOf(serviceText('ExecStart=/bin/a', 'LimitNOFILE=4096')),
    /^svc\.unit:3: systemd key "LimitNOFILE" is not supported by fleetts; supported \[Service\] keys: Type, ExecStartPre, ExecStart, .*, SuccessExitStatus$/,
  );
});

test('an unknown key names the supported keys and a likely typo', (t) => {
  t.regex(
    errorOf(serviceText('ExecStart=/bin/a', 'Restrat=always')),
    /^svc\.unit:3: unknown \[Service\] key "Restrat"; supported keys: Type, .*; did you mean Restart\?$/,
  );
});

test('a [Container] key in [Service] points to [Container]', (t) => {
  t.regex(
    errorOf(serviceText('ExecStart=/bin/a', 'Image=nginx')),
    /^svc\.unit:3: "Image" is a \[Container\] key, not a \[Service\] key; run a container with a \[Container\] section instead of \[Service\]; /,
  );
});
