// The dev cluster's defaults, apart from dev-cluster.ts: `fleetts` shows them in its help and
// option defaults without loading the cluster's code (and the etcd client with it) on every command.
export const DEFAULT_DEV_STATE_DIR = '/var/lib/fleetts-dev';
/** The path every host (and every unit) sees the shared directory at; NFS on real hosts. */
export const DEFAULT_SHARED_PATH = '/srv/fleetts/shared';
export const DEFAULT_NODES = 3;
/** Short, so that a dead host is noticed quickly in demos; fleetd's minimum is 2000. */
export const DEFAULT_DEV_LEASE_TTL_MS = 5_000;
