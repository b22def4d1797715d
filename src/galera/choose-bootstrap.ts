// Which member bootstraps after a whole-cluster outage (pure). decide-start.ts says "nobody runs";
// this says whether *this* member is the one to bootstrap, from the positions (Galera uuid:seqno)
// the members published to etcd under the lock, as Galera's own rule: the most advanced node.

/** What a data dir holds: nothing yet, or Galera state (seqno -1: unknown even after recovery). */
export type DataPosition =
  { readonly kind: 'empty' } | { readonly kind: 'data'; readonly uuid: string; readonly seqno: number };

/** A position a member published under galera/<cluster>/positions/<instance>. */
export interface PublishedPosition {
  readonly instance: string;
  readonly position: DataPosition;
  /** When that member first published it during this outage (ms since the epoch). */
  readonly at: number;
}

export interface BootstrapView {
  readonly self: { readonly instance: string; readonly position: DataPosition };
  /** Positions other members published (this member's own is not in the list). */
  readonly others: readonly PublishedPosition[];
  /** Other instances that were ever members (persistent records and the bootstrap history). */
  readonly known: readonly string[];
  /** Whether the cluster was ever bootstrapped (a history entry exists). */
  readonly bootstrapped: boolean;
  /** The instance an operator forced to bootstrap (`fleetts galera force-bootstrap`), if any. */
  readonly forced?: string;
  /** When the first position of this outage was published, this member's included (ms). */
  readonly firstAt: number;
  readonly now: number;
  /** How long to wait for known members to publish before bootstrapping without them. */
  readonly waitMs: number;
}

export type BootstrapChoice =
  | { readonly kind: 'bootstrap'; readonly reason: string }
  | { readonly kind: 'wait'; readonly reason: string };

export function formatPosition(p: DataPosition): string {
  return p.kind === 'empty' ? 'empty' : `${p.uuid}:${p.seqno}`;
}

/**
 * Bootstrap only from the most advanced data: no other member of the same cluster uuid may have
 * published a higher seqno (equal seqnos: the lowest instance name wins, so a tie never stalls),
 * and every known member has published or `waitMs` has passed since the first position. An empty
 * data dir never bootstraps a cluster that existed: that would discard every member's data.
 */
export function chooseBootstrap(v: BootstrapView): BootstrapChoice {
  const self = v.self;
  if (v.forced !== undefined)
    return v.forced === self.instance
      ? { kind: 'bootstrap', reason: `forced by the operator (position ${formatPosition(self.position)})` }
      : { kind: 'wait', reason: `the operator forced ${v.forced} to bootstrap` };
  const withData: DataEntry[] = [];
  for (const o of v.others)
    if (o.position.kind === 'data') withData.push({ instance: o.instance, position: o.position });
  if (!v.bootstrapped && v.known.length === 0 && withData.length === 0)
    return { kind: 'bootstrap', reason: 'no member runs or is announced (a new cluster)' };

  const list = [...v.others.map((o) => `${o.instance}=${formatPosition(o.position)}`)].join(', ') || 'none';
  if (self.position.kind === 'empty') {
    const best = [...withData].sort(byAdvance)[0];
    if (best !== undefined)
      return {
        kind: 'wait',
        reason: `this data dir is empty and ${best.instance} has data (${formatPosition(best.position)}): it bootstraps, this member then joins`,
      };
    return {
      kind: 'wait',
      reason: `this data dir is empty and the cluster existed (published positions: ${list}); waiting for a member with data, or run \`fleetts galera force-bootstrap --instance ${self.instance}\` to start over from an empty database`,
    };
  }

  const mine = self.position;
  const selfEntry: DataEntry = { instance: self.instance, position: mine };
  const comparable = withData.filter((o) => o.position.uuid === mine.uuid);
  const best = [...comparable, selfEntry].sort(byAdvance)[0] ?? selfEntry;
  if (best.instance !== self.instance)
    return {
      kind: 'wait',
      reason: `${best.instance} has more advanced data (${formatPosition(best.position)} > ${formatPosition(mine)}): it bootstraps, this member then joins`,
    };

  const published = new Set(v.others.map((o) => o.instance));
  const missing = [...new Set(v.known)].filter((i) => i !== self.instance && !published.has(i)).sort();
  const waited = v.now - v.firstAt;
  if (missing.length > 0 && waited < v.waitMs)
    return {
      kind: 'wait',
      reason: `waiting for the positions of ${missing.join(', ')} (${Math.ceil((v.waitMs - waited) / 1000)} s left; this member has ${formatPosition(mine)})`,
    };
  const foreign = withData.filter((o) => o.position.uuid !== mine.uuid).map((o) => o.instance);
  return {
    kind: 'bootstrap',
    reason:
      `the most advanced data: ${formatPosition(mine)} (others: ${list})` +
      (missing.length > 0
        ? `; ${missing.join(', ')} published nothing within ${Math.round(v.waitMs / 1000)} s`
        : '') +
      (foreign.length > 0 ? `; ${foreign.join(', ')} hold another cluster uuid (not comparable)` : ''),
  };
}

interface DataEntry {
  readonly instance: string;
  readonly position: Extract<DataPosition, { kind: 'data' }>;
}

/** Most advanced first: higher seqno, then the lower instance name. */
function byAdvance(
  a: { instance: string; position: { seqno: number } },
  b: { instance: string; position: { seqno: number } },
): number {
  if (a.position.seqno !== b.position.seqno) return b.position.seqno - a.position.seqno;
  return a.instance < b.instance ? -1 : a.instance > b.instance ? 1 : 0;
}
