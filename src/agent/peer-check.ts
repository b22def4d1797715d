// The peer check of self-fencing (docs/fencing.md): when this host has had no lease renewal for
// the fencing deadline, it asks every peer whether etcd still works for it. Pure: answers in,
// verdict out; the agent does the asking, on its clock.
import type { MachineId } from '../cluster/types.js';

/**
 * While the verdict is `keep`, the peers are asked again this often: a peer that reaches etcd again
 * is noticed (and this host's AtMostOnce units stopped) within this, plus PEER_TIMEOUT_MS, plus the
 * units' stop time.
 */
export const PEER_RECHECK_MS = 1_000;
/** How long one peer has to answer; the peers are asked in parallel. */
export const PEER_TIMEOUT_MS = 500;
/**
 * While the verdict is `keep`, the supervisors' deadline (fence.json) is moved to this far ahead at
 * each `keep`: a fleetd that dies meanwhile leaves its AtMostOnce units at most this long.
 */
export const KEEP_STEP_MS = PEER_RECHECK_MS + PEER_TIMEOUT_MS + 500;
/**
 * A peer's lease counts as alive (etcd works for it) when its last acknowledged keepalive was sent
 * within this many keepalive periods. A host that reaches etcd sends one every period, so its last
 * acknowledged one is about a period old at most. A host that lost etcd when the asker did renewed
 * at most one period after the asker, who asks PEER_TIMEOUT_MS before its deadline (3 s with the
 * defaults), so its last renewal is at least 2 periods old: 1.5 leaves half a period either side.
 * A peer that has just lost one keepalive may look cut off for half a period: the next re-check
 * sees it alive. With deadlines shorter than 2.5 periods + PEER_TIMEOUT_MS (small TTLs), peers that
 * lost etcd together look alive: the check then always fences, as a blind timer would.
 */
export const LIVE_RENEWAL_PERIODS = 1.5;
/**
 * The longest a peer whose etcd works again takes to say so: it renews within LIVE_RENEWAL_PERIODS
 * keepalives (1 s each by default), or, when its own lease expired meanwhile, it registers again
 * (fleetd's rejoin retries at most 2 s apart).
 */
export const PEER_LIVE_AGAIN_MS = 2_000;
/**
 * How long a peer must have been registered again before its live lease makes a host that was
 * keeping its AtMostOnce units through an outage (every peer had lost etcd too) fence them. When
 * etcd comes back after an outage longer than the TTL, every lease is gone and every host
 * registers again, within fleetd's rejoin retry (at most 1 s apart) of each other: a peer that
 * registered first is no sign that this host is cut off (bug D, docs/simulation.md). Only while
 * keeping: a host that was not keeping fences on any live peer, as before.
 */
export const LIVE_AGAIN_WAIT_MS = 1_500;
/**
 * The bound the engine's grace period must respect (engine helper, docs/fencing.md): once etcd
 * works again for the peers, a host that was keeping its AtMostOnce units through the outage has
 * begun stopping them within this long: a peer says it is alive (PEER_LIVE_AGAIN_MS), the next
 * re-check starts (PEER_RECHECK_MS) and gets its answer (PEER_TIMEOUT_MS). A fleetd that died while
 * keeping leaves its units' supervisors at most KEEP_STEP_MS (< this). Add the units' stop time
 * (FENCE_STOP_BUDGET_MS for units that respect it) for when they are gone.
 */
export const FENCE_KEEP_BOUND_MS =
  PEER_LIVE_AGAIN_MS + LIVE_AGAIN_WAIT_MS + PEER_RECHECK_MS + PEER_TIMEOUT_MS;
/**
 * What an AtMostOnce unit should take to stop (TimeoutStopSec=): the margin between the default
 * deadline (3.5 s) and the lease TTL (5 s). The engine's grace should be at least
 * FENCE_KEEP_BOUND_MS + FENCE_STOP_BUDGET_MS (6.5 s with the defaults).
 */
export const FENCE_STOP_BUDGET_MS = 1_500;
/** The smallest engine grace period that keeps AtMostOnce safe with the defaults. */
export const MIN_ENGINE_GRACE_MS = FENCE_KEEP_BOUND_MS + FENCE_STOP_BUDGET_MS;

/** What GET /v1/self/lease answers, from the answering fleetd's own state (no etcd read). */
export interface SelfLeaseReport {
  readonly machine: string;
  /** Its lease was renewed recently (etcd works for it): see LIVE_RENEWAL_PERIODS. */
  readonly leaseAlive: boolean;
  /** Since its last acknowledged renewal; null when it holds no lease at all. */
  readonly renewedAgoMs: number | null;
  /** Since etcd last became reachable for it (registered, or renewed again after an outage); null when it is not alive. */
  readonly liveSinceMs: number | null;
}

