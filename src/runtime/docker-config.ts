// ContainerSpec (parsed at submit, host-independent) → ContainerUnitConfig (final, for this host),
// and that config → the body of Docker's "create container" call. Both pure; the agent calls
// containerConfigFromSpec just before `runtime.start`, as processConfigFromServiceSpec for services.

import {
  buildUnitEnvironment,
  type RuntimeConfigInput,
  type RuntimeConfigResult,
} from './unit-environment.js';
import type { ContainerCreateOptions } from 'dockerode';
import type {
  ContainerHealth,
  ContainerNetwork,
  ContainerSpec,
  PublishPort,
  PullPolicy,
  VolumeMount,
} from '../unit/container.js';
import { expandExecArgs, type ExecCommand } from '../unit/exec.js';
import { expandSpecifiers } from '../unit/specifiers.js';
import { encodeContainerConfigLabel } from './records.js';
import type { RestartPolicy, RuntimeUnitConfigBase } from './runtime.js';

/** A `[Container]` unit as the Docker runtime runs it. Every field is final (expanded, defaults applied). */
export interface ContainerUnitConfig extends RuntimeUnitConfigBase {
  readonly kind: 'container';
  readonly image: string;
  /** Only `never` and `missing` can work: fleetts hosts build their images and have no registry. */
  readonly pull: PullPolicy;
  /** The container's name (ContainerName=, or derived from the unit name). */
  readonly name: string;
  /** Exec=: replaces the image's CMD; absent keeps it. */
  readonly cmd?: readonly string[];
  /** Entrypoint=: replaces the image's ENTRYPOINT; absent keeps it. */
  readonly entrypoint?: readonly string[];
  /** The container's whole environment on top of the image's (the agent's FLEETTS_* included). */
  readonly env: Readonly<Record<string, string>>;
  readonly network: ContainerNetwork;
  readonly publishPorts: readonly PublishPort[];
  readonly volumes: readonly VolumeMount[];
  /** `user` or `user:group`, as Docker's User. */
  readonly user?: string;
  readonly workingDir?: string;
  readonly hostName?: string;
  /** Absent: the image's own HEALTHCHECK; `disabled`: none, even if the image has one. */
  readonly health?: ContainerHealth;
  /** TimeoutStopSec=: the stop signal's grace period before SIGKILL; 0 means no limit. */
  readonly stopTimeoutMs: number;
  /** StopSignal=, e.g. `SIGTERM`. */
  readonly stopSignal: string;
  /**
   * Restart= with systemd's meanings. fleetts restarts the container itself (Docker's policy is
   * always `no`), after `restartSecMs`, failing the unit when more than `startLimitBurst` automatic
   * starts fall within `startLimitIntervalMs` (0 disables the limit).
   */
  readonly restart: RestartPolicy;
  readonly restartSecMs: number;
  readonly startLimitBurst: number;
  readonly startLimitIntervalMs: number;
  /** Label= entries; the runtime's own `fleetts.*` labels are added on top and win. */
  readonly labels: Readonly<Record<string, string>>;
}

export type ContainerConfigInput = RuntimeConfigInput<ContainerSpec>;

export type ContainerConfigResult = RuntimeConfigResult<ContainerUnitConfig>;

/**
 * Builds the runtime config: `%` specifiers in every string; `$VAR`/`${VAR}` (systemd's rules,
 * against the final environment) in Exec= and Entrypoint= words and `${VAR}` in volume paths,
 * container and host names and labels. A missing EnvironmentFile= or a bad specifier is an `error`.
 */
