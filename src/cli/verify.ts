// `fleetts verify FILE…`: parses unit files with the same function the API uses at submit and
// reports every problem with file and line, without talking to a cluster.
import { basename } from 'node:path';
import type { Command } from 'commander';
import { FleetError, UsageError } from '../lib/errors.js';
import { mangleUnitName } from '../unit/names.js';
import { parseUnitSpec } from '../unit/unit-spec.js';
import type { CliContext } from './main.js';
import { EXIT_FAILED } from './exit-codes.js';
import { directoryMessage, missingMessage, readUnitFile } from './read-unit-file.js';

export function registerVerify(program: Command, ctx: CliContext): void {
  program
    .command('verify')
    .description('check unit files (syntax, [X-Fleet] rules, [Service]/[Container] keys) without a cluster')
    .argument('<file...>', 'unit files to check (name.unit, name.service, templates name@.unit)')
    .addHelpText(
      'after',
      `
Examples:
  fleetts verify units/web@.unit units/lb.unit
  fleetts verify ./my-app@.service`,
    )
    .action(async (files: string[]) => {
      let bad = 0;
      for (const path of files) {
        const problem = await verifyFile(path);
        if (problem === undefined) ctx.output.out(`${path}: ok`);
        else {
          bad++;
          ctx.output.err(problem);
        }
      }
      if (bad > 0) ctx.exitCode = EXIT_FAILED;
    });
}

/** Returns undefined when the file is a valid unit, else the message to show. */
async function verifyFile(path: string): Promise<string | undefined> {
  let text: string;
  try {
    const file = await readUnitFile(path);
    if (file.kind === 'missing') return `${path}: ${missingMessage(file)}`;
    if (file.kind === 'directory') return directoryMessage(path);
    text = file.text;
  } catch (err) {
    if (err instanceof UsageError) return err.message; // not a regular file, too large, no permission
    throw err;
  }
  try {
    const name = mangleUnitName(basename(path));
    parseUnitSpec(text, name, { file: path });
    return undefined;
  } catch (err) {
    if (err instanceof FleetError)
      return err.message.startsWith(path) ? err.message : `${path}: ${err.message}`;
    throw err;
  }
}
