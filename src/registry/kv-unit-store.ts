// Desired state over the Kv: units (`units/<name>`) and their content-addressed files
// (`unit-files/<sha256>`), written in one transaction; files no unit references are swept in one
// collection per burst of deletes, safely against a concurrent submit of the same text.
import { createHash } from 'node:crypto';
import type { TargetState, Unit, UnitHash, UnitName } from '../cluster/types.js';
import { asUnitHash } from '../cluster/types.js';
import type { Clock, Timer } from '../lib/clock.js';
import { decodeOrThrow, decodeValue, encodeValue } from './codec.js';
import { TREES, type RegistryKeys } from './keys.js';
import { CAS_ATTEMPTS, chunks, firstKv, type KvCore } from './kv-core.js';
import { decodeRecord } from './kv-decode.js';
import type { KeyValue, Kv } from './kv.js';
import type { RolloutRecord, RolloutStore, StorageUsage, UnitRecord, UnitStore } from './registry.js';
import { RegistryError } from './registry-error.js';

/** How long after a delete or replace the unreferenced unit files are swept (one sweep per burst). */
export const UNIT_FILE_COLLECT_DELAY_MS = 2_000;

interface PendingRead {
  readonly name: UnitName;
  readonly resolve: (record: UnitRecord | undefined) => void;
  readonly reject: (err: unknown) => void;
}

function unitRecord(name: UnitName, kv: KeyValue): UnitRecord {
  const value = decodeOrThrow('unit', kv.key, kv.value);
  return { name, hash: asUnitHash(value.hash), target: value.target, modRevision: kv.modRevision };
}

export class KvUnitStore implements UnitStore, RolloutStore {
  readonly #core: KvCore;
  readonly #kv: Kv;
  readonly #keys: RegistryKeys;
  readonly #clock: Clock;
  /** The pending sweep of unreferenced unit files, if any. */
  #collectTimer: Timer | undefined;
  /** getUnit calls of this turn, read together (#readUnits). */
  #reads: PendingRead[] | undefined;

  constructor(core: KvCore) {
    this.#core = core;
    this.#kv = core.kv;
    this.#keys = core.keys;
    this.#clock = core.clock;
    core.onClose(() => {
      this.#collectTimer?.cancel();
      this.#collectTimer = undefined;
    });
  }

