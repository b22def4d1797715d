// The Kv primitives on a real etcd through microsoft/etcd3, and the one place etcd3's errors are
// translated into RegistryError. Every unary call has a deadline (a partitioned etcd must surface
// as `unavailable`, not hang); keepalives share one stream and time out on the registry's Clock.
import { readFileSync } from 'node:fs';
import {
  ClientClosedError,
  Etcd3,
  EtcdAuthenticationFailedError,
  EtcdInvalidAuthTokenError,
  EtcdLeaseInvalidError,
  EtcdPermissionDeniedError,
  GRPCDeadlineExceededError,
  GRPCInvalidArgumentError,
  GRPCResourceExhastedError,
  GRPCUnavailableError,
  isRecoverableError,
  type ICompare,
  type IDuplexStream,
  type IKeyValue,
  type ILeaseKeepAliveRequest,
  type ILeaseKeepAliveResponse,
  type IOptions,
  type IRequestOp,
  type IWatchResponse,
  type Watcher,
} from 'etcd3';
import {
  circuitBreaker,
  ConsecutiveBreaker,
  ExponentialBackoff,
  handleWhen,
  noop,
  retry,
  type IBackoff,
  type IDefaultPolicyContext,
  type IPolicy,
} from 'cockatiel';
import type { Clock, Timer } from '../lib/clock.js';
import type {
  Compare,
  KeyValue,
  Kv,
  KvWatch,
  LeaseId,
  Revision,
  TxnOp,
  TxnOpResult,
  TxnRequest,
  TxnResult,
  WatchEvent,
  WatchHandlers,
  WatchOptions,
} from './kv.js';
import { MemberGate, type MemberPolicy } from './member-gate.js';
import { RegistryError } from './registry-error.js';

export interface EtcdConnectionOptions {
  /** Client URLs, e.g. `['http://127.0.0.1:2379']` (https when TLS is configured). */
  readonly endpoints: readonly string[];
  /** Client-certificate TLS: PEM file paths (CA alone for server-only TLS). */
  readonly tls?: { readonly caFile: string; readonly certFile?: string; readonly keyFile?: string };
  /** etcd's built-in authentication. */
  readonly auth?: { readonly username: string; readonly password: string };
  /** Deadline of each unary call (default 5000 ms). */
  readonly requestTimeoutMs?: number;
  /** etcd's `--max-txn-ops` on the server (default 128). */
  readonly maxTxnOps?: number;
  /** Told when etcd members fall silent or answer again (member-gate.ts), for the log. */
  readonly onSilentMembers?: (silent: readonly string[]) => void;
}

/** A watch that has not opened this long after it asked to suspects a silent member. */
const WATCH_OPEN_SUSPECT_MS = 2_000;
/**
 * A call still unanswered after this long suspects a silent member: etcd answers in milliseconds,
 * and the probe then finds the member before the call's own deadline (the member's connections are
 * closed, and etcd3 sends the call again to another member within that deadline).
 */
const SLOW_CALL_SUSPECT_MS = 1_500;

export class EtcdKv implements Kv {
  readonly maxTxnOps: number;
  readonly #client: Etcd3;
  /**
   * Leases (grant, keepalive, revoke) go through their own connection with no circuit breaker: a
   * burst of data calls (500 units starting at once) must never delay a keepalive past the TTL,
   * and a breaker opened by failed data calls must not stop renewals (the host would fence itself).
   */
  readonly #leaseClient: Etcd3;
  readonly #clock: Clock;
  readonly #timeoutMs: number;
  readonly #endpoints: string;
  #keepalive: Promise<IDuplexStream<ILeaseKeepAliveRequest, ILeaseKeepAliveResponse>> | undefined;
  readonly #waiting = new Map<
    LeaseId,
    { resolve: (ttl: number) => void; reject: (e: Error) => void; timer: Timer }[]
  >();
  #closed = false;
  /** Leaves silent members out of etcd3's choice of member (member-gate.ts). */
  readonly #gate: MemberGate;