export function containerConfigFromSpec(input: ContainerConfigInput): ContainerConfigResult {
  const { spec, specifiers } = input;
  const warnings: string[] = [];
  try {
    const built = buildUnitEnvironment(input, warnings);
    if (built.kind === 'error') return built;
    const env = built.env;
    const text = (s: string, key: string): string =>
      expandWord(expandSpecifiers(s, specifiers, { where: `${key}=` }), env);
    const words = (ws: readonly string[], key: string): string[] => {
      const argv = ws.map((w) => expandSpecifiers(w, specifiers, { where: `${key}=` }));
      const cmd: ExecCommand = {
        path: argv[0] ?? '',
        argv,
        ignoreFailure: false,
        argv0Override: false,
        privileged: false,
        noExpand: false,
        raw: ws.join(' '),
      };
      return expandExecArgs(cmd, env);
    };
    const volumes = spec.volumes.map((v): VolumeMount => {
      switch (v.kind) {
        case 'bind':
          return { ...v, source: text(v.source, 'Volume'), target: text(v.target, 'Volume') };
        case 'named':
          return { ...v, name: text(v.name, 'Volume'), target: text(v.target, 'Volume') };
        case 'anonymous':
          return { ...v, target: text(v.target, 'Volume') };
      }
    });
    const labels: Record<string, string> = {};
    for (const [k, v] of Object.entries(spec.labels)) labels[text(k, 'Label')] = text(v, 'Label');
    const user =
      spec.user === undefined
        ? undefined
        : text(spec.user, 'User') + (spec.group === undefined ? '' : `:${text(spec.group, 'Group')}`);
    if (spec.user === undefined && spec.group !== undefined) {
      warnings.push('Group= has no effect without User= (Docker sets a group only with a user)');
    }
    if (spec.pull === 'always' || spec.pull === 'newer') {
      warnings.push(
        `Pull=${spec.pull} needs a registry; fleetts hosts build their images (scripts/build-images.sh)`,
      );
    }
    const config: ContainerUnitConfig = {
      kind: 'container',
      unit: input.unit,
      hash: input.hash,
      image: text(spec.image, 'Image'),
      pull: spec.pull,
      name:
        spec.containerName === undefined
          ? defaultContainerName(input.unit)
          : text(spec.containerName, 'ContainerName'),
      ...(spec.exec === undefined ? {} : { cmd: words(spec.exec, 'Exec') }),
      ...(spec.entrypoint === undefined ? {} : { entrypoint: words(spec.entrypoint, 'Entrypoint') }),
      env,
      network: spec.network,
      publishPorts: spec.publishPorts,
      volumes,
      ...(user === undefined ? {} : { user }),
      ...(spec.workingDir === undefined ? {} : { workingDir: text(spec.workingDir, 'WorkingDir') }),
      ...(spec.hostName === undefined ? {} : { hostName: text(spec.hostName, 'HostName') }),
      ...(spec.health === undefined ? {} : { health: spec.health }),
      stopTimeoutMs: Number.isFinite(spec.timeoutStopMs) ? spec.timeoutStopMs : 0,
      stopSignal: spec.stopSignal,
      // fleetts has no watchdog, so on-watchdog never fires.
      restart: spec.restart === 'on-watchdog' ? 'no' : spec.restart,
      restartSecMs: spec.restartMs,
      startLimitBurst: spec.startLimitBurst,
      startLimitIntervalMs: spec.startLimitIntervalMs,
      labels,
    };
    return { kind: 'ok', config, warnings };
  } catch (err) {
    return { kind: 'error', reason: err instanceof Error ? err.message : String(err) };
  }
}

/** `web@1.unit` → `web-1.unit`: Docker names allow only `[A-Za-z0-9][A-Za-z0-9_.-]*`. */
export function defaultContainerName(unit: string): string {
  const name = unit.replace(/[^A-Za-z0-9_.-]/g, '-');
  return /^[A-Za-z0-9]/.test(name) ? name : `u${name}`;
}

/**
 * The labels that make a container fleetts's; LABEL_CONFIG holds the config for adoption, as a
 * versioned record (records.ts). The others are plain strings.
 */
export const LABEL_UNIT = 'fleetts.unit';
export const LABEL_HASH = 'fleetts.hash';
export const LABEL_MACHINE = 'fleetts.machine';
export const LABEL_RUNTIME = 'fleetts.runtime';
export const LABEL_CONFIG = 'fleetts.config';

