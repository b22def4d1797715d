// Which etcd members answer at all. etcd3 sends each call, and (re)opens each watch or keepalive
// stream, on a member picked at random. A member that went silent (its host powered off or cut
// off: no reset, no refusal) costs every call sent to it its whole deadline, and a stream opened on
// it waits for a TCP connect that the kernel gives up on only after about two minutes: a survivor's
// membership lease lapsed that way, and an upstream watcher saw nothing for a minute. etcd's own Go
// client avoids this with a balancer that only picks connected members; here a probe does it: when
// anything looks wrong (a call that failed for want of etcd, a stream that broke or does not open),
// each member's client port gets a TCP connect, and a member that does not answer within a second
// is left out of etcd3's choice (its per-member policy refuses without calling, so etcd3 takes the
// next member) and its connections are closed, so that a stream stuck on it reopens on another.
// It is probed again every 2 s until it answers. Never every member: with none answering, calls go
// on as before and fail by their deadlines. The happy path costs one round when the client starts
// (its first calls wait for it: a TCP connect per member) and nothing after, until a fault.
import { connect } from 'node:net';
import { BrokenCircuitError } from 'cockatiel';
import type { Clock, Timer } from '../lib/clock.js';

/** How long a member's client port has to accept a TCP connection. */
export const PROBE_TIMEOUT_MS = 1_000;
/** How often a silent member is probed again. */
export const RECHECK_MS = 2_000;
/** Probe rounds are at least this far apart (a burst of failures makes one round). */
const MIN_ROUND_GAP_MS = 500;

/** Resolves true when something answers at `endpoint` (a connection, or a refusal), false on silence. */
export type MemberProbe = (endpoint: string, timeoutMs: number) => Promise<boolean>;

/** What etcd3 calls on a per-member fault-handling policy (cockatiel's IPolicy, `execute` only). */
export interface MemberPolicy {
  execute<T>(fn: () => PromiseLike<T> | T): Promise<T>;
}

export interface MemberGateOptions {
  readonly clock: Clock;
  readonly probe?: MemberProbe;
  /** Told of each change, for the log. */
  readonly onChange?: (silent: readonly string[]) => void;
}

export class MemberGate {
  readonly #endpoints: readonly string[];
  readonly #o: MemberGateOptions;
  readonly #probe: MemberProbe;
  readonly #silent = new Set<string>();
  #probing: Promise<void> | undefined;
  #again = false;
  #lastRound = -Infinity;
  /** When the pending round was asked for. */
  #startedAt = 0;
  #recheck: Timer | undefined;
  #closed = false;
  #falls = 0;
  readonly #listeners = new Set<(fell: readonly string[]) => void>();

  /**
   * Resolves once the first round is done: a fresh process (a sidekick that just started) would
   * otherwise send its first calls to a member that fell silent before it began, and wait their
   * whole deadline. Members that answer make the round take a round trip; a silent one, the probe
   * timeout, still well below a call's deadline.
   */
  readonly ready: Promise<void>;

  constructor(endpoints: readonly string[], options: MemberGateOptions) {
    this.#endpoints = endpoints;
    this.#o = options;
    this.#probe = options.probe ?? tcpProbe;
    this.suspect();
    this.ready = this.settled();
  }

  /** Counts the rounds that found a member newly silent (a call that spans one may try again). */
  get falls(): number {
    return this.#falls;
  }