  constructor(options: EtcdConnectionOptions, clock: Clock) {
    if (options.endpoints.length === 0) throw new RegistryError('invalid', 'no etcd endpoints configured');
    this.#clock = clock;
    this.#timeoutMs = options.requestTimeoutMs ?? 5000;
    this.maxTxnOps = options.maxTxnOps ?? 128;
    this.#endpoints = options.endpoints.join(',');
    this.#gate = new MemberGate(options.endpoints, {
      clock,
      ...(options.onSilentMembers === undefined ? {} : { onChange: options.onSilentMembers }),
    });
    // First of the gate's listeners: the connections are closed before any call is sent again.
    this.#gate.onFall((fell) => this.#closeMembers(fell));
    const gated = (endpoint: string, inner?: MemberPolicy): IPolicy<IDefaultPolicyContext> =>
      // etcd3 calls only execute() on a host's policy.
      this.#gate.policy(endpoint, inner) as unknown as IPolicy<IDefaultPolicyContext>;
    const config: IOptions = { hosts: [...options.endpoints] };
    if (options.tls !== undefined) {
      const { caFile, certFile, keyFile } = options.tls;
      config.credentials = {
        rootCertificate: readPem(caFile, 'CA certificate'),
        ...(certFile === undefined ? {} : { certChain: readPem(certFile, 'client certificate') }),
        ...(keyFile === undefined ? {} : { privateKey: readPem(keyFile, 'client key') }),
      };
    }
    if (options.auth !== undefined)
      config.auth = { username: options.auth.username, password: options.auth.password };
    this.#client = new Etcd3({
      ...config,
      // A snapshot reads whole trees in one response: grpc-js's default 4 MiB limit would make a
      // few big (even corrupt) values fail every read of the cluster. etcd bounds what it stores.
      grpcOptions: { 'grpc.max_receive_message_length': -1, ...GRPC_KEEPALIVE },
      faultHandling: {
        host: (endpoint) => gated(endpoint, etcdBreaker()),
        // etcd3's default, less the calls whose deadline is spent: a retry of those fails at once,
        // on whichever member it picks, and counts against that member's breaker (a call that
        // waited on a silent member opened the breaker of the member that answers).
        global: retry(
          handleWhen((e) => isRecoverableError(e) && !(e instanceof GRPCDeadlineExceededError)),
          { maxAttempts: 3 },
        ),
        // A watch stream that broke (its member died) reconnects to another within a second:
        // etcd3's default backoff grew to several seconds after a few refused attempts at the dead
        // member, and every assignment, status and upstream change waited for it.
        // etcd3 types this as one IBackoff but calls next() on it first, as on its own default (a
        // cockatiel ExponentialBackoff, which is a backoff factory).
        watchBackoff: new ExponentialBackoff({
          initialDelay: 100,
          maxDelay: 1_000,
        }) as unknown as IBackoff<unknown>,
      },
    });
    this.#leaseClient = new Etcd3({
      ...config,
      grpcOptions: { 'grpc.use_local_subchannel_pool': 1, ...GRPC_KEEPALIVE },
      faultHandling: { host: (endpoint) => gated(endpoint), global: noop },
    });
  }

  async range(
    key: string,
    end?: string,
    options: { readonly revision?: Revision } = {},
  ): Promise<{ revision: Revision; kvs: readonly KeyValue[] }> {
    const res = await this.#call(
      'range',
      () =>
        this.#client.kv.range(
          {
            key: Buffer.from(key),
            ...(end === undefined ? {} : { range_end: Buffer.from(end) }),
            ...(options.revision === undefined ? {} : { revision: String(options.revision) }),
          },
          this.#deadline(),
        ),
      { hedge: true },
    );
    return { revision: Number(res.header.revision), kvs: res.kvs.map(toKeyValue) };
  }

  async txn(request: TxnRequest): Promise<TxnResult> {
    const ops = (list: readonly TxnOp[]): IRequestOp[] => list.map(toRequestOp);
    const res = await this.#call('txn', () =>
      this.#client.kv.txn(
        {
          compare: request.compare.map(toCompare),
          success: ops(request.success),
          failure: ops(request.failure ?? []),
        },
        this.#deadline(),
      ),
    );
    const branch = res.succeeded ? request.success : (request.failure ?? []);
    const results: TxnOpResult[] = branch.map((op, i) => {
      const r = res.responses[i];
      switch (op.kind) {
        case 'range':
          return { kind: 'range', kvs: (r?.response_range?.kvs ?? []).map(toKeyValue) };
        case 'put':
          return { kind: 'put' };
        case 'delete':
          return { kind: 'delete', deleted: Number(r?.response_delete_range?.deleted ?? 0) };
      }
    });
    return { succeeded: res.succeeded, revision: Number(res.header.revision), results };
  }

  watch(
    key: string,
    end: string,
    startRevision: Revision,
    handlers: WatchHandlers,
    options: WatchOptions = {},
  ): KvWatch {
    if (this.#closed) throw new RegistryError('closed', 'the etcd connection was closed');
    let cancelled = false;
    // etcd3's watcher reconnects by itself and resumes after the last revision it delivered;
    // what reaches 'error' is final (e.g. the start revision was compacted).
    const builder = this.#client
      .watch()
      .inRange({ start: Buffer.from(key), end: Buffer.from(end) })
      .startRevision(String(startRevision));
    if (options.prevKv === true) builder.withPreviousKV();
    const watcher: Watcher = builder.watcher();
    // A watch stream that broke, or that does not open, may sit on a silent member.
    let opening: Timer | undefined;
    const stopOpening = (): void => {
      opening?.cancel();
      opening = undefined;
    };
    watcher.on('connecting', () => {
      stopOpening();
      opening = this.#clock.setTimer(WATCH_OPEN_SUSPECT_MS, () => {
        opening = undefined;
        if (!cancelled) this.#gate.suspect();
      });
    });
    watcher.on('connected', stopOpening);
    watcher.on('disconnected', () => {
      if (!cancelled) this.#gate.suspect();
    });
    watcher.on('data', (res: IWatchResponse) => {
      if (cancelled || res.events.length === 0) return;
      const events: WatchEvent[] = res.events.map((e) => ({
        type: e.type === 'Delete' ? 'delete' : 'put',
        kv: toKeyValue(e.kv),
        // etcd sends an empty prev_kv (no key) for a create.
        ...(e.prev_kv?.key === undefined || e.prev_kv.key.length === 0
          ? {}
          : { prevKv: toKeyValue(e.prev_kv) }),
      }));
      handlers.onEvents(events);
    });
    watcher.on('error', (error: Error) => {
      if (cancelled) return;
      cancelled = true;
      stopOpening();
      watcher.cancel().catch(() => undefined);
      handlers.onError(translateEtcdError(error, `watch ${key}`, this.#endpoints));
    });
    return {
      cancel: () => {
        if (cancelled) return;
        cancelled = true;
        stopOpening();
        watcher.removeAllListeners('data');
        watcher.cancel().catch(() => undefined);
      },
    };
  }

  async leaseGrant(ttlSeconds: number): Promise<LeaseId> {
    const res = await this.#call(
      'lease grant',
      () => this.#leaseClient.leaseClient.leaseGrant({ TTL: Math.ceil(ttlSeconds) }, this.#deadline()),
      // A second grant when the first one waited on a silent member: the unused lease just expires.
      { hedge: true },
    );
    return String(res.ID);
  }

  async leaseKeepAlive(id: LeaseId, options: { timeoutMs: number }): Promise<number> {
    if (this.#closed) throw new RegistryError('closed', 'the etcd connection was closed');
    let stream: IDuplexStream<ILeaseKeepAliveRequest, ILeaseKeepAliveResponse>;
    await this.#gate.ready;
    try {
      stream = await this.#keepaliveStream();
    } catch (error) {
      this.#keepalive = undefined;
      throw translateEtcdError(error, 'lease keepalive', this.#endpoints);
    }
    return new Promise<number>((resolve, reject) => {
      const list = this.#waiting.get(id) ?? [];
      const entry = {
        resolve,
        reject,
        timer: this.#clock.setTimer(options.timeoutMs, () => {
          const l = this.#waiting.get(id);
          if (l !== undefined) l.splice(l.indexOf(entry), 1);
          reject(
            new RegistryError(
              'unavailable',
              `etcd at ${this.#endpoints} did not answer a keepalive for lease ${id} within ${options.timeoutMs} ms`,
            ),
          );
          // A stuck stream is replaced: the next keepalive opens a fresh one (on an answering member).
          this.#resetKeepalive(stream);
          this.#gate.suspect();
        }),
      };
      list.push(entry);
      this.#waiting.set(id, list);
      try {
        stream.write({ ID: id });
      } catch (error) {
        this.#failKeepalives(stream, error);
      }
    });
  }

  async leaseRevoke(id: LeaseId): Promise<void> {
    try {
      await this.#call('lease revoke', () =>
        this.#leaseClient.leaseClient.leaseRevoke({ ID: id }, this.#deadline()),
      );
    } catch (error) {
      if (error instanceof RegistryError && error.code === 'lease_lost') return;
      throw error;
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    void this.#keepalive?.then(
      (s) => s.end(),
      () => undefined,
    );
    this.#keepalive = undefined;
    this.#gate.close();
    this.#client.close();
    this.#leaseClient.close();
  }

  /**
   * Closes both clients' connections to these members: a watch or keepalive stream waiting on one
   * fails, and etcd3 opens it again on a member that answers. etcd3 keeps its per-member connections
   * private (ConnectionPool.hosts); test/registry/etcd-silent-member.test.ts fails if that changes.
   */
  #closeMembers(endpoints: readonly string[]): void {
    if (this.#closed) return;
    const wanted = new Set(endpoints.map(withoutScheme));
    for (const client of [this.#client, this.#leaseClient]) {
      for (const host of poolHosts(client)) if (wanted.has(host.host)) host.resetAllServices();
    }
  }

  #deadline(): { deadline: number } {
    return { deadline: this.#clock.now() + this.#timeoutMs };
  }

  /** `hedge`: a read (or a grant), safe to send again while the first attempt may still land. */
  async #call<T>(what: string, fn: () => Promise<T>, options: { hedge?: boolean } = {}): Promise<T> {
    if (this.#closed) throw new RegistryError('closed', 'the etcd connection was closed');
    await this.#gate.ready;
    const falls = this.#gate.falls;
    const slow = this.#clock.setTimer(SLOW_CALL_SUSPECT_MS, () => this.#gate.suspect());
    let unsubscribe = (): void => undefined;
    try {
      if (options.hedge !== true) return await fn();
      // Safe to send twice: when a member is found silent while this waits (most likely on it),
      // the call goes again to one that answers, and the first answer of the two counts.
      const first = fn();
      first.catch(() => undefined);
      const fell = new Promise<'fell'>((resolve) => {
        unsubscribe = this.#gate.onFall(() => resolve('fell'));
      });
      const early = await Promise.race([first.then(() => 'answered' as const), fell]);
      if (early === 'answered') return await first;
      return await Promise.any([first, fn()]).catch((e: unknown) => {
        throw e instanceof AggregateError ? e.errors.at(-1) : e;
      });
    } catch (error) {
      if (!(error instanceof Error) || !isEtcdUnavailable(error))
        throw translateEtcdError(error, what, this.#endpoints);
      // A member was found silent while this call waited: it most likely waited on that member.
      // Once more, with a deadline of its own (fn makes it), on a member that answers. etcd3 itself
      // sends any call again after such an error, but within the first deadline, already spent;
      // the outcome of a write that timed out was unknown to its caller either way.
      if (this.#gate.falls !== falls && !this.#closed) {
        try {
          return await fn();
        } catch (again) {
          throw translateEtcdError(again, what, this.#endpoints);
        }
      }
      this.#gate.suspect();
      throw translateEtcdError(error, what, this.#endpoints);
    } finally {
      slow.cancel();
      unsubscribe();
    }
  }

  #keepaliveStream(): Promise<IDuplexStream<ILeaseKeepAliveRequest, ILeaseKeepAliveResponse>> {
    if (this.#keepalive !== undefined) return this.#keepalive;
    const opening = this.#leaseClient.leaseClient.leaseKeepAlive().then((stream) => {
      stream.on('data', (res: ILeaseKeepAliveResponse) => {
        const entry = this.#waiting.get(String(res.ID))?.shift();
        if (entry === undefined) return;
        entry.timer.cancel();
        entry.resolve(Number(res.TTL));
      });
      stream.on('error', (error: Error) => this.#failKeepalives(stream, error));
      stream.on('end', () => this.#failKeepalives(stream, new Error('keepalive stream ended')));
      return stream;
    });
    this.#keepalive = opening;
    return opening;
  }

  #failKeepalives(
    stream: IDuplexStream<ILeaseKeepAliveRequest, ILeaseKeepAliveResponse>,
    error: unknown,
  ): void {
    this.#resetKeepalive(stream);
    if (!this.#closed) this.#gate.suspect();
    const translated = translateEtcdError(error, 'lease keepalive', this.#endpoints);
    for (const entries of this.#waiting.values()) {
      for (const entry of entries.splice(0)) {
        entry.timer.cancel();
        entry.reject(translated);
      }
    }
  }

  #resetKeepalive(stream: IDuplexStream<ILeaseKeepAliveRequest, ILeaseKeepAliveResponse>): void {
    const current = this.#keepalive;
    if (current === undefined) return;
    void current.then(
      (s) => {
        if (s !== stream) return;
        if (this.#keepalive === current) this.#keepalive = undefined;
        try {
          s.cancel();
        } catch {
          // already closed
        }
      },
      () => undefined,
    );
  }
}

/**
 * HTTP/2 pings on every etcd connection while a call is open. A member that dies silently (a power
 * cut, a pulled cable: no reset, no FIN) would otherwise keep a watch stream open forever: its
 * events never come, and the watcher (an upstream, an agent's assignments) stays stale until some
 * resync. With a ping every 6 s and 2 s to answer, such a stream fails within 8 s and etcd3
 * reconnects it to another member, resuming after the last revision it delivered. 6 s is above
 * etcd's default `--grpc-keepalive-min-time` (5 s): pings more frequent than that are answered
 * with GOAWAY (too_many_pings). No pings without an open call (etcd does not permit them).
 */
export const GRPC_KEEPALIVE = {
  'grpc.keepalive_time_ms': 6_000,
  'grpc.keepalive_timeout_ms': 2_000,
} as const;

/** etcd3's per-member connections (private in its types: ConnectionPool.hosts), or none. */
function poolHosts(client: Etcd3): readonly { host: string; resetAllServices(): void }[] {
  const pool = (client as unknown as { pool?: { hosts?: unknown } }).pool;
  const hosts = pool?.hosts;
  if (!Array.isArray(hosts)) return [];
  return hosts.filter(
    (h): h is { host: string; resetAllServices(): void } =>
      typeof (h as { host?: unknown }).host === 'string' &&
      typeof (h as { resetAllServices?: unknown }).resetAllServices === 'function',
  );
}

/** `http://10.0.0.1:2379` → `10.0.0.1:2379`, as etcd3 names its hosts. */
function withoutScheme(endpoint: string): string {
  return endpoint.replace(/^[a-z][a-z0-9+.-]*:\/\//i, '');
}

/**
 * The per-host circuit breaker of data calls: it opens after consecutive failures that mean etcd
 * is unreachable or overloaded, and on nothing else. etcd3's default also counts any "recoverable"
 * gRPC error, such as a response over the size limit or a cancelled watch stream, so that one
 * oversized key made every read of every caller fail with "circuit breaker is open" for 5 s.
 */
function etcdBreaker() {
  return circuitBreaker(handleWhen(isEtcdUnavailable), {
    // Tried again after 1 s: an etcd election fails every member for a second or two, and a
    // breaker still open seconds after the new leader is up held every call back (a failover
    // waited for it); a dead member costs one failed call a second.
    halfOpenAfter: 1_000,
    breaker: new ConsecutiveBreaker(3),
  });
}

/** Whether an etcd3 error means that etcd could not serve the call at all (not this call's fault). */
export function isEtcdUnavailable(error: Error): boolean {
  if (error instanceof GRPCUnavailableError || error instanceof GRPCDeadlineExceededError) return true;
  return (
    error instanceof GRPCResourceExhastedError && error.message.includes('etcdserver: too many requests')
  );
}

/** etcd3's errors → RegistryError; anything unknown is treated as etcd being unavailable. */
export function translateEtcdError(error: unknown, what: string, endpoints: string): RegistryError {
  if (error instanceof RegistryError) return error;
  const message = error instanceof Error ? error.message : String(error);
  if (error instanceof EtcdLeaseInvalidError || message.includes('requested lease not found')) {
    return new RegistryError('lease_lost', `${what}: the lease no longer exists in etcd (${message})`, {
      cause: error,
    });
  }
  if (
    error instanceof EtcdPermissionDeniedError ||
    error instanceof EtcdAuthenticationFailedError ||
    error instanceof EtcdInvalidAuthTokenError
  ) {
    return new RegistryError(
      'denied',
      `${what}: etcd at ${endpoints} refused: ${message}; check the etcd user and its role`,
      {
        cause: error,
      },
    );
  }
  if (error instanceof ClientClosedError)
    return new RegistryError('closed', `${what}: the etcd connection was closed`, { cause: error });
  if (error instanceof GRPCInvalidArgumentError || /too many operations|duplicate key/.test(message)) {
    return new RegistryError('invalid', `${what}: etcd rejected the request: ${message}`, { cause: error });
  }
  if (/compacted/.test(message)) {
    return new RegistryError('compacted', `${what}: the revision was compacted (${message}); re-read`, {
      cause: error,
    });
  }
  if (/future revision/.test(message)) {
    return new RegistryError('invalid', `${what}: the revision is ahead of etcd's (${message})`, {
      cause: error,
    });
  }
  return new RegistryError('unavailable', `${what}: etcd at ${endpoints} is unavailable: ${message}`, {
    cause: error,
  });
}

function readPem(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new RegistryError('invalid', `cannot read the etcd ${what} ${path}: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

function toKeyValue(kv: IKeyValue): KeyValue {
  return {
    key: kv.key.toString(),
    value: kv.value.toString(),
    createRevision: Number(kv.create_revision),
    modRevision: Number(kv.mod_revision),
    version: Number(kv.version),
    lease: String(kv.lease),
  };
}

const COMPARE_RESULT = { '==': 'Equal', '!=': 'NotEqual', '<': 'Less', '>': 'Greater' } as const;

function toCompare(c: Compare): ICompare {
  const base: ICompare = { key: Buffer.from(c.key), result: COMPARE_RESULT[c.op] };
  switch (c.target) {
    case 'create':
      return { ...base, target: 'Create', create_revision: c.revision, ...rangeEnd(c.end) };
    case 'mod':
      return { ...base, target: 'Mod', mod_revision: c.revision, ...rangeEnd(c.end) };
    case 'version':
      return { ...base, target: 'Version', version: c.version, ...rangeEnd(c.end) };
    case 'value':
      return { ...base, target: 'Value', value: Buffer.from(c.value) };
    case 'lease':
      return { ...base, target: 'Lease', lease: c.lease };
  }
}

function rangeEnd(end: string | undefined): { range_end?: Buffer } {
  return end === undefined ? {} : { range_end: Buffer.from(end) };
}

function toRequestOp(op: TxnOp): IRequestOp {
  switch (op.kind) {
    case 'put':
      return {
        request_put: {
          key: Buffer.from(op.key),
          value: Buffer.from(op.value),
          ...(op.lease === undefined ? {} : { lease: op.lease }),
        },
      };
    case 'delete':
      return { request_delete_range: { key: Buffer.from(op.key), ...rangeEnd(op.end) } };
    case 'range':
      return { request_range: { key: Buffer.from(op.key), ...rangeEnd(op.end) } };
  }
}
