// The lossless model of a systemd-syntax unit file. `parseUnitFile` (parse-unit-file.ts) builds it;
// `serializeUnitFile` gives back the exact text it came from. Every later layer reads units through
// this model, never by re-scanning text.

/** One `Key=Value` assignment (after continuation lines are joined and whitespace trimmed). */
export interface UnitEntry {
  readonly key: string;
  /** The value as systemd sees it: continuations joined with a space, surrounding whitespace trimmed. */
  readonly value: string;
  /** 1-based line number of the line where the assignment starts. */
  readonly line: number;
}

/** A `[Name]` section and its assignments, in file order (repeated keys kept in order). */
export interface UnitSection {
  readonly name: string;
  /** 1-based line number of the `[Name]` header. */
  readonly line: number;
  readonly entries: readonly UnitEntry[];
}

export interface UnitFile {
  /** The sections in file order. A section name may appear more than once (systemd merges them). */
  readonly sections: readonly UnitSection[];
  /**
   * The raw lines (exact bytes, including their line terminators) that the file was parsed from;
   * serializing joins these, which is what makes the round trip lossless.
   */
  readonly raw: readonly string[];
}
