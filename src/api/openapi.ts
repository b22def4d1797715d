// The OpenAPI 3.1 document of the API, generated from the routes' zod schemas (z.toJSONSchema), so
// the document cannot drift from what the server validates. Served at GET /openapi.json.
import { z } from 'zod';
import { VERSION } from '../lib/version.js';
import type { RouteSpec } from './route.js';
import { errorBody } from './schemas.js';

type JsonSchema = Record<string, unknown>;

const REASONS: Readonly<Record<number, string>> = {
  400: 'Bad request (invalid input or unit file)',
  401: 'Missing or wrong bearer token',
  403: 'Denied',
  404: 'Not found',
  409: 'Conflict (exists with other content, or changed concurrently)',
  410: 'Gone: etcd compacted the history asked for; start again without `since`',
  502: 'The host running the unit could not be reached',
  503: 'This host is not registered in the cluster, or etcd is unreachable',
};

export function buildOpenApi(routes: readonly RouteSpec[]): JsonSchema {
  const paths: Record<string, Record<string, unknown>> = {};
  const errorRef = { $ref: '#/components/schemas/Error' };
  for (const r of routes) {
    const path = r.url.replace(/:([A-Za-z]+)/g, '{$1}');
    const parameters = [...parametersOf(r.params, 'path'), ...parametersOf(r.query, 'query')];
    const responses: Record<string, unknown> = {};
    if (r.status === 204) responses['204'] = { description: 'Done' };
    else if (r.produces === 'text/plain')
      responses[String(r.status)] = {
        description: 'Lines of text, streamed',
        content: { 'text/plain': { schema: { type: 'string' } } },
      };
    else if (r.produces === 'text/event-stream')
      responses[String(r.status)] = {
        description:
          'Server-sent events: each `data:` line is one JSON message of this schema, with an `id:` to resume from (docs/events.md)',
        content: { 'text/event-stream': { schema: schemaOf(r.response, 'output') } },
      };
    else
      responses[String(r.status)] = {
        description: 'OK',
        content: { 'application/json': { schema: schemaOf(r.response, 'output') } },
      };
    const statuses = new Set([...(r.body || r.query || r.params ? [400] : []), ...r.errors, 401, 503]);
    if (r.whileUnregistered) statuses.delete(503);
    for (const s of [...statuses].sort())
      responses[String(s)] = {
        description: REASONS[s] ?? 'Error',
        content: { 'application/json': { schema: errorRef } },
      };
    const op: Record<string, unknown> = { operationId: r.operationId, summary: r.summary, responses };
    if (parameters.length > 0) op['parameters'] = parameters;
    if (r.body !== undefined)
      op['requestBody'] = {
        required: true,
        content: { 'application/json': { schema: schemaOf(r.body, 'input') } },
      };
    (paths[path] ??= {})[r.method.toLowerCase()] = op;
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'fleetd API',
      version: VERSION,
      description: 'The HTTP API of every fleetd, modelled on fleet v1. Errors are {error: {code, message}}.',
    },
    components: {
      schemas: { Error: schemaOf(errorBody, 'output') },
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
    },
    paths,
  };
}

function schemaOf(schema: z.ZodType | undefined, io: 'input' | 'output'): JsonSchema {
  if (schema === undefined) return {};
  const json = z.toJSONSchema(schema, { io, unrepresentable: 'any', reused: 'inline' }) as JsonSchema;
  delete json['$schema'];
  return json;
}

function parametersOf(schema: z.ZodType | undefined, where: 'path' | 'query'): unknown[] {
  if (schema === undefined) return [];
  const json = schemaOf(schema, 'input');
  const props = (json['properties'] ?? {}) as Record<string, JsonSchema>;
  const required = new Set((json['required'] ?? []) as string[]);
  return Object.entries(props).map(([name, s]) => ({
    name,
    in: where,
    required: where === 'path' || required.has(name),
    schema: s,
    ...(typeof s['description'] === 'string' ? { description: s['description'] } : {}),
  }));
}
