// containerConfigFromSpec and dockerCreateOptions (pure): specifiers and $VAR, environment files,
// defaults, and the Docker create body for the shipped web farm unit.

import test from 'ava';
import { readFileSync } from 'node:fs';
import {
  containerConfigFromSpec,
  defaultContainerName,
  dockerCreateOptions,
  type ContainerConfigResult,
  type ContainerUnitConfig,
} from '../../src/runtime/docker-config.js';
import { parseUnitName } from '../../src/unit/names.js';
import { specifierContextForUnit } from '../../src/unit/specifiers.js';
import { parseUnitSpec } from '../../src/unit/unit-spec.js';

function build(
  container: string,
  files: Record<string, string> = {},
  name = 'web@1.unit',
): ContainerConfigResult {
  return buildText(`[Container]\n${container}`, name, files);
}

function buildText(text: string, name: string, files: Record<string, string> = {}): ContainerConfigResult {
  const spec = parseUnitSpec(text, name);
  if (spec.run.kind !== 'container') throw new Error('not a container');
  return containerConfigFromSpec({
    unit: spec.name,
    hash: spec.hash,
    spec: spec.run.container,
    specifiers: { ...specifierContextForUnit(parseUnitName(name)), H: 'host1', m: 'abc123', b: 'boot' },
    baseEnv: { FLEETTS_MACHINE_ID: 'abc123', X: 'base' },
    readFile: (p) => files[p],
  });
}

function ok(r: ContainerConfigResult): ContainerUnitConfig {
  if (r.kind !== 'ok') throw new Error(r.reason);
  return r.config;
}

const cases: {
  title: string;
  container: string;
  files?: Record<string, string>;
  expect: Partial<ContainerUnitConfig>;
}[] = [
  {
    title: 'defaults: name from the unit, image CMD kept, systemd supervision defaults',
    container: 'Image=fleetts/apache:latest\n',
    expect: {
      kind: 'container',
      name: 'web-1.unit',
      image: 'fleetts/apache:latest',
      pull: 'missing',
      env: { FLEETTS_MACHINE_ID: 'abc123', X: 'base' },
      network: { kind: 'bridge' },
      stopTimeoutMs: 90_000,
      stopSignal: 'SIGTERM',
      restart: 'no',
      restartSecMs: 100,
      startLimitBurst: 5,
      startLimitIntervalMs: 10_000,
      labels: {},
    },
  },
  {
    title: 'specifiers everywhere, $VAR and ${VAR} in Exec=, ${VAR} in volumes',
    container: [
      'Image=img:%i',
      'ContainerName=web-%i-%H',
      'Environment=PORT=80%i "ARGS=-a -b" DIR=%p',
      'Exec=/bin/srv --host %H --port ${PORT} $ARGS %n',
      'Volume=/srv/${DIR}/data:/data:ro',
      'HostName=%p-%i',
      'Label=role=%p',
      'User=www-data',
      'Group=www-data',
      '',
    ].join('\n'),
    expect: {
      image: 'img:1',
      name: 'web-1-host1',
      cmd: ['/bin/srv', '--host', 'host1', '--port', '801', '-a', '-b', 'web@1.unit'],
      env: { FLEETTS_MACHINE_ID: 'abc123', X: 'base', PORT: '801', ARGS: '-a -b', DIR: 'web' },
      volumes: [{ kind: 'bind', source: '/srv/web/data', target: '/data', options: ['ro'] }],
      hostName: 'web-1',
      labels: { role: 'web' },
      user: 'www-data:www-data',
    },
  },
  {
    title: 'EnvironmentFile= overrides Environment= and the base',
    container: 'Image=i\nEnvironment=A=1 X=unit\nEnvironmentFile=/etc/%p.env\nEnvironmentFile=-/nope\n',
    files: { '/etc/web.env': 'A=2\n# comment\nB=3\n' },
    expect: { env: { FLEETTS_MACHINE_ID: 'abc123', X: 'unit', A: '2', B: '3' } },
  },
  {
    title: 'supervision from [Container]; TimeoutStopSec=infinity is 0 (no limit); on-watchdog never fires',
    container: 'Image=i\nRestart=on-watchdog\nRestartSec=2s\nTimeoutStopSec=infinity\nStopSignal=SIGQUIT\n',
    expect: { restart: 'no', restartSecMs: 2000, stopTimeoutMs: 0, stopSignal: 'SIGQUIT' },
  },
];

for (const c of cases) {
  test(`containerConfigFromSpec: ${c.title}`, (t) => {
    t.like(ok(build(c.container, c.files)), c.expect);
  });
}

