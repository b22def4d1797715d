// The typed [Container] section: a Docker container, described with Podman Quadlet's key names.
// parseUnitSpec (unit-spec.ts) calls parseContainerSection once at submit; the Docker runtime reads
// only ContainerSpec. A container unit has no [Service], so its restart policy and timeouts
// (Restart=, RestartSec=, TimeoutStartSec=, TimeoutStopSec=, TimeoutSec=, StartLimit*=) are
// written in [Container] itself, with systemd's meanings and defaults; fleetts, not Docker, restarts it.

import { isIP } from 'node:net';
import {
  accountValue,
  checkValue,
  entryError,
  enumSchema,
  integerValue,
  lineError,
  optionalPathValue,
  timeSpanValue,
  unknownKeyMessage,
  valueSchema,
  ValueProblem,
  wordsOf,
  type OptionalPath,
  type SectionContext,
} from './section-values.js';
import { environmentOf } from './service.js';
import { parseSupervision, signalValue, SUPERVISION_KEYS, type Supervision } from './supervision.js';
import type { UnitEntry } from './unit-file.js';

export const PULL_POLICIES = ['always', 'missing', 'never', 'newer'] as const;
export type PullPolicy = (typeof PULL_POLICIES)[number];

/** PublishPort=`[ip:][hostPort]:containerPort[/proto]`. */
export interface PublishPort {
  /** The host address to bind; absent means all addresses. */
  readonly hostIp?: string;
  /** Absent (`ip::80`) lets Docker choose a free port. */
  readonly hostPort?: number;
  readonly containerPort: number;
  readonly protocol: 'tcp' | 'udp' | 'sctp';
}

/** Volume=`source:target[:options]` or `target` (an anonymous volume). */
export type VolumeMount =
  | {
      readonly kind: 'bind';
      /** An absolute host path (shared storage is mounted at the same path on every host). */
      readonly source: string;
      readonly target: string;
      readonly options: readonly string[];
    }
  | {
      readonly kind: 'named';
      readonly name: string;
      readonly target: string;
      readonly options: readonly string[];
    }
  | { readonly kind: 'anonymous'; readonly target: string };

export type ContainerNetwork =
  | { readonly kind: 'host' }
  | { readonly kind: 'none' }
  | { readonly kind: 'bridge' }
  | { readonly kind: 'named'; readonly name: string };

export type ContainerHealth =
  | { readonly kind: 'disabled' }
  | {
      readonly kind: 'command';
      /** Run by a shell in the container (Docker's CMD-SHELL), as podman --health-cmd does. */
      readonly command: string;
      readonly intervalMs: number;
      readonly timeoutMs: number;
      readonly startPeriodMs: number;
      readonly retries: number;
    };

/**
 * A [Container] unit, validated. Strings keep their `%` specifiers and `$VAR` references: the
 * runtime expands them on the host, as it does for [Service] command lines.
 */
export interface ContainerSpec extends Supervision {
  readonly image: string;
  /** Pull=: when to pull the image (default `missing`; `never` for images built on the hosts). */
  readonly pull: PullPolicy;
  /** Exec=: the command (words); absent means the image's CMD. */
  readonly exec?: readonly string[];
  /** Entrypoint=: overrides the image's ENTRYPOINT. */
  readonly entrypoint?: readonly string[];
  /** ContainerName=; absent lets the runtime derive a name from the unit name. */
  readonly containerName?: string;
  readonly publishPorts: readonly PublishPort[];
  readonly volumes: readonly VolumeMount[];
  readonly environment: Readonly<Record<string, string>>;
  readonly environmentFiles: readonly OptionalPath[];
  /** Network=; Docker's default network (`bridge`) when absent. */
  readonly network: ContainerNetwork;
  readonly hostName?: string;
  readonly user?: string;
  readonly group?: string;
  readonly workingDir?: string;
  readonly labels: Readonly<Record<string, string>>;
  /** Absent: the image's own HEALTHCHECK, if it has one. */
  readonly health?: ContainerHealth;
  /** StopSignal=, canonical (`SIGTERM`). */
  readonly stopSignal: string;
}

/** podman's health-check defaults. */
export const DEFAULT_HEALTH = { intervalMs: 30_000, timeoutMs: 30_000, startPeriodMs: 0, retries: 3 };

