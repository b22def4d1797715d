// Peer-confirmed death (docs/control-plane-faults.md#peer-confirmed-death): every fleetd asks each
// of its peers (up to WATCH_PEERS of them, the next in machine-id order) "are you there?" twice a
// second (a TCP connection to its API port). A peer that has answered nobody for SILENT_MS is dead
// when a majority of its watchers (the hosts that probe it), this one and at least one more, find
// it silent too. The engine then treats it as gone at once, without waiting for its etcd lease: after
// an etcd leader change (a power cut of the host that held it), etcd extends every lease by a full
// TTL, so the lease of a dead host outlives it by far more than its silence does.
//
// The rule is pure (deadVerdict); the loop does the asking on the injected Clock.
import type { MachineId } from '../cluster/types.js';
import { setGridTimer, type Clock, type Timer } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';

/** How often each peer is asked: a TCP connection, so twice a second costs nothing. */
export const PROBE_INTERVAL_MS = 500;
/** How long one answer may take (the peers are asked in parallel). */
export const PROBE_TIMEOUT_MS = 1_000;
/**
 * How long a peer must have answered nobody before it may be dead: four probes in a row. The probe
 * is answered by the peer's kernel, not by fleetd, so a busy fleetd is not silent; a host whose
 * kernel accepts no connection for 2 s is gone or cut off. (A fleetd that is restarting refuses
 * connections for a while, but its death is trusted only after an etcd failure, see
 * agent/peer-check.ts, so a restart alone moves nothing.) It was 3 s with a probe a second: the
 * failover of the etcd leader's host took a median of 7.2 s, over the 6 s target of issue 12.
 */
export const SILENT_MS = 2_000;
/**
 * How often the peer list is read from etcd while every peer answers: each read decodes every
 * machine's record, and at 30 hosts a read each round (twice a second, by every fleetd) cost
 * about a tenth of a fleetd's idle CPU. While a peer is silent it is read every round, so that a
 * peer that registered again (a reboot) is judged on its new registration.
 */
export const LIST_EVERY_MS = 2_000;

/**
 * How many peers each fleetd probes: the next ones after it in machine-id order (a ring). Every
 * host is then watched by as many others, the ones before it, and a suspect is judged by those
 * watchers alone. Up to WATCH_PEERS + 1 hosts every fleetd probes every other one, as before; past
 * that the probes grow with the hosts, not with their square: at 30 hosts all-to-all was 1,740 TCP
 * connections a second, enough to saturate 2 cores by itself (docs/memory.md), and is 360 now.
 */
export const WATCH_PEERS = 6;

/**
 * A peer's heartbeat (GET /v1/self/heartbeat, a byte every 500 ms on one kept connection) heard
 * within this long answers for it, and no probe is made: a TCP connection per probe, twice a second
 * to each watched peer, was the largest part of an idle fleetd's CPU on both ends (docs/memory.md).
 * A heartbeat later than this (a busy or frozen fleetd, a host gone) brings back the probes, which
 * the peer's kernel answers: silence is still judged on them alone, as before.
 */
export const BEAT_FRESH_MS = 1_000;
/** How long after a heartbeat connection ended (or could not be opened) it is opened again. */
export const LISTEN_RETRY_MS = 2_000;

/**
 * The `k` machines after `id` in the ring of `ids` (sorted, wrapping around): whom `id` watches.
 * `id` itself is never among them; with fewer than `k` others, all of them.
 */
export function ringAfter(id: MachineId, ids: readonly MachineId[], k: number): MachineId[] {
  const ring = [...new Set([...ids, id])].sort();
  const at = ring.indexOf(id);
  const out: MachineId[] = [];
  for (let i = 1; i < ring.length && out.length < k; i++) out.push(ring[(at + i) % ring.length]!);
  return out;
}

/** The `k` machines before `id` in the ring of `ids`: who watches `id`. */
export function ringBefore(id: MachineId, ids: readonly MachineId[], k: number): MachineId[] {
  const ring = [...new Set([...ids, id])].sort();
  const at = ring.indexOf(id);
  const out: MachineId[] = [];
  for (let i = 1; i < ring.length && out.length < k; i++)
    out.push(ring[(at - i + ring.length * 2) % ring.length]!);
  return out;
}

