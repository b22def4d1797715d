// `fleetd`: reads settings (flags > FLEETTS_* environment > config file > defaults), builds the
// real adapters and runs until SIGTERM/SIGINT. Errors a user can fix are one line, exit code 2/1.
import { readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { FleetError, UsageError } from '../lib/errors.js';
import { systemClock } from '../lib/clock.js';
import { createRandom, entropySeed } from '../lib/random.js';
import { createLogger } from '../lib/logger.js';
import { VERSION } from '../lib/version.js';
import { createEtcdRegistry } from '../registry/etcd-registry.js';
import {
  configFromEnv,
  envName,
  kebab,
  parseConfigFile,
  resolveConfig,
  SETTINGS,
  type ConfigInput,
  type ConfigSource,
  type DaemonConfig,
} from './config.js';
import { Fleetd, type FleetdDeps } from './fleetd.js';
import { checkApiToken } from '../api/api-token.js';
import type { Logger } from '../lib/logger.js';
import { ProcessRuntime } from '../runtime/process-runtime.js';
import { FleetMetrics } from '../metrics/fleet-metrics.js';
import { runtimeEventSink } from './runtime-events.js';
import { resolveMachineId, resolvePublicIp } from './host-identity.js';

const HELP: Record<keyof DaemonConfig, string> = {
  etcdEndpoints: 'comma-separated etcd client URLs',
  etcdCaFile: 'CA certificate (PEM) to verify etcd with',
  etcdCertFile: 'client certificate (PEM) for etcd',
  etcdKeyFile: 'client key (PEM) for etcd',
  etcdUsername: 'etcd user name',
  etcdPassword: 'etcd password (prefer the environment variable)',
  etcdKeyPrefix: 'etcd key prefix of this cluster',
  machineId: "this host's machine id (default: /etc/machine-id, else generated in the state dir)",
  publicIp: "this host's IP as units and peers see it (default: the default-route interface's)",
  metadata: 'machine metadata, k=v[,k2=v2] (matched by MachineMetadata=)',
  leaseTtlMs: 'membership lease TTL in ms: a dead host is noticed after about this long',
  stateDir: 'where fleetd keeps its state (machine id, unit logs, supervisors)',
  logLevel: 'log level (fatal, error, warn, info, debug, trace, silent)',
  apiSocket: "the API's unix socket (mode 0660), what `fleetts` talks to on this host",
  apiListen:
    'also serve the API on TCP host:port (needs --api-token or TLS client certificates off loopback)',
  apiToken: 'bearer token required on the TCP API (and used to reach peers)',
  apiTokenFile: 'file holding the API token',
  apiTlsCert: 'TLS certificate (PEM) of the TCP API',
  apiTlsKey: 'TLS key (PEM) of the TCP API',
  apiTlsClientCa: 'CA (PEM) that client certificates of the TCP API must be signed by',
  runtime:
    'how [Container] units run: docker, process (no Docker on this host), or auto (Docker if it answers)',
  serviceRuntime:
    'how [Service] units run: systemd (transient systemd services; needs systemd as PID 1), process (fleetts supervisors), or auto (systemd where it is PID 1, else process; docs/systemd-runtime.md)',
  dockerHost: 'the Docker daemon (default DOCKER_HOST, else unix:///var/run/docker.sock)',
  processSupervisor:
    'how process units are supervised: host (default: one supervisor for every unit, each under a small Perl shim) or per-unit (one Node supervisor each, about 7 MB PSS); units of either kind are adopted',
  fencePolicy:
    'when cut off from etcd: per-unit (default: stop only AtMostOnce=true units, unless every peer lost etcd too), stop (stop every unit) or keep-running (stop nothing: an AtMostOnce unit may run twice)',
  fenceAfterMs:
    'stop AtMostOnce units after this long without a lease renewal (default 70 % of the lease TTL)',
  maxUnits: 'refuse submits that would store more units than this in the cluster (default 20000)',
  maxUnitFileBytes:
    'refuse submits that would store more unit-file bytes than this in the cluster (default 67108864, 64 MiB; etcd holds 2 GiB by default)',
};

export async function run(argv: readonly string[]): Promise<number> {
  const program = new Command('fleetd')
    .description('fleetd: the fleetts daemon; run one on every host (membership, engine, agent)')
    .version(VERSION, '--version', 'print the version')
    .helpOption('-h, --help', 'show this help')
    .exitOverride()
    .option('--config <file>', 'a config file of `setting = value` lines (e.g. /etc/fleetts/fleetd.conf)');
  for (const key of SETTINGS) {
    program.addOption(new Option(`--${kebab(key)} <value>`, `${HELP[key]} [env ${envName(key)}]`));
  }
  program.addHelpText(
    'after',
    `
Settings come from flags, then FLEETTS_* environment variables, then the config file.

Examples:
  fleetd --etcd-endpoints http://10.0.0.1:2379 --metadata region=eu,disk=ssd
  FLEETTS_ETCD_ENDPOINTS=http://127.0.0.1:2379 fleetd --config /etc/fleetts/fleetd.conf`,
  );

  try {
    program.parse([...argv], { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    throw err;
  }

  try {
    const config = await loadConfig(program.opts());
    return await serve(config);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`fleetd: ${err.message}\n`);
      return 2;
    }
    if (err instanceof FleetError) {
      process.stderr.write(`fleetd: ${err.message}\n`);
      return 1;
    }
    process.stderr.write(
      `fleetd: unexpected error (this is a bug in fleetts; please report it):\n${String((err as Error).stack ?? err)}\n`,
    );
    return 1;
  }
}

async function loadConfig(opts: Record<string, unknown>): Promise<DaemonConfig> {
  const sources: ConfigSource[] = [];
  const file = typeof opts['config'] === 'string' ? opts['config'] : process.env['FLEETTS_CONFIG'];
  if (file !== undefined) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      throw new UsageError(
        `cannot read config file ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
      );
    }
    sources.push({ name: file, values: parseConfigFile(text, file) });
  }
  sources.push({ name: 'environment', values: configFromEnv(process.env) });
  const flags: ConfigInput = {};
  for (const key of SETTINGS) if (opts[key] !== undefined) flags[key] = opts[key];
  sources.push({ name: 'command line', values: flags });
  return resolveConfig(sources);
}

async function serve(config: DaemonConfig): Promise<number> {
  const log = createLogger({ level: config.logLevel, name: 'fleetd' });
  const api = await readApiSecrets(config);
  const machineId = await resolveMachineId(config.machineId, config.stateDir);
  const publicIp = await resolvePublicIp(config.publicIp);
  // One Random per process, seeded from entropy: each fleetd of the cluster draws its own retry jitter.
  const random = createRandom(entropySeed());
  // One set of metrics per fleetd: etcd requests, engine, agent and runtimes feed it (docs/metrics.md).
  const metrics = new FleetMetrics();
  const registry = createEtcdRegistry({
    random,
    metrics,
    endpoints: config.etcdEndpoints,
    prefix: config.etcdKeyPrefix,
    // src/registry/member-gate.ts: members that answer no TCP connect are left out of the choice.
    onSilentMembers: (silent) =>
      silent.length === 0
        ? log.info({ event: 'etcd.members_answering' }, 'every etcd member answers again')
        : log.warn(
            { event: 'etcd.members_silent', members: silent },
            `etcd member(s) ${silent.join(', ')} answer nothing: calls and watches go to the others`,
          ),
    ...(config.etcdCaFile === undefined
      ? {}
      : {
          tls: {
            caFile: config.etcdCaFile,
            ...(config.etcdCertFile === undefined ? {} : { certFile: config.etcdCertFile }),
            ...(config.etcdKeyFile === undefined ? {} : { keyFile: config.etcdKeyFile }),
          },
        }),
    ...(config.etcdUsername === undefined
      ? {}
      : { auth: { username: config.etcdUsername, password: config.etcdPassword ?? '' } }),
  });
  const runtimes = await buildRuntimes(config, machineId, log, metrics);
  const daemon = new Fleetd({
    config,
    registry,
    clock: systemClock,
    random,
    log,
    machineId,
    publicIp,
    runtimes,
    api,
    metrics,
  });

  let stopping: Promise<void> | undefined;
  const stopped = new Promise<void>((resolve) => {
    const onSignal = (signal: string): void => {
      log.info({ event: 'fleetd.stopping', signal }, `received ${signal}; shutting down`);
      stopping ??= daemon.stop().then(resolve, resolve);
    };
    process.once('SIGTERM', () => onSignal('SIGTERM'));
    process.once('SIGINT', () => onSignal('SIGINT'));
  });
  try {
    await daemon.start();
  } catch (err) {
    await registry.close().catch(() => undefined);
    throw err;
  }
  await stopped;
  log.info({ event: 'fleetd.stopped' }, 'fleetd stopped');
  return 0;
}

async function buildRuntimes(
  config: DaemonConfig,
  machineId: string,
  log: Logger,
  metrics: FleetMetrics,
): Promise<FleetdDeps['runtimes']> {
  const process = await buildServiceRuntime(config, log, metrics);
  if (config.runtime === 'process') return { process };
  const dockerHost =
    config.dockerHost ?? globalThis.process.env['DOCKER_HOST'] ?? 'unix:///var/run/docker.sock';
  if (!dockerHost.startsWith('unix://')) {
    throw new UsageError(`docker-host ${dockerHost}: only unix:// sockets are supported`);
  }
  const socketPath = dockerHost.slice('unix://'.length);
  // Loaded only here: a host that runs no containers (--runtime process, a Raspberry Pi without
  // Docker) does not pay for dockerode and its SSH stack (about 12–15 MB of a fleetd's RSS).
  const [{ DockerRuntime }, { default: Dockerode }] = await Promise.all([
    import('../runtime/docker-runtime.js'),
    import('dockerode'),
  ]);
  const container = new DockerRuntime({
    machine: machineId,
    socketPath,
    log: runtimeEventSink(log, 'docker', metrics),
  });
  try {
    await new Dockerode({ socketPath }).ping();
  } catch (err) {
    if (config.runtime === 'docker') {
      throw new UsageError(
        `runtime docker: the Docker daemon at ${dockerHost} does not answer (${(err as Error).message}); start dockerd or use --runtime process`,
      );
    }
    log.info(
      { event: 'fleetd.no_docker', dockerHost },
      `no Docker at ${dockerHost}: [Container] units cannot run on this host`,
    );
    return { process };
  }
  return { process, container };
}

/** What runs [Service] units: systemd where it is PID 1 (or when asked), else fleetts' supervisors. */
async function buildServiceRuntime(
  config: DaemonConfig,
  log: Logger,
  metrics: FleetMetrics,
): Promise<FleetdDeps['runtimes']['process']> {
  const sink = runtimeEventSink(log, 'process', metrics);
  if (config.serviceRuntime !== 'process') {
    // Loaded only here, as Docker's: a host with the process runtime does not pay for it.
    const { SystemdRuntime, checkSystemd, systemdIsPid1 } = await import('../runtime/systemd-runtime.js');
    // Units the process runtime started here still run under its supervisors, which the systemd
    // runtime cannot adopt: `auto` keeps the process runtime rather than start them a second time.
    const processUnits = unitsOfProcessRuntime(config.stateDir);
    if (systemdIsPid1() && (config.serviceRuntime === 'systemd' || processUnits.length === 0)) {
      await checkSystemd().catch((err: unknown) => {
        throw new UsageError(`service-runtime ${config.serviceRuntime}: ${(err as Error).message}`);
      });
      if (processUnits.length > 0)
        log.warn(
          {
            event: 'fleetd.process_units_left',
            units: processUnits.slice(0, 10),
            count: processUnits.length,
          },
          `${processUnits.length} units of the process runtime are left in ${config.stateDir}/units; fleetd will not adopt them with the systemd runtime (stop them with --service-runtime process first)`,
        );
      log.info(
        { event: 'fleetd.service_runtime', runtime: 'systemd' },
        '[Service] units run as transient systemd units',
      );
      return new SystemdRuntime({ stateDir: config.stateDir, log: sink });
    }
    if (processUnits.length > 0 && systemdIsPid1())
      log.info(
        { event: 'fleetd.service_runtime', runtime: 'process', units: processUnits.length },
        `[Service] units keep running under fleetts' supervisors: ${processUnits.length} of them are in ${config.stateDir}/units (docs/systemd-runtime.md)`,
      );
    if (config.serviceRuntime === 'systemd') {
      throw new UsageError(
        'service-runtime systemd: systemd is not PID 1 on this host (no /run/systemd/system, or /proc/1/comm is not systemd); use --service-runtime process',
      );
    }
  }
  return new ProcessRuntime({
    stateDir: config.stateDir,
    supervisor: config.processSupervisor,
    log: sink,
  });
}

/** The units the process runtime keeps records of under the state dir (`units/<unit>/`). */
function unitsOfProcessRuntime(stateDir: string): string[] {
  try {
    return readdirSync(join(stateDir, 'units'));
  } catch {
    return [];
  }
}

async function readApiSecrets(config: DaemonConfig): Promise<NonNullable<FleetdDeps['api']>> {
  const read = async (what: string, path: string): Promise<string> => {
    try {
      return await readFile(path, 'utf8');
    } catch (err) {
      throw new UsageError(
        `cannot read ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
      );
    }
  };
  const token =
    config.apiToken ??
    (config.apiTokenFile === undefined
      ? undefined
      : checkApiToken(
          (await read('api-token-file', config.apiTokenFile)).trim(),
          `api-token-file ${config.apiTokenFile}`,
        ));
  const tls =
    config.apiTlsCert === undefined || config.apiTlsKey === undefined
      ? undefined
      : {
          cert: await read('api-tls-cert', config.apiTlsCert),
          key: await read('api-tls-key', config.apiTlsKey),
          ...(config.apiTlsClientCa === undefined
            ? {}
            : { ca: await read('api-tls-client-ca', config.apiTlsClientCa) }),
        };
  return { ...(token === undefined ? {} : { token }), ...(tls === undefined ? {} : { tls }) };
}