const CONTAINER_OWN_KEYS = [
  'Image',
  'Pull',
  'Exec',
  'Entrypoint',
  'ContainerName',
  'PublishPort',
  'Volume',
  'Environment',
  'EnvironmentFile',
  'Network',
  'HostName',
  'User',
  'Group',
  'WorkingDir',
  'Label',
  'HealthCmd',
  'HealthInterval',
  'HealthRetries',
  'HealthTimeout',
  'HealthStartPeriod',
  'StopSignal',
] as const;

/** Every key [Container] accepts. */
export const CONTAINER_KEYS: readonly string[] = [...CONTAINER_OWN_KEYS, ...SUPERVISION_KEYS];

/** Quadlet keys that fleetts does not implement (it talks to Docker, not podman). */
const QUADLET_ONLY_KEYS = new Set([
  'Pod',
  'AutoUpdate',
  'Rootfs',
  'Secret',
  'Notify',
  'Tmpfs',
  'Mount',
  'AddCapability',
  'DropCapability',
  'AddDevice',
  'Annotation',
  'DNS',
  'DNSSearch',
  'DNSOption',
  'IP',
  'IP6',
  'Sysctl',
  'UserNS',
  'UIDMap',
  'GIDMap',
  'SubUIDMap',
  'SubGIDMap',
  'Ulimit',
  'ReadOnly',
  'ReadOnlyTmpfs',
  'SecurityLabelDisable',
  'SecurityLabelType',
  'SecurityLabelLevel',
  'SecurityLabelFileType',
  'SecurityLabelNested',
  'NoNewPrivileges',
  'SeccompProfile',
  'Mask',
  'Unmask',
  'ExposeHostPort',
  'GlobalArgs',
  'LogDriver',
  'LogOpt',
  'Timezone',
  'ShmSize',
  'Memory',
  'PidsLimit',
  'RunInit',
  'HealthOnFailure',
  'HealthStartupCmd',
  'HealthStartupInterval',
  'HealthStartupRetries',
  'HealthStartupSuccess',
  'HealthStartupTimeout',
  'HealthLogDestination',
  'HealthMaxLogCount',
  'HealthMaxLogSize',
  'AddHost',
  'ContainersConfModule',
  'EnvironmentHost',
  'GroupAdd',
  'Personality',
  'ReloadCmd',
  'ReloadSignal',
  'StartWithPod',
  'StopTimeout',
  'Retry',
  'RetryDelay',
]);

const STOP_TIMEOUT_HINT = 'use TimeoutStopSec= (seconds or a time span such as 30s)';

const imageValue = valueSchema((value) => {
  if (/^[A-Za-z0-9][A-Za-z0-9._\-/:@+%]*$/.test(value)) return value;
  throw new ValueProblem(
    'not an image reference; use a name such as fleetts/apache:latest or docker.io/library/nginx:1.27',
  );
});

const containerNameValue = valueSchema((value) => {
  // Specifiers are expanded on the host; check the name with each one standing for a letter.
  const probe = value.replace(/%[A-Za-z%]/g, 'x');
  if (/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(probe)) return value;
  throw new ValueProblem('not a container name; use letters, digits, _ . - and start with a letter or digit');
});

const hostNameValue = valueSchema((value) => {
  const probe = value.replace(/%[A-Za-z%]/g, 'x');
  if (
    probe.length <= 253 &&
    /^[A-Za-z0-9]([A-Za-z0-9-]{0,62})?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62})?)*$/.test(probe)
  ) {
    return value;
  }
  throw new ValueProblem('not a host name; use letters, digits and - in dot-separated labels');
});

const workingDirValue = valueSchema((value) => {
  if (value.startsWith('/')) return value;
  throw new ValueProblem('not an absolute path; use a directory inside the container such as /srv/app');
});

const networkValue = valueSchema((value): ContainerNetwork => {
  if (value === 'host' || value === 'none' || value === 'bridge') return { kind: value };
  if (value.endsWith('.network')) {
    throw new ValueProblem(
      'Quadlet .network units are not supported by fleetts; create the Docker network on each host and give its name',
    );
  }
  if (/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(value)) return { kind: 'named', name: value };
  throw new ValueProblem('not a network; use host, none, bridge or the name of a Docker network');
});

const PORT_HINT = 'use [ip:]hostPort:containerPort[/tcp|udp|sctp], e.g. 8080:80 or 127.0.0.1:8080:80/tcp';