/** What GET /v1/self/peers answers: how this fleetd finds each peer it asks. */
export interface PeerViewsReport {
  readonly machine: string;
  readonly peers: readonly PeerView[];
}

export interface PeerView {
  readonly machine: string;
  /** Since its last answer while it has not answered the latest probes; 0 while it answers. */
  readonly silentForMs: number;
}

/** Another host's answer about the suspect, or why there is none. */
export type WitnessAnswer =
  | { readonly kind: 'answered'; readonly witness: MachineId; readonly silentForMs: number | undefined }
  | { readonly kind: 'unanswered'; readonly witness: MachineId };

export type DeadVerdict =
  { readonly dead: true; readonly reason: string } | { readonly dead: false; readonly reason: string };

/**
 * The rule, for a suspect this host has found silent for SILENT_MS: it is dead when the hosts that
 * find it silent for SILENT_MS (this one included) are at least two and a majority of the suspect's
 * watchers (`others`: the live machines that probe it, this one included; with up to WATCH_PEERS + 1
 * hosts, every registered machine but the suspect). A
 * witness that does not answer, or does not know the suspect, counts against: a host cut off from
 * everyone (it finds every peer silent, and nobody confirms) never declares anyone dead, and two
 * hosts alone cannot tell a dead peer from a cut cable.
 */
export function deadVerdict(input: {
  readonly suspect: MachineId;
  /** Live machines other than the suspect, this host included. */
  readonly others: number;
  readonly answers: readonly WitnessAnswer[];
}): DeadVerdict {
  const confirming = input.answers.filter(
    (a) => a.kind === 'answered' && a.silentForMs !== undefined && a.silentForMs >= SILENT_MS,
  );
  const votes = 1 + confirming.length;
  const needed = Math.max(2, Math.floor(input.others / 2) + 1);
  const by = confirming.map((a) => a.witness).join(', ');
  if (votes >= needed)
    return {
      dead: true,
      reason: `${input.suspect} has answered no fleetd for ${SILENT_MS / 1000} s (this host and ${by})`,
    };
  const against = input.answers.filter((a) => !confirming.includes(a)).map((a) => a.witness);
  return {
    dead: false,
    reason:
      `${votes} of the ${needed} hosts needed find ${input.suspect} silent` +
      (against.length === 0 ? '' : ` (not confirmed by ${against.join(', ')})`),
  };
}

/** A peer as the watch asks it. */
export interface WatchedPeer {
  readonly id: MachineId;
  readonly apiAddress: string;
  /** Its membership key's create revision: a new one is a new registration (a reboot). */
  readonly createRevision?: number;
}

export interface PeerWatchDeps {
  readonly self: MachineId;
  readonly clock: Clock;
  readonly log: Logger;
  /** The live machines (this one included); throws when etcd cannot say (the last list is kept). */
  readonly machines: () => Promise<readonly WatchedPeer[]>;
  /** Resolves when the peer's fleetd answered anything at all; rejects when it did not. */
  readonly probe: (peer: WatchedPeer, signal: AbortSignal) => Promise<void>;
  /** A witness's views (GET /v1/self/peers); rejects when it does not answer. */
  readonly views: (witness: WatchedPeer, signal: AbortSignal) => Promise<PeerViewsReport>;
  /**
   * Listens to the peer's heartbeat: `onBeat` at each beat; settles when the connection ends.
   * Without it every round probes every watched peer.
   */
  readonly listen?: (peer: WatchedPeer, onBeat: () => void, signal: AbortSignal) => Promise<void>;
  /** Called when the set of dead peers changes. */
  readonly onChange: (dead: ReadonlySet<MachineId>) => void;
  readonly intervalMs?: number;
  readonly timeoutMs?: number;
  /** Default LIST_EVERY_MS. */
  readonly listEveryMs?: number;
  /** Default WATCH_PEERS. */
  readonly watchPeers?: number;
}

interface Tracked {
  peer: WatchedPeer;
  /** Monotonic time of its last answer (or of when it was first watched). */
  lastAnswer: number;
  /** Whether the latest probe was answered. */
  answering: boolean;
  /** The heartbeat connection while it is open (deps.listen). */
  link?: Link | undefined;
  /** When (monotonic) the latest heartbeat connection was opened or tried. */
  linkTriedAt?: number;
  /** Ends the run loop's pause when no beat follows the latest within BEAT_FRESH_MS. */
  late?: Timer | undefined;
}

