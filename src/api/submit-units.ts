// Submitting units and setting their target states (fleetctl's submit/load/start/stop/unload): every
// unit of a batch is parsed with parseUnitSpec (the one function holding every rule) before anything
// is written, so a bad file in a batch leaves the cluster unchanged.
import type { TargetState, UnitHash, UnitName } from '../cluster/types.js';
import { FleetError } from '../lib/errors.js';
import type { SnapshotReader, StorageUsage, UnitRecord, UnitStore } from '../registry/registry.js';
import { unitHash } from '../unit/hash.js';
import { parseUnitName, templateOf, type ParsedUnitName } from '../unit/names.js';
import { parseUnitSpec } from '../unit/unit-spec.js';
import { ApiError } from './api-error.js';
import { aboutUnit, requestedUnit } from './stored-problems.js';
import type { PutUnitResult } from './schemas.js';

/** What clients may store in the cluster (fleetd --max-units, --max-unit-file-bytes). */
export interface StorageLimits {
  readonly maxUnits: number;
  /** Bytes of unit files as stored in etcd (each text JSON-encoded). */
  readonly maxUnitFileBytes: number;
}

export interface SubmitItem {
  readonly name: string;
  readonly text?: string | undefined;
  readonly target?: TargetState | undefined;
}

interface Prepared {
  readonly name: ParsedUnitName;
  readonly existing: UnitRecord | undefined;
  /** The text to create (or replace) the unit with; undefined: keep the existing unit. */
  readonly text: string | undefined;
  readonly template: UnitName | undefined;
  readonly differs: boolean;
  readonly target: TargetState | undefined;
}

/** Validates every item, then writes them in order. Throws before writing when any item is bad. */
export async function submitUnits(
  registry: SnapshotReader & UnitStore,
  items: readonly SubmitItem[],
  options: { readonly replace?: boolean; readonly create?: boolean; readonly limits?: StorageLimits } = {},
): Promise<PutUnitResult[]> {
  const seen = new Set<string>();
  for (const item of items) {
    if (seen.has(item.name)) throw new ApiError(400, 'invalid', `unit ${item.name} is given twice`);
    seen.add(item.name);
  }
  const prepared = await prepareAll(registry, items, options.create === false);
  if (options.create === false) {
    const missing = prepared.filter((p) => p.existing === undefined).map((p) => p.name.name);
    if (missing.length > 0)
      throw new ApiError(
        404,
        'not_found',
        `${missing.length === 1 ? 'unit' : 'units'} ${missing.join(', ')} ${missing.length === 1 ? 'is' : 'are'} not submitted`,
      );
  }
  if (options.limits !== undefined)
    await checkLimits(registry, prepared, options.replace ?? false, options.limits);
  const replace = options.replace ?? false;
  const results: (PutUnitResult | undefined)[] = prepared.map(() => undefined);
  // New units in as few etcd transactions as it allows (`fleetts start web@{1..100}`: one, where
  // one each took 100 round trips); then the others (replaced, or a new target) one by one.
  const fresh = prepared.flatMap((p, i) => (p.existing === undefined ? [{ p, i }] : []));
  if (fresh.length > 0) {
    const records = await registry.createUnits(fresh.map(({ p }) => newUnit(p)));
    for (const [k, { p, i }] of fresh.entries())
      results[i] = await created(registry, p, newUnit(p).unit.target, records[k]!);
  }
  for (const [i, p] of prepared.entries()) results[i] ??= await write(registry, p, replace);
  return results.map((r) => r!);
}

/**
 * Reads what every item needs (its stored unit, its template's file) at once, not one after the
 * other; a template asked for by many instances is read once. The first bad item, in the batch's
 * order, is the error.
 */
async function prepareAll(
  registry: SnapshotReader & UnitStore,
  items: readonly SubmitItem[],
  mustExist: boolean,
): Promise<Prepared[]> {
  const templates = new Map<string, Promise<string | undefined>>();
  const templateText = (of: UnitName): Promise<string | undefined> => {
    let text = templates.get(of);
    if (text === undefined) {
      text = (async () => {
        const unit = await aboutUnit(of, () => registry.getUnit(of));
        return unit === undefined ? undefined : aboutUnit(of, () => registry.getUnitFile(unit.hash));
      })();
      templates.set(of, text);
    }
    return text;
  };
  const settled = await Promise.allSettled(
    items.map((item) => prepare(registry, item, items, mustExist, templateText)),
  );
  const failed = settled.find((r) => r.status === 'rejected');
  if (failed !== undefined) throw failed.reason;
  return settled.map((r) => (r as PromiseFulfilledResult<Prepared>).value);
}

function newUnit(p: Prepared): {
  unit: { name: UnitName; hash: UnitHash; target: TargetState };
  text: string;
} {
  if (p.text === undefined) throw new FleetError('internal', `no text for ${p.name.name}`);
  return {
    unit: { name: p.name.name, hash: unitHash(p.text), target: p.target ?? 'inactive' },
    text: p.text,
  };
}

