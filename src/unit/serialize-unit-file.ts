// The inverse of parseUnitFile (parse-unit-file.ts): the exact text a UnitFile was parsed from, so
// that `fleetts cat` and the content hash see the bytes the user submitted.

import type { UnitFile } from './unit-file.js';

/**
 * The text `file` was parsed (or built) from, byte for byte: line ends, comments, blank lines,
 * trailing whitespace, continuations, a leading BOM and a missing final newline are all kept.
 */
export function serializeUnitFile(file: UnitFile): string {
  return file.raw.join('');
}
