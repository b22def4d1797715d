// How fleetctl read unit arguments: `web@1` and `units/web@1.unit` name the unit web@1.unit; its
// text comes from the local file when there is one, else (for an instance) from the template in
// the registry, else from a local template file (`web@.unit` beside the path). Every local text is
// parsed here too, so a bad file fails before anything is sent. A FIFO or device is refused at once;
// a missing file is said to be missing when the registry has no such unit either.
import { dirname, resolve } from 'node:path';
import type { UnitName } from '../cluster/types.js';
import { FleetError, UsageError } from '../lib/errors.js';
import { mangleUnitName, parseUnitName, templateOf } from '../unit/names.js';
import { parseUnitSpec } from '../unit/unit-spec.js';
import type { ApiClient } from './client.js';
import { directoryMessage, isDirectory, missingMessage, readUnitFile } from './read-unit-file.js';

export interface UnitArg {
  readonly arg: string;
  readonly name: UnitName;
  /** The unit's own local file. */
  readonly text?: string;
  /** For an instance without a local file: the local template's text (used when the registry has no template). */
  readonly templateText?: string;
  readonly templateName?: UnitName;
  /** No local text: which files were looked for, to say so if the registry has no unit either. */
  readonly notFound?: NotFound;
}

/** The local files an argument led to that do not exist. */
export interface NotFound {
  readonly file: { readonly path: string; readonly symlinkTo?: string };
  /** The argument itself is a directory (`fleetts submit adir`). */
  readonly directory?: boolean;
  /** An instance's template file, looked for beside the unit's. */
  readonly template?: { readonly name: UnitName; readonly path: string; readonly symlinkTo?: string };
}

/** Only the names: for commands that never create units (stop, unload, destroy, status…). */
export function unitNames(args: readonly string[]): UnitName[] {
  const names = args.map((a) => mangleUnitName(a));
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup !== undefined) throw new UsageError(`unit ${dup} is given twice`);
  return names;
}

export async function readUnitArgs(args: readonly string[], cwd: string): Promise<UnitArg[]> {
  // `adir/` names a directory whether or not it exists: the same usage error as `adir`, at once.
  for (const arg of args) {
    if (!arg.endsWith('/')) continue;
    if (await isDirectory(resolve(cwd, arg))) throw new UsageError(directoryMessage(arg));
    throw new UsageError(
      `${arg} ends with "/", so it names a directory, not a unit file; give a unit file such as units/web@.unit`,
    );
  }
  const names = unitNames(args);
  const out: UnitArg[] = [];
  for (const [i, arg] of args.entries()) {
    const name = names[i] as UnitName;
    const path = resolve(cwd, arg.includes('/') || arg.endsWith(name) ? arg : name);
    const own = await readUnitFile(path, arg);
    if (own.kind === 'text') {
      parseUnitSpec(own.text, name, { file: arg });
      out.push({ arg, name, text: own.text });
      continue;
    }
    const directory = own.kind === 'directory' || (await isDirectory(resolve(cwd, arg)));
    const file = own.kind === 'missing' ? own : { path };
    const parsed = parseUnitName(name);
    const templateName = templateOf(parsed);
    if (templateName !== undefined) {
      const templatePath = resolve(dirname(path), templateName);
      const template = await readUnitFile(templatePath, templatePath);
      if (template.kind === 'text') {
        parseUnitSpec(template.text, parsed, { file: templatePath });
        out.push({ arg, name, templateText: template.text, templateName });
        continue;
      }
      const missing = template.kind === 'missing' ? template : { path: templatePath };
      out.push({ arg, name, notFound: { file, directory, template: { name: templateName, ...missing } } });
      continue;
    }
    out.push({ arg, name, notFound: { file, directory } });
  }
  return out;
}

/**
 * Why a batch was refused as "not submitted", in terms of the local files: for each unit sent by
 * name only (no local file) that the registry lacks too (nor, for an instance, its template), what
 * was looked for and where. A directory given as a unit is a usage error; a missing file is
 * `not_found`. Undefined when every such unit is known (the refusal was about something else).
 */
export async function explainNotFound(
  client: Pick<ApiClient, 'listUnits'>,
  units: readonly UnitArg[],
): Promise<FleetError | undefined> {
  const byName = units.filter((u) => u.notFound !== undefined);
  if (byName.length === 0) return undefined;
  const ask = [
    ...new Set(
      byName.flatMap((u) => [
        u.name,
        ...(u.notFound?.template === undefined ? [] : [u.notFound.template.name]),
      ]),
    ),
  ];
  // A long names= list would not fit in a URL: then list everything.
  const listed = await client.listUnits(ask.length <= 100 ? ask : undefined);
  const known = new Set<string>(listed.map((u) => u.name));
  const lost = byName.filter(
    (u) => !known.has(u.name) && (u.notFound?.template === undefined || !known.has(u.notFound.template.name)),
  );
  const first = lost[0];
  if (first === undefined) return undefined;
  const dir = lost.find((u) => u.notFound?.directory === true);
  if (dir !== undefined) return new UsageError(directoryMessage(dir.arg));
  const lines = lost.map((u) => notFoundLine(u));
  if (lines.length === 1) return new FleetError('not_found', lines[0] ?? '');
  return new FleetError(
    'not_found',
    `${lines.length} units have no unit file here and are not submitted:\n${lines.map((l) => `  ${l}`).join('\n')}`,
  );
}

function notFoundLine(u: UnitArg): string {
  const nf = u.notFound;
  if (nf === undefined) return `unit ${u.name} is not submitted`;
  const where = nf.file.path === u.arg ? u.arg : `${u.arg} (${nf.file.path})`;
  const t = nf.template;
  if (t === undefined)
    return `${where}: ${missingMessage(nf.file)}, and unit ${u.name} is not submitted; give the path of its unit file`;
  const template = t.symlinkTo === undefined ? '' : ` (${missingMessage(t)})`;
  return (
    `${where}: ${missingMessage(nf.file)}, nor is there a template file ${t.path}${template}; ` +
    `unit ${u.name} is not submitted, and neither is its template ${t.name}: give the path of the unit or template file`
  );
}
