/** How often a blocking command (start --block, rollout…) asks the cluster, by default. */
export const DEFAULT_POLL_MS = 500;