interface Link {
  readonly abort: AbortController;
  readonly openedAt: number;
  /** Monotonic time of the latest beat heard, if any. */
  lastBeat?: number;
}

export class PeerWatch {
  readonly #deps: PeerWatchDeps;
  readonly #tracked = new Map<MachineId, Tracked>();
  #dead = new Set<MachineId>();
  #peers: readonly WatchedPeer[] = [];
  #refreshing: Promise<void> | undefined;
  /** Whether a peer list has been read once. */
  #listed = false;
  /** When (monotonic) the latest read of the list began. */
  #listReadAt = Number.NEGATIVE_INFINITY;
  /** Ends the run loop's current pause early (a heartbeat turned late). */
  #wake: (() => void) | undefined;

  constructor(deps: PeerWatchDeps) {
    this.#deps = deps;
  }

  /** The peers confirmed dead, as of the last round. */
  get dead(): ReadonlySet<MachineId> {
    return this.#dead;
  }

  /**
   * The dead peers with the registration they were found dead in (its create revision): a peer
   * that registered again since (it rebooted) is not that dead machine any more, even before the
   * next round hears it.
   */
  get deadRegistrations(): ReadonlyMap<MachineId, number | undefined> {
    return new Map([...this.#dead].map((id) => [id, this.#tracked.get(id)?.peer.createRevision]));
  }

  /** What GET /v1/self/peers answers. */
  views(): PeerViewsReport {
    const now = this.#deps.clock.monotonic();
    return {
      machine: this.#deps.self,
      peers: [...this.#tracked.values()].map((t) => ({
        machine: t.peer.id,
        silentForMs: t.answering ? 0 : Math.max(0, Math.round(now - t.lastAnswer)),
      })),
    };
  }

