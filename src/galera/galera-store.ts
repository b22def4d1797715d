// What a Galera cluster keeps in etcd, beside the fleetd registry and under its key prefix:
//   galera/<cluster>/bootstrap            the bootstrap lock (lease-bound; held while deciding)
//   galera/<cluster>/members/<instance>   each running member (lease-bound to its wrapper)
//   galera/<cluster>/bootstraps/<time>-<instance>   every bootstrap ever decided (history, no lease)
//   galera/<cluster>/known/<instance>     every instance that ever started as a member (no lease)
//   galera/<cluster>/positions/<instance> data positions published during a whole-cluster outage
//                                         (no lease; the next bootstrap deletes them all)
//   galera/<cluster>/force-bootstrap      an operator's choice of bootstrapper (deleted when used)
// Keys are built here rather than in registry/keys.ts because only this feature reads them.
import { z } from 'zod';
import type { Clock } from '../lib/clock.js';
import type { Kv, LeaseId, TxnOp } from '../registry/kv.js';
import { prefixRange } from '../registry/keys.js';
import type { DataPosition, PublishedPosition } from './choose-bootstrap.js';
import type { SeenMember } from './decide-start.js';
import { GaleraError } from './galera-error.js';

/** A cluster name: also MariaDB's wsrep_cluster_name and a key segment. */
export const CLUSTER_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/;

const memberValue = z.object({
  v: z.literal(1),
  address: z.string().min(1),
  role: z.enum(['bootstrap', 'join']),
  machine: z.string().optional(),
  since: z.string(),
});

const bootstrapValue = z.object({
  v: z.literal(1),
  instance: z.string(),
  address: z.string(),
  machine: z.string().optional(),
  at: z.string(),
  reason: z.string(),
});

const positionValue = z.object({
  v: z.literal(1),
  empty: z.boolean(),
  uuid: z.string().optional(),
  seqno: z.number().int().optional(),
  at: z.number(),
});

const knownValue = z.object({ v: z.literal(1), since: z.string() });

const forceValue = z.object({ v: z.literal(1), instance: z.string(), at: z.string() });

const lockValue = z.object({ v: z.literal(1), holder: z.string(), since: z.string() });

export interface MemberRecord extends SeenMember {
  readonly role: 'bootstrap' | 'join';
  readonly machine?: string;
  readonly since: string;
}

export interface BootstrapRecord {
  readonly instance: string;
  readonly address: string;
  readonly machine?: string;
  readonly at: string;
  readonly reason: string;
}

export interface GaleraStoreDeps {
  readonly kv: Kv;
  readonly clock: Clock;
  /** The fleetd key prefix (`/fleetts/v1/`). */
  readonly prefix: string;
  readonly cluster: string;
}

const POLL_MIN_MS = 100;
const POLL_MAX_MS = 1_000;

export class GaleraStore {
  readonly #d: GaleraStoreDeps;
  readonly lockKey: string;
  readonly membersPrefix: string;
  readonly bootstrapsPrefix: string;
  readonly knownPrefix: string;
  readonly positionsPrefix: string;
  readonly forceKey: string;

  constructor(deps: GaleraStoreDeps) {
    if (!CLUSTER_NAME_RE.test(deps.cluster))
      throw new GaleraError('command_failed', `invalid Galera cluster name '${deps.cluster}'`);
    this.#d = deps;
    const base = `${deps.prefix}galera/${deps.cluster}/`;
    this.lockKey = base + 'bootstrap';
    this.membersPrefix = base + 'members/';
    this.bootstrapsPrefix = base + 'bootstraps/';
    this.knownPrefix = base + 'known/';
    this.positionsPrefix = base + 'positions/';
    this.forceKey = base + 'force-bootstrap';
  }