  /**
   * Units asked for within one turn are read in one transaction of ranges (at most maxTxnOps each):
   * `fleetts start s@{1..100}.service` asks for each instance, and 100 reads were 100 round trips.
   * Each answer is the one a read of its own would give.
   */
  getUnit(name: UnitName): Promise<UnitRecord | undefined> {
    return new Promise<UnitRecord | undefined>((resolve, reject) => {
      if (this.#reads === undefined) {
        this.#reads = [];
        // A microtask, not a timer: the reads of one request are asked within the same turn (and
        // the fake clocks of the tests never run real timers).
        queueMicrotask(() => this.#readUnits());
      }
      this.#reads.push({ name, resolve, reject });
    });
  }

  #readUnits(): void {
    const asked = this.#reads ?? [];
    this.#reads = undefined;
    const answer = (a: PendingRead, kv: KeyValue | undefined): void => {
      try {
        a.resolve(kv === undefined ? undefined : unitRecord(a.name, kv));
      } catch (err) {
        a.reject(err);
      }
    };
    if (asked.length === 1) {
      const a = asked[0]!;
      this.#kv.range(this.#keys.unit(a.name)).then((res) => answer(a, res.kvs[0]), a.reject);
      return;
    }
    for (const part of chunks(asked, Math.max(1, this.#kv.maxTxnOps))) {
      this.#kv
        .txn({ compare: [], success: part.map((a) => ({ kind: 'range', key: this.#keys.unit(a.name) })) })
        .then(
          (res) =>
            part.forEach((a, i) => {
              const r = res.results[i];
              answer(a, r?.kind === 'range' ? r.kvs[0] : undefined);
            }),
          (err: unknown) => {
            for (const a of part) a.reject(err);
          },
        );
    }
  }

  async getUnitFile(hash: UnitHash): Promise<string | undefined> {
    const key = this.#keys.unitFile(hash);
    const kv = (await this.#kv.range(key)).kvs[0];
    return kv === undefined ? undefined : decodeOrThrow('unitFile', key, kv.value).text;
  }

  async createUnit(unit: Unit, text: string): Promise<UnitRecord> {
    checkHash(unit, text);
    const key = this.#keys.unit(unit.name);
    const res = await this.#kv.txn({
      compare: [{ target: 'version', key, op: '==', version: 0 }],
      success: [
        { kind: 'put', key: this.#keys.unitFile(unit.hash), value: encodeValue('unitFile', { v: 1, text }) },
        { kind: 'put', key, value: encodeValue('unit', { v: 1, hash: unit.hash, target: unit.target }) },
      ],
      failure: [{ kind: 'range', key }],
    });
    if (res.succeeded) return { ...unit, modRevision: res.revision };
    const kv = firstKv(res);
    if (kv === undefined)
      throw new RegistryError('conflict', `unit ${unit.name} changed while being created; retry`);
    const existing = decodeOrThrow('unit', key, kv.value);
    if (existing.hash !== unit.hash) {
      throw new RegistryError(
        'exists',
        `unit ${unit.name} already exists with different content (hash ${existing.hash.slice(0, 12)}…); destroy it first to replace it`,
      );
    }
    return { name: unit.name, hash: unit.hash, target: existing.target, modRevision: kv.modRevision };
  }

  async createUnits(units: readonly { readonly unit: Unit; readonly text: string }[]): Promise<UnitRecord[]> {
    for (const { unit, text } of units) checkHash(unit, text);
    const out: UnitRecord[] = [];
    let firstError: Error | undefined;
    // etcd limits compares and operations per transaction separately; a batch of n units with k
    // distinct files needs n compares and n + k puts.
    const max = this.#kv.maxTxnOps;
    let i = 0;
    while (i < units.length) {
      const batch: (typeof units)[number][] = [];
      const files = new Map<string, string>();
      while (i < units.length && batch.length < max) {
        const next = units[i]!;
        const filesAfter = files.has(next.unit.hash) ? files.size : files.size + 1;
        if (batch.length + 1 + filesAfter > max) break;
        files.set(next.unit.hash, next.text);
        batch.push(next);
        i++;
      }
      const res = await this.#kv.txn({
        compare: batch.map(({ unit }) => ({
          target: 'version' as const,
          key: this.#keys.unit(unit.name),
          op: '==' as const,
          version: 0,
        })),
        success: [
          ...[...files].map(([hash, text]) => ({
            kind: 'put' as const,
            key: this.#keys.unitFile(hash as UnitHash),
            value: encodeValue('unitFile', { v: 1, text }),
          })),
          ...batch.map(({ unit }) => ({
            kind: 'put' as const,
            key: this.#keys.unit(unit.name),
            value: encodeValue('unit', { v: 1, hash: unit.hash, target: unit.target }),
          })),
        ],
      });
      if (res.succeeded) {
        for (const { unit } of batch) out.push({ ...unit, modRevision: res.revision });
        continue;
      }
      for (const { unit, text } of batch) {
        try {
          out.push(await this.createUnit(unit, text));
        } catch (err) {
          firstError ??= err as Error;
        }
      }
    }
    if (firstError !== undefined) throw firstError;
    return out;
  }

  async setTargetState(
    name: UnitName,
    target: TargetState,
    options: { expectHash?: UnitHash } = {},
  ): Promise<UnitRecord> {
    const key = this.#keys.unit(name);
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const current = await this.getUnit(name);
      if (current === undefined) throw new RegistryError('not_found', `unit ${name} does not exist`);
      if (options.expectHash !== undefined && current.hash !== options.expectHash) {
        throw new RegistryError(
          'conflict',
          `unit ${name} was replaced (now hash ${current.hash.slice(0, 12)}…)`,
        );
      }
      if (current.target === target) return current;
      const res = await this.#kv.txn({
        compare: [{ target: 'mod', key, op: '==', revision: current.modRevision }],
        success: [{ kind: 'put', key, value: encodeValue('unit', { v: 1, hash: current.hash, target }) }],
      });
      if (res.succeeded) return { ...current, target, modRevision: res.revision };
    }
    throw new RegistryError(
      'conflict',
      `unit ${name} kept changing while its target state was being set; retry`,
    );
  }

  async deleteUnit(name: UnitName): Promise<boolean> {
    // Its rollout record goes with it: a unit submitted again under the name starts afresh.
    return await this.#deleteUnitKey(this.#keys.unit(name), `unit ${name}`, () => undefined, [
      this.#keys.rollout(name),
    ]);
  }