export interface RuntimeIdentity {
  readonly machine: string;
  /** Distinguishes runtimes sharing one dockerd (tests, `fleetts dev` without per-host daemons). */
  readonly instance: string;
}

/** Docker's create body for `config`; Docker's restart policy stays `no` (fleetts restarts). */
export function dockerCreateOptions(
  config: ContainerUnitConfig,
  id: RuntimeIdentity,
): ContainerCreateOptions {
  const ports: Record<string, { HostIp?: string; HostPort: string }[]> = {};
  const exposed: Record<string, object> = {};
  for (const p of config.publishPorts) {
    const key = `${p.containerPort}/${p.protocol}`;
    exposed[key] = {};
    (ports[key] ??= []).push({
      ...(p.hostIp === undefined ? {} : { HostIp: p.hostIp }),
      HostPort: p.hostPort === undefined ? '' : String(p.hostPort),
    });
  }
  const binds: string[] = [];
  const anonymous: Record<string, object> = {};
  for (const v of config.volumes) {
    if (v.kind === 'anonymous') {
      anonymous[v.target] = {};
      continue;
    }
    const source = v.kind === 'bind' ? v.source : v.name;
    binds.push(`${source}:${v.target}${v.options.length > 0 ? `:${v.options.join(',')}` : ''}`);
  }
  const stopSeconds =
    config.stopTimeoutMs > 0 ? Math.max(1, Math.ceil(config.stopTimeoutMs / 1000)) : NO_LIMIT_S;
  return {
    name: config.name,
    Image: config.image,
    ...(config.cmd === undefined ? {} : { Cmd: [...config.cmd] }),
    ...(config.entrypoint === undefined ? {} : { Entrypoint: [...config.entrypoint] }),
    Env: Object.entries(config.env).map(([k, v]) => `${k}=${v}`),
    ...(config.user === undefined ? {} : { User: config.user }),
    ...(config.workingDir === undefined ? {} : { WorkingDir: config.workingDir }),
    ...(config.hostName === undefined ? {} : { Hostname: config.hostName }),
    ...(config.health === undefined ? {} : { Healthcheck: healthcheckOf(config.health) }),
    ExposedPorts: exposed,
    Volumes: anonymous,
    StopSignal: config.stopSignal,
    StopTimeout: stopSeconds,
    Labels: {
      ...config.labels,
      [LABEL_UNIT]: config.unit,
      [LABEL_HASH]: config.hash,
      [LABEL_MACHINE]: id.machine,
      [LABEL_RUNTIME]: id.instance,
      [LABEL_CONFIG]: encodeContainerConfigLabel(config),
    },
    HostConfig: {
      NetworkMode: networkMode(config.network),
      PortBindings: ports,
      Binds: binds,
      RestartPolicy: { Name: 'no' },
    },
  };
}

/** TimeoutStopSec=infinity: Docker needs a number; a day stands for "no limit". */
export const NO_LIMIT_S = 24 * 3600;

function healthcheckOf(h: ContainerHealth): NonNullable<ContainerCreateOptions['Healthcheck']> {
  if (h.kind === 'disabled') return { Test: ['NONE'] };
  const ns = (ms: number): number => Math.round(ms * 1_000_000);
  return {
    Test: ['CMD-SHELL', h.command],
    Interval: ns(h.intervalMs),
    Timeout: ns(h.timeoutMs),
    StartPeriod: ns(h.startPeriodMs),
    Retries: h.retries,
  };
}

function networkMode(n: ContainerNetwork): string {
  return n.kind === 'named' ? n.name : n.kind;
}

/** `${VAR}` in a word (not the whole-word `$VAR` split, which only argv has). */
function expandWord(word: string, env: Readonly<Record<string, string>>): string {
  return word.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (m, name: string | undefined) =>
    name === undefined ? '$' : Object.hasOwn(env, name) ? (env[name] ?? '') : '',
  );
}
