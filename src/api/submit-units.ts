// Submitting units and setting their target states (fleetctl's submit/load/start/stop/unload): every
// unit of a batch is parsed with parseUnitSpec (the one function holding every rule) before anything
// is written, so a bad file in a batch leaves the cluster unchanged.
import type { TargetState, UnitName } from '../cluster/types.js';
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
  const prepared: Prepared[] = [];
  for (const item of items) prepared.push(await prepare(registry, item, items, options.create === false));
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
  const results: PutUnitResult[] = [];
  for (const p of prepared) results.push(await write(registry, p, options.replace ?? false));
  return results;
}

async function prepare(
  registry: SnapshotReader & UnitStore,
  item: SubmitItem,
  batch: readonly SubmitItem[],
  mustExist: boolean,
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
    const templateUnit = of === undefined ? undefined : await aboutUnit(of, () => registry.getUnit(of));
    text =
      fromBatch ??
      (templateUnit === undefined || of === undefined
        ? undefined
        : await aboutUnit(of, () => registry.getUnitFile(templateUnit.hash)));
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

async function write(
  registry: SnapshotReader & UnitStore,
  p: Prepared,
  replace: boolean,
): Promise<PutUnitResult> {
  const name = p.name.name;
  const templateField = p.template === undefined ? {} : { template: p.template };
  if (p.existing === undefined || (p.differs && replace)) {
    if (p.text === undefined) throw new FleetError('internal', `no text for ${name}`);
    const target = p.target ?? p.existing?.target ?? 'inactive';
    const unit = { name, hash: unitHash(p.text), target };
    if (p.existing !== undefined) {
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
    let record = await registry.createUnit(unit, p.text);
    // createUnit keeps the stored target of an identical unit submitted concurrently.
    if (record.target !== target && p.target !== undefined)
      record = await registry.setTargetState(name, target, { expectHash: record.hash });
    return {
      name,
      hash: record.hash,
      target: record.target,
      outcome: 'created',
      ...templateField,
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