test('containerConfigFromSpec: a missing EnvironmentFile= and an unknown specifier are errors with reasons', (t) => {
  t.deepEqual(build('Image=i\nEnvironmentFile=/etc/none.env\n'), {
    kind: 'error',
    reason: 'EnvironmentFile=/etc/none.env: no such file',
  });
  const r = build('Image=i\nEnvironment=A=%H\n');
  t.is(r.kind, 'ok');
  const bad = containerConfigFromSpec({
    ...((): Parameters<typeof containerConfigFromSpec>[0] => {
      const spec = parseUnitSpec('[Container]\nImage=i\nEnvironment=A=%H\n', 'web@1.unit');
      if (spec.run.kind !== 'container') throw new Error('not a container');
      return {
        unit: spec.name,
        hash: spec.hash,
        spec: spec.run.container,
        specifiers: specifierContextForUnit(parseUnitName('web@1.unit')),
        baseEnv: {},
        readFile: () => undefined,
      };
    })(),
  });
  t.is(bad.kind, 'error');
  t.regex(bad.kind === 'error' ? bad.reason : '', /%H/);
});

test('containerConfigFromSpec: Pull=always is accepted with a warning (the runtime fails it)', (t) => {
  const r = build('Image=i\nPull=always\n');
  t.like(r, { kind: 'ok', config: { pull: 'always' } });
  t.deepEqual(r.kind === 'ok' ? r.warnings : [], [
    'Pull=always needs a registry; fleetts hosts build their images (scripts/build-images.sh)',
  ]);
});

test('defaultContainerName: Docker-safe names', (t) => {
  t.is(defaultContainerName('web@1.unit'), 'web-1.unit');
  t.is(defaultContainerName('lb.unit'), 'lb.unit');
  t.is(defaultContainerName('@x.unit'), 'u-x.unit');
});

test('dockerCreateOptions for units/web@.unit: host network, binds, health, labels, no Docker restart policy', (t) => {
  const text = readFileSync(new URL('../../units/web@.unit', import.meta.url), 'utf8');
  const config = ok(buildText(text, 'web@2.unit'));
  const o = dockerCreateOptions(config, { machine: 'abc123', instance: 'abc123' });
  t.like(o, {
    name: 'web-2',
    Image: 'fleetts/apache:latest',
    StopSignal: 'SIGTERM',
    StopTimeout: 10,
    Healthcheck: {
      Test: ['CMD-SHELL', 'curl -fsS http://127.0.0.1:8080/ || exit 1'],
      Interval: 5e9,
      Timeout: 2e9,
      Retries: 2,
      StartPeriod: 0,
    },
    HostConfig: {
      NetworkMode: 'host',
      Binds: [
        '/srv/fleetts/shared/web/htdocs:/var/www/html:ro',
        '/srv/fleetts/shared/web/conf:/etc/apache2/fleetts:ro',
      ],
      RestartPolicy: { Name: 'no' },
    },
  });
  t.true(o.Env?.includes('FLEETTS_INSTANCE=2'));
  t.true(o.Env?.includes('FLEETTS_HOST=host1'));
  t.true(o.Env?.includes('WEB_PORT=8080'));
  t.like(o.Labels, {
    'fleetts.unit': 'web@2.unit',
    'fleetts.machine': 'abc123',
    'fleetts.runtime': 'abc123',
  });
  // The config label is a versioned record (records.ts): the config plus `v`.
  t.deepEqual(JSON.parse(o.Labels?.['fleetts.config'] ?? '{}'), {
    v: 1,
    ...(JSON.parse(JSON.stringify(config)) as object),
  });
  t.is(config.restart, 'always');
});

test('dockerCreateOptions: published ports, anonymous and named volumes, disabled health, user labels cannot override ours', (t) => {
  const config = ok(
    build(
      'Image=i\nPublishPort=127.0.0.1:8080:80\nPublishPort=53:53/udp\nVolume=/cache\nVolume=data:/data\nHealthCmd=none\nLabel=fleetts.unit=evil\n',
    ),
  );
  const o = dockerCreateOptions(config, { machine: 'm', instance: 'i' });
  t.deepEqual(o.ExposedPorts, { '80/tcp': {}, '53/udp': {} });
  t.deepEqual(o.HostConfig?.PortBindings, {
    '80/tcp': [{ HostIp: '127.0.0.1', HostPort: '8080' }],
    '53/udp': [{ HostPort: '53' }],
  });
  t.deepEqual(o.Volumes, { '/cache': {} });
  t.deepEqual(o.HostConfig?.Binds, ['data:/data']);
  t.deepEqual(o.Healthcheck, { Test: ['NONE'] });
  t.is(o.Labels?.['fleetts.unit'], 'web@1.unit');
  t.is(o.HostConfig?.NetworkMode, 'bridge');
});
