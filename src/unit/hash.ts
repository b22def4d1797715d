// Content addressing of unit files: a unit is identified by the hash of its exact text, so that
// `unit-files/<hash>` in etcd is immutable and `fleetts cat` returns the submitted bytes.

import { createHash } from 'node:crypto';
import type { UnitHash } from '../lib/ids.js';

/**
 * Hex sha256 of the UTF-8 encoding of `text`, exactly as given (no normalisation of line ends,
 * BOM or trailing whitespace: the hash names the bytes `fleetts cat` gives back). Hash only text
 * that parseUnitFile accepted: it rejects unpaired surrogates, which UTF-8 cannot encode.
 */
export function unitHash(text: string): UnitHash {
  return createHash('sha256').update(text, 'utf8').digest('hex') as UnitHash;
}
