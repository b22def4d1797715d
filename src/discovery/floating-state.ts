// The floating address's safety rule as a pure function (docs/floating-address.md): whether the
// address may be up on this host now, and what to do about it. The driver (floating-address.ts)
// feeds it the clock, its election term and what `ip` last reported; it never decides alone.

/** The sidekick's lease TTL: the key outlives a dead holder by at most this. */
export const DEFAULT_FLOATING_TTL_MS = 3_000;
/** Keepalives well inside the TTL: the deadline below is missed only after 4 unanswered ones. */
export const DEFAULT_FLOATING_KEEPALIVE_MS = 500;
/**
 * The address goes when no keepalive has been acknowledged for this share of the TTL: fencing's
 * rule (3.5 s of 5 s, docs/fencing.md). etcd cannot expire the lease (and so give the key to
 * another host) before `renewedAt + TTL`; the rest of the TTL is the budget for `ip addr del`.
 */
export const FENCE_SHARE = 0.7;

export function fenceAfterMs(ttlMs: number): number {
  return Math.floor(ttlMs * FENCE_SHARE);
}

/** Whether this sidekick holds the address's key. */
export type FloatingHold =
  | { readonly kind: 'none' }
  /** `renewedAt`: when (monotonic ms) the last acknowledged keepalive of the key's lease was sent. */
  | { readonly kind: 'held'; readonly renewedAt: number };

export interface FloatingInput {
  /** Monotonic ms. */
  readonly now: number;
  readonly hold: FloatingHold;
  /** SIGTERM/SIGINT: the address goes before the lease is revoked. */
  readonly stopping: boolean;
  /**
   * `--track`: whether this host's own service (its balancer) passes its check. A host that fails
   * it gives the address up (down first, then the key goes) and does not campaign.
   */
  readonly tracked: boolean;
  /** What `ip` last reported; undefined when unknown (at start, or after a failed command). */
  readonly present: boolean | undefined;
  readonly fenceAfterMs: number;
}

/**
 * `holder`: up. `not_holder`: down (another host may hold it, or nobody yet). `unrenewed`: down,
 * held but no keepalive acknowledged for `fenceAfterMs`. `stopping`: down, the sidekick exits.
 * `track_failed`: down, this host's tracked service fails its check (the key is given up next).
 */
export type FloatingReason = 'holder' | 'not_holder' | 'unrenewed' | 'stopping' | 'track_failed';

export interface FloatingDecision {
  readonly want: 'up' | 'down';
  readonly why: FloatingReason;
  /** `add`: the driver adds it and then announces it by gratuitous ARP. */
  readonly action: 'add' | 'remove' | 'none';
  /** While up: the latest time (monotonic ms) to decide again, the fence deadline. */
  readonly deadline: number | undefined;
}

export function decideFloating(input: FloatingInput): FloatingDecision {
  const { hold, present } = input;
  const down = (why: FloatingReason): FloatingDecision => ({
    want: 'down',
    why,
    // Unknown counts as present: a stale address from a killed predecessor must go.
    action: present === false ? 'none' : 'remove',
    deadline: undefined,
  });
  if (input.stopping) return down('stopping');
  if (hold.kind === 'none') return down('not_holder');
  if (!input.tracked) return down('track_failed');
  const deadline = hold.renewedAt + input.fenceAfterMs;
  if (input.now >= deadline) return down('unrenewed');
  return { want: 'up', why: 'holder', action: present === true ? 'none' : 'add', deadline };
}
