// `fleetts galera member`: the main process of a mysql@ unit (src/galera/galera-member.ts) — an
// etcd-decided bootstrap or join, then MariaDB with Galera as its child; and `fleetts galera
// bootstraps`: the cluster's bootstrap history; `positions` and `force-bootstrap` for a whole-cluster
// outage. All talk to etcd directly, like `fleetts announce`.
import type { Command } from 'commander';
import { UsageError } from '../lib/errors.js';
import type { EtcdKv } from '../registry/etcd-kv.js';
import { GaleraMember, type MemberSettings } from '../galera/galera-member.js';
import { CLUSTER_NAME_RE, GaleraStore } from '../galera/galera-store.js';
import type { MemberLayout, ServerRuntime } from '../galera/mariadbd-command.js';
import { formatPosition } from '../galera/choose-bootstrap.js';
import type { CliContext } from './main.js';
import {
  addEtcdOptions,
  commandLogger,
  type DiscoveryCommandDeps,
  durationFlag,
  ETCD_OPTIONS_HELP,
  etcdConnection,
  type EtcdFlags,
  openRegistry,
  stopSignal,
} from './discovery-options.js';

interface MemberFlags extends EtcdFlags {
  readonly cluster: string;
  readonly service: string;
  readonly host?: string;
  readonly port: string;
  readonly dataDir: string;
  readonly runDir: string;
  readonly runtime: string;
  readonly image?: string;
  readonly container?: string;
  readonly mariadbd: string;
  readonly checkPort: string;
  readonly initSql?: string;
  readonly instance?: string;
  readonly bufferPool: string;
  readonly mariadbdArg: string[];
  readonly ttl: string;
  readonly bootstrapTimeout: string;
  readonly recoveryWait: string;
}

interface ForceFlags extends EtcdFlags {
  readonly cluster: string;
  readonly instance: string;
}

interface HistoryFlags extends EtcdFlags {
  readonly cluster: string;
  readonly json?: boolean;
}

const INSTANCE_RE = /^[A-Za-z0-9@._:-]+$/;
const IPV4_RE = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

