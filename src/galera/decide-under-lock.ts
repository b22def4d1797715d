// The bootstrap-or-join protocol of a member against etcd (galera-member.ts runs it before it
// starts MariaDB): take the cluster's lock, join whoever runs (decide-start.ts), and when nobody
// runs, bootstrap only from the most advanced data the members published (choose-bootstrap.ts).
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import type { LeaseId } from '../registry/kv.js';
import type { ServiceReader } from '../registry/registry.js';
import { chooseBootstrap, formatPosition, type DataPosition } from './choose-bootstrap.js';
import { decideStart, type StartDecision } from './decide-start.js';
import type { GaleraStore } from './galera-store.js';

export interface DecideDeps {
  readonly store: GaleraStore;
  readonly registry: ServiceReader;
  readonly clock: Clock;
  readonly log: Logger;
}

export interface DecideParams {
  /** The member's lease: the lock and the published position are compared on it. */
  readonly lease: LeaseId;
  readonly instance: string;
  readonly host: string;
  readonly cluster: string;
  /** Where the sidekicks announce Synced members: services/<service>/. */
  readonly service: string;
  readonly position: DataPosition;
  readonly recoveryWaitMs: number;
  readonly retryMs: number;
}

/**
 * Resolves with the decision while this member still holds the lock (the caller records it and
 * releases the lock), or undefined when `signal` stopped it while it waited. A member that is not
 * the one to bootstrap releases the lock and asks again every `retryMs`: the better member
 * bootstraps meanwhile, and this one then sees it running and joins.
 */
export async function decideUnderLock(
  d: DecideDeps,
  p: DecideParams,
  signal: AbortSignal,
): Promise<StartDecision | undefined> {
  let lastWait = '';
  for (;;) {
    await d.store.acquireLock(p.lease, p.instance, signal, (holder) =>
      d.log.info(
        { event: 'galera.lock_wait', lock: d.store.lockKey, holder },
        'waiting for the bootstrap lock',
      ),
    );
    const [running, announced] = await Promise.all([
      d.store.listMembers(),
      d.registry.listServiceInstances(p.service),
    ]);
    const decision = decideStart({
      self: { instance: p.instance, host: p.host },
      running,
      announced: announced.items.map((i) => ({ instance: i.unit ?? i.instance, address: i.address })),
    });
    if (decision.kind === 'join') return decision;
    const [published, known, history, forced] = await Promise.all([
      d.store.listPositions(),
      d.store.listKnown(),
      d.store.listBootstraps(),
      d.store.forcedBootstrap(),
    ]);
    const mine = await d.store.publishPosition(p.lease, p.instance, p.position);
    const others = published.filter((o) => o.instance !== p.instance);
    const choice = chooseBootstrap({
      self: { instance: p.instance, position: p.position },
      others,
      known: [...known, ...history.map((h) => h.instance)].filter((i) => i !== p.instance),
      bootstrapped: history.length > 0,
      ...(forced === undefined ? {} : { forced: forced.instance }),
      firstAt: Math.min(mine.at, ...others.map((o) => o.at)),
      now: d.clock.now(),
      waitMs: p.recoveryWaitMs,
    });
    if (choice.kind === 'bootstrap') return { kind: 'bootstrap', reason: choice.reason };
    await d.store.releaseLock(p.lease);
    // The countdown changes every round: log when the reason itself changes.
    const gist = choice.reason.replace(/\d+ s left/, '');
    if (gist !== lastWait)
      d.log.info(
        {
          event: 'galera.wait_for_better',
          cluster: p.cluster,
          position: formatPosition(p.position),
          positions: others.map((o) => `${o.instance}=${formatPosition(o.position)}`),
          reason: choice.reason,
        },
        `not bootstrapping: ${choice.reason}`,
      );
    lastWait = gist;
    const stopped = await d.clock.sleep(p.retryMs, signal).then(
      () => false,
      () => true,
    );
    if (stopped) return undefined;
  }
}
