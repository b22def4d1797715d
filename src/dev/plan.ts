// The pure plan of a local dev cluster: every name, address, path and command line derived from a
// few inputs, so that `up`, `power-on` and `down` act on the same facts (recorded in the state file).
import { join } from 'node:path';

export type DevRuntime = 'process' | 'docker';

export interface PlanInput {
  /** Absolute state directory: everything the cluster writes lives under it. */
  readonly stateDir: string;
  /** Short [a-z0-9] tag that makes this cluster's interface and namespace names unique. */
  readonly tag: string;
  /** The third octet of 10.213.X.0/24. */
  readonly subnetIndex: number;
  /** One machine id per host, in host order (generated once and kept by the caller). */
  readonly machineIds: readonly string[];
  readonly runtime: DevRuntime;
  readonly leaseTtlMs: number;
  /** Where the shared directory is mounted, the same path on every host. */
  readonly sharedPath: string;
  /** Loopback port of etcd's client listener (chosen free by the caller). */
  readonly etcdLoopbackPort: number;
}

export interface HostPlan {
  /** `host1`, `host2`, …: also the `hostname=` metadata value. */
  readonly name: string;
  readonly machineId: string;
  readonly ip: string;
  readonly metadata: Readonly<Record<string, string>>;
  /** Network namespace (`/var/run/netns/<netns>`). */
  readonly netns: string;
  /** The root-namespace end of the host's veth pair (the namespace end is `eth0`). */
  readonly veth: string;
  /** fleetd's state dir. */
  readonly stateDir: string;
  readonly apiSocket: string;
  readonly fleetdLog: string;
  /** Present for the Docker runtime: the host's own dockerd. */
  readonly docker?: DockerdPlan;
}

export interface DockerdPlan {
  readonly socket: string;
  readonly dataRoot: string;
  readonly execRoot: string;
  readonly pidFile: string;
  readonly log: string;
}

export interface ClusterPlan {
  readonly stateDir: string;
  readonly tag: string;
  readonly runtime: DevRuntime;
  readonly leaseTtlMs: number;
  readonly subnet: string;
  readonly prefixLength: number;
  readonly bridge: { readonly name: string; readonly ip: string };
  readonly etcd: {
    readonly dataDir: string;
    readonly log: string;
    /** What the hosts use: on the bridge. */
    readonly clientUrl: string;
    readonly loopbackUrl: string;
    readonly peerUrl: string;
  };
  readonly shared: { readonly source: string; readonly target: string };
  readonly hosts: readonly HostPlan[];
  /** What `fleetts` talks to: host1's API socket (reachable from every namespace: one mount namespace). */
  readonly endpoint: string;
  /** Every host's API socket, host1's first: `fleetts` uses the first that accepts a connection. */
  readonly endpoints: readonly string[];
}

export const ETCD_CLIENT_PORT = 2379;
export const ETCD_PEER_PORT = 2380;
/** Hosts are .11, .12, …: room for 240 of them in a /24. */
export const FIRST_HOST_OCTET = 11;
export const MAX_NODES = 240;

export function planCluster(input: PlanInput): ClusterPlan {
  const { stateDir, tag } = input;
  const net = `10.213.${input.subnetIndex}`;
  const bridgeIp = `${net}.1`;
  const hosts = input.machineIds.map((machineId, i): HostPlan => {
    const name = `host${i + 1}`;
    const dir = join(stateDir, 'hosts', name);
    return {
      name,
      machineId,
      ip: `${net}.${FIRST_HOST_OCTET + i}`,
      metadata: { hostname: name },
      netns: `fleetts-${tag}-${name}`,
      // IFNAMSIZ: at most 15 characters (tag ≤ 6, so `ft` + 6 + `h` + 3 digits = 12).
      veth: `ft${tag}h${i + 1}`,
      stateDir: dir,
      apiSocket: join(dir, 'fleetd.sock'),
      fleetdLog: join(dir, 'fleetd.log'),
      ...(input.runtime === 'docker'
        ? {
            docker: {
              socket: join(dir, 'docker.sock'),
              dataRoot: join(dir, 'docker', 'data'),
              execRoot: join(dir, 'docker', 'exec'),
              pidFile: join(dir, 'docker', 'dockerd.pid'),
              log: join(dir, 'dockerd.log'),
            },
          }
        : {}),
    };
  });
  const first = hosts[0];
  return {
    stateDir,
    tag,
    runtime: input.runtime,
    leaseTtlMs: input.leaseTtlMs,
    subnet: `${net}.0/24`,
    prefixLength: 24,
    bridge: { name: `ft${tag}br`, ip: bridgeIp },
    etcd: {
      dataDir: join(stateDir, 'etcd'),
      log: join(stateDir, 'etcd.log'),
      clientUrl: `http://${bridgeIp}:${ETCD_CLIENT_PORT}`,
      loopbackUrl: `http://127.0.0.1:${input.etcdLoopbackPort}`,
      peerUrl: `http://${bridgeIp}:${ETCD_PEER_PORT}`,
    },
    shared: { source: join(stateDir, 'shared'), target: input.sharedPath },
    hosts,
    endpoint: first === undefined ? '' : `unix://${first.apiSocket}`,
    endpoints: hosts.map((h) => `unix://${h.apiSocket}`),
  };
}

/** etcd's command line: the hosts reach it on the bridge, the user's shell on loopback. */
export function etcdArgv(plan: ClusterPlan): string[] {
  const { etcd } = plan;
  return [
    '--name',
    'fleetts-dev',
    '--data-dir',
    etcd.dataDir,
    '--listen-client-urls',
    `${etcd.clientUrl},${etcd.loopbackUrl}`,
    '--advertise-client-urls',
    etcd.clientUrl,
    '--listen-peer-urls',
    etcd.peerUrl,
    '--initial-advertise-peer-urls',
    etcd.peerUrl,
    '--initial-cluster',
    `fleetts-dev=${etcd.peerUrl}`,
    '--log-level',
    'warn',
  ];
}

/**
 * dockerd for one host, run inside the host's namespace: its own roots, socket and pid file, and
 * no bridge or iptables of its own, so that containers use the host's network (and its IP).
 */
export function dockerdArgv(docker: DockerdPlan): string[] {
  return [
    '--data-root',
    docker.dataRoot,
    '--exec-root',
    docker.execRoot,
    '-H',
    `unix://${docker.socket}`,
    '--pidfile',
    docker.pidFile,
    '--bridge=none',
    '--iptables=false',
    '--ip-masq=false',
  ];
}

/** A unix socket path holds at most 107 bytes (sun_path): a deep state dir breaks fleetd's or containerd's. */
export const MAX_SOCKET_PATH = 107;

/** The planned socket paths that are too long, longest first (empty when all fit). */
export function longSocketPaths(plan: ClusterPlan): string[] {
  const paths = plan.hosts.flatMap((h) => [
    h.apiSocket,
    ...(h.docker === undefined
      ? []
      : [h.docker.socket, join(h.docker.execRoot, 'containerd', 'containerd.sock.ttrpc')]),
  ]);
  return paths.filter((p) => Buffer.byteLength(p) > MAX_SOCKET_PATH).sort((a, b) => b.length - a.length);
}
