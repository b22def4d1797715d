// The final environment of a unit on this host, shared by both runtimes' config builders: the
// agent's base variables, then Environment= (specifiers expanded), then each EnvironmentFile= in
// order (read now, on the host the unit runs on).
import type { UnitHash, UnitName } from '../cluster/types.js';
import { parseEnvironmentFile } from '../unit/exec.js';
import { expandSpecifiers, type SpecifierContext } from '../unit/specifiers.js';

/** The parts of a unit section the environment comes from ([Service] and [Container] both have them). */
export interface EnvironmentSection {
  readonly environment: Readonly<Record<string, string>>;
  readonly environmentFiles: readonly { readonly path: string; readonly optional: boolean }[];
}

/** Throws SpecifierError for a bad specifier; a missing required file is an `error` result. */
export function buildUnitEnvironment(
  input: RuntimeConfigInput<EnvironmentSection>,
  warnings: string[],
):
  | { readonly kind: 'ok'; readonly env: Record<string, string> }
  | { readonly kind: 'error'; readonly reason: string } {
  const env: Record<string, string> = { ...input.baseEnv };
  for (const [k, v] of Object.entries(input.spec.environment)) {
    env[k] = expandSpecifiers(v, input.specifiers, { where: 'Environment=' });
  }
  for (const file of input.spec.environmentFiles) {
    const path = expandSpecifiers(file.path, input.specifiers, { where: 'EnvironmentFile=' });
    const text = input.readFile(path);
    if (text === undefined) {
      if (file.optional) continue;
      return { kind: 'error', reason: `EnvironmentFile=${path}: no such file` };
    }
    Object.assign(
      env,
      parseEnvironmentFile(text, (line, message) =>
        warnings.push(`EnvironmentFile=${path} line ${line}: ${message}`),
      ),
    );
  }
  return { kind: 'ok', env };
}

/** What both runtimes' config builders take: one unit's parsed section plus this host's facts. */
export interface RuntimeConfigInput<Spec> {
  readonly unit: UnitName;
  readonly hash: UnitHash;
  readonly spec: Spec;
  /** Every specifier, host ones included. */
  readonly specifiers: SpecifierContext;
  /** The agent's environment for every unit (FLEETTS_MACHINE_ID…); Environment= and files override it. */
  readonly baseEnv: Readonly<Record<string, string>>;
  /** Reads an EnvironmentFile=; undefined when it does not exist. */
  readonly readFile: (path: string) => string | undefined;
}

/** A runtime config for this host, or why the unit cannot start here. */
export type RuntimeConfigResult<Config> =
  | { readonly kind: 'ok'; readonly config: Config; readonly warnings: readonly string[] }
  | { readonly kind: 'error'; readonly reason: string };
