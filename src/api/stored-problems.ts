// The API's side of etcd keys that did not decode or validate (the registry's DecodeProblems): they
// are listed beside the records they would have been, and a request about one of them answers 422
// with the reason and the way out (`fleetts destroy`), never 500.
import type { UnitName } from '../cluster/types.js';
import { FleetError, UnitFileError } from '../lib/errors.js';
import { shellQuote } from '../lib/shell-quote.js';
import type { TreeName } from '../registry/keys.js';
import type { DecodeProblem, SnapshotReader } from '../registry/registry.js';
import { isRegistryError } from '../registry/registry-error.js';
import { mangleUnitName, parseUnitName } from '../unit/names.js';
import { ApiError } from './api-error.js';
import type { StoredProblem } from './schemas.js';

/** The problems under `trees`, as the API lists them. */
export function storedProblems(
  problems: readonly DecodeProblem[],
  trees: readonly TreeName[],
): StoredProblem[] {
  return problems
    .filter((p) => p.tree !== undefined && trees.includes(p.tree))
    .map((p) => ({
      key: p.key,
      ...(p.tree === 'units' && p.name !== undefined ? { unit: p.name } : {}),
      reason: p.message,
    }));
}

/** The problem of the key `units/<name>` (name as stored), if it has one. */
export function unitProblem(problems: readonly DecodeProblem[], name: string): DecodeProblem | undefined {
  return problems.find((p) => p.tree === 'units' && p.name === name);
}

/** The answer about a unit whose key or value in etcd is corrupt (`detail` says which and how). */
export function corruptUnit(name: string, detail: string): ApiError {
  return new ApiError(
    422,
    'corrupt',
    `unit ${name} is corrupt in etcd (${detail}); remove it with ${destroyCommand(name)}, then submit it again`,
  );
}

/** The command that removes the key stored under `units/<name>` (see `fleetts destroy --raw`). */
export function destroyCommand(name: string): string {
  let plain: boolean;
  try {
    plain = mangleUnitName(name) === name;
  } catch (error) {
    if (!(error instanceof UnitFileError)) throw error;
    plain = true; // no valid unit name: destroy passes it on as it is
  }
  return `fleetts destroy ${plain ? '' : '--raw '}${shellQuote(name)}`;
}

/** `corruptUnit` for a problem the registry listed. */
export function corruptUnitKey(name: string, problem: DecodeProblem): ApiError {
  return corruptUnit(name, `etcd key ${problem.key}: ${problem.message}`);
}

/**
 * A unit name from a request. An invalid one is a 400, unless etcd holds a corrupt key under that
 * very name (written by hand or by a bug): then it is that key's 422.
 */
export async function requestedUnit(registry: SnapshotReader, raw: string): Promise<UnitName> {
  try {
    return parseUnitName(raw).name;
  } catch (error) {
    if (!(error instanceof FleetError)) throw error;
    const problem = unitProblem((await registry.snapshot({ unitFiles: 'none' })).problems, raw);
    throw problem === undefined ? error : corruptUnitKey(raw, problem);
  }
}

/** Runs a registry read about unit `name`, turning a corrupt value into the unit's 422. */
export async function aboutUnit<T>(name: string, read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (error) {
    if (isRegistryError(error, 'corrupt')) throw corruptUnit(name, error.message);
    throw error;
  }
}