export function registerGalera(program: Command, ctx: CliContext, deps: DiscoveryCommandDeps = {}): void {
  const galera = program
    .command('galera')
    .description('MariaDB Galera cluster members bootstrapped through etcd (docs/mysql.md)');

  const member = galera
    .command('member')
    .description('run one Galera member: bootstrap or join under an etcd lock, then MariaDB as a child')
    .option('--cluster <name>', 'cluster name (wsrep_cluster_name, and the etcd key galera/<name>/)', 'mysql')
    .option('--service <name>', 'service its sidekicks announce Synced members under', 'mysql')
    .option('--host <ip>', "this host's address MariaDB binds to (default: $FLEETTS_MACHINE_IP)")
    .option('--port <n>', 'MariaDB client port', '3306')
    .requiredOption('--data-dir <dir>', 'local data dir of this host and instance (never shared storage)')
    .requiredOption('--run-dir <dir>', 'socket and pid dir of this host and instance')
    .option('--runtime <kind>', 'process (mariadbd directly) or docker (with --image)', 'process')
    .option(
      '--image <image>',
      'run MariaDB in this image (docker run --network host); implies --runtime docker',
    )
    .option('--container <name>', 'container name with --image (default: from the instance and host)')
    .option('--mariadbd <path>', 'the server binary (process runtime)', '/usr/sbin/mariadbd')
    .option('--check-port <n>', 'clustercheck HTTP port on --host (200 when Synced); 0 for none', '9200')
    .option('--init-sql <file>', 'SQL run through the local socket after a bootstrap (make it idempotent)')
    .option('--instance <name>', 'member name (default: $FLEETTS_UNIT)')
    .option('--buffer-pool <size>', 'innodb_buffer_pool_size', '32M')
    .option('--mariadbd-arg <arg>', 'extra mariadbd argument (repeatable)', collect, [])
    .option('--ttl <span>', 'lease TTL of the lock and member keys', '5s')
    .option('--bootstrap-timeout <span>', 'how long a bootstrapping server may take to be Synced', '120s')
    .option(
      '--recovery-wait <span>',
      'after a whole-cluster outage, how long to wait for every known member to publish its data position before the most advanced one present bootstraps',
      '60s',
    );
  addEtcdOptions(member)
    .addHelpText(
      'after',
      `
${ETCD_OPTIONS_HELP}

Examples:
  ExecStart=/usr/bin/env fleetts galera member --data-dir /var/lib/fleetts/mysql/%m/%i --run-dir /run/fleetts/%m/mysql@%i
  fleetts galera member --host 10.0.0.5 --instance db1 --data-dir /var/lib/db1 --run-dir /run/db1 --image fleetts/mariadb:latest`,
    )
    .action(async (flags: MemberFlags) => {
      const env = deps.env ?? process.env;
      const log = commandLogger(flags, deps, 'fleetts-galera');
      const { settings, prefix } = memberSettings(flags, env);
      const registry = await openRegistry(flags, env);
      const kv = await etcdKv(flags, env, ctx);
      const stop = stopSignal(deps, ctx.signal);
      try {
        const m = new GaleraMember({ kv, registry, clock: ctx.clock, log, prefix }, settings);
        ctx.exitCode = await m.run(stop.signal);
      } finally {
        stop.dispose();
        kv.close();
        await registry.close();
      }
    });

  const history = galera
    .command('bootstraps')
    .description("list every bootstrap etcd decided for a cluster (there is one per cluster's life)")
    .option('--cluster <name>', 'cluster name', 'mysql')
    .option('--json', 'JSON lines instead of a table');
  addEtcdOptions(history).action(async (flags: HistoryFlags) => {
    const env = deps.env ?? process.env;
    const cluster = clusterFlag(flags.cluster);
    const kv = await etcdKv(flags, env, ctx);
    try {
      const store = new GaleraStore({
        kv,
        clock: ctx.clock,
        prefix: etcdConnection(flags, env).prefix,
        cluster,
      });
      const records = await store.listBootstraps();
      for (const r of records)
        ctx.output.out(
          flags.json === true
            ? JSON.stringify(r)
            : `${r.at}  ${r.instance}  ${r.address}  ${r.machine ?? '-'}  ${r.reason}`,
        );
    } finally {
      kv.close();
    }
  });

  const positions = galera
    .command('positions')
    .description('list the data positions members published while no member runs (a whole-cluster outage)')
    .option('--cluster <name>', 'cluster name', 'mysql')
    .option('--json', 'JSON lines instead of a table');
  addEtcdOptions(positions).action(async (flags: HistoryFlags) => {
    await withStore(flags, deps, ctx, async (store) => {
      const [list, forced] = await Promise.all([store.listPositions(), store.forcedBootstrap()]);
      for (const p of list)
        ctx.output.out(
          flags.json === true
            ? JSON.stringify({ ...p, at: new Date(p.at).toISOString() })
            : `${p.instance}  ${formatPosition(p.position)}  since ${new Date(p.at).toISOString()}`,
        );
      if (forced !== undefined && flags.json !== true)
        ctx.output.out(`forced bootstrap: ${forced.instance} (set ${forced.at})`);
    });
  });

  const force = galera
    .command('force-bootstrap')
    .description(
      'make this member bootstrap the next time no member runs, whatever the published positions (its data wins)',
    )
    .option('--cluster <name>', 'cluster name', 'mysql')
    .requiredOption('--instance <name>', 'the member to bootstrap, e.g. mysql@2.unit');
  addEtcdOptions(force).action(async (flags: ForceFlags) => {
    if (!INSTANCE_RE.test(flags.instance))
      throw new UsageError(`--instance '${flags.instance}' may only hold letters, digits and @ . _ : -`);
    await withStore(flags, deps, ctx, async (store) => {
      await store.forceBootstrap(flags.instance);
      ctx.output.out(
        `${flags.instance} bootstraps cluster '${flags.cluster}' the next time no member runs; the others wait for it and join (the record goes once used)`,
      );
    });
  });
}

async function withStore(
  flags: HistoryFlags | ForceFlags,
  deps: DiscoveryCommandDeps,
  ctx: CliContext,
  body: (store: GaleraStore) => Promise<void>,
): Promise<void> {
  const env = deps.env ?? process.env;
  const cluster = clusterFlag(flags.cluster);
  const kv = await etcdKv(flags, env, ctx);
  try {
    await body(new GaleraStore({ kv, clock: ctx.clock, prefix: etcdConnection(flags, env).prefix, cluster }));
  } finally {
    kv.close();
  }
}