  /**
   * Takes the bootstrap lock for `lease` (create-if-absent, bound to the lease, so a dead holder's
   * lock goes with its lease). Waits while another lease holds it; `onWait` is called once with the
   * holder. Idempotent for the holder's lease. Rejects when `signal` aborts.
   */
  async acquireLock(
    lease: LeaseId,
    holder: string,
    signal: AbortSignal,
    onWait: (holder: string) => void = () => undefined,
  ): Promise<void> {
    const value = JSON.stringify({ v: 1, holder, since: new Date(this.#d.clock.now()).toISOString() });
    let waitMs = POLL_MIN_MS;
    let reported = false;
    for (;;) {
      signal.throwIfAborted();
      const res = await this.#d.kv.txn({
        compare: [{ target: 'create', key: this.lockKey, op: '==', revision: 0 }],
        success: [{ kind: 'put', key: this.lockKey, value, lease }],
        failure: [{ kind: 'range', key: this.lockKey }],
      });
      if (res.succeeded) return;
      const r = res.results[0];
      const kv = r?.kind === 'range' ? r.kvs[0] : undefined;
      if (kv?.lease === lease) return;
      if (!reported) {
        reported = true;
        const parsed = kv === undefined ? undefined : lockValue.safeParse(safeJson(kv.value));
        onWait(parsed?.success === true ? parsed.data.holder : 'another member');
      }
      await this.#d.clock.sleep(waitMs, signal);
      waitMs = Math.min(POLL_MAX_MS, waitMs * 2);
    }
  }

  /** Releases the lock if `lease` holds it (a no-op otherwise). */
  async releaseLock(lease: LeaseId): Promise<void> {
    await this.#d.kv.txn({
      compare: [{ target: 'lease', key: this.lockKey, op: '==', lease }],
      success: [{ kind: 'delete', key: this.lockKey }],
    });
  }

  /**
   * Records this member (and, for a bootstrap, the history entry) only while `lease` still holds
   * the lock: a member whose lease lapsed mid-decision must not act on it (`lock_lost`).
   */
  async recordStart(
    lease: LeaseId,
    member: MemberRecord,
    bootstrap: BootstrapRecord | undefined,
  ): Promise<void> {
    const ops: { kind: 'put'; key: string; value: string; lease?: LeaseId }[] = [
      {
        kind: 'put',
        key: this.memberKey(member.instance),
        value: encodeMember(member),
        lease,
      },
    ];
    const known: TxnOp = {
      kind: 'put',
      key: this.knownPrefix + segment(member.instance),
      value: JSON.stringify(knownValue.parse({ v: 1, since: member.since })),
    };
    const rest: TxnOp[] = [known];
    if (bootstrap !== undefined) {
      const stamp = String(this.#d.clock.now()).padStart(15, '0');
      ops.push({
        kind: 'put',
        key: `${this.bootstrapsPrefix}${stamp}-${segment(bootstrap.instance)}`,
        value: JSON.stringify(bootstrapValue.parse({ v: 1, ...bootstrap })),
      });
      // The outage is over: its positions and the operator's choice must not steer the next one.
      const positions = prefixRange(this.positionsPrefix);
      rest.push({ kind: 'delete', key: positions.start, end: positions.end });
      rest.push({ kind: 'delete', key: this.forceKey });
    }
    const res = await this.#d.kv.txn({
      compare: [{ target: 'lease', key: this.lockKey, op: '==', lease }],
      success: [...ops, ...rest],
    });
    if (!res.succeeded) throw lockLost(this.lockKey, 'recording the decision');
  }

  /** Re-writes this member's key under a new lease (after the old one was lost). */
  async putMember(lease: LeaseId, member: MemberRecord): Promise<void> {
    await this.#d.kv.txn({
      compare: [],
      success: [
        {
          kind: 'put',
          key: this.memberKey(member.instance),
          value: encodeMember(member),
          lease,
        },
      ],
    });
  }

  /** Members whose wrapper runs now; undecodable values are skipped. */
  async listMembers(): Promise<MemberRecord[]> {
    const range = prefixRange(this.membersPrefix);
    const res = await this.#d.kv.range(range.start, range.end);
    const out: MemberRecord[] = [];
    for (const kv of res.kvs) {
      const parsed = memberValue.safeParse(safeJson(kv.value));
      if (!parsed.success) continue;
      const { address, role, machine, since } = parsed.data;
      out.push({
        instance: kv.key.slice(this.membersPrefix.length),
        address,
        role,
        since,
        ...(machine === undefined ? {} : { machine }),
      });
    }
    return out;
  }

  /** Every bootstrap decided for this cluster, oldest first. */
  async listBootstraps(): Promise<BootstrapRecord[]> {
    const range = prefixRange(this.bootstrapsPrefix);
    const res = await this.#d.kv.range(range.start, range.end);
    const out: BootstrapRecord[] = [];
    for (const kv of res.kvs) {
      const parsed = bootstrapValue.safeParse(safeJson(kv.value));
      if (!parsed.success) continue;
      const { v: _v, machine, ...rest } = parsed.data;
      out.push({ ...rest, ...(machine === undefined ? {} : { machine }) });
    }
    return out;
  }

  /** Publishes this member's position, keeping the `at` of its first publication this outage. */
  async publishPosition(
    lease: LeaseId,
    instance: string,
    position: DataPosition,
  ): Promise<PublishedPosition> {
    const key = this.positionsPrefix + segment(instance);
    const res = await this.#d.kv.range(key);
    const old = decodePosition(instance, res.kvs[0]?.value);
    const at = old?.at ?? this.#d.clock.now();
    const value = positionValue.parse({
      v: 1,
      empty: position.kind === 'empty',
      ...(position.kind === 'data' ? { uuid: position.uuid, seqno: position.seqno } : {}),
      at,
    });
    const put = await this.#d.kv.txn({
      compare: [{ target: 'lease', key: this.lockKey, op: '==', lease }],
      success: [{ kind: 'put', key, value: JSON.stringify(value) }],
    });
    if (!put.succeeded) throw lockLost(this.lockKey, 'publishing its position');
    return { instance, position, at };
  }

  /** Positions published during the current outage; undecodable values are skipped. */
  async listPositions(): Promise<PublishedPosition[]> {
    const range = prefixRange(this.positionsPrefix);
    const res = await this.#d.kv.range(range.start, range.end);
    const out: PublishedPosition[] = [];
    for (const kv of res.kvs) {
      const p = decodePosition(kv.key.slice(this.positionsPrefix.length), kv.value);
      if (p !== undefined) out.push(p);
    }
    return out;
  }

  /** Instances that ever started as members of this cluster. */
  async listKnown(): Promise<string[]> {
    const range = prefixRange(this.knownPrefix);
    const res = await this.#d.kv.range(range.start, range.end);
    return res.kvs
      .filter((kv) => knownValue.safeParse(safeJson(kv.value)).success)
      .map((kv) => kv.key.slice(this.knownPrefix.length));
  }

  /** The operator's forced bootstrapper, if one is set. */
  async forcedBootstrap(): Promise<{ instance: string; at: string } | undefined> {
    const res = await this.#d.kv.range(this.forceKey);
    const kv = res.kvs[0];
    if (kv === undefined) return undefined;
    const parsed = forceValue.safeParse(safeJson(kv.value));
    return parsed.success ? { instance: parsed.data.instance, at: parsed.data.at } : undefined;
  }

  /** Names the member that bootstraps next when no member runs (whatever the positions say). */
  async forceBootstrap(instance: string): Promise<void> {
    const value = forceValue.parse({
      v: 1,
      instance: segment(instance),
      at: new Date(this.#d.clock.now()).toISOString(),
    });
    await this.#d.kv.txn({
      compare: [],
      success: [{ kind: 'put', key: this.forceKey, value: JSON.stringify(value) }],
    });
  }

  memberKey(instance: string): string {
    return this.membersPrefix + segment(instance);
  }
}

function encodeMember(member: MemberRecord): string {
  return JSON.stringify(
    memberValue.parse({
      v: 1,
      address: member.address,
      role: member.role,
      since: member.since,
      ...(member.machine === undefined ? {} : { machine: member.machine }),
    }),
  );
}

function lockLost(lockKey: string, doing: string): GaleraError {
  return new GaleraError(
    'lock_lost',
    `lost the bootstrap lock ${lockKey} before ${doing} (etcd lease expired?); the unit's Restart= retries`,
    { recoverable: true },
  );
}

function decodePosition(instance: string, text: string | undefined): PublishedPosition | undefined {
  if (text === undefined) return undefined;
  const parsed = positionValue.safeParse(safeJson(text));
  if (!parsed.success) return undefined;
  const { empty, uuid, seqno, at } = parsed.data;
  if (empty) return { instance, position: { kind: 'empty' }, at };
  if (uuid === undefined || seqno === undefined) return undefined;
  return { instance, position: { kind: 'data', uuid, seqno }, at };
}

function segment(value: string): string {
  if (!/^[\x21-\x7e]+$/.test(value) || value.includes('/'))
    throw new GaleraError(
      'command_failed',
      `invalid member instance '${value}' (printable ASCII without '/')`,
    );
  return value;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
