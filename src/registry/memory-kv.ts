// etcd's semantics in memory, for simulations and the registry contract tests: one store (the
// "cluster") with MVCC revisions, create/mod revisions and versions, transactions with compares,
// watches from any retained revision, and leases that expire on the injected Clock. Each fleetd of
// a simulation gets its own client (`store.client()`) with fault hooks: unavailable, slow, or
// silently dropping its keepalives (a partitioned or frozen host). Faults of the whole store:
// `setDown` (etcd frozen or without quorum: unavailable to every client) and `extendLeases` (what
// a new etcd leader does to every lease).
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
import { NO_LEASE } from './kv.js';
import { RegistryError } from './registry-error.js';

export interface MemoryEtcdOptions {
  readonly clock: Clock;
  /** etcd's `--max-txn-ops` (default 128). */
  readonly maxTxnOps?: number;
  /** etcd raises lower TTLs to this (default 2 s, etcd's minimum with default timing). */
  readonly minLeaseTtlSeconds?: number;
}

interface LeaseState {
  readonly id: LeaseId;
  readonly ttlSeconds: number;
  expiresAt: number;
  timer: Timer | undefined;
  readonly keys: Set<string>;
}

interface StoreWatcher {
  readonly start: string;
  readonly end: string;
  /** Next revision to deliver. */
  next: Revision;
  readonly deliver: (events: WatchEvent[]) => void;
  readonly fail: (error: Error) => void;
  cancelled: boolean;
}

/** The in-memory "etcd cluster". */
export class MemoryEtcd {
  readonly clock: Clock;
  readonly maxTxnOps: number;
  readonly #minTtl: number;
  #revision = 1;
  #compacted = 0;
  #nextLease = 0x1000;
  readonly #data = new Map<string, KeyValue>();
  /** Events per revision, oldest first (kept until `compact`). */
  readonly #history: { revision: Revision; events: WatchEvent[] }[] = [];
  readonly #leases = new Map<LeaseId, LeaseState>();
  readonly #watchers = new Set<StoreWatcher>();
  readonly #clients = new Set<MemoryKv>();
  #down = false;

  constructor(options: MemoryEtcdOptions) {
    this.clock = options.clock;
    this.maxTxnOps = options.maxTxnOps ?? 128;
    this.#minTtl = options.minLeaseTtlSeconds ?? 2;
  }

  /** A new connection to the store, with its own faults. */
  client(): MemoryKv {
    const kv = new MemoryKv(this);
    this.#clients.add(kv);
    return kv;
  }

  /** Unavailable to every client (`setDown`). */
  get down(): boolean {
    return this.#down;
  }

