// One route of the API as data: its zod schemas (request and response) and a typed handler. The
// same definition registers the fastify route, validates both directions, and feeds the OpenAPI
// document (schema = validator = type, as fastify intends, with zod).
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Readable } from 'node:stream';
import type { z } from 'zod';
import { ApiError } from './api-error.js';

export type HttpMethod = 'GET' | 'PUT' | 'POST' | 'PATCH' | 'DELETE';

export interface RouteInput<P, Q, B> {
  readonly params: P;
  readonly query: Q;
  readonly body: B;
  /** Aborted when the client goes away (stops journals that follow, and proxied requests). */
  readonly signal: AbortSignal;
  readonly request: FastifyRequest;
}

/** A route as registered: types erased, schemas kept for validation and for OpenAPI. */
export interface RouteSpec {
  readonly method: HttpMethod;
  /** fastify syntax: `/v1/units/:name`. */
  readonly url: string;
  readonly operationId: string;
  readonly summary: string;
  readonly params?: z.ZodType | undefined;
  readonly query?: z.ZodType | undefined;
  readonly body?: z.ZodType | undefined;
  /** JSON response schema; absent for 204 and for text streams. */
  readonly response?: z.ZodType | undefined;
  readonly status: number;
  readonly produces: 'application/json' | 'text/plain' | 'text/event-stream';
  /** Error statuses the route documents (400, 404…); 401 and 503 are added for every route. */
  readonly errors: readonly number[];
  /** Served even while this host is not registered (health, the OpenAPI document, local units). */
  readonly whileUnregistered: boolean;
  handle(request: FastifyRequest, reply: FastifyReply): Promise<void>;
}

interface Common {
  readonly method: HttpMethod;
  readonly url: string;
  readonly operationId: string;
  readonly summary: string;
  readonly errors?: readonly number[];
  readonly whileUnregistered?: boolean;
}

interface Schemas<P, Q, B> {
  readonly params?: z.ZodType<P>;
  readonly query?: z.ZodType<Q>;
  readonly body?: z.ZodType<B>;
}

/** A JSON route: the handler's result is checked against `response` before it is sent. */
export function jsonRoute<P = undefined, Q = undefined, B = undefined, R = unknown>(
  def: Common &
    Schemas<P, Q, B> & {
      readonly response: z.ZodType<R>;
      readonly status?: number;
      handler(input: RouteInput<P, Q, B>): Promise<R>;
    },
): RouteSpec {
  return {
    ...base(def),
    response: def.response,
    status: def.status ?? 200,
    produces: 'application/json',
    async handle(request, reply) {
      const input = parseInput(def, request, reply);
      const result = await def.handler(input);
      const checked = def.response.safeParse(result);
      if (!checked.success)
        throw new Error(
          `response of ${def.operationId} does not match its schema: ${formatIssues(checked.error)}`,
        );
      await reply.code(def.status ?? 200).send(checked.data);
    },
  };
}

/** A route without a response body (204). */
export function emptyRoute<P = undefined, Q = undefined, B = undefined>(
  def: Common & Schemas<P, Q, B> & { handler(input: RouteInput<P, Q, B>): Promise<void> },
): RouteSpec {
  return {
    ...base(def),
    status: 204,
    produces: 'application/json',
    async handle(request, reply) {
      await def.handler(parseInput(def, request, reply));
      await reply.code(204).send();
    },
  };
}

/** A route that streams text lines (journals). */
export function textStreamRoute<P = undefined, Q = undefined>(
  def: Common & Schemas<P, Q, undefined> & { handler(input: RouteInput<P, Q, undefined>): Promise<Readable> },
): RouteSpec {
  return {
    ...base(def),
    status: 200,
    produces: 'text/plain',
    async handle(request, reply) {
      const stream = await def.handler(parseInput(def, request, reply));
      await reply.code(200).header('content-type', 'text/plain; charset=utf-8').send(stream);
    },
  };
}

function base(def: Common & Schemas<unknown, unknown, unknown>) {
  return {
    method: def.method,
    url: def.url,
    operationId: def.operationId,
    summary: def.summary,
    params: def.params,
    query: def.query,
    body: def.body,
    errors: def.errors ?? [],
    whileUnregistered: def.whileUnregistered ?? false,
  };
}

function parseInput<P, Q, B>(
  def: Schemas<P, Q, B>,
  request: FastifyRequest,
  reply: FastifyReply,
): RouteInput<P, Q, B> {
  const controller = new AbortController();
  // The response's close fires when it was sent or when the client went away.
  reply.raw.once('close', () => controller.abort(new Error('client went away')));
  return {
    params: parse(def.params, request.params, 'path'),
    query: parse(def.query, request.query, 'query'),
    body: parse(def.body, request.body, 'body'),
    signal: controller.signal,
    request,
  };
}

function parse<T>(schema: z.ZodType<T> | undefined, value: unknown, where: string): T {
  if (schema === undefined) return undefined as T;
  const result = schema.safeParse(value ?? (where === 'body' ? undefined : {}));
  if (result.success) return result.data;
  throw new ApiError(400, 'invalid', `bad request ${where}: ${formatIssues(result.error)}`);
}

export function formatIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 3)
    .map((i) => (i.path.length === 0 ? i.message : `${i.path.join('.')}: ${i.message}`))
    .join('; ');
}
