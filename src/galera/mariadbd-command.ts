// The command lines of a Galera member (pure): mariadbd with the wsrep settings the bootstrap
// decision implies, mariadb-install-db, and the local `mariadb` client, each either run directly
// (`--runtime process`) or through Docker with the same data and run dirs bind-mounted (`--image`).
import { clusterAddress, type StartDecision } from './decide-start.js';
import type { CommandLine } from '../lib/run-file.js';

export type ServerRuntime =
  | { readonly kind: 'process'; readonly mariadbd: string }
  | {
      readonly kind: 'docker';
      readonly image: string;
      /** The container's name (`docker exec` probes it); one per host and instance. */
      readonly container: string;
      readonly docker: string;
    };

export interface MemberLayout {
  readonly cluster: string;
  /** The unit instance, e.g. `mysql@1.unit` (wsrep_node_name). */
  readonly instance: string;
  /** This host's address: MariaDB and Galera bind to it; peers reach it there. */
  readonly host: string;
  readonly port: number;
  /** Host paths, per host and instance (never shared storage). */
  readonly dataDir: string;
  readonly runDir: string;
  readonly runtime: ServerRuntime;
  /** innodb_buffer_pool_size (MariaDB's size syntax). */
  readonly bufferPool: string;
  /** Appended to mariadbd's arguments as given (`--mariadbd-arg`). */
  readonly extraArgs: readonly string[];
}

const CONTAINER_DATA = '/var/lib/mysql';
const CONTAINER_RUN = '/run/mysqld';
const GALERA_PROVIDER = '/usr/lib/galera/libgalera_smm.so';

/** The data and run dirs as the server sees them (inside the container for Docker). */
export function serverPaths(layout: MemberLayout): { dataDir: string; runDir: string; socket: string } {
  const inDocker = layout.runtime.kind === 'docker';
  const dataDir = inDocker ? CONTAINER_DATA : layout.dataDir;
  const runDir = inDocker ? CONTAINER_RUN : layout.runDir;
  return { dataDir, runDir, socket: `${runDir}/mysqld.sock` };
}

/**
 * mariadbd's arguments. `--no-defaults`: everything is here, nothing from /etc/mysql (the host's
 * own MariaDB configuration must not leak in). The server runs as `mysql`: rsync SST's receiving
 * daemon runs as the server's user, and a root-run rsync daemon would write as `nobody`.
 */
export function mariadbdArgs(
  layout: MemberLayout,
  decision: StartDecision,
  startPosition?: string,
): string[] {
  const p = serverPaths(layout);
  return [
    '--no-defaults',
    '--user=mysql',
    `--datadir=${p.dataDir}`,
    `--socket=${p.socket}`,
    `--pid-file=${p.runDir}/mysqld.pid`,
    `--port=${layout.port}`,
    `--bind-address=${layout.host}`,
    '--skip-name-resolve',
    // Small: a member of the dev cluster must fit beside others on a 2-core machine.
    `--innodb-buffer-pool-size=${layout.bufferPool}`,
    '--innodb-log-file-size=16M',
    '--performance-schema=OFF',
    '--max-connections=100',
    // What Galera requires of the server.
    '--binlog-format=ROW',
    '--default-storage-engine=InnoDB',
    '--innodb-autoinc-lock-mode=2',
    '--wsrep-on=ON',
    `--wsrep-provider=${GALERA_PROVIDER}`,
    `--wsrep-cluster-name=${layout.cluster}`,
    `--wsrep-cluster-address=${clusterAddress(decision)}`,
    `--wsrep-node-address=${layout.host}`,
    `--wsrep-node-name=${layout.instance}`,
    '--wsrep-sst-method=rsync',
    '--wsrep-provider-options=gcache.size=32M',
    ...(decision.kind === 'bootstrap' ? ['--wsrep-new-cluster'] : []),
    // What mysqld_safe passes after a recovery: Galera starts from there (and a joiner may use IST).
    ...(startPosition === undefined ? [] : [`--wsrep-start-position=${startPosition}`]),
    ...layout.extraArgs,
  ];
}

