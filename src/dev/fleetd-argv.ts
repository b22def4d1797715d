// fleetd's command line for one dev host, as data: each flag says where its value comes from, and
// flags that not every fleetd build knows yet are passed only when `fleetd --help` lists them.
import type { ClusterPlan, HostPlan } from './plan.js';

export interface FleetdFlag {
  readonly flag: string;
  readonly value: (host: HostPlan, plan: ClusterPlan) => string | undefined;
  /** Passed only when this fleetd's --help lists the flag (fleetd rejects unknown flags). */
  readonly ifSupported?: boolean;
}

export const FLEETD_FLAGS: readonly FleetdFlag[] = [
  { flag: '--etcd-endpoints', value: (_h, p) => p.etcd.clientUrls.join(',') },
  { flag: '--machine-id', value: (h) => h.machineId },
  { flag: '--public-ip', value: (h) => h.ip },
  {
    flag: '--metadata',
    value: (h) =>
      Object.entries(h.metadata)
        .map(([k, v]) => `${k}=${v}`)
        .join(','),
  },
  { flag: '--state-dir', value: (h) => h.stateDir },
  { flag: '--lease-ttl-ms', value: (_h, p) => String(p.leaseTtlMs) },
  { flag: '--api-socket', value: (h) => h.apiSocket, ifSupported: true },
  { flag: '--api-listen', value: (h) => h.apiListen, ifSupported: true },
  { flag: '--api-token-file', value: (_h, p) => p.apiTokenFile, ifSupported: true },
  { flag: '--runtime', value: (_h, p) => p.runtime, ifSupported: true },
  // Several fleetd on one host share its systemd: the dev cluster keeps fleetts' own supervisors.
  { flag: '--service-runtime', value: () => 'process', ifSupported: true },
  {
    flag: '--docker-host',
    value: (h) => (h.docker === undefined ? undefined : `unix://${h.docker.socket}`),
    ifSupported: true,
  },
];

/** The flags `fleetd --help` lists (`--name` words). */
export function parseHelpFlags(help: string): Set<string> {
  return new Set(help.match(/--[a-z][a-z0-9-]*/g) ?? []);
}

/** fleetd's arguments (after the program) for `host`. */
export function fleetdArgs(
  plan: ClusterPlan,
  host: HostPlan,
  supported: ReadonlySet<string>,
  flags: readonly FleetdFlag[] = FLEETD_FLAGS,
): string[] {
  const out: string[] = [];
  for (const f of flags) {
    if (f.ifSupported === true && !supported.has(f.flag)) continue;
    const v = f.value(host, plan);
    if (v !== undefined) out.push(f.flag, v);
  }
  return out;
}

/** fleetd's environment additions: dockerode (and the docker CLI in units) find the host's dockerd. */
export function fleetdEnv(host: HostPlan): Record<string, string> {
  return host.docker === undefined ? {} : { DOCKER_HOST: `unix://${host.docker.socket}` };
}