  /**
   * Rounds until `signal` aborts: every `intervalMs` while a peer is probed; while every watched
   * peer's heartbeat is fresh, only when the peer list is due (LIST_EVERY_MS) or a heartbeat turns
   * late (a timer armed at each beat), whichever comes first. A round twice a second with nothing to
   * do was a fifth of an idle fleetd's wakeups (docs/memory.md); a late beat still starts the probes
   * at once, as a round's check of it did.
   */
  async run(signal: AbortSignal): Promise<void> {
    const interval = this.#deps.intervalMs ?? PROBE_INTERVAL_MS;
    while (!signal.aborted) {
      const started = this.#deps.clock.monotonic();
      try {
        await this.round(signal);
      } catch (err) {
        if (signal.aborted) break;
        this.#deps.log.warn({ event: 'fleetd.peer_watch_failed', err }, 'peer watch round failed');
      }
      const now = this.#deps.clock.monotonic();
      const quiet = this.#quietFor(now);
      await this.#pause(quiet ?? Math.max(0, interval - (now - started)), quiet !== undefined, signal);
    }
    for (const t of this.#tracked.values()) t.late?.cancel();
  }

  /**
   * How long the next round may wait when there is nothing to ask: every watched peer answered and
   * beats (no probe is due), so until the peer list is due. `undefined` while any peer is probed.
   */
  #quietFor(now: number): number | undefined {
    if (this.#deps.listen === undefined || !this.#listed) return undefined;
    for (const t of this.#tracked.values()) {
      const beat = t.link?.lastBeat;
      if (!t.answering || beat === undefined || now - beat >= BEAT_FRESH_MS) return undefined;
    }
    return this.#listReadAt + (this.#deps.listEveryMs ?? LIST_EVERY_MS) - now;
  }

  /**
   * Sleeps `ms` (on the timer grid when `grid`: lib/clock.ts setGridTimer), or less when a heartbeat
   * turns late meanwhile (#beat).
   */
  #pause(ms: number, grid: boolean, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const done = (): void => {
        timer.cancel();
        signal.removeEventListener('abort', done);
        if (this.#wake === done) this.#wake = undefined;
        resolve();
      };
      const { clock } = this.#deps;
      const timer = grid ? setGridTimer(clock, ms, done) : clock.setTimer(ms, done);
      signal.addEventListener('abort', done, { once: true });
      this.#wake = done;
    });
  }

  /** A beat from `t`'s peer: the pause ends if no other beat follows within BEAT_FRESH_MS. */
  #beat(t: Tracked, link: Link): void {
    const { clock } = this.#deps;
    link.lastBeat = clock.monotonic();
    // A beat is an answer: between the rounds, which may be seconds apart while every peer beats,
    // the silence of a peer is counted from its last beat, not from the last round that heard it.
    t.lastAnswer = Math.max(t.lastAnswer, link.lastBeat);
    t.late?.cancel();
    t.late = clock.setTimer(BEAT_FRESH_MS + 1, () => this.#wake?.());
  }

  /**
   * One round: refresh the peer list (see LIST_EVERY_MS), probe every peer, judge the silent ones.
   * Exposed for tests.
   */
  async round(signal: AbortSignal): Promise<void> {
    const { clock } = this.#deps;
    // The list comes from etcd, which may not answer for seconds (an etcd leader lost with the very
    // host this watch should find dead): once there is a list, the round goes on with it and the
    // read lands for a later round. Only the first round waits for it (a while at most).
    const quiet = [...this.#tracked.values()].every((t) => t.answering);
    const stale = clock.monotonic() - this.#listReadAt >= (this.#deps.listEveryMs ?? LIST_EVERY_MS);
    const refresh = !this.#listed || !quiet || stale ? this.#refresh() : Promise.resolve();
    if (!this.#listed)
      await Promise.race([
        refresh,
        clock.sleep(this.#deps.timeoutMs ?? PROBE_TIMEOUT_MS, signal).catch(() => undefined),
      ]);
    const now = clock.monotonic();
    const watched = new Set(
      ringAfter(
        this.#deps.self,
        this.#peers.map((p) => p.id),
        this.#k,
      ),
    );
    for (const [id, t] of this.#tracked)
      if (!watched.has(id)) {
        t.link?.abort.abort();
        t.late?.cancel();
        this.#tracked.delete(id);
      }
    for (const peer of this.#peers) {
      if (!watched.has(peer.id)) continue;
      const t = this.#tracked.get(peer.id);
      // A new registration (a reboot) starts afresh: what was found of the last one is moot.
      if (t === undefined || t.peer.createRevision !== peer.createRevision) {
        t?.link?.abort.abort();
        t?.late?.cancel();
        this.#tracked.set(peer.id, { peer, lastAnswer: now, answering: true });
      } else t.peer = peer;
    }
    await Promise.all(
      [...this.#tracked.values()].map(async (t) => {
        this.#keepListening(t, now, signal);
        const beat = t.link?.lastBeat;
        if (beat !== undefined && now - beat <= BEAT_FRESH_MS) {
          t.answering = true;
          t.lastAnswer = Math.max(t.lastAnswer, beat);
          return;
        }
        const answered = await this.#withTimeout((s) => this.#deps.probe(t.peer, s), signal).then(
          () => true,
          () => false,
        );
        t.answering = answered;
        if (answered) t.lastAnswer = clock.monotonic();
      }),
    );
    const at = clock.monotonic();
    const dead = new Set<MachineId>();
    for (const t of this.#tracked.values()) {
      if (t.answering || at - t.lastAnswer < SILENT_MS) continue;
      if (this.#dead.has(t.peer.id)) {
        dead.add(t.peer.id);
        continue;
      }
      const verdict = await this.#judge(t.peer, signal);
      if (verdict.dead) {
        dead.add(t.peer.id);
        this.#deps.log.warn(
          { event: 'fleetd.peer_dead', machine: t.peer.id, reason: verdict.reason },
          `peer ${t.peer.id} is dead: ${verdict.reason}; its units move without waiting for its etcd lease`,
        );
      } else
        this.#deps.log.info(
          { event: 'fleetd.peer_silent', machine: t.peer.id, reason: verdict.reason },
          `peer ${t.peer.id} is silent but not confirmed dead: ${verdict.reason}`,
        );
    }
    for (const id of this.#dead)
      if (!dead.has(id) && this.#tracked.has(id))
        this.#deps.log.info({ event: 'fleetd.peer_back', machine: id }, `peer ${id} answers again`);
    const changed = dead.size !== this.#dead.size || [...dead].some((id) => !this.#dead.has(id));
    this.#dead = dead;
    if (changed) this.#deps.onChange(dead);
  }

  /**
   * Keeps a heartbeat connection open to the peer: opened again LISTEN_RETRY_MS after the last one
   * ended or failed, and closed when it has been silent for SILENT_MS (a host gone leaves a
   * connection that never ends by itself).
   */
  #keepListening(t: Tracked, now: number, signal: AbortSignal): void {
    const listen = this.#deps.listen;
    if (listen === undefined || signal.aborted) return;
    const link = t.link;
    if (link !== undefined) {
      if (now - (link.lastBeat ?? link.openedAt) < SILENT_MS) return;
      link.abort.abort();
      t.link = undefined;
    }
    if (t.linkTriedAt !== undefined && now - t.linkTriedAt < LISTEN_RETRY_MS) return;
    t.linkTriedAt = now;
    const abort = new AbortController();
    const onStop = (): void => abort.abort();
    signal.addEventListener('abort', onStop, { once: true });
    const opened: Link = { abort, openedAt: now };
    t.link = opened;
    listen(t.peer, () => this.#beat(t, opened), abort.signal)
      .catch(() => undefined)
      .finally(() => {
        signal.removeEventListener('abort', onStop);
        if (t.link === opened) t.link = undefined;
      });
  }

  /** Reads the peer list, one read at a time; a failed read keeps the last list. */
  #refresh(): Promise<void> {
    if (this.#refreshing === undefined) this.#listReadAt = this.#deps.clock.monotonic();
    this.#refreshing ??= this.#deps
      .machines()
      .then(
        (list) => {
          this.#peers = list.filter((p) => p.id !== this.#deps.self && p.apiAddress.startsWith('http'));
          this.#listed = true;
        },
        () => undefined,
      )
      .finally(() => (this.#refreshing = undefined));
    return this.#refreshing;
  }

  get #k(): number {
    return this.#deps.watchPeers ?? WATCH_PEERS;
  }

  /** Asks the suspect's other watchers (the hosts before it in the ring) what they find. */
  async #judge(suspect: WatchedPeer, signal: AbortSignal): Promise<DeadVerdict> {
    const ids = [this.#deps.self, ...this.#peers.map((p) => p.id)];
    const watchers = new Set(ringBefore(suspect.id, ids, this.#k));
    const witnesses = this.#peers.filter((p) => p.id !== suspect.id && watchers.has(p.id));
    const answers = await Promise.all(
      witnesses.map(async (w): Promise<WitnessAnswer> => {
        try {
          const report = await this.#withTimeout((s) => this.#deps.views(w, s), signal);
          if (report.machine !== w.id) return { kind: 'unanswered', witness: w.id };
          const seen = report.peers.find((p) => p.machine === suspect.id);
          return { kind: 'answered', witness: w.id, silentForMs: seen?.silentForMs };
        } catch {
          return { kind: 'unanswered', witness: w.id };
        }
      }),
    );
    return deadVerdict({ suspect: suspect.id, others: witnesses.length + 1, answers });
  }

  async #withTimeout<T>(fn: (signal: AbortSignal) => Promise<T>, outer: AbortSignal): Promise<T> {
    const ac = new AbortController();
    const onAbort = (): void => ac.abort(outer.reason);
    outer.addEventListener('abort', onAbort, { once: true });
    // The timeout gives way to answers that arrived meanwhile: when this fleetd was starved of CPU
    // (a loaded host), the timer and the connection's answer are due in the same turn of the event
    // loop, and timers run before I/O. setImmediate runs after I/O, so the answer wins.
    const timer = this.#deps.clock.setTimer(this.#deps.timeoutMs ?? PROBE_TIMEOUT_MS, () =>
      setImmediate(() => ac.abort(new Error('no answer in time'))),
    );
    try {
      return await Promise.race([
        fn(ac.signal),
        new Promise<never>((_, reject) => {
          if (ac.signal.aborted) reject(ac.signal.reason as Error);
          ac.signal.addEventListener('abort', () => reject(ac.signal.reason as Error), { once: true });
        }),
      ]);
    } finally {
      timer.cancel();
      outer.removeEventListener('abort', onAbort);
    }
  }
}