export const publishPortValue = valueSchema((value): PublishPort => {
  let rest = value;
  let protocol: PublishPort['protocol'] = 'tcp';
  const slash = rest.lastIndexOf('/');
  if (slash >= 0) {
    const proto = rest.slice(slash + 1);
    if (proto !== 'tcp' && proto !== 'udp' && proto !== 'sctp') {
      throw new ValueProblem(`unknown protocol "${proto}"; ${PORT_HINT}`);
    }
    protocol = proto;
    rest = rest.slice(0, slash);
  }
  let hostIp: string | undefined;
  const bracketed = /^\[([^\]]*)\]:(.*)$/.exec(rest);
  let parts: string[];
  if (bracketed !== null) {
    hostIp = bracketed[1] ?? '';
    parts = (bracketed[2] ?? '').split(':');
    if (parts.length !== 2) throw new ValueProblem(PORT_HINT);
  } else {
    parts = rest.split(':');
    if (parts.length === 3) hostIp = parts.shift();
    else if (parts.length !== 2) {
      throw new ValueProblem(
        parts.length === 1 ? `a container port alone gets a random host port; ${PORT_HINT}` : PORT_HINT,
      );
    }
  }
  if (hostIp !== undefined && isIP(hostIp) === 0) {
    throw new ValueProblem(`"${hostIp}" is not an IP address; ${PORT_HINT}`);
  }
  const [hostPart = '', containerPart = ''] = parts;
  const hostPort = hostPart === '' && hostIp !== undefined ? undefined : port(hostPart, 'host');
  const containerPort = port(containerPart, 'container');
  return {
    ...(hostIp === undefined ? {} : { hostIp }),
    ...(hostPort === undefined ? {} : { hostPort }),
    containerPort,
    protocol,
  };
});

function port(text: string, which: string): number {
  if (/^[0-9]+-[0-9]+$/.test(text)) {
    throw new ValueProblem(`port ranges are not supported; publish each port with its own PublishPort= line`);
  }
  const n = /^[0-9]{1,5}$/.test(text) ? Number(text) : NaN;
  if (!(n >= 1 && n <= 65535)) {
    throw new ValueProblem(`${which} port "${text}" is not a port number (1…65535); ${PORT_HINT}`);
  }
  return n;
}

const VOLUME_OPTIONS = [
  'ro',
  'rw',
  'z',
  'Z',
  'shared',
  'rshared',
  'slave',
  'rslave',
  'private',
  'rprivate',
  'nocopy',
];
const VOLUME_HINT = 'use /host/path:/container/path[:ro], volume-name:/container/path or /container/path';

export const volumeValue = valueSchema((value): VolumeMount => {
  const parts = value.split(':');
  if (parts.length === 1) {
    if (!value.startsWith('/')) throw new ValueProblem(`not an absolute container path; ${VOLUME_HINT}`);
    return { kind: 'anonymous', target: value };
  }
  if (parts.length > 3) throw new ValueProblem(`too many ":"; ${VOLUME_HINT}`);
  const [source = '', target = '', optionText] = parts;
  if (!target.startsWith('/')) {
    throw new ValueProblem(`the container path "${target}" is not absolute; ${VOLUME_HINT}`);
  }
  const options = optionText === undefined ? [] : optionText.split(',');
  for (const option of options) {
    if (!VOLUME_OPTIONS.includes(option)) {
      throw new ValueProblem(`unknown volume option "${option}"; use ${VOLUME_OPTIONS.join(', ')}`);
    }
  }
  if (options.includes('ro') && options.includes('rw')) {
    throw new ValueProblem('both ro and rw are given; use one of them');
  }
  if (source.startsWith('/')) return { kind: 'bind', source, target, options };
  if (source.endsWith('.volume')) {
    throw new ValueProblem(
      'Quadlet .volume units are not supported by fleetts; name a Docker volume or a host path',
    );
  }
  if (/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(source)) return { kind: 'named', name: source, target, options };
  throw new ValueProblem(
    `the source "${source}" is neither an absolute host path nor a volume name; ${VOLUME_HINT}`,
  );
});

const pullValue = enumSchema(PULL_POLICIES);
const healthTimeValue = timeSpanValue({ allowInfinity: false });
const healthRetriesValue = integerValue(1, 1_000_000);