  /**
   * etcd frozen or without quorum (`true`), or back (`false`). While down every client's calls
   * fail `unavailable`, watch events are held, and no lease expires (revoking needs a quorum);
   * when it is back, every lease whose TTL passed meanwhile is revoked at once, as etcd does.
   */
  setDown(down: boolean): void {
    if (this.#down === down) return;
    this.#down = down;
    if (down) return;
    const now = this.clock.monotonic();
    for (const lease of [...this.#leases.values()]) if (lease.expiresAt <= now) this.leaseRevoke(lease.id);
    for (const kv of this.#clients) kv.storeUp();
  }

  /**
   * What a new etcd leader does (its lessor's Promote): every lease is renewed from now, a full TTL,
   * whether or not its holder has kept it alive.
   */
  extendLeases(): void {
    for (const lease of this.#leases.values()) this.#renew(lease);
  }

  /** A client closed: it is no longer told that the store is back. */
  forget(kv: MemoryKv): void {
    this.#clients.delete(kv);
  }

  get revision(): Revision {
    return this.#revision;
  }

  /** Live lease ids (for simulation invariants). */
  leases(): LeaseId[] {
    return [...this.#leases.keys()];
  }

  /** Drops history before `revision`: watches that need it fail as etcd's do after compaction. */
  compact(revision: Revision): void {
    this.#compacted = Math.max(this.#compacted, Math.min(revision, this.#revision));
    while (this.#history.length > 0 && (this.#history[0]?.revision ?? Infinity) < this.#compacted)
      this.#history.shift();
    for (const w of this.#watchers) {
      if (w.next < this.#compacted) this.#failWatcher(w, 'required revision has been compacted');
    }
  }

  // ——— operations (called by MemoryKv) ———

  range(key: string, end: string | undefined, at?: Revision): { revision: Revision; kvs: KeyValue[] } {
    if (at === undefined || at === this.#revision)
      return { revision: this.#revision, kvs: this.#rangeNow(key, end) };
    if (at < this.#compacted)
      throw new RegistryError('compacted', 'etcdserver: mvcc: required revision has been compacted');
    if (at > this.#revision)
      throw new RegistryError('invalid', 'etcdserver: mvcc: required revision is a future revision');
    // The state at `at`: today's keys with every later change undone, newest first.
    const data = new Map(this.#data);
    for (let i = this.#history.length - 1; i >= 0; i--) {
      const entry = this.#history[i];
      if (entry === undefined || entry.revision <= at) break;
      for (const e of [...entry.events].reverse()) {
        if (e.prevKv === undefined) data.delete(e.kv.key);
        else data.set(e.kv.key, e.prevKv);
      }
    }
    const kvs = [...data.values()]
      .filter((kv) => kv.key >= key && (end === undefined ? kv.key === key : kv.key < end))
      .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    return { revision: this.#revision, kvs };
  }

  txn(request: TxnRequest): TxnResult {
    validateTxn(request, this.maxTxnOps);
    const succeeded = request.compare.every((c) => this.#compare(c));
    const ops = succeeded ? request.success : (request.failure ?? []);
    for (const op of ops) {
      if (
        op.kind === 'put' &&
        op.lease !== undefined &&
        op.lease !== NO_LEASE &&
        !this.#leases.has(op.lease)
      ) {
        throw new RegistryError(
          'lease_lost',
          `etcdserver: requested lease not found (lease ${op.lease}, key ${op.key})`,
        );
      }
    }
    const rev = this.#revision + 1;
    const events: WatchEvent[] = [];
    const results: TxnOpResult[] = ops.map((op) => this.#apply(op, rev, events));
    return { succeeded, revision: this.#commit(events), results };
  }

  leaseGrant(ttlSeconds: number): LeaseId {
    const id = String(this.#nextLease++);
    const ttl = Math.max(this.#minTtl, Math.ceil(ttlSeconds));
    const lease: LeaseState = { id, ttlSeconds: ttl, expiresAt: 0, timer: undefined, keys: new Set() };
    this.#leases.set(id, lease);
    this.#renew(lease);
    return id;
  }

  leaseKeepAlive(id: LeaseId): number {
    const lease = this.#leases.get(id);
    if (lease === undefined) return 0;
    this.#renew(lease);
    return lease.ttlSeconds;
  }

  leaseRevoke(id: LeaseId): void {
    const lease = this.#leases.get(id);
    if (lease === undefined) return;
    lease.timer?.cancel();
    this.#leases.delete(id);
    const rev = this.#revision + 1;
    const events: WatchEvent[] = [];
    for (const key of [...lease.keys].sort()) this.#apply({ kind: 'delete', key }, rev, events);
    this.#commit(events);
  }

  watch(
    start: string,
    end: string,
    startRevision: Revision,
    deliver: StoreWatcher['deliver'],
    fail: StoreWatcher['fail'],
  ): () => void {
    const w: StoreWatcher = { start, end, next: Math.max(1, startRevision), deliver, fail, cancelled: false };
    this.#watchers.add(w);
    queueMicrotask(() => {
      if (w.cancelled) return;
      if (w.next < this.#compacted) return this.#failWatcher(w, 'required revision has been compacted');
      this.#catchUp(w);
    });
    return () => {
      w.cancelled = true;
      this.#watchers.delete(w);
    };
  }

  // ——— internals ———

  #renew(lease: LeaseState): void {
    lease.timer?.cancel();
    lease.expiresAt = this.clock.monotonic() + lease.ttlSeconds * 1000;
    lease.timer = this.clock.setTimer(lease.ttlSeconds * 1000, () => {
      // While the store is down nothing expires; `setDown(false)` revokes what expired meanwhile.
      if (this.#down) return;
      if (this.#leases.get(lease.id) === lease && this.clock.monotonic() >= lease.expiresAt)
        this.leaseRevoke(lease.id);
    });
  }

  #rangeNow(key: string, end: string | undefined): KeyValue[] {
    if (end === undefined) {
      const kv = this.#data.get(key);
      return kv === undefined ? [] : [kv];
    }
    return [...this.#data.values()]
      .filter((kv) => kv.key >= key && kv.key < end)
      .sort((a, b) => cmp(a.key, b.key));
  }

  #compare(c: Compare): boolean {
    const found = 'end' in c && c.end !== undefined ? this.#rangeNow(c.key, c.end) : [this.#data.get(c.key)];
    // As etcd: no key compares as a zero key (revisions, version and lease 0; any value fails).
    const kvs: (KeyValue | undefined)[] = found.length === 0 ? [undefined] : found;
    return kvs.every((kv) => {
      switch (c.target) {
        case 'create':
          return holds(kv?.createRevision ?? 0, c.op, c.revision);
        case 'mod':
          return holds(kv?.modRevision ?? 0, c.op, c.revision);
        case 'version':
          return holds(kv?.version ?? 0, c.op, c.version);
        case 'lease':
          return holds(Number(kv?.lease ?? NO_LEASE), c.op, Number(c.lease));
        case 'value':
          return kv !== undefined && holds(kv.value, c.op, c.value);
      }
    });
  }

  #apply(op: TxnOp, rev: Revision, events: WatchEvent[]): TxnOpResult {
    switch (op.kind) {
      case 'range':
        return { kind: 'range', kvs: this.#rangeNow(op.key, op.end) };
      case 'put': {
        const prev = this.#data.get(op.key);
        const lease = op.lease ?? NO_LEASE;
        if (prev !== undefined && prev.lease !== lease) this.#leases.get(prev.lease)?.keys.delete(op.key);
        if (lease !== NO_LEASE) this.#leases.get(lease)?.keys.add(op.key);
        const kv: KeyValue = {
          key: op.key,
          value: op.value,
          createRevision: prev?.createRevision ?? rev,
          modRevision: rev,
          version: (prev?.version ?? 0) + 1,
          lease,
        };
        this.#data.set(op.key, kv);
        events.push({ type: 'put', kv, ...(prev === undefined ? {} : { prevKv: prev }) });
        return { kind: 'put' };
      }
      case 'delete': {
        const victims = this.#rangeNow(op.key, op.end);
        for (const kv of victims) {
          this.#data.delete(kv.key);
          this.#leases.get(kv.lease)?.keys.delete(kv.key);
          events.push({
            type: 'delete',
            kv: { key: kv.key, value: '', createRevision: 0, modRevision: rev, version: 0, lease: NO_LEASE },
            prevKv: kv,
          });
        }
        return { kind: 'delete', deleted: victims.length };
      }
    }
  }

  /** Advances the revision when anything changed (etcd bumps it only then) and notifies watchers. */
  #commit(events: WatchEvent[]): Revision {
    if (events.length === 0) return this.#revision;
    this.#revision += 1;
    this.#history.push({ revision: this.#revision, events });
    const watchers = [...this.#watchers];
    queueMicrotask(() => watchers.forEach((w) => this.#catchUp(w)));
    return this.#revision;
  }

  #catchUp(w: StoreWatcher): void {
    if (w.cancelled) return;
    const batch: WatchEvent[] = [];
    for (const entry of this.#history) {
      if (entry.revision < w.next) continue;
      for (const e of entry.events) if (e.kv.key >= w.start && e.kv.key < w.end) batch.push(e);
      w.next = entry.revision + 1;
    }
    if (batch.length > 0) w.deliver(batch);
  }

  #failWatcher(w: StoreWatcher, message: string): void {
    w.cancelled = true;
    this.#watchers.delete(w);
    w.fail(new RegistryError('compacted', `etcdserver: mvcc: ${message}`));
  }
}

/** Faults a simulation can inject into one client's connection. */
export interface MemoryKvFaults {
  /** Every call fails with `unavailable`; watch events are held back until this clears. */
  unavailable?: boolean;
  /** Every call takes this long (on the store's clock) before it reaches the store. */
  latencyMs?: number;
  /** Keepalives time out without reaching the store (the lease expires there; reads still work). */
  dropKeepalives?: boolean;
}

/** One connection to a MemoryEtcd. */
export class MemoryKv implements Kv {
  readonly #store: MemoryEtcd;
  #faults: MemoryKvFaults = {};
  #closed = false;
  readonly #held: (() => void)[] = [];

  constructor(store: MemoryEtcd) {
    this.#store = store;
  }

  get maxTxnOps(): number {
    return this.#store.maxTxnOps;
  }

  /** Replaces this client's faults (`{}` heals it); held watch events are delivered on healing. */
  setFaults(faults: MemoryKvFaults): void {
    this.#faults = { ...faults };
    this.#release();
  }

  /** The store is reachable again (MemoryEtcd.setDown(false)): held watch events are delivered. */
  storeUp(): void {
    this.#release();
  }

  #release(): void {
    if (this.#unreachable()) return;
    for (const fn of this.#held.splice(0)) fn();
  }

  #unreachable(): boolean {
    return this.#faults.unavailable === true || this.#store.down;
  }

  get faults(): MemoryKvFaults {
    return { ...this.#faults };
  }

  async range(
    key: string,
    end?: string,
    options: { readonly revision?: Revision } = {},
  ): Promise<{ revision: Revision; kvs: readonly KeyValue[] }> {
    await this.#gate();
    return this.#store.range(key, end, options.revision);
  }

  async txn(request: TxnRequest): Promise<TxnResult> {
    await this.#gate();
    return this.#store.txn(request);
  }

  watch(
    key: string,
    end: string,
    startRevision: Revision,
    handlers: WatchHandlers,
    options: WatchOptions = {},
  ): KvWatch {
    this.#check();
    // The store keeps each event's previous value (for reads of past revisions); etcd sends it
    // only to watches that ask.
    const strip = (events: readonly WatchEvent[]): readonly WatchEvent[] =>
      options.prevKv === true ? events : events.map((e) => ({ type: e.type, kv: e.kv }));
    const cancel = this.#store.watch(
      key,
      end,
      startRevision,
      (events) => this.#whenReachable(() => handlers.onEvents(strip(events))),
      (error) => this.#whenReachable(() => handlers.onError(error)),
    );
    return { cancel };
  }

  async leaseGrant(ttlSeconds: number): Promise<LeaseId> {
    await this.#gate();
    return this.#store.leaseGrant(ttlSeconds);
  }

  async leaseKeepAlive(id: LeaseId, options: { timeoutMs: number }): Promise<number> {
    if (this.#faults.dropKeepalives === true) {
      await this.#store.clock.sleep(options.timeoutMs);
      throw new RegistryError(
        'unavailable',
        `keepalive for lease ${id} timed out after ${options.timeoutMs} ms`,
      );
    }
    await this.#gate();
    return this.#store.leaseKeepAlive(id);
  }

  async leaseRevoke(id: LeaseId): Promise<void> {
    await this.#gate();
    this.#store.leaseRevoke(id);
  }

  close(): void {
    this.#closed = true;
    this.#held.length = 0;
    this.#store.forget(this);
  }

  #check(): void {
    if (this.#closed) throw new RegistryError('closed', 'the registry connection was closed');
    if (this.#faults.unavailable === true)
      throw new RegistryError('unavailable', 'etcd is unreachable (injected fault)');
    if (this.#store.down)
      throw new RegistryError('unavailable', 'etcd is down for everyone (injected fault)');
  }

  async #gate(): Promise<void> {
    this.#check();
    const latency = this.#faults.latencyMs ?? 0;
    if (latency > 0) {
      await this.#store.clock.sleep(latency);
      this.#check();
    }
  }

  #whenReachable(fn: () => void): void {
    if (this.#closed) return;
    if (this.#unreachable()) this.#held.push(fn);
    else fn();
  }
}

function validateTxn(request: TxnRequest, max: number): void {
  const failure = request.failure ?? [];
  if (request.compare.length > max || request.success.length > max || failure.length > max) {
    throw new RegistryError('invalid', `etcdserver: too many operations in txn request (max ${max})`);
  }
  for (const branch of [request.success, failure]) {
    const puts = new Set<string>();
    for (const op of branch) {
      if (op.kind !== 'put') continue;
      if (puts.has(op.key))
        throw new RegistryError('invalid', 'etcdserver: duplicate key given in txn request');
      puts.add(op.key);
    }
    for (const op of branch) {
      if (op.kind !== 'delete') continue;
      for (const key of puts) {
        if (op.end === undefined ? key === op.key : key >= op.key && key < op.end) {
          throw new RegistryError('invalid', 'etcdserver: duplicate key given in txn request');
        }
      }
    }
  }
}

function holds<T extends number | string>(actual: T, op: Compare['op'], expected: T): boolean {
  switch (op) {
    case '==':
      return actual === expected;
    case '!=':
      return actual !== expected;
    case '<':
      return actual < expected;
    case '>':
      return actual > expected;
  }
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
