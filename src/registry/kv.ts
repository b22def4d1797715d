// The few etcd primitives the registry is built on (ranges, transactions, watches from a revision,
// leases). The registry's logic is written once over this interface; `etcd-kv` speaks it to a real
// etcd and `memory-kv` reproduces etcd's semantics in memory, so that the two cannot drift.

/** An etcd store revision (int64 in etcd; stays far below 2^53 in practice). */
export type Revision = number;
/** An etcd lease id (int64 as a decimal string); `'0'` means "no lease". */
export type LeaseId = string;
export const NO_LEASE: LeaseId = '0';

export interface KeyValue {
  readonly key: string;
  readonly value: string;
  readonly createRevision: Revision;
  readonly modRevision: Revision;
  readonly version: number;
  readonly lease: LeaseId;
}

/**
 * An etcd compare. With `end`, it must hold for every existing key in `[key, end)` (a range with
 * no keys compares as true). A missing key has create/mod revision 0, version 0, lease '0', and
 * fails every value compare.
 */
export type Compare =
  | {
      readonly target: 'create' | 'mod';
      readonly key: string;
      readonly end?: string;
      readonly op: CompareOp;
      readonly revision: Revision;
    }
  | {
      readonly target: 'version';
      readonly key: string;
      readonly end?: string;
      readonly op: CompareOp;
      readonly version: number;
    }
  | { readonly target: 'value'; readonly key: string; readonly op: CompareOp; readonly value: string }
  | { readonly target: 'lease'; readonly key: string; readonly op: CompareOp; readonly lease: LeaseId };
export type CompareOp = '==' | '!=' | '<' | '>';

export type TxnOp =
  | { readonly kind: 'put'; readonly key: string; readonly value: string; readonly lease?: LeaseId }
  | { readonly kind: 'delete'; readonly key: string; readonly end?: string }
  | { readonly kind: 'range'; readonly key: string; readonly end?: string };

export interface TxnRequest {
  readonly compare: readonly Compare[];
  readonly success: readonly TxnOp[];
  readonly failure?: readonly TxnOp[];
}

/** One result per op of the branch taken; `kvs` for ranges, `deleted` for deletes. */
export type TxnOpResult =
  | { readonly kind: 'range'; readonly kvs: readonly KeyValue[] }
  | { readonly kind: 'put' }
  | { readonly kind: 'delete'; readonly deleted: number };

export interface TxnResult {
  readonly succeeded: boolean;
  /** The store revision after the txn (unchanged when it wrote nothing). */
  readonly revision: Revision;
  readonly results: readonly TxnOpResult[];
}

export interface WatchEvent {
  readonly type: 'put' | 'delete';
  /** For a delete: key, empty value, `modRevision` = the revision of the delete. */
  readonly kv: KeyValue;
  /** The key as it was before this change (absent for a create), when the watch asked for it. */
  readonly prevKv?: KeyValue;
}

export interface WatchOptions {
  /** Deliver each event's `prevKv` (etcd's `prev_kv`: the value the change replaced or deleted). */
  readonly prevKv?: boolean;
}

export interface WatchHandlers {
  /** Events of one or more revisions, in revision order. */
  onEvents(events: readonly WatchEvent[]): void;
  /**
   * The watch ended and will deliver nothing more (e.g. its start revision was compacted). The
   * owner re-lists and watches again; transient disconnects are retried inside and not reported.
   */
  onError(error: Error): void;
}

export interface KvWatch {
  cancel(): void;
}

export interface Kv {
  /**
   * Keys in `[key, end)` (or just `key`), sorted by key, at the latest revision, or at
   * `options.revision` (a past revision: RegistryError `compacted` when history before it was
   * compacted, `invalid` when it is ahead of the store). The result's `revision` is the store's
   * current revision either way, as etcd's header says.
   */
  range(
    key: string,
    end?: string,
    options?: { readonly revision?: Revision },
  ): Promise<{ revision: Revision; kvs: readonly KeyValue[] }>;
  /**
   * One etcd transaction. Rejects with RegistryError `invalid` when a branch or the compares
   * exceed `maxTxnOps` or a branch writes one key twice (etcd refuses both).
   */
  txn(request: TxnRequest): Promise<TxnResult>;
  /**
   * Every change in `[key, end)` from `startRevision` on (no missed and no repeated revision); the
   * events of one revision (one transaction, or one lease's keys on expiry) arrive in one batch.
   */
  watch(
    key: string,
    end: string,
    startRevision: Revision,
    handlers: WatchHandlers,
    options?: WatchOptions,
  ): KvWatch;
  /** Grants a lease of `ttlSeconds` (etcd raises it to its minimum TTL when lower). */
  leaseGrant(ttlSeconds: number): Promise<LeaseId>;
  /** Renews a lease; resolves with its remaining TTL in seconds, or 0 when it no longer exists. */
  leaseKeepAlive(id: LeaseId, options: { timeoutMs: number }): Promise<number>;
  /** Revokes a lease (its keys are deleted); revoking a missing lease is not an error. */
  leaseRevoke(id: LeaseId): Promise<void>;
  /** etcd's max operations per txn (its `--max-txn-ops`, 128 by default). */
  readonly maxTxnOps: number;
  close(): void;
}