  /**
   * Calls `listener` with the members a round found newly silent, each time, until the returned
   * function is called; listeners run in the order they subscribed.
   */
  onFall(listener: (fell: readonly string[]) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** The members left out of etcd3's choice now. */
  get silent(): readonly string[] {
    return [...this.#silent];
  }

  /** Whether calls to `endpoint` are refused (it is silent, and another member answers). */
  isSilent(endpoint: string): boolean {
    return this.#silent.has(endpoint);
  }

  /**
   * The policy etcd3 runs each call and stream of `endpoint` through: it refuses (a broken-circuit
   * error, so etcd3 takes the next member) while the member is silent, and else runs `inner` (a
   * circuit breaker) or the call itself.
   */
  policy(endpoint: string, inner?: MemberPolicy): MemberPolicy {
    return {
      execute: async <T>(fn: () => PromiseLike<T> | T): Promise<T> => {
        if (this.#silent.has(endpoint)) throw new BrokenCircuitError(`etcd member ${endpoint} is silent`);
        return inner === undefined ? await fn() : await inner.execute(fn);
      },
    };
  }

  /**
   * Something suggests a member may be silent: probe them all (soon, once for a burst). With a
   * single endpoint there is no other member to send calls to, so nothing is probed.
   */
  suspect(): void {
    if (this.#closed || this.#endpoints.length < 2) return;
    if (this.#probing !== undefined) {
      // A round not started yet covers this; one under way may have missed it.
      if (this.#lastRound >= this.#startedAt) this.#again = true;
      return;
    }
    this.#startedAt = this.#o.clock.monotonic();
    const wait = Math.max(0, this.#lastRound + MIN_ROUND_GAP_MS - this.#o.clock.monotonic());
    this.#probing = (wait > 0 ? this.#o.clock.sleep(wait) : Promise.resolve())
      .then(() => this.#round())
      .finally(() => {
        this.#probing = undefined;
        if (this.#again) {
          this.#again = false;
          this.suspect();
        }
      });
  }

  /** Resolves when no probe round is running or due (tests). */
  async settled(): Promise<void> {
    while (this.#probing !== undefined) await this.#probing;
  }

  close(): void {
    this.#closed = true;
    this.#recheck?.cancel();
    this.#recheck = undefined;
  }

  async #round(): Promise<void> {
    if (this.#closed) return;
    this.#lastRound = this.#o.clock.monotonic();
    const answers = await Promise.all(
      this.#endpoints.map((e) => this.#probe(e, PROBE_TIMEOUT_MS).catch(() => false)),
    );
    if (this.#closed) return;
    const quiet = this.#endpoints.filter((_, i) => answers[i] !== true);
    // With no member answering, leaving them all out would only turn timeouts into refusals.
    const next = quiet.length === this.#endpoints.length ? [] : quiet;
    const fell = next.filter((e) => !this.#silent.has(e));
    const changed = fell.length > 0 || [...this.#silent].some((e) => !next.includes(e));
    this.#silent.clear();
    for (const e of next) this.#silent.add(e);
    if (changed) this.#o.onChange?.(next);
    if (fell.length > 0) {
      this.#falls++;
      for (const listener of [...this.#listeners]) listener(fell);
    }
    this.#recheck?.cancel();
    this.#recheck = undefined;
    if (quiet.length > 0)
      this.#recheck = this.#o.clock.setTimer(RECHECK_MS, () => {
        this.#recheck = undefined;
        this.suspect();
      });
  }
}

/**
 * A TCP connect to the endpoint's host and port: true when it is accepted or refused (something
 * answers: a refused call fails at once, it costs no deadline), false when nothing answers in time
 * or the host is unreachable.
 */
export const tcpProbe: MemberProbe = (endpoint, timeoutMs) => {
  const { host, port } = hostAndPort(endpoint);
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (answered: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(answered);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.once('connect', () => done(true));
    socket.once('error', (err: NodeJS.ErrnoException) =>
      done(err.code === 'ECONNREFUSED' || err.code === 'ECONNRESET'),
    );
  });
};

/** `http://10.0.0.1:2379`, `https://[::1]:2379` or `etcd1:2379` → host and port (2379 by default). */
export function hostAndPort(endpoint: string): { host: string; port: number } {
  const url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(endpoint) ? endpoint : `http://${endpoint}`);
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  return { host, port: url.port === '' ? 2379 : Number(url.port) };
}
