// The pure plan of a local dev cluster: every name, address, path and command line derived from a
// few inputs, so that `up`, `power-on` and `down` act on the same facts (recorded in the state file).
import { join } from 'node:path';

export type DevRuntime = 'process' | 'docker';
/**
 * Where etcd runs: `hosts` puts one member inside each of the first three hosts (as cloud-config
 * does on real hosts, so power-off and partition hit etcd too); `external` runs one member in the
 * root namespace, outside every host (no fault reaches it).
 */
export type EtcdTopology = 'hosts' | 'external';
/** The members of the `hosts` topology: the first three hosts, as cloud-config's ETCD_MEMBERS. */
export const ETCD_HOST_MEMBERS = 3;

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
  /** Loopback port of etcd's client listener (chosen free by the caller; `external` only). */
  readonly etcdLoopbackPort: number;
  /** Absent in state files written before the choice existed: they ran `external`. */
  readonly etcdTopology?: EtcdTopology | undefined;
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
  /** fleetd's TCP API (`--api-listen`): its IP and DEV_API_PORT. */
  readonly apiListen: string;
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
  readonly etcd: EtcdPlan;
  readonly shared: { readonly source: string; readonly target: string };
  readonly hosts: readonly HostPlan[];
  /** What `fleetts` talks to: host1's API socket (reachable from every namespace: one mount namespace). */
  readonly endpoint: string;
  /** Every host's API socket, host1's first: `fleetts` uses the first that accepts a connection. */
  readonly endpoints: readonly string[];
  /**
   * The cluster's API token (written by `dev up`, mode 0600): every fleetd serves its API on TCP
   * too (`apiListen`) and signs its requests to its peers with it, as on real hosts, so that a
   * power-off or a partition cuts the peers' questions (fencing, the peer watch) like the rest.
   */
  readonly apiTokenFile: string;
}

export interface EtcdPlan {
  readonly topology: EtcdTopology;
  readonly members: readonly EtcdMemberPlan[];
  /** What every fleetd is given (`--etcd-endpoints`): every member's advertised client URL. */
  readonly clientUrls: readonly string[];
  /**
   * What this machine's root namespace uses (the CLI, `dev status`, the demo, tests): loopback for
   * `external`; the members' URLs on the bridge for `hosts`.
   */
  readonly endpoints: readonly string[];
  /** `--initial-cluster`: every member's name and peer URL (static bootstrap). */
  readonly initialCluster: string;
  readonly clusterToken: string;
}

export interface EtcdMemberPlan {
  /** etcd's `--name`: the host's name, or `fleetts-dev` for the external member. */
  readonly name: string;
  /** The host whose namespace runs it (it lives and dies with the host); undefined: the root namespace. */
  readonly host: string | undefined;
  /** Its record in the state file: `etcd`, or `hostN/etcd` (power-off drops `hostN/…`). */
  readonly processId: string;
  readonly dataDir: string;
  readonly log: string;
  /** Advertised client URL (the hosts reach it on the bridge). */
  readonly clientUrl: string;
  readonly listenClientUrls: readonly string[];
  readonly peerUrl: string;
}

/**
 * Raft timing of the `hosts` members (docs/dev-cluster.md, "etcd timing"): etcd's own defaults,
 * as on real hosts. A leader change extends every lease by the election timeout plus its whole
 * TTL, so a shorter election timeout would shave at most about 1 s off the failover of the
 * leader's host; 500 ms measured no different under load here, and the TTL dominates. Pre-vote
 * keeps a partitioned member from deposing the leader when it comes back.
 */
export const DEV_ETCD_TIMING = { heartbeatMs: 100, electionMs: 1000, preVote: true } as const;

