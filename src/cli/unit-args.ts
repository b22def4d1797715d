// How fleetctl read unit arguments: `web@1` and `units/web@1.unit` name the unit web@1.unit; its
// text comes from the local file when there is one, else (for an instance) from the template in
// the registry, else from a local template file (`web@.unit` beside the path). Every local text is
// parsed here too, so a bad file fails before anything is sent.
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { UnitName } from '../cluster/types.js';
import { UsageError } from '../lib/errors.js';
import { MAX_UNIT_FILE_BYTES } from '../unit/limits.js';
import { mangleUnitName, parseUnitName, templateOf } from '../unit/names.js';
import { parseUnitSpec } from '../unit/unit-spec.js';

export interface UnitArg {
  readonly arg: string;
  readonly name: UnitName;
  /** The unit's own local file. */
  readonly text?: string;
  /** For an instance without a local file: the local template's text (used when the registry has no template). */
  readonly templateText?: string;
  readonly templateName?: UnitName;
}

/** Only the names: for commands that never create units (stop, unload, destroy, status…). */
export function unitNames(args: readonly string[]): UnitName[] {
  const names = args.map((a) => mangleUnitName(a));
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup !== undefined) throw new UsageError(`unit ${dup} is given twice`);
  return names;
}

export async function readUnitArgs(args: readonly string[], cwd: string): Promise<UnitArg[]> {
  const names = unitNames(args);
  const out: UnitArg[] = [];
  for (const [i, arg] of args.entries()) {
    const name = names[i] as UnitName;
    const path = resolve(cwd, arg.includes('/') || arg.endsWith(name) ? arg : name);
    const text = await readLocal(path, arg);
    if (text !== undefined) {
      parseUnitSpec(text, name, { file: arg });
      out.push({ arg, name, text });
      continue;
    }
    const parsed = parseUnitName(name);
    const templateName = templateOf(parsed);
    if (templateName !== undefined) {
      const templatePath = resolve(dirname(path), templateName);
      const templateText = await readLocal(templatePath, templatePath);
      if (templateText !== undefined) {
        parseUnitSpec(templateText, parsed, { file: templatePath });
        out.push({ arg, name, templateText, templateName });
        continue;
      }
    }
    out.push({ arg, name });
  }
  return out;
}

async function readLocal(path: string, shown: string): Promise<string | undefined> {
  try {
    const text = await readFile(path, 'utf8');
    if (Buffer.byteLength(text) > MAX_UNIT_FILE_BYTES)
      throw new UsageError(`${shown}: a unit file may be at most ${MAX_UNIT_FILE_BYTES} bytes`);
    return text;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    if (code === 'EISDIR') throw new UsageError(`${shown} is a directory, not a unit file`);
    if (err instanceof UsageError) throw err;
    throw new UsageError(`cannot read ${shown}: ${code ?? String(err)}`);
  }
}