/** Flags and environment → validated member settings (UsageError naming the flag). */
export function memberSettings(
  flags: MemberFlags,
  env: NodeJS.ProcessEnv,
): { settings: MemberSettings; prefix: string } {
  const fromEnv = (name: string): string | undefined => (env[name] === '' ? undefined : env[name]);
  const cluster = clusterFlag(flags.cluster);
  if (!INSTANCE_RE.test(flags.service))
    throw new UsageError(`--service '${flags.service}' may only hold letters, digits and @ . _ : -`);
  const host = flags.host ?? fromEnv('FLEETTS_MACHINE_IP');
  if (host === undefined)
    throw new UsageError('--host is required outside a unit (the agent sets $FLEETTS_MACHINE_IP in units)');
  const octets = IPV4_RE.exec(host);
  if (octets === null || octets.slice(1).some((o) => Number(o) > 255) || host === '0.0.0.0')
    throw new UsageError(
      `--host '${host}' must be this host's IPv4 address (peers reach MariaDB and Galera there)`,
    );
  const instance = flags.instance ?? fromEnv('FLEETTS_UNIT');
  if (instance === undefined)
    throw new UsageError('--instance is required outside a unit (default: $FLEETTS_UNIT)');
  if (!INSTANCE_RE.test(instance))
    throw new UsageError(`--instance '${instance}' may only hold letters, digits and @ . _ : -`);
  const port = portFlag('--port', flags.port, 1);
  const checkPort = portFlag('--check-port', flags.checkPort, 0);
  for (const [flag, dir] of [
    ['--data-dir', flags.dataDir],
    ['--run-dir', flags.runDir],
  ] as const)
    if (!dir.startsWith('/') || dir.includes('..'))
      throw new UsageError(`${flag} '${dir}' must be an absolute path without '..'`);
  if (!/^\d+[KMG]?$/.test(flags.bufferPool))
    throw new UsageError(`--buffer-pool '${flags.bufferPool}' must be a size like 32M`);
  const runtimeKind = flags.image === undefined ? flags.runtime : 'docker';
  let runtime: ServerRuntime;
  if (runtimeKind === 'process') runtime = { kind: 'process', mariadbd: flags.mariadbd };
  else if (runtimeKind === 'docker') {
    if (flags.image === undefined)
      throw new UsageError('--runtime docker needs --image (e.g. fleetts/mariadb:latest)');
    const container =
      flags.container ??
      `galera-${instance}-${fromEnv('FLEETTS_MACHINE_ID') ?? host}`.replace(/[^A-Za-z0-9_.-]/g, '-');
    runtime = { kind: 'docker', image: flags.image, container, docker: 'docker' };
  } else throw new UsageError(`--runtime must be process or docker, not '${flags.runtime}'`);
  const layout: MemberLayout = {
    cluster,
    instance,
    host,
    port,
    dataDir: flags.dataDir,
    runDir: flags.runDir,
    runtime,
    bufferPool: flags.bufferPool,
    extraArgs: flags.mariadbdArg,
  };
  const machine = fromEnv('FLEETTS_MACHINE_ID');
  return {
    prefix: etcdConnection(flags, env).prefix,
    settings: {
      layout,
      service: flags.service,
      checkPort,
      lease: { ttlMs: durationFlag('--ttl', flags.ttl, 2_000) },
      probeIntervalMs: 1_000,
      bootstrapTimeoutMs: durationFlag('--bootstrap-timeout', flags.bootstrapTimeout, 1_000),
      recoveryWaitMs: durationFlag('--recovery-wait', flags.recoveryWait, 0),
      ...(machine === undefined ? {} : { machine }),
      ...(flags.initSql === undefined ? {} : { initSqlFile: flags.initSql }),
    },
  };
}

function clusterFlag(value: string): string {
  if (!CLUSTER_NAME_RE.test(value))
    throw new UsageError(
      `--cluster '${value}' must be 1-32 letters, digits, '_' or '-', starting with a letter or digit`,
    );
  return value;
}

function portFlag(flag: string, value: string, min: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > 65535)
    throw new UsageError(`${flag} must be a port number (${min}-65535), not '${value}'`);
  return n;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/**
 * The raw etcd client for the lock's transactions, on the settings openRegistry() validates. Loaded
 * here, not with the CLI: every other command starts faster without the etcd client.
 */
async function etcdKv(flags: EtcdFlags, env: NodeJS.ProcessEnv, ctx: CliContext): Promise<EtcdKv> {
  const { endpoints, tls } = etcdConnection(flags, env);
  const { EtcdKv } = await import('../registry/etcd-kv.js');
  return new EtcdKv({ endpoints, ...(tls === undefined ? {} : { tls }) }, ctx.clock);
}
