// The API's error boundary: every error a route throws becomes one HTTP status and the one body
// shape `{error: {code, message}}`, here and nowhere else (STYLE.md "Errors").
import { FleetError } from '../lib/errors.js';
import type { ErrorBody } from './schemas.js';

/** An error raised by the API itself (bad request, not registered, unauthorized…). */
export class ApiError extends FleetError {
  readonly status: number;

  constructor(status: number, code: string, message: string, options: { cause?: unknown } = {}) {
    super(code, message, { ...options, recoverable: status === 503 });
    this.status = status;
  }
}

/** HTTP status of a FleetError code from any boundary (registry, unit files, runtime). */
const STATUS_OF_CODE: Readonly<Record<string, number>> = {
  not_found: 404,
  exists: 409,
  conflict: 409,
  machine_id_taken: 409,
  invalid: 400,
  /** A stored value that does not decode: the request is fine, the record it names is not. */
  corrupt: 422,
  unit_invalid: 400,
  usage: 400,
  denied: 403,
  unauthorized: 401,
  unavailable: 503,
  not_registered: 503,
  lease_lost: 503,
  closed: 503,
  fenced: 503,
  unreachable: 502,
  /** etcd no longer has the history asked for (an event stream's `since`): start again. */
  compacted: 410,
};

export interface MappedError {
  readonly status: number;
  readonly body: ErrorBody;
  /** True when the error is not the client's doing (log it). */
  readonly internal: boolean;
}

/** Maps anything thrown in a route to a status and the error body. */
export function mapError(err: unknown): MappedError {
  if (err instanceof ApiError) return mapped(err.status, err.code, err.message);
  if (err instanceof FleetError) {
    const status = STATUS_OF_CODE[err.code] ?? 500;
    return mapped(status, err.code, err.message);
  }
  // fastify's own errors (body parsing, size limits, unsupported media types) carry a 4xx status.
  const e = err as { statusCode?: unknown; code?: unknown; message?: unknown };
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    const code =
      e.statusCode === 413 ? 'too_large' : e.statusCode === 415 ? 'unsupported_media_type' : 'invalid';
    return mapped(e.statusCode, code, typeof e.message === 'string' ? e.message : 'bad request');
  }
  const message = err instanceof Error ? err.message : String(err);
  return { ...mapped(500, 'internal', `internal error: ${message}`), internal: true };
}

function mapped(status: number, code: string, message: string): MappedError {
  return { status, body: { error: { code, message } }, internal: status >= 500 };
}