type HealthKey = 'HealthInterval' | 'HealthRetries' | 'HealthTimeout' | 'HealthStartPeriod';

/**
 * The [Container] section (all `[Container]` sections merged). `unitEntries` are the [Unit]
 * entries (for StartLimit*); `headerLine` is the line of the first [Container] header, for errors
 * about what is missing. Throws UnitFileError naming file, line and key.
 */
export function parseContainerSection(
  ctx: SectionContext,
  entries: readonly UnitEntry[],
  unitEntries: readonly UnitEntry[],
  headerLine: number,
): ContainerSpec {
  let image: string | undefined;
  let pull: PullPolicy = 'missing';
  let exec: string[] | undefined;
  let entrypoint: string[] | undefined;
  let containerName: string | undefined;
  let publishPorts: { port: PublishPort; entry: UnitEntry }[] = [];
  let volumes: VolumeMount[] = [];
  const environment = new Map<string, string>();
  let environmentFiles: OptionalPath[] = [];
  let network: { value: ContainerNetwork; entry?: UnitEntry } = { value: { kind: 'bridge' } };
  let hostName: string | undefined;
  let user: string | undefined;
  let group: string | undefined;
  let workingDir: string | undefined;
  const labels = new Map<string, string>();
  let healthCmd: { command: string; entry: UnitEntry } | undefined;
  const healthSettings = new Map<HealthKey, { value: number; entry: UnitEntry }>();
  let stopSignal = 'SIGTERM';

  for (const entry of entries) {
    const { key, value } = entry;
    const reset = value === '';
    if ((SUPERVISION_KEYS as readonly string[]).includes(key)) continue; // parseSupervision's
    switch (key) {
      case 'Image':
        image = reset ? undefined : checkValue(ctx, entry, imageValue);
        break;
      case 'Pull':
        pull = reset ? 'missing' : checkValue(ctx, entry, pullValue);
        break;
      case 'Exec':
        exec = reset ? undefined : wordsOf(ctx, entry);
        break;
      case 'Entrypoint':
        entrypoint = reset ? undefined : wordsOf(ctx, entry);
        break;
      case 'ContainerName':
        containerName = reset ? undefined : checkValue(ctx, entry, containerNameValue);
        break;
      case 'PublishPort':
        if (reset) publishPorts = [];
        else publishPorts.push({ port: checkValue(ctx, entry, publishPortValue), entry });
        break;
      case 'Volume':
        if (reset) volumes = [];
        else volumes.push(checkValue(ctx, entry, volumeValue));
        break;
      case 'Environment':
        if (reset) environment.clear();
        else for (const [name, v] of Object.entries(environmentOf(ctx, entry))) environment.set(name, v);
        break;
      case 'EnvironmentFile':
        if (reset) environmentFiles = [];
        else environmentFiles.push(checkValue(ctx, entry, optionalPathValue));
        break;
      case 'Network':
        network = reset
          ? { value: { kind: 'bridge' } }
          : { value: checkValue(ctx, entry, networkValue), entry };
        break;
      case 'HostName':
        hostName = reset ? undefined : checkValue(ctx, entry, hostNameValue);
        break;
      case 'User':
        user = reset ? undefined : checkValue(ctx, entry, accountValue);
        break;
      case 'Group':
        group = reset ? undefined : checkValue(ctx, entry, accountValue);
        break;
      case 'WorkingDir':
        workingDir = reset ? undefined : checkValue(ctx, entry, workingDirValue);
        break;
      case 'Label':
        if (reset) labels.clear();
        for (const word of reset ? [] : wordsOf(ctx, entry)) {
          const eq = word.indexOf('=');
          if (eq <= 0)
            throw entryError(ctx, entry, `"${word}" is not key=value; use Label=com.example.role=web`);
          labels.set(word.slice(0, eq), word.slice(eq + 1));
        }
        break;
      case 'HealthCmd':
        healthCmd = reset ? undefined : { command: value, entry };
        break;
      case 'HealthInterval':
      case 'HealthTimeout':
      case 'HealthStartPeriod':
        if (reset) healthSettings.delete(key);
        else healthSettings.set(key, { value: checkValue(ctx, entry, healthTimeValue), entry });
        break;
      case 'HealthRetries':
        if (reset) healthSettings.delete(key);
        else healthSettings.set(key, { value: checkValue(ctx, entry, healthRetriesValue), entry });
        break;
      case 'StopSignal':
        stopSignal = reset ? 'SIGTERM' : checkValue(ctx, entry, signalValue);
        break;
      default:
        throw lineError(ctx, entry.line, unknownContainerKey(key));
    }
  }

  if (image === undefined) {
    throw lineError(
      ctx,
      headerLine,
      '[Container] has no Image=; add Image=<image reference>, e.g. Image=fleetts/apache:latest',
    );
  }
  const firstPort = publishPorts[0];
  if (network.value.kind === 'host' && network.entry !== undefined && firstPort !== undefined) {
    const later = firstPort.entry.line > network.entry.line ? firstPort.entry : network.entry;
    throw lineError(
      ctx,
      later.line,
      `PublishPort= has no effect with Network=host (the container already uses the host's ports); remove PublishPort= or use another network`,
    );
  }
  const health = healthOf(ctx, healthCmd, healthSettings);
  return {
    ...parseSupervision(ctx, unitEntries, entries),
    image,
    pull,
    ...(exec === undefined ? {} : { exec }),
    ...(entrypoint === undefined ? {} : { entrypoint }),
    ...(containerName === undefined ? {} : { containerName }),
    publishPorts: publishPorts.map((p) => p.port),
    volumes,
    environment: Object.fromEntries(environment),
    environmentFiles,
    network: network.value,
    ...(hostName === undefined ? {} : { hostName }),
    ...(user === undefined ? {} : { user }),
    ...(group === undefined ? {} : { group }),
    ...(workingDir === undefined ? {} : { workingDir }),
    labels: Object.fromEntries(labels),
    ...(health === undefined ? {} : { health }),
    stopSignal,
  };
}

