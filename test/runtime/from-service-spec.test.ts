// ServiceSpec → ProcessUnitConfig: specifiers, environment precedence, $VAR expansion, timeouts.

import test from 'ava';
import {
  processConfigFromServiceSpec,
  type ProcessConfigInput,
} from '../../src/runtime/from-service-spec.js';
import type { ProcessUnitConfig } from '../../src/runtime/runtime.js';
import { specifierContextForUnit } from '../../src/unit/specifiers.js';
import { parseUnitName } from '../../src/unit/names.js';
import { parseUnitSpec } from '../../src/unit/unit-spec.js';

function build(
  service: string,
  files: Record<string, string> = {},
  name = 'web@1.service',
): ReturnType<typeof processConfigFromServiceSpec> {
  const spec = parseUnitSpec(`[Service]\n${service}`, name);
  if (spec.run.kind !== 'service') throw new Error('not a service');
  const input: ProcessConfigInput = {
    unit: spec.name,
    hash: spec.hash,
    spec: spec.run.service,
    specifiers: { ...specifierContextForUnit(parseUnitName(name)), H: 'host1', m: 'abc123', b: 'boot' },
    baseEnv: { FLEETTS_MACHINE_ID: 'abc123', X: 'base' },
    readFile: (p) => files[p],
  };
  return processConfigFromServiceSpec(input);
}

function ok(r: ReturnType<typeof processConfigFromServiceSpec>): ProcessUnitConfig {
  if (r.kind !== 'ok') throw new Error(r.reason);
  return r.config;
}

const cases: {
  title: string;
  service: string;
  files?: Record<string, string>;
  expect: Partial<ProcessUnitConfig>;
}[] = [
  {
    title: 'specifiers and $VAR in Exec lines',
    service: 'Environment=PORT=80%i "ARGS=-a -b"\nExecStart=/bin/srv --host %H --port ${PORT} $ARGS %n\n',
    expect: {
      execStart: [
        {
          path: '/bin/srv',
          argv: ['/bin/srv', '--host', 'host1', '--port', '801', '-a', '-b', 'web@1.service'],
          ignoreFailure: false,
          privileged: false,
        },
      ],
    },
  },
  {
    title: 'prefixes: - ignores failure, + is privileged, @ sets argv[0]',
    service: 'ExecStartPre=-/bin/false\nExecStartPre=+/bin/true\nExecStart=@/bin/sleep sleeper 10\n',
    expect: {
      execStartPre: [
        { path: '/bin/false', argv: ['/bin/false'], ignoreFailure: true, privileged: false },
        { path: '/bin/true', argv: ['/bin/true'], ignoreFailure: false, privileged: true },
      ],
      execStart: [{ path: '/bin/sleep', argv: ['sleeper', '10'], ignoreFailure: false, privileged: false }],
    },
  },
  {
    title: 'environment: base < Environment= < EnvironmentFile= (in order); optional missing file skipped',
    service:
      'Environment=X=env Y=env Z=env\nEnvironmentFile=/a\nEnvironmentFile=-/missing\nEnvironmentFile=/b\nExecStart=/bin/true\n',
    files: { '/a': 'Y=a\nZ=a\n', '/b': 'Z=b\n' },
    expect: { env: { FLEETTS_MACHINE_ID: 'abc123', X: 'env', Y: 'a', Z: 'b' } },
  },
  {
    title: 'infinite timeouts become 0, on-watchdog becomes no',
    service: 'ExecStart=/bin/true\nTimeoutStartSec=infinity\nTimeoutStopSec=0\nRestart=on-watchdog\n',
    expect: { timeoutStartMs: 0, timeoutStopMs: 0, restart: 'no' },
  },
  {
    title: 'systemd defaults',
    service: 'ExecStart=/bin/true\n',
    expect: {
      type: 'simple',
      restart: 'no',
      restartSecMs: 100,
      startLimitBurst: 5,
      startLimitIntervalMs: 10_000,
      timeoutStartMs: 90_000,
      timeoutStopMs: 90_000,
      killSignal: 'SIGTERM',
      killMode: 'control-group',
      remainAfterExit: false,
    },
  },
  {
    title: 'User, Group and WorkingDirectory with specifiers',
    service: 'ExecStart=/bin/true\nUser=nobody\nGroup=nogroup\nWorkingDirectory=-/srv/%p\n',
    expect: { user: 'nobody', group: 'nogroup', workingDirectory: { path: '/srv/web', optional: true } },
  },
];

for (const c of cases) {
  test(`maps ${c.title}`, (t) => {
    t.like(ok(build(c.service, c.files)), c.expect);
  });
}

test('a missing EnvironmentFile= is an error naming the file', (t) => {
  t.deepEqual(build('EnvironmentFile=/etc/nope\nExecStart=/bin/true\n'), {
    kind: 'error',
    reason: 'EnvironmentFile=/etc/nope: no such file',
  });
});

test('$MAINPID is left for the supervisor in the steps that run beside the main process', (t) => {
  const c = ok(
    build(
      'Environment=SIG=HUP\nExecStart=/bin/srv $MAINPID\nExecStartPost=/bin/echo ${MAINPID}\n' +
        'ExecReload=/bin/kill -$SIG $MAINPID\nExecStop=/bin/kill ${MAINPID}\n' +
        'ExecStopPost=/bin/echo $$MAINPID\nExecStopPost=:/bin/echo $MAINPID\n',
    ),
  );
  // ExecStart: no main process yet, so $MAINPID is empty as in systemd.
  t.deepEqual(c.execStart[0]?.argv, ['/bin/srv']);
  t.like(c.execStartPost[0], { argv: ['/bin/echo', '${MAINPID}'], expandAtLaunch: true });
  t.like(c.execReload[0], { argv: ['/bin/kill', '-$SIG', '$MAINPID'], expandAtLaunch: true });
  t.like(c.execStop[0], { argv: ['/bin/kill', '${MAINPID}'], expandAtLaunch: true });
  // $$ is a literal dollar; `:` turns expansion off: neither waits for the launch.
  t.deepEqual(c.execStopPost[0], {
    path: '/bin/echo',
    argv: ['/bin/echo', '$MAINPID'],
    ignoreFailure: false,
    privileged: false,
  });
  t.is(c.execStopPost[1]?.expandAtLaunch, undefined);
});
