// What `fleetts announce` and `fleetts upstream` share: they talk to etcd directly (sidekicks, like
// fleet's etcdctl ones), with settings from flags or the FLEETTS_* environment the agent gives units.
import { hostname } from 'node:os';
import type { Command } from 'commander';
import { z } from 'zod';
import { UsageError } from '../lib/errors.js';
import { createLogger, type Logger } from '../lib/logger.js';
import type { Random } from '../lib/random.js';
import type { SidekickMetrics } from '../metrics/sidekick-metrics.js';
import type { EtcdRegistry } from '../registry/etcd-registry.js';
import { parseTimeSpan } from '../unit/time-span.js';

/** Injected by tests; the real CLI uses the process's environment and signals. */
export interface DiscoveryCommandDeps {
  readonly env?: NodeJS.ProcessEnv;
  /** Stops the command (instead of SIGTERM/SIGINT). */
  readonly signal?: AbortSignal;
  readonly log?: Logger;
  readonly hostname?: string;
  /** Draws retry jitter (default: seeded from the OS's entropy, one per command run). */
  readonly random?: Random;
}

export interface EtcdFlags {
  readonly etcdEndpoints?: string;
  readonly etcdKeyPrefix?: string;
  readonly etcdCaFile?: string;
  readonly etcdCertFile?: string;
  readonly etcdKeyFile?: string;
  readonly logLevel?: string;
  readonly metricsListen?: string;
}

export const ETCD_OPTIONS_HELP = `etcd settings may also come from FLEETTS_ETCD_ENDPOINTS, FLEETTS_ETCD_KEY_PREFIX,
FLEETTS_ETCD_CA_FILE, FLEETTS_ETCD_CERT_FILE and FLEETTS_ETCD_KEY_FILE (fleetd sets the first two
for every unit it starts).`;

export function addEtcdOptions(cmd: Command): Command {
  return cmd
    .option('--etcd-endpoints <urls>', 'etcd client URLs, comma-separated (default: http://127.0.0.1:2379)')
    .option('--etcd-key-prefix <prefix>', "the cluster's key prefix in etcd (default: /fleetts/v1/)")
    .option('--etcd-ca-file <path>', 'CA certificate (PEM) of an https etcd')
    .option('--etcd-cert-file <path>', 'client certificate (PEM) for etcd')
    .option('--etcd-key-file <path>', 'client key (PEM) for etcd')
    .option('--log-level <level>', 'fatal, error, warn, info, debug or trace (JSON lines on stderr)', 'info');
}

const etcdSchema = z.object({
  endpoints: z
    .string()
    .transform((s) =>
      s
        .split(',')
        .map((e) => e.trim())
        .filter((e) => e !== ''),
    )
    .pipe(z.array(z.url({ protocol: /^https?$/, error: 'must be URLs like http://127.0.0.1:2379' })).min(1)),
  prefix: z.string().regex(/^\/[A-Za-z0-9_./-]*\/$/, 'must start and end with "/" (example: /fleetts/v1/)'),
  caFile: z.string().min(1).optional(),
  certFile: z.string().min(1).optional(),
  keyFile: z.string().min(1).optional(),
});

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** The etcd settings of a command, validated: flags win over the FLEETTS_* environment. */
export interface EtcdConnection {
  readonly endpoints: string[];
  readonly prefix: string;
  readonly tls?: { readonly caFile: string; readonly certFile?: string; readonly keyFile?: string };
}

/** Flags win over the environment; throws UsageError naming the bad setting. */
export function etcdConnection(flags: EtcdFlags, env: NodeJS.ProcessEnv): EtcdConnection {
  const pick = (flag: string | undefined, name: string): string | undefined =>
    flag ?? (env[name] === '' ? undefined : env[name]);
  const parsed = etcdSchema.safeParse({
    endpoints: pick(flags.etcdEndpoints, 'FLEETTS_ETCD_ENDPOINTS') ?? 'http://127.0.0.1:2379',
    prefix: pick(flags.etcdKeyPrefix, 'FLEETTS_ETCD_KEY_PREFIX') ?? '/fleetts/v1/',
    caFile: pick(flags.etcdCaFile, 'FLEETTS_ETCD_CA_FILE'),
    certFile: pick(flags.etcdCertFile, 'FLEETTS_ETCD_CERT_FILE'),
    keyFile: pick(flags.etcdKeyFile, 'FLEETTS_ETCD_KEY_FILE'),
  });
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const names: Record<string, string> = {
      endpoints: '--etcd-endpoints',
      prefix: '--etcd-key-prefix',
      caFile: '--etcd-ca-file',
      certFile: '--etcd-cert-file',
      keyFile: '--etcd-key-file',
    };
    throw new UsageError(
      `${names[String(issue?.path[0])] ?? 'etcd setting'}: ${issue?.message ?? 'invalid'}`,
    );
  }
  const o = parsed.data;
  if ((o.certFile === undefined) !== (o.keyFile === undefined))
    throw new UsageError('--etcd-cert-file and --etcd-key-file go together: give both or neither');
  if (o.certFile !== undefined && o.caFile === undefined)
    throw new UsageError(
      '--etcd-cert-file needs --etcd-ca-file (the CA that signed the etcd server certificate)',
    );
  return {
    endpoints: o.endpoints,
    prefix: o.prefix,
    ...(o.caFile === undefined
      ? {}
      : {
          tls: {
            caFile: o.caFile,
            ...(o.certFile === undefined ? {} : { certFile: o.certFile }),
            ...(o.keyFile === undefined ? {} : { keyFile: o.keyFile }),
          },
        }),
  };
}