  async deleteInvalidUnit(name: string): Promise<boolean> {
    if (name === '') throw new RegistryError('invalid', 'no unit key named (an empty name)');
    const key = this.#keys.prefix + TREES.units + name;
    return await this.#deleteUnitKey(key, `etcd key ${key}`, (kv) => {
      if (decodeRecord(this.#keys, kv, 'unit', 'unit').ok)
        throw new RegistryError(
          'invalid',
          `unit ${name} is a valid unit record; destroy it as a unit, not as a corrupt key`,
        );
    });
  }

  /**
   * Deletes a key under units/ unless it changed between the read and the delete (retried), after
   * `check` accepted what was read; unit files it referenced are swept soon after. False when the
   * key is not there.
   */
  async #deleteUnitKey(
    key: string,
    what: string,
    check: (kv: KeyValue) => void,
    alsoDelete: readonly string[] = [],
  ): Promise<boolean> {
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const kv = (await this.#kv.range(key)).kvs[0];
      if (kv === undefined) return false;
      check(kv);
      const res = await this.#kv.txn({
        compare: [{ target: 'mod', key, op: '==', revision: kv.modRevision }],
        success: [key, ...alsoDelete].map((k) => ({ kind: 'delete' as const, key: k })),
      });
      if (!res.succeeded) continue;
      this.#collectSoon();
      return true;
    }
    throw new RegistryError('conflict', `${what} kept changing while being deleted; retry`);
  }

  async replaceUnit(expect: UnitRecord, unit: Unit, text: string): Promise<UnitRecord> {
    checkHash(unit, text);
    if (expect.name !== unit.name)
      throw new RegistryError('invalid', `cannot replace unit ${expect.name} with a unit named ${unit.name}`);
    const key = this.#keys.unit(unit.name);
    const res = await this.#kv.txn({
      compare: [{ target: 'mod', key, op: '==', revision: expect.modRevision }],
      success: [
        { kind: 'put', key: this.#keys.unitFile(unit.hash), value: encodeValue('unitFile', { v: 1, text }) },
        { kind: 'put', key, value: encodeValue('unit', { v: 1, hash: unit.hash, target: unit.target }) },
      ],
      failure: [{ kind: 'range', key }],
    });
    if (!res.succeeded) {
      if (firstKv(res) === undefined)
        throw new RegistryError('not_found', `unit ${unit.name} was destroyed while being replaced`);
      throw new RegistryError('conflict', `unit ${unit.name} changed while being replaced; retry`);
    }
    if (expect.hash !== unit.hash) this.#collectSoon();
    return { ...unit, modRevision: res.revision };
  }

  async getRollout(unit: UnitName): Promise<RolloutRecord | undefined> {
    const key = this.#keys.rollout(unit);
    const kv = (await this.#kv.range(key)).kvs[0];
    if (kv === undefined) return undefined;
    const v = decodeOrThrow('rollout', key, kv.value);
    return {
      unit,
      hash: asUnitHash(v.hash),
      previousHash: asUnitHash(v.previousHash),
      previousText: v.previousText,
      startedAt: v.startedAt,
    };
  }

  async beginRollout(
    expect: UnitRecord,
    previousText: string,
    text: string,
    startedAt: string,
  ): Promise<{ readonly unit: UnitRecord; readonly rollout: RolloutRecord | undefined }> {
    const hash = asUnitHash(createHash('sha256').update(text, 'utf8').digest('hex'));
    if (hash === expect.hash) return { unit: expect, rollout: await this.getRollout(expect.name) };
    checkHash({ ...expect, hash: expect.hash }, previousText);
    const key = this.#keys.unit(expect.name);
    const rollout: RolloutRecord = {
      unit: expect.name,
      hash,
      previousHash: expect.hash,
      previousText,
      startedAt,
    };
    const res = await this.#kv.txn({
      compare: [{ target: 'mod', key, op: '==', revision: expect.modRevision }],
      success: [
        { kind: 'put', key: this.#keys.unitFile(hash), value: encodeValue('unitFile', { v: 1, text }) },
        { kind: 'put', key, value: encodeValue('unit', { v: 1, hash, target: expect.target }) },
        {
          kind: 'put',
          key: this.#keys.rollout(expect.name),
          value: encodeValue('rollout', {
            v: 1,
            hash,
            previousHash: expect.hash,
            previousText,
            startedAt,
          }),
        },
      ],
      failure: [{ kind: 'range', key }],
    });
    if (!res.succeeded) {
      if (firstKv(res) === undefined)
        throw new RegistryError('not_found', `unit ${expect.name} was destroyed while its rollout began`);
      throw new RegistryError('conflict', `unit ${expect.name} changed while its rollout began; retry`);
    }
    this.#collectSoon();
    return { unit: { ...expect, hash, modRevision: res.revision }, rollout };
  }

  collectUnitFiles(): Promise<number> {
    return this.#collect(undefined);
  }

  async usage(): Promise<StorageUsage> {
    const units = this.#keys.tree('units');
    const files = this.#keys.tree('unitFiles');
    const res = await this.#kv.txn({
      compare: [],
      success: [
        { kind: 'range', key: units.start, end: units.end },
        { kind: 'range', key: files.start, end: files.end },
      ],
    });
    const [unitKvs, fileKvs] = res.results.map((r) => (r.kind === 'range' ? r.kvs : []));
    const unitFileHashes = new Set<UnitHash>();
    let unitFileBytes = 0;
    for (const kv of fileKvs ?? []) {
      unitFileBytes += Buffer.byteLength(kv.value);
      const parsed = this.#keys.parse(kv.key);
      if (parsed?.kind === 'unit-file') unitFileHashes.add(parsed.hash);
    }
    return { units: unitKvs?.length ?? 0, unitFileBytes, unitFileHashes };
  }

  /** One sweep for a burst of deletes and replaces (see Registry.deleteUnit); best effort. */
  #collectSoon(): void {
    if (this.#collectTimer !== undefined || this.#core.closed) return;
    this.#collectTimer = this.#clock.setTimer(UNIT_FILE_COLLECT_DELAY_MS, () => {
      this.#collectTimer = undefined;
      if (this.#core.closed) return;
      // A conflict or an outage only delays collection to the next delete, replace or sweep.
      this.#collect(undefined).catch(() => 0);
    });
  }

  /**
   * Deletes unreferenced unit files (all, or those among `only`). Safe against a concurrent
   * submit of the same content: the delete compares that no key under units/ changed since the
   * revision at which the references were read.
   */
  async #collect(only: ReadonlySet<UnitHash> | undefined): Promise<number> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const units = this.#keys.tree('units');
      const files = this.#keys.tree('unitFiles');
      const res = await this.#kv.txn({
        compare: [],
        success: [
          { kind: 'range', key: units.start, end: units.end },
          { kind: 'range', key: files.start, end: files.end },
        ],
      });
      const [unitKvs, fileKvs] = res.results.map((r) => (r.kind === 'range' ? r.kvs : []));
      const referenced = new Set<string>();
      for (const kv of unitKvs ?? []) {
        const decoded = decodeValue('unit', kv.key, kv.value);
        // A corrupt unit might reference anything: collect nothing rather than guess.
        if (!decoded.ok) return 0;
        referenced.add(decoded.value.hash);
      }
      const garbage: string[] = [];
      for (const kv of fileKvs ?? []) {
        const parsed = this.#keys.parse(kv.key);
        if (parsed?.kind !== 'unit-file' || referenced.has(parsed.hash)) continue;
        if (only !== undefined && !only.has(parsed.hash)) continue;
        garbage.push(kv.key);
      }
      if (garbage.length === 0) return 0;
      let deleted = 0;
      let conflicted = false;
      for (const batch of chunks(garbage, this.#kv.maxTxnOps)) {
        const del = await this.#kv.txn({
          compare: [{ target: 'mod', key: units.start, end: units.end, op: '<', revision: res.revision + 1 }],
          success: batch.map((key) => ({ kind: 'delete', key })),
        });
        if (!del.succeeded) {
          conflicted = true;
          break;
        }
        deleted += batch.length;
      }
      if (!conflicted) return deleted;
    }
    throw new RegistryError('conflict', 'units kept changing while unit files were being collected; retry');
  }
}

/** Throws `invalid` unless `unit.hash` is the sha256 of `text` (files are content-addressed). */
function checkHash(unit: Unit, text: string): void {
  const actual = createHash('sha256').update(text, 'utf8').digest('hex');
  if (actual !== unit.hash) {
    throw new RegistryError(
      'invalid',
      `unit ${unit.name}: hash ${unit.hash} is not the sha256 of its text (${actual})`,
    );
  }
}
