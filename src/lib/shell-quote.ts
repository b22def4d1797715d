// Quoting for /bin/sh: the one rule for commands fleetts runs and for commands it tells people to run.

/** Quotes one word for /bin/sh (left as it is when it needs no quotes). */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}