/** Loads the etcd client only when a command needs it (it costs ~200 ms of start-up). */
export async function openRegistry(
  flags: EtcdFlags,
  env: NodeJS.ProcessEnv,
  random?: Random,
  metrics?: SidekickMetrics,
): Promise<EtcdRegistry> {
  const connection = etcdConnection(flags, env);
  const { createEtcdRegistry } = await import('../registry/etcd-registry.js');
  return createEtcdRegistry({
    ...connection,
    ...(random === undefined ? {} : { random }),
    ...(metrics === undefined ? {} : { metrics }),
  });
}

/** `--metrics-listen`, shared by the sidekicks that serve metrics. */
export function addMetricsOption(cmd: Command): Command {
  return cmd.option(
    '--metrics-listen <host:port>',
    'serve Prometheus metrics at http://HOST:PORT/metrics (no authentication: use loopback or a private address)',
  );
}

/**
 * With `--metrics-listen`: the sidekick's metrics, served until `close`; without: none. Loaded only
 * then (prom-client costs start-up time a sidekick without metrics need not pay).
 */
export async function sidekickMetrics(
  flags: EtcdFlags,
  log: Logger,
): Promise<{ metrics?: SidekickMetrics; close(): Promise<void> }> {
  if (flags.metricsListen === undefined) return { close: () => Promise.resolve() };
  const [{ SidekickMetrics }, { parseMetricsListen, serveMetrics }] = await Promise.all([
    import('../metrics/sidekick-metrics.js'),
    import('../metrics/serve-metrics.js'),
  ]);
  const where = parseMetricsListen('--metrics-listen', flags.metricsListen);
  const metrics = new SidekickMetrics();
  const server = await serveMetrics(metrics, where, log);
  return { metrics, close: () => server.close() };
}

export function commandLogger(flags: EtcdFlags, deps: DiscoveryCommandDeps, name: string): Logger {
  if (deps.log !== undefined) return deps.log;
  const level = flags.logLevel ?? 'info';
  if (!LOG_LEVELS.includes(level))
    throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}, not "${level}"`);
  return createLogger({ level, name });
}

/** A time span flag (`1s`, `250ms`, a bare number is seconds) in ms, at least `minMs`. */
export function durationFlag(flag: string, value: string, minMs: number): number {
  let ms: number;
  try {
    ms = parseTimeSpan(value, 's');
  } catch (err) {
    throw new UsageError(`${flag}: ${(err as Error).message}`);
  }
  if (!Number.isFinite(ms) || ms < minMs)
    throw new UsageError(`${flag} must be at least ${minMs} ms, not "${value}"`);
  return Math.round(ms);
}

export function countFlag(flag: string, value: string, min: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min)
    throw new UsageError(`${flag} must be a whole number ≥ ${min}, not "${value}"`);
  return n;
}

/**
 * Aborted by deps.signal or the CLI context's signal (tests), or else by the first SIGTERM/SIGINT:
 * these commands run until stopped and must withdraw their keys on the way out.
 */
export function stopSignal(
  deps: DiscoveryCommandDeps,
  ctxSignal: AbortSignal | undefined,
): { signal: AbortSignal; dispose(): void } {
  const given = deps.signal ?? ctxSignal;
  if (given !== undefined) return { signal: given, dispose: () => undefined };
  const controller = new AbortController();
  const stop = (): void => controller.abort(new Error('stopped by signal'));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  return {
    signal: controller.signal,
    dispose: () => {
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
    },
  };
}

export function defaultHostname(deps: DiscoveryCommandDeps): string {
  return deps.hostname ?? hostname();
}