export const ETCD_CLIENT_PORT = 2379;
/** Every dev host's fleetd serves its API on TCP here too (its own IP: each host has its own). */
export const DEV_API_PORT = 4003;
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
    const ip = `${net}.${FIRST_HOST_OCTET + i}`;
    return {
      name,
      machineId,
      ip,
      metadata: { hostname: name },
      netns: `fleetts-${tag}-${name}`,
      // IFNAMSIZ: at most 15 characters (tag ≤ 6, so `ft` + 6 + `h` + 3 digits = 12).
      veth: `ft${tag}h${i + 1}`,
      stateDir: dir,
      apiSocket: join(dir, 'fleetd.sock'),
      apiListen: `${ip}:${DEV_API_PORT}`,
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
  const topology = input.etcdTopology ?? 'external';
  const members: EtcdMemberPlan[] =
    topology === 'hosts'
      ? hosts.slice(0, ETCD_HOST_MEMBERS).map((h) => ({
          name: h.name,
          host: h.name,
          processId: `${h.name}/etcd`,
          dataDir: join(h.stateDir, 'etcd'),
          log: join(h.stateDir, 'etcd.log'),
          clientUrl: `http://${h.ip}:${ETCD_CLIENT_PORT}`,
          // Loopback too, as on real hosts (cloud-config): inside the host's own namespace.
          listenClientUrls: [`http://${h.ip}:${ETCD_CLIENT_PORT}`, `http://127.0.0.1:${ETCD_CLIENT_PORT}`],
          peerUrl: `http://${h.ip}:${ETCD_PEER_PORT}`,
        }))
      : [
          {
            name: 'fleetts-dev',
            host: undefined,
            processId: 'etcd',
            dataDir: join(stateDir, 'etcd'),
            log: join(stateDir, 'etcd.log'),
            clientUrl: `http://${bridgeIp}:${ETCD_CLIENT_PORT}`,
            listenClientUrls: [
              `http://${bridgeIp}:${ETCD_CLIENT_PORT}`,
              `http://127.0.0.1:${input.etcdLoopbackPort}`,
            ],
            peerUrl: `http://${bridgeIp}:${ETCD_PEER_PORT}`,
          },
        ];
  const clientUrls = members.map((m) => m.clientUrl);
  return {
    stateDir,
    tag,
    runtime: input.runtime,
    leaseTtlMs: input.leaseTtlMs,
    subnet: `${net}.0/24`,
    prefixLength: 24,
    bridge: { name: `ft${tag}br`, ip: bridgeIp },
    etcd: {
      topology,
      members,
      clientUrls,
      endpoints: topology === 'hosts' ? clientUrls : [`http://127.0.0.1:${input.etcdLoopbackPort}`],
      initialCluster: members.map((m) => `${m.name}=${m.peerUrl}`).join(','),
      clusterToken: `fleetts-dev-${tag}`,
    },
    shared: { source: join(stateDir, 'shared'), target: input.sharedPath },
    hosts,
    endpoint: first === undefined ? '' : `unix://${first.apiSocket}`,
    endpoints: hosts.map((h) => `unix://${h.apiSocket}`),
    apiTokenFile: join(stateDir, 'api-token'),
  };
}

/**
 * One etcd member's command line. `external`: the hosts reach it on the bridge, the user's shell on
 * loopback. `hosts`: it listens on its host's address (and the host's loopback) and finds the other
 * members by static bootstrap; a restart with its data dir rejoins (the initial-cluster flags are
 * then ignored).
 */
export function etcdArgv(plan: ClusterPlan, member: EtcdMemberPlan): string[] {
  const { etcd } = plan;
  const argv = [
    '--name',
    member.name,
    '--data-dir',
    member.dataDir,
    '--listen-client-urls',
    member.listenClientUrls.join(','),
    '--advertise-client-urls',
    member.clientUrl,
    '--listen-peer-urls',
    member.peerUrl,
    '--initial-advertise-peer-urls',
    member.peerUrl,
    '--initial-cluster',
    etcd.initialCluster,
    '--log-level',
    'warn',
    // History is compacted (as cloud-config's members do): unit statuses and leases write often.
    '--auto-compaction-mode',
    'periodic',
    '--auto-compaction-retention',
    '1h',
  ];
  if (etcd.topology === 'hosts')
    argv.push(
      '--initial-cluster-token',
      etcd.clusterToken,
      '--initial-cluster-state',
      'new',
      '--heartbeat-interval',
      String(DEV_ETCD_TIMING.heartbeatMs),
      '--election-timeout',
      String(DEV_ETCD_TIMING.electionMs),
      `--pre-vote=${String(DEV_ETCD_TIMING.preVote)}`,
    );
  return argv;
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
