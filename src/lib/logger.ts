// Structured logging: pino JSON lines; events are named `domain.event` with structured fields
// (STYLE.md). Modules receive a Logger in their deps; only the composition root creates one.
import { pino, type Logger as PinoLogger } from 'pino';

export type Logger = PinoLogger;

export interface LoggerOptions {
  readonly level?: string;
  readonly name?: string;
  /** Where JSON lines go (default: stderr, so that stdout stays free for command output). */
  readonly destination?: NodeJS.WritableStream;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  return pino(
    { level: options.level ?? 'info', ...(options.name === undefined ? {} : { name: options.name }) },
    (options.destination ?? process.stderr) as pino.DestinationStream,
  );
}

/** A logger that drops everything (tests, simulations). */
export const silentLogger: Logger = pino({ level: 'silent' });
