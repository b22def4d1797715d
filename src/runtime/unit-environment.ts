// The final environment of a unit on this host, shared by both runtimes' config builders: the
// agent's base variables, then Environment= (specifiers expanded), then each EnvironmentFile= in
// order (read now, on the host the unit runs on).
import { parseEnvironmentFile } from '../unit/exec.js';
import { expandSpecifiers, type SpecifierContext } from '../unit/specifiers.js';

export interface UnitEnvironmentInput {
  readonly baseEnv: Readonly<Record<string, string>>;
  readonly environment: Readonly<Record<string, string>>;
  readonly environmentFiles: readonly { readonly path: string; readonly optional: boolean }[];
  readonly specifiers: SpecifierContext;
  /** Reads an EnvironmentFile=; undefined when it does not exist. */
  readonly readFile: (path: string) => string | undefined;
}

/** Throws SpecifierError for a bad specifier; a missing required file is an `error` result. */
export function buildUnitEnvironment(
  input: UnitEnvironmentInput,
  warnings: string[],
):
  | { readonly kind: 'ok'; readonly env: Record<string, string> }
  | { readonly kind: 'error'; readonly reason: string } {
  const env: Record<string, string> = { ...input.baseEnv };
  for (const [k, v] of Object.entries(input.environment)) {
    env[k] = expandSpecifiers(v, input.specifiers, { where: 'Environment=' });
  }
  for (const file of input.environmentFiles) {
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