function healthOf(
  ctx: SectionContext,
  cmd: { command: string; entry: UnitEntry } | undefined,
  settings: ReadonlyMap<HealthKey, { value: number; entry: UnitEntry }>,
): ContainerHealth | undefined {
  const [firstSetting] = settings.values();
  if (cmd === undefined || cmd.command === 'none') {
    if (firstSetting !== undefined) {
      throw lineError(
        ctx,
        firstSetting.entry.line,
        `${firstSetting.entry.key}= has no effect without a HealthCmd=; add HealthCmd=<command run in the container>, e.g. HealthCmd=curl -fsS http://localhost/`,
      );
    }
    return cmd === undefined ? undefined : { kind: 'disabled' };
  }
  return {
    kind: 'command',
    command: cmd.command,
    intervalMs: settings.get('HealthInterval')?.value ?? DEFAULT_HEALTH.intervalMs,
    timeoutMs: settings.get('HealthTimeout')?.value ?? DEFAULT_HEALTH.timeoutMs,
    startPeriodMs: settings.get('HealthStartPeriod')?.value ?? DEFAULT_HEALTH.startPeriodMs,
    retries: settings.get('HealthRetries')?.value ?? DEFAULT_HEALTH.retries,
  };
}

function unknownContainerKey(key: string): string {
  const known = [...CONTAINER_KEYS];
  if (key === 'PodmanArgs') {
    return `PodmanArgs is not supported by fleetts (it runs containers through the Docker API); use the typed keys: ${known.join(', ')}`;
  }
  if (key === 'StopTimeout') {
    return unknownKeyMessage('Container', key, known, {
      unsupported: `StopTimeout is not supported by fleetts; ${STOP_TIMEOUT_HINT}`,
    });
  }
  if (QUADLET_ONLY_KEYS.has(key)) {
    return unknownKeyMessage('Container', key, known, {
      unsupported: `Quadlet key "${key}" is not supported by fleetts`,
    });
  }
  if (key.startsWith('Exec')) {
    return unknownKeyMessage('Container', key, known, {
      unsupported: `"${key}" is a [Service] key; in [Container] the command is Exec= (words, as podman run's command)`,
    });
  }
  if (key === 'KillSignal') {
    return unknownKeyMessage('Container', key, known, {
      unsupported: '"KillSignal" is a [Service] key; in [Container] use StopSignal=',
    });
  }
  if (key === 'WorkingDirectory') {
    return unknownKeyMessage('Container', key, known, {
      unsupported: '"WorkingDirectory" is a [Service] key; in [Container] use WorkingDir=',
    });
  }
  return unknownKeyMessage('Container', key, known).replace('; known keys:', '; supported keys:');
}
