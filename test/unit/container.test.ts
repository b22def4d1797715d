// [Container] → ContainerSpec through parseUnitSpec: Quadlet keys, ports, volumes, health, errors.

import test from 'ava';
import { UnitFileError } from '../../src/lib/errors.js';
import type { ContainerSpec, PublishPort, VolumeMount } from '../../src/unit/container.js';
import { parseUnitSpec } from '../../src/unit/unit-spec.js';

/** A unit whose [Container] holds `lines`; its first line is line 2. */
const containerText = (...lines: string[]): string => ['[Container]', ...lines].join('\n') + '\n';

const containerOf = (...lines: string[]): ContainerSpec => {
  const spec = parseUnitSpec(containerText(...lines), 'web@1.unit');
  if (spec.run.kind !== 'container') throw new Error('expected a container');
  return spec.run.container;
};

const errorOf = (text: string): string => {
  try {
    parseUnitSpec(text, 'web@1.unit');
  } catch (error) {
    if (error instanceof UnitFileError) return error.message;
    throw error;
  }
  throw new Error('expected a UnitFileError');
};

test('a minimal container and its defaults', (t) => {
  const c = containerOf('Image=fleetts/apache:latest');
  t.deepEqual(c, {
    restart: 'no',
    restartMs: 100,
    startLimitBurst: 5,
    startLimitIntervalMs: 10_000,
    timeoutStartMs: 90_000,
    timeoutStopMs: 90_000,
    image: 'fleetts/apache:latest',
    pull: 'missing',
    publishPorts: [],
    volumes: [],
    environment: {},
    environmentFiles: [],
    network: { kind: 'bridge' },
    labels: {},
    stopSignal: 'SIGTERM',
  });
});

test('Image= is required', (t) => {
  t.is(
    errorOf(containerText('Network=host')),
    'web@1.unit:1: [Container] has no Image=; add Image=<image reference>, e.g. Image=fleetts/apache:latest',
  );
  t.is(
    errorOf(containerText('Image=a', 'Image=')),
    'web@1.unit:1: [Container] has no Image=; add Image=<image reference>, e.g. Image=fleetts/apache:latest',
  );
});

test('every key', (t) => {
  const c = containerOf(
    'Image=docker.io/library/nginx:1.27',
    'Pull=never',
    'Exec=nginx -g "daemon off;"',
    'Entrypoint=/docker-entrypoint.sh',
    'ContainerName=web-%i',
    'PublishPort=8080:80',
    'Volume=/srv/shared/web:/usr/share/nginx/html:ro',
    'Environment=A=1 B=2',
    'EnvironmentFile=-/etc/fleetts/web.env',
    'Network=fleetts',
    'HostName=web-%i',
    'User=101',
    'Group=nginx',
    'WorkingDir=/srv',
    'Label=role=web "tier=front end"',
    'HealthCmd=curl -fsS http://localhost/ || exit 1',
    'HealthInterval=5s',
    'HealthRetries=2',
    'HealthTimeout=1s',
    'HealthStartPeriod=10s',
    'StopSignal=QUIT',
    'Restart=always',
    'RestartSec=2',
    'TimeoutStartSec=30s',
    'TimeoutStopSec=10s',
    'StartLimitBurst=10',
    'StartLimitIntervalSec=1min',
  );
  t.deepEqual(c, {
    restart: 'always',
    restartMs: 2000,
    startLimitBurst: 10,
    startLimitIntervalMs: 60_000,
    timeoutStartMs: 30_000,
    timeoutStopMs: 10_000,
    image: 'docker.io/library/nginx:1.27',
    pull: 'never',
    exec: ['nginx', '-g', 'daemon off;'],
    entrypoint: ['/docker-entrypoint.sh'],
    containerName: 'web-%i',
    publishPorts: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }],
    volumes: [{ kind: 'bind', source: '/srv/shared/web', target: '/usr/share/nginx/html', options: ['ro'] }],
    environment: { A: '1', B: '2' },
    environmentFiles: [{ path: '/etc/fleetts/web.env', optional: true }],
    network: { kind: 'named', name: 'fleetts' },
    hostName: 'web-%i',
    user: '101',
    group: 'nginx',
    workingDir: '/srv',
    labels: { role: 'web', tier: 'front end' },
    health: {
      kind: 'command',
      command: 'curl -fsS http://localhost/ || exit 1',
      intervalMs: 5000,
      retries: 2,
      timeoutMs: 1000,
      startPeriodMs: 10_000,
    },
    stopSignal: 'SIGQUIT',
  });
});

