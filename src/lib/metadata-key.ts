// The one rule for machine metadata keys (fleetd's --metadata, PATCH /v1/machines): letters,
// digits, "_", "." and "-". Keys become JSON object keys in etcd records and plain-object lookups,
// so the names that reach JavaScript's prototype chain are refused rather than half-stored.

/** Keys that would read or replace an object's prototype when used as a plain-object key. */
const PROTOTYPE_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

export const METADATA_KEY_MAX = 128;

const METADATA_KEY = new RegExp(`^[A-Za-z0-9_.-]{1,${METADATA_KEY_MAX}}$`);

/** Why `key` is no metadata key (a phrase to follow "is not allowed:"), or undefined when it is one. */
export function metadataKeyProblem(key: string): string | undefined {
  if (PROTOTYPE_KEYS.has(key))
    return `"${key}" is reserved (it names JavaScript's object prototype); choose another key`;
  if (METADATA_KEY.test(key)) return undefined;
  if (key === '') return 'the key is empty';
  if (key.length > METADATA_KEY_MAX)
    return `the key is ${key.length} characters long; the limit is ${METADATA_KEY_MAX}`;
  const bad = Array.from(key).find((c) => !/^[A-Za-z0-9_.-]$/.test(c)) ?? '';
  return `character ${JSON.stringify(bad)} is not allowed in a key (letters, digits, "_", "." and "-")`;
}