async function created(
  registry: UnitStore,
  p: Prepared,
  target: TargetState,
  stored: UnitRecord,
): Promise<PutUnitResult> {
  let record = stored;
  // createUnit keeps the stored target of an identical unit submitted concurrently.
  if (record.target !== target && p.target !== undefined)
    record = await registry.setTargetState(p.name.name, target, { expectHash: record.hash });
  return {
    name: p.name.name,
    hash: record.hash,
    target: record.target,
    outcome: 'created',
    ...(p.template === undefined ? {} : { template: p.template }),
    revision: record.modRevision,
  };
}

async function prepare(
  registry: SnapshotReader & UnitStore,
  item: SubmitItem,
  batch: readonly SubmitItem[],
  mustExist: boolean,
  templateText: (of: UnitName) => Promise<string | undefined>,
): Promise<Prepared> {
  const name = parseUnitName(await requestedUnit(registry, item.name));
  if (name.kind === 'template' && item.target !== undefined && item.target !== 'inactive') {
    throw new ApiError(
      400,
      'invalid',
      `${name.name} is a template and cannot be ${item.target === 'loaded' ? 'loaded' : 'started'}; use an instance of it, such as ${name.prefix}@1.${name.type}`,
    );
  }
  const existing = await aboutUnit(name.name, () => registry.getUnit(name.name));
  let text = item.text;
  let template: UnitName | undefined;
  if (text === undefined && existing === undefined && !mustExist) {
    const of = templateOf(name);
    template = of;
    const fromBatch = batch.find((b) => b.name === template)?.text;
    text = fromBatch ?? (of === undefined ? undefined : await templateText(of));
    if (text === undefined) {
      const also = template === undefined ? '' : `, and neither is its template ${template}`;
      throw new ApiError(
        404,
        'not_found',
        `unit ${name.name} is not submitted${also}; submit its unit file first (fleetts submit ${template ?? name.name})`,
      );
    }
  }
  if (text !== undefined) parseUnitSpec(text, name, { file: name.name });
  const differs = text !== undefined && existing !== undefined && unitHash(text) !== existing.hash;
  return { name, existing, text, template, differs, target: item.target };
}

/** A unit already stored: replaced (with --replace, when its file differs), or given its new target. */
async function write(registry: UnitStore, p: Prepared, replace: boolean): Promise<PutUnitResult> {
  const name = p.name.name;
  if (p.existing === undefined) throw new FleetError('internal', `${name} is not stored`);
  if (p.differs && replace) {
    if (p.text === undefined) throw new FleetError('internal', `no text for ${name}`);
    const unit = { name, hash: unitHash(p.text), target: p.target ?? p.existing.target };
    // One transaction: a kill at any point leaves the old unit or the new one, never neither.
    const record = await registry.replaceUnit(p.existing, unit, p.text);
    return {
      name,
      hash: record.hash,
      target: record.target,
      outcome: 'replaced',
      revision: record.modRevision,
    };
  }
  let record: UnitRecord = p.existing;
  if (p.target !== undefined && p.target !== record.target)
    record = await registry.setTargetState(name, p.target, { expectHash: record.hash });
  return {
    name,
    hash: record.hash,
    target: record.target,
    outcome: p.differs ? 'differs' : 'unchanged',
    revision: record.modRevision,
  };
}

/** What one unit file costs as stored: its text JSON-encoded in a small record. */
export function storedUnitFileBytes(text: string): number {
  return Buffer.byteLength(JSON.stringify(text)) + 16;
}

/**
 * Refuses a batch that would take the cluster over its storage limits, before anything is written
 * (so a client cannot fill etcd's quota, after which etcd refuses every write, leases included).
 * Concurrent batches may overshoot by at most one batch each.
 */
async function checkLimits(
  registry: SnapshotReader & UnitStore,
  prepared: readonly Prepared[],
  replace: boolean,
  limits: StorageLimits,
): Promise<void> {
  const writes = prepared.filter(
    (p) => p.text !== undefined && (p.existing === undefined || (p.differs && replace)),
  );
  if (writes.length === 0) return;
  const usage: StorageUsage = await registry.usage();
  const added = writes.filter((p) => p.existing === undefined).length;
  if (added > 0 && usage.units + added > limits.maxUnits) {
    throw new ApiError(
      507,
      'storage_limit',
      `the cluster holds ${usage.units} units and this submit adds ${added}: over the limit of ${limits.maxUnits} (fleetd --max-units); destroy units that are no longer needed, or raise --max-units on every fleetd`,
    );
  }
  const newTexts = new Map<string, number>();
  for (const p of writes) {
    const text = p.text as string;
    const hash = unitHash(text);
    if (!usage.unitFileHashes.has(hash)) newTexts.set(hash, storedUnitFileBytes(text));
  }
  const bytes = [...newTexts.values()].reduce((a, b) => a + b, 0);
  if (bytes > 0 && usage.unitFileBytes + bytes > limits.maxUnitFileBytes) {
    throw new ApiError(
      507,
      'storage_limit',
      `the cluster holds ${usage.unitFileBytes} bytes of unit files and this submit adds ${bytes}: over the limit of ${limits.maxUnitFileBytes} (fleetd --max-unit-file-bytes); destroy units that are no longer needed, or raise --max-unit-file-bytes on every fleetd`,
    );
  }
}