test('PodmanArgs= is rejected with the typed keys to use instead', (t) => {
  t.regex(
    errorOf(containerText('Image=a', 'PodmanArgs=--cap-add=NET_ADMIN')),
    /^web@1\.unit:3: PodmanArgs is not supported by fleetts \(it runs containers through the Docker API\); use the typed keys: Image, Pull, Exec, .*PublishPort, Volume, .*HealthCmd/,
  );
});

const ports: { value: string; expected: PublishPort }[] = [
  { value: '8080:80', expected: { hostPort: 8080, containerPort: 80, protocol: 'tcp' } },
  { value: '8080:80/udp', expected: { hostPort: 8080, containerPort: 80, protocol: 'udp' } },
  { value: '53:53/sctp', expected: { hostPort: 53, containerPort: 53, protocol: 'sctp' } },
  {
    value: '127.0.0.1:8080:80',
    expected: { hostIp: '127.0.0.1', hostPort: 8080, containerPort: 80, protocol: 'tcp' },
  },
  {
    value: '0.0.0.0:443:8443/tcp',
    expected: { hostIp: '0.0.0.0', hostPort: 443, containerPort: 8443, protocol: 'tcp' },
  },
  { value: '127.0.0.1::80', expected: { hostIp: '127.0.0.1', containerPort: 80, protocol: 'tcp' } },
  { value: '[::1]:8080:80', expected: { hostIp: '::1', hostPort: 8080, containerPort: 80, protocol: 'tcp' } },
  { value: '65535:1', expected: { hostPort: 65535, containerPort: 1, protocol: 'tcp' } },
];

for (const { value, expected } of ports) {
  test(`PublishPort=${value}`, (t) => {
    t.deepEqual(containerOf('Image=a', `PublishPort=${value}`).publishPorts, [expected]);
  });
}

const HINT = 'use [ip:]hostPort:containerPort[/tcp|udp|sctp], e.g. 8080:80 or 127.0.0.1:8080:80/tcp';
const badPorts: { value: string; problem: string }[] = [
  { value: '80', problem: `a container port alone gets a random host port; ${HINT}` },
  { value: '1:2:3:4', problem: HINT },
  { value: '8080:80/icmp', problem: `unknown protocol "icmp"; ${HINT}` },
  { value: 'localhost:8080:80', problem: `"localhost" is not an IP address; ${HINT}` },
  { value: '0:80', problem: `host port "0" is not a port number (1…65535); ${HINT}` },
  { value: '8080:65536', problem: `container port "65536" is not a port number (1…65535); ${HINT}` },
  { value: 'http:80', problem: `host port "http" is not a port number (1…65535); ${HINT}` },
  { value: ':80', problem: `host port "" is not a port number (1…65535); ${HINT}` },
  {
    value: '8080-8081:80-81',
    problem: 'port ranges are not supported; publish each port with its own PublishPort= line',
  },
];

for (const { value, problem } of badPorts) {
  test(`bad PublishPort=${value}`, (t) => {
    t.is(
      errorOf(containerText('Image=a', `PublishPort=${value}`)),
      `web@1.unit:3: PublishPort=${value}: ${problem}`,
    );
  });
}

test('PublishPort= accumulates and an empty value resets it', (t) => {
  t.deepEqual(
    containerOf('Image=a', 'PublishPort=1:1', 'PublishPort=2:2').publishPorts.map((p) => p.containerPort),
    [1, 2],
  );
  t.deepEqual(
    containerOf('Image=a', 'PublishPort=1:1', 'PublishPort=', 'PublishPort=2:2').publishPorts.length,
    1,
  );
});

