// Unit text + name → UnitSpec: the one function that holds every rule a unit file must obey
// (STYLE.md rule 7). The API and the CLI both call it at submit; every later layer (scheduler,
// agent, runtimes) reads only the UnitSpec it returns.

import type { Placement, UnitHash, UnitName } from '../cluster/types.js';
import { UnitFileError } from '../lib/errors.js';
import { parseContainerSection, type ContainerSpec } from './container.js';
import { unitHash } from './hash.js';
import { parseHealth, type HealthSpec } from './health.js';
import { parseUnitName, type ParsedUnitName } from './names.js';
import { parseUnitFile, sectionEntries } from './parse-unit-file.js';
import { lineError, nearest, type SectionContext } from './section-values.js';
import { parseServiceSection, type ServiceSpec } from './service.js';
import { specifierContextForUnit } from './specifiers.js';
import type { UnitFile } from './unit-file.js';
import { parseUnitInfo, type UnitInfo } from './unit-section.js';
import { parsePlacement } from './x-fleet.js';

/** How the unit runs: exactly one of a supervised process or a Docker container. */
export type UnitRun =
  | { readonly kind: 'service'; readonly service: ServiceSpec }
  | { readonly kind: 'container'; readonly container: ContainerSpec };

export interface UnitSpec {
  readonly name: UnitName;
  readonly parsedName: ParsedUnitName;
  /** Hash of `text`, which identifies the unit file in the registry. */
  readonly hash: UnitHash;
  /** The submitted text, byte for byte. */
  readonly text: string;
  readonly file: UnitFile;
  readonly info: UnitInfo;
  /** [X-Fleet], specifiers expanded for `name` (%i is '' when `name` is a template). */
  readonly placement: Placement;
  readonly run: UnitRun;
  /** [X-Health]: the check that restarts the unit when it fails (process units); absent: none. */
  readonly health?: HealthSpec;
}

export interface ParseUnitSpecOptions {
  /** Names the file in error messages (a path, say); defaults to the unit name. */
  readonly file?: string;
}

/** The sections a unit may have; [Install] is accepted and ignored, as fleet did. */
export const ALLOWED_SECTIONS = ['Unit', 'Service', 'Container', 'X-Fleet', 'X-Health', 'Install'] as const;

/**
 * Parses and validates a unit file for the unit `name` (a template, an instance or a plain unit).
 * Throws UnitFileError whose message names file, line, key, what is wrong and what would be right.
 */
export function parseUnitSpec(
  text: string,
  name: string | ParsedUnitName,
  opts: ParseUnitSpecOptions = {},
): UnitSpec {
  const parsedName = typeof name === 'string' ? parseUnitName(name) : name;
  const fileName = opts.file ?? parsedName.name;
  const file = parseUnitFile(text, fileName);
  const ctx: SectionContext = {
    file: fileName,
    unit: parsedName,
    specifiers: specifierContextForUnit(parsedName),
  };

  for (const section of file.sections) {
    if ((ALLOWED_SECTIONS as readonly string[]).includes(section.name)) continue;
    throw lineError(ctx, section.line, unknownSectionMessage(section.name));
  }

  const unitEntries = sectionEntries(file, 'Unit');
  const serviceHeader = file.sections.find((s) => s.name === 'Service');
  const containerHeader = file.sections.find((s) => s.name === 'Container');
  let run: UnitRun;
  if (serviceHeader !== undefined && containerHeader !== undefined) {
    const [first, later] =
      serviceHeader.line < containerHeader.line
        ? [serviceHeader, containerHeader]
        : [containerHeader, serviceHeader];
    throw lineError(
      ctx,
      later.line,
      `[${later.name}] cannot be combined with [${first.name}] (line ${first.line}); a unit runs either a process ([Service]) or a container ([Container]), so split it into two units`,
    );
  } else if (serviceHeader !== undefined) {
    const entries = sectionEntries(file, 'Service');
    run = { kind: 'service', service: parseServiceSection(ctx, entries, unitEntries, serviceHeader.line) };
  } else if (containerHeader !== undefined) {
    const entries = sectionEntries(file, 'Container');
    run = {
      kind: 'container',
      container: parseContainerSection(ctx, entries, unitEntries, containerHeader.line),
    };
  } else {
    throw new UnitFileError(
      'no [Service] or [Container] section; a unit needs exactly one: [Service] to run a process (ExecStart=…), [Container] to run a Docker container (Image=…)',
      { file: fileName },
    );
  }

  const info = parseUnitInfo(ctx, unitEntries);
  const placement = parsePlacement(ctx, sectionEntries(file, 'X-Fleet'));
  const healthHeader = file.sections.find((s) => s.name === 'X-Health');
  const health = parseHealth(ctx, sectionEntries(file, 'X-Health'), healthHeader?.line);
  if (health !== undefined && run.kind === 'container' && healthHeader !== undefined)
    throw lineError(
      ctx,
      healthHeader.line,
      "[X-Health] applies to [Service] units; give a container its check with HealthCmd= in [Container] (or the image's HEALTHCHECK): Docker runs it, and fleetts restarts an unhealthy container under Restart=",
    );
  return {
    name: parsedName.name,
    parsedName,
    hash: unitHash(text),
    text,
    file,
    info,
    placement,
    run,
    ...(health === undefined ? {} : { health }),
  };
}

/**
 * The spec of one instance of a template: the template's text read for `instanceName`, so that
 * %i and the other specifiers take the instance's values (`web@1.unit` → `MachineOf=web@1.unit`).
 */
export function specForInstance(
  templateText: string,
  instanceName: string | ParsedUnitName,
  opts: ParseUnitSpecOptions = {},
): UnitSpec {
  const parsed = typeof instanceName === 'string' ? parseUnitName(instanceName) : instanceName;
  if (parsed.kind !== 'instance') {
    throw new UnitFileError(
      `"${parsed.name}" is not an instance name; give one with an instance, as in ${parsed.prefix}@1.${parsed.type}`,
    );
  }
  return parseUnitSpec(templateText, parsed, opts);
}

function unknownSectionMessage(name: string): string {
  const allowed = ALLOWED_SECTIONS.map((s) => `[${s}]`).join(', ');
  const guess = nearest(name, ALLOWED_SECTIONS);
  const hint = guess === undefined ? '' : `; did you mean [${guess}]?`;
  return `unknown section [${name}]; allowed sections: ${allowed} ([Install] is ignored)${hint}`;
}