/** How to run a server-side program (`file args…`) in this member's runtime. */
export function inRuntime(layout: MemberLayout, file: string, args: readonly string[]): CommandLine {
  const rt = layout.runtime;
  if (rt.kind === 'process') return { file, args };
  // The image's mysql user (uid/gid 3306, images/mariadb) owns the mounted dirs, 0750 as in the
  // process form: its ids are no host account's, and no other host user reads the database files.
  return {
    file: rt.docker,
    args: [
      'run',
      '--rm',
      '--name',
      rt.container,
      '--network',
      'host',
      '-v',
      `${layout.dataDir}:${CONTAINER_DATA}`,
      '-v',
      `${layout.runDir}:${CONTAINER_RUN}`,
      rt.image,
      'sh',
      '-c',
      `chown -R mysql:mysql ${CONTAINER_DATA} ${CONTAINER_RUN} && chmod 0750 ${CONTAINER_DATA} ${CONTAINER_RUN} && exec "$@"`,
      'sh',
      file,
      ...args,
    ],
  };
}

/** The server command line. */
export function serverCommand(
  layout: MemberLayout,
  decision: StartDecision,
  startPosition?: string,
): CommandLine {
  const file = layout.runtime.kind === 'process' ? layout.runtime.mariadbd : 'mariadbd';
  return inRuntime(layout, file, mariadbdArgs(layout, decision, startPosition));
}

/** Initializes an empty data dir (system tables; root@localhost by unix socket only). */
export function installDbCommand(layout: MemberLayout): CommandLine {
  const p = serverPaths(layout);
  return inRuntime({ ...layout, runtime: dockerOneShot(layout.runtime, 'init') }, 'mariadb-install-db', [
    '--no-defaults',
    '--user=mysql',
    `--datadir=${p.dataDir}`,
    '--skip-test-db',
    '--auth-root-authentication-method=socket',
  ]);
}

/**
 * `mariadbd --wsrep-recover`: after a crash (grastate seqno -1) it reads the last committed
 * position from InnoDB, prints "WSREP: Recovered position: uuid:seqno" on stderr and exits. Same
 * settings as the server (a different redo log size would be a resize), no network.
 */
export function recoverCommand(layout: MemberLayout): CommandLine {
  const file = layout.runtime.kind === 'process' ? layout.runtime.mariadbd : 'mariadbd';
  const args = mariadbdArgs(layout, { kind: 'join', peers: [], reason: 'recovery' }).map((a) =>
    a.startsWith('--pid-file=') ? `--pid-file=${serverPaths(layout).runDir}/recover.pid` : a,
  );
  return inRuntime({ ...layout, runtime: dockerOneShot(layout.runtime, 'recover') }, file, [
    ...args,
    '--skip-networking',
    '--wsrep-recover',
  ]);
}

/** The position `mariadbd --wsrep-recover` printed, if any. */
export function parseRecoveredPosition(log: string): { uuid: string; seqno: number } | undefined {
  const m = /WSREP: Recovered position:\s+([0-9a-fA-F-]{36}):(-?\d+)/.exec(log);
  if (m === null || m[1] === undefined || m[2] === undefined) return undefined;
  return { uuid: m[1], seqno: Number(m[2]) };
}

/** The `mariadb` client as root over the local socket (`docker exec` into the running server). */
export function clientCommand(layout: MemberLayout, args: readonly string[]): CommandLine {
  const p = serverPaths(layout);
  const clientArgs = [`--socket=${p.socket}`, '--connect-timeout=2', ...args];
  const rt = layout.runtime;
  if (rt.kind === 'process') return { file: 'mariadb', args: clientArgs };
  return { file: rt.docker, args: ['exec', '-i', rt.container, 'mariadb', ...clientArgs] };
}

/** A one-shot helper container must not take the server's name. */
function dockerOneShot(rt: ServerRuntime, suffix: string): ServerRuntime {
  return rt.kind === 'docker' ? { ...rt, container: `${rt.container}-${suffix}` } : rt;
}