test('PublishPort= with Network=host is an error (Docker would ignore it)', (t) => {
  t.is(
    errorOf(containerText('Image=a', 'Network=host', 'PublishPort=8080:80')),
    "web@1.unit:4: PublishPort= has no effect with Network=host (the container already uses the host's ports); remove PublishPort= or use another network",
  );
});

const volumes: { value: string; expected: VolumeMount }[] = [
  { value: '/srv/a:/data', expected: { kind: 'bind', source: '/srv/a', target: '/data', options: [] } },
  {
    value: '/srv/a:/data:ro',
    expected: { kind: 'bind', source: '/srv/a', target: '/data', options: ['ro'] },
  },
  {
    value: '/srv/a:/data:rw,Z',
    expected: { kind: 'bind', source: '/srv/a', target: '/data', options: ['rw', 'Z'] },
  },
  {
    value: '/srv/web/%i:/data',
    expected: { kind: 'bind', source: '/srv/web/%i', target: '/data', options: [] },
  },
  {
    value: 'pgdata:/var/lib/postgresql',
    expected: { kind: 'named', name: 'pgdata', target: '/var/lib/postgresql', options: [] },
  },
  { value: '/cache', expected: { kind: 'anonymous', target: '/cache' } },
];

for (const { value, expected } of volumes) {
  test(`Volume=${value}`, (t) => {
    t.deepEqual(containerOf('Image=a', `Volume=${value}`).volumes, [expected]);
  });
}

const VHINT = 'use /host/path:/container/path[:ro], volume-name:/container/path or /container/path';
const badVolumes: { value: string; problem: string }[] = [
  { value: 'data', problem: `not an absolute container path; ${VHINT}` },
  { value: '/a:data', problem: `the container path "data" is not absolute; ${VHINT}` },
  { value: '/a:/b:ro:x', problem: `too many ":"; ${VHINT}` },
  {
    value: '/a:/b:readonly',
    problem:
      'unknown volume option "readonly"; use ro, rw, z, Z, shared, rshared, slave, rslave, private, rprivate, nocopy',
  },
  { value: '/a:/b:ro,rw', problem: 'both ro and rw are given; use one of them' },
  {
    value: './a:/b',
    problem: `the source "./a" is neither an absolute host path nor a volume name; ${VHINT}`,
  },
  {
    value: 'web.volume:/b',
    problem: 'Quadlet .volume units are not supported by fleetts; name a Docker volume or a host path',
  },
];

for (const { value, problem } of badVolumes) {
  test(`bad Volume=${value}`, (t) => {
    t.is(errorOf(containerText('Image=a', `Volume=${value}`)), `web@1.unit:3: Volume=${value}: ${problem}`);
  });
}

const networks: { value: string; expected: ContainerSpec['network'] }[] = [
  { value: 'host', expected: { kind: 'host' } },
  { value: 'none', expected: { kind: 'none' } },
  { value: 'bridge', expected: { kind: 'bridge' } },
  { value: 'farm_net', expected: { kind: 'named', name: 'farm_net' } },
];

for (const { value, expected } of networks) {
  test(`Network=${value}`, (t) => {
    t.deepEqual(containerOf('Image=a', `Network=${value}`).network, expected);
  });
}