/** A fleetd's own report (for the API), from its membership as the agent sees it. */
export function selfLeaseReport(input: {
  readonly machine: string;
  readonly now: number;
  readonly keepaliveMs: number;
  /** The current membership's last renewal and start, or undefined when it holds none. */
  readonly lease: { readonly renewedAt: number; readonly since: number; readonly lost: boolean } | undefined;
}): SelfLeaseReport {
  const { lease, now } = input;
  if (lease === undefined || lease.lost)
    return { machine: input.machine, leaseAlive: false, renewedAgoMs: null, liveSinceMs: null };
  const renewedAgoMs = Math.max(0, Math.round(now - lease.renewedAt));
  const leaseAlive = renewedAgoMs <= LIVE_RENEWAL_PERIODS * input.keepaliveMs;
  return {
    machine: input.machine,
    leaseAlive,
    renewedAgoMs,
    liveSinceMs: leaseAlive ? Math.max(0, Math.round(now - lease.since)) : null,
  };
}

/** One peer's answer, or why there is none. */
export type PeerAnswer =
  | { readonly kind: 'answered'; readonly machine: MachineId; readonly report: SelfLeaseReport }
  | { readonly kind: 'unanswered'; readonly machine: MachineId; readonly error: string };

export type PeerVerdict =
  { readonly kind: 'keep'; readonly reason: string } | { readonly kind: 'fence'; readonly reason: string };

/**
 * The rule: keep the AtMostOnce units only when there is at least one peer, every peer answered as
 * itself, and none has a live lease (etcd is down for everyone: nobody can move anything). A live
 * peer (the engine can move this host's units once its lease expires), a silent one (it may be on
 * the side that reaches etcd) or no peer at all: fence.
 */
export function peerVerdict(
  answers: readonly PeerAnswer[],
  options: {
    /** This host's last verdict was `keep`: a peer registered again only lately is waited for. */
    readonly wasKeeping?: boolean;
  } = {},
): PeerVerdict {
  if (answers.length === 0)
    return { kind: 'fence', reason: 'no peer to ask (this host knows no other live machine)' };
  for (const a of answers) {
    if (a.kind === 'unanswered')
      return {
        kind: 'fence',
        reason: `peer ${a.machine} did not answer (${a.error}); it may reach etcd`,
      };
    if (a.report.machine !== a.machine)
      return {
        kind: 'fence',
        reason: `peer ${a.machine} answered as machine ${a.report.machine}; its answer cannot be trusted`,
      };
  }
  const live = answers.filter((a) => a.kind === 'answered' && a.report.leaseAlive);
  const young = (a: PeerAnswer): boolean =>
    a.kind === 'answered' && a.report.liveSinceMs !== null && a.report.liveSinceMs < LIVE_AGAIN_WAIT_MS;
  if (options.wasKeeping === true && live.length > 0 && live.every(young))
    return {
      kind: 'keep',
      reason:
        `etcd works again for ${live.map((a) => a.machine).join(', ')}, registered again less than ` +
        `${LIVE_AGAIN_WAIT_MS} ms ago: this host is probably registering again too`,
    };
  const alive = live[0];
  if (alive !== undefined)
    return {
      kind: 'fence',
      reason: `peer ${alive.machine} has a live lease (etcd works for it), so this host's units may be moved once its lease expires`,
    };
  const ages = answers
    .map((a) =>
      a.kind === 'answered'
        ? `${a.machine} ${a.report.renewedAgoMs === null ? 'has no lease' : `renewed ${a.report.renewedAgoMs} ms ago`}`
        : a.machine,
    )
    .join(', ');
  return {
    kind: 'keep',
    reason: `all ${answers.length} peer(s) have lost etcd too (${ages}): nobody can move a unit`,
  };
}

/**
 * How long after this fleetd last saw etcd fail a peer-confirmed death (daemon/peer-watch.ts) is
 * trusted over the lease (docs/control-plane-faults.md#peer-confirmed-death): an etcd leader
 * election (about 1–3 s), the lease a new etcd leader extends (one election timeout plus the TTL,
 * 5 s by default) and the reconnect grace (6.5 s) all fit in it. While etcd is healthy the lease
 * decides, so that a fleetd restarted for an upgrade, silent for a few seconds while its units run
 * on, moves nothing.
 */
export const DEAD_TRUST_MS = 20_000;

const NOBODY: ReadonlySet<never> = new Set();

/** The peers confirmed dead, when etcd failed this fleetd within DEAD_TRUST_MS; else nobody. */
export function trustedDead<D extends ReadonlySet<unknown> | ReadonlyMap<unknown, unknown>>(
  dead: D | undefined,
  lastEtcdFailureAt: number | undefined,
  now: number,
): D | ReadonlySet<never> {
  if (dead === undefined || dead.size === 0) return NOBODY;
  return lastEtcdFailureAt !== undefined && now - lastEtcdFailureAt < DEAD_TRUST_MS ? dead : NOBODY;
}
