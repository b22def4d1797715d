// The one error base of fleetts: every boundary (unit files, registry, runtime, API, CLI) throws a
// subclass, so that the API and CLI can map `code` to a status or exit code in one place.

export interface FleetErrorOptions {
  cause?: unknown;
  /** True when retrying the same operation later may succeed (etcd unreachable, a CAS conflict). */
  recoverable?: boolean;
}

export class FleetError extends Error {
  readonly code: string;
  readonly recoverable: boolean;

  constructor(code: string, message: string, options: FleetErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.recoverable = options.recoverable ?? false;
  }
}

/** A problem in a unit file or unit name: the message names file, line and key. */
export class UnitFileError extends FleetError {
  readonly file: string | undefined;
  readonly line: number | undefined;

  constructor(message: string, where: { file?: string | undefined; line?: number | undefined } = {}) {
    super('unit_invalid', formatWhere(where.file, where.line) + message);
    this.file = where.file;
    this.line = where.line;
  }

  /** The message without the `file:line: ` prefix. */
  get reason(): string {
    return this.message.slice(formatWhere(this.file, this.line).length);
  }
}

/** Bad input to a command or setting (not a unit file): a one-line message, exit code 2 in the CLI. */
export class UsageError extends FleetError {
  constructor(message: string, options: FleetErrorOptions = {}) {
    super('usage', message, options);
  }
}

function formatWhere(file: string | undefined, line: number | undefined): string {
  if (file === undefined) return line === undefined ? '' : `line ${line}: `;
  return line === undefined ? `${file}: ` : `${file}:${line}: `;
}