const badValues: { line: string; message: string }[] = [
  {
    line: 'Network=container:db',
    message:
      'web@1.unit:3: Network=container:db: not a network; use host, none, bridge or the name of a Docker network',
  },
  {
    line: 'Network=farm.network',
    message:
      'web@1.unit:3: Network=farm.network: Quadlet .network units are not supported by fleetts; create the Docker network on each host and give its name',
  },
  {
    line: 'Pull=sometimes',
    message: 'web@1.unit:3: Pull=sometimes: invalid value; expected one of always, missing, never, newer',
  },
  {
    line: 'ContainerName=-web',
    message:
      'web@1.unit:3: ContainerName=-web: not a container name; use letters, digits, _ . - and start with a letter or digit',
  },
  {
    line: 'HostName=web_1',
    message:
      'web@1.unit:3: HostName=web_1: not a host name; use letters, digits and - in dot-separated labels',
  },
  {
    line: 'WorkingDir=srv',
    message:
      'web@1.unit:3: WorkingDir=srv: not an absolute path; use a directory inside the container such as /srv/app',
  },
  {
    line: 'StopSignal=STOPNOW',
    message:
      'web@1.unit:3: StopSignal=STOPNOW: not a signal; use a name such as SIGTERM (or TERM) or a number such as 15',
  },
  {
    line: 'Label=role',
    message: 'web@1.unit:3: Label=role: "role" is not key=value; use Label=com.example.role=web',
  },
  { line: 'HealthRetries=0', message: 'web@1.unit:3: HealthRetries=0: out of range; use 1…1000000' },
  {
    line: 'HealthInterval=5s',
    message:
      'web@1.unit:3: HealthInterval= has no effect without a HealthCmd=; add HealthCmd=<command run in the container>, e.g. HealthCmd=curl -fsS http://localhost/',
  },
  {
    line: 'Restart=sometimes',
    message:
      'web@1.unit:3: Restart=sometimes: invalid value; expected one of no, on-success, on-failure, on-abnormal, on-abort, on-watchdog, always',
  },
];

for (const { line, message } of badValues) {
  test(`bad value: ${line}`, (t) => {
    t.is(errorOf(containerText('Image=a', line)), message);
  });
}

test('Image= must be an image reference', (t) => {
  t.is(
    errorOf(containerText('Image=my image')),
    'web@1.unit:2: Image=my image: not an image reference; use a name such as fleetts/apache:latest or docker.io/library/nginx:1.27',
  );
});

test('HealthCmd=none disables the image health check', (t) => {
  t.deepEqual(containerOf('Image=a', 'HealthCmd=none').health, { kind: 'disabled' });
  t.false('health' in containerOf('Image=a'));
  t.like(containerOf('Image=a', 'HealthCmd=true').health, {
    kind: 'command',
    intervalMs: 30_000,
    retries: 3,
  });
});

test('Exec= is split into words; an empty Exec= goes back to the image CMD', (t) => {
  t.deepEqual(containerOf('Image=a', 'Exec=sh -c "echo hi"').exec, ['sh', '-c', 'echo hi']);
  t.false('exec' in containerOf('Image=a', 'Exec=sh', 'Exec='));
});

const keyErrors: { line: string; pattern: RegExp }[] = [
  {
    line: 'Pod=web.pod',
    pattern:
      /^web@1\.unit:3: Quadlet key "Pod" is not supported by fleetts; supported \[Container\] keys: Image, /,
  },
  {
    line: 'StopTimeout=10',
    pattern:
      /^web@1\.unit:3: StopTimeout is not supported by fleetts; use TimeoutStopSec= \(seconds or a time span such as 30s\); /,
  },
  {
    line: 'ExecStart=/bin/a',
    pattern: /^web@1\.unit:3: "ExecStart" is a \[Service\] key; in \[Container\] the command is Exec= /,
  },
  {
    line: 'KillSignal=TERM',
    pattern: /^web@1\.unit:3: "KillSignal" is a \[Service\] key; in \[Container\] use StopSignal=/,
  },
  {
    line: 'WorkingDirectory=/a',
    pattern: /^web@1\.unit:3: "WorkingDirectory" is a \[Service\] key; in \[Container\] use WorkingDir=/,
  },
  {
    line: 'Imag=a',
    pattern: /^web@1\.unit:3: unknown \[Container\] key "Imag"; supported keys: .*; did you mean Image\?$/,
  },
];

for (const { line, pattern } of keyErrors) {
  test(`key error: ${line}`, (t) => {
    t.regex(errorOf(containerText('Image=a', line)), pattern);
  });
}

test('StartLimit* in [Unit] apply to a container too', (t) => {
  const spec = parseUnitSpec('[Unit]\nStartLimitBurst=1\n[Container]\nImage=a\n', 'c.unit');
  t.like(spec.run, { kind: 'container', container: { startLimitBurst: 1 } });
});
