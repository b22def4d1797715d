// The fleetd HTTP API (fastify), built from its dependencies and kept apart from `listen` so that
// tests drive it through inject(). Every fleetd serves it; cluster state is read from the registry,
// and a unit's status and journal come from the unit's own host (unit-hosts.ts).
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import Fastify, {
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type FastifyServerFactoryHandler,
} from 'fastify';
import { asMachineId, type MachineId, type UnitName } from '../cluster/types.js';
import { FleetError } from '../lib/errors.js';
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import { VERSION } from '../lib/version.js';
import type { SelfLeaseReport } from '../agent/peer-check.js';
import type { PeerViewsReport } from '../daemon/peer-watch.js';
import type { TreeName } from '../registry/keys.js';
import type {
  ClusterEventSource,
  MachineStore,
  RolloutStore,
  ServiceLister,
  SnapshotReader,
  StatusReader,
  UnitStore,
} from '../registry/registry.js';
import { parseUnitName, templateOf, UNIT_NAME_MAX } from '../unit/names.js';
import { parseUnitSpec } from '../unit/unit-spec.js';
import { checkApiToken } from './api-token.js';
import { ApiError, mapError } from './api-error.js';
import type { LocalUnits } from './local-units.js';
import { eventsRoute, type EventStreamOptions, type EventStreamStats } from './event-stream.js';
import { heartbeatRoute } from './heartbeat-route.js';
import { buildOpenApi } from './openapi.js';
import type { PeerClient } from './peer-client.js';
import { planUnits, type PlanRequest } from './plan-units.js';
import { rolloutRoutes } from './rollout-routes.js';
import { emptyRoute, jsonRoute, textStreamRoute, type RouteSpec } from './route.js';
import {
  healthResponse,
  hostStatus,
  journalQuery,
  listUnitsQuery,
  listUnitsResponse,
  drainStatus,
  machineParams,
  machinesResponse,
  peerViewsResponse,
  selfLeaseResponse,
  metadataPatch,
  planBody,
  planResponse,
  putUnitBody,
  putUnitResult,
  putUnitsBody,
  putUnitsResponse,
  statesQuery,
  statesResponse,
  statusQuery,
  statusResponse,
  unitDetail,
  unitParams,
} from './schemas.js';
import { dashboardRoutes, isDashboardFile } from './dashboard.js';
import { drainStatusOf } from './drain-status.js';
import { aboutUnit, corruptUnitKey, requestedUnit, storedProblems, unitProblem } from './stored-problems.js';
import { submitUnits, type StorageLimits } from './submit-units.js';
import { isPeerAuthorization, PeerAuthVerifier } from './peer-auth.js';
import { UnitHosts } from './unit-hosts.js';
import { summarizeMachines, summarizeUnit, summarizeUnits } from './unit-summaries.js';

/** Who may call: anyone who can open the unix socket, or TCP clients presenting the token. */
export type ApiAuth = { readonly kind: 'none' } | { readonly kind: 'token'; readonly token: string };

/** TLS for a TCP listener; with `ca`, clients must present a certificate signed by it. */
export interface ApiTls {
  readonly key: string;
  readonly cert: string;
  readonly ca?: string;
}

/** What the API uses of the registry: snapshots, units, machines' metadata, statuses, events. */
export type ApiRegistry = SnapshotReader &
  UnitStore &
  MachineStore &
  StatusReader &
  RolloutStore &
  ServiceLister &
  ClusterEventSource;

export interface ApiDeps {
  readonly registry: ApiRegistry;
  readonly machineId: MachineId | string;
  /** This host's agent: status and journal of the units placed here. */
  readonly local: LocalUnits;
  /** Reaches another host's API (for the status and journal of units that run there). */
  readonly peers: PeerClient;
  /** True while this host holds its membership; other /v1 routes answer 503 meanwhile. */
  readonly registered: () => boolean;
  /**
   * This host's lease as its agent sees it (GET /v1/self/lease, asked by peers that lost etcd).
   * Default: alive while registered (a conservative answer: the asker then stops its AtMostOnce units).
   */
  readonly selfLease?: () => SelfLeaseReport;
  /** How this host's peer watch finds its peers (GET /v1/self/peers, asked by peers judging a silent one). */
  readonly peerViews?: () => PeerViewsReport;
  /** What clients may store (default: no limit). */
  readonly limits?: StorageLimits;
  readonly clock: Clock;
  readonly log: Logger;
  readonly auth?: ApiAuth;
  readonly tls?: ApiTls;
  /** GET /v1/events: buffering and heartbeat (defaults in event-stream.ts). */
  readonly events?: EventStreamOptions;
  /** Counts the event streams open and dropped. */
  readonly eventStats?: EventStreamStats;
  /** This fleetd's metrics: GET /metrics serves them when given (docs/metrics.md). */
  readonly metrics?: ApiMetrics;
}

/** What GET /metrics serves: the Prometheus text format (metrics/fleet-metrics.ts). */
export interface ApiMetrics {
  readonly contentType: string;
  text(): Promise<string>;
}

/** Largest request body: a batch of unit files. */
const BODY_LIMIT = 32 * 1024 * 1024;

/** The API's fastify instance (listen on it, or inject() into it). */
export type ApiApp = FastifyInstance<Server, IncomingMessage, ServerResponse>;

export function buildApp(deps: ApiDeps): ApiApp {
  const app =
    deps.tls === undefined
      ? Fastify(options())
      : Fastify({ ...options(), serverFactory: httpsFactory(deps.tls) });
  const heartbeat = heartbeatRoute({ clock: deps.clock });
  const routes = apiRoutes(deps, heartbeat.route);
  // The watchers' heartbeat connections never end by themselves: the server's close would wait.
  app.addHook('preClose', (done) => {
    heartbeat.end();
    done();
  });
  const openapi = buildOpenApi(routes);
  const auth = deps.auth ?? { kind: 'none' };
  if (auth.kind === 'token') checkApiToken(auth.token, 'api');
  const tokenDigest = auth.kind === 'token' ? digest(auth.token) : undefined;

  app.setErrorHandler(async (err, request, reply) => {
    const m = mapError(err);
    if (m.status === 500)
      deps.log.error(
        { event: 'api.request_failed', method: request.method, url: request.url, err },
        m.body.error.message,
      );
    // Unavailable (etcd, a peer, not registered yet): a known condition, logged without a stack.
    else if (m.internal)
      deps.log.info(
        {
          event: 'api.request_unavailable',
          method: request.method,
          url: request.url,
          code: m.body.error.code,
        },
        m.body.error.message,
      );
    await reply.code(m.status).send(m.body);
  });
  const allowedMethods = methodTable([
    { method: 'GET', url: '/openapi.json' },
    ...routes.map((r) => ({ method: r.method, url: r.url })),
  ]);
  app.setNotFoundHandler(async (request, reply) => {
    const path = request.url.split('?')[0] ?? '';
    const allow = allowedMethods(path);
    if (allow.length > 0)
      return reply
        .code(405)
        .header('allow', allow.join(', '))
        .send({
          error: {
            code: 'method_not_allowed',
            message: `${request.method} is not allowed on ${path}; use ${allow.join(' or ')}`,
          },
        });
    await reply.code(404).send({
      error: {
        code: 'not_found',
        message: `no route ${request.method} ${request.url.split('?')[0] ?? ''}`,
      },
    });
  });
  if (tokenDigest !== undefined) {
    const peerAuth =
      auth.kind === 'token'
        ? new PeerAuthVerifier({ token: auth.token, self: deps.machineId, now: () => deps.clock.now() })
        : undefined;
    app.addHook('onRequest', (request, _reply, done) => {
      // The dashboard's own files hold no data; what the page then asks for needs the token.
      if (isDashboardFile(request.method, request.url)) return done();
      const header = request.headers.authorization ?? '';
      if (peerAuth !== undefined && isPeerAuthorization(header)) {
        const refused = peerAuth.verify(header, { method: request.method, path: request.url });
        return done(
          refused === undefined ? undefined : new ApiError(401, 'unauthorized', `refused: ${refused}`),
        );
      }
      const given = header.startsWith('Bearer ') ? header.slice('Bearer '.length) : '';
      if (!timingSafeEqual(digest(given), tokenDigest))
        return done(
          new ApiError(
            401,
            'unauthorized',
            given === ''
              ? 'this fleetd requires a bearer token (fleetts --token, or FLEETTS_TOKEN)'
              : 'the bearer token was refused; check --token / FLEETTS_TOKEN',
          ),
        );
      done();
    });
  }

  app.get('/openapi.json', () => Promise.resolve(openapi));
  dashboardRoutes(app);
  for (const route of routes) {
    app.route({
      method: route.method,
      url: route.url,
      handler: async (request, reply) => {
        if (!route.whileUnregistered && !deps.registered()) {
          throw new ApiError(
            503,
            'not_registered',
            `fleetd on machine ${deps.machineId} is not registered in the cluster (starting, or etcd unreachable); retry shortly or use another endpoint`,
          );
        }
        await route.handle(request, reply);
      },
    });
  }
  return app;
}

/**
 * The methods each path accepts (for 405 and its Allow header), from the routes' url patterns
 * (`:param` matches one path segment). GET routes answer HEAD as well, as fastify serves them.
 */
function methodTable(routes: readonly { method: string; url: string }[]): (path: string) => string[] {
  const patterns = new Map<string, { re: RegExp; methods: Set<string> }>();
  for (const { method, url } of routes) {
    const entry = patterns.get(url) ?? {
      re: new RegExp(
        `^${url
          .split('/')
          .map((seg) => (seg.startsWith(':') ? '[^/]+' : escapeRe(seg)))
          .join('/')}/?$`,
      ),
      methods: new Set<string>(),
    };
    entry.methods.add(method);
    if (method === 'GET') entry.methods.add('HEAD');
    patterns.set(url, entry);
  }
  return (path) => {
    const allow = new Set<string>();
    for (const { re, methods } of patterns.values()) if (re.test(path)) for (const m of methods) allow.add(m);
    return [...allow].sort();
  };
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Errors fastify raises before any route or hook runs (a URL that does not decode, a path segment
 * longer than the router takes), in the API's one error shape.
 */
function frameworkError(err: FastifyError, _request: FastifyRequest, reply: FastifyReply): void {
  if (err.code === 'FST_ERR_MAX_PARAM_LENGTH')
    return void reply.code(414).send({
      error: {
        code: 'too_long',
        message: `a path segment is longer than ${MAX_PARAM_LENGTH} characters (unit names are at most ${UNIT_NAME_MAX}); check the name`,
      },
    });
  void reply.code(400).send({
    error: {
      code: 'invalid',
      message: `the request URL is not valid (${err.code === 'FST_ERR_BAD_URL' ? 'bad percent-encoding' : err.message}); encode names with encodeURIComponent`,
    },
  });
}

/** The router's limit on one path segment (a unit name in /v1/units/:name). */
const MAX_PARAM_LENGTH = 512;

function options() {
  return {
    frameworkErrors: frameworkError,
    // Requests are not logged one by one; failures are, by the error handler, with deps.log.
    logger: false,
    bodyLimit: BODY_LIMIT,
    // Unit names contain '@' and '.', which must reach the route params as they are.
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
  };
}

function httpsFactory(tls: ApiTls) {
  return (handler: FastifyServerFactoryHandler): Server => {
    const server = createHttpsServer(
      {
        key: tls.key,
        cert: tls.cert,
        ...(tls.ca === undefined ? {} : { ca: tls.ca, requestCert: true, rejectUnauthorized: true }),
      },
      handler,
    );
    // fastify types its server as http.Server; an https.Server serves the same request events.
    return server;
  };
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** The trees whose skipped keys a unit listing reports, and those of a machine listing. */
const UNIT_TREES: readonly TreeName[] = ['units', 'unitFiles', 'assignments', 'unschedulable', 'statuses'];
const MACHINE_TREES: readonly TreeName[] = ['machines', 'machineMetadata'];

/** Every route of the API, in the order of the OpenAPI document. */
/** `heartbeat`: the app's GET /v1/self/heartbeat, which buildApp ends when the app closes. */
export function apiRoutes(deps: ApiDeps, heartbeat: RouteSpec): RouteSpec[] {
  const { registry } = deps;
  const self = asMachineId(String(deps.machineId));
  const hosts = new UnitHosts({
    registry,
    machineId: self,
    local: deps.local,
    peers: deps.peers,
    log: deps.log,
  });
  const nameOf = (raw: string) => parseUnitName(raw).name;

  return [
    jsonRoute({
      method: 'GET',
      url: '/v1/health',
      operationId: 'health',
      summary: 'This fleetd: its machine id, whether it is registered, its version',
      whileUnregistered: true,
      response: healthResponse,
      handler: () => Promise.resolve({ machine: self, registered: deps.registered(), version: VERSION }),
    }),
    jsonRoute({
      method: 'GET',
      url: '/v1/self/peers',
      operationId: 'selfPeers',
      summary:
        "How this fleetd's peer watch finds each peer: 0 while it answers, else how long it has been silent. A peer that finds another silent asks the others before it counts it dead (docs/control-plane-faults.md)",
      whileUnregistered: true,
      response: peerViewsResponse,
      handler: () => Promise.resolve(deps.peerViews?.() ?? { machine: self, peers: [] }),
    }),
    jsonRoute({
      method: 'GET',
      url: '/v1/self/lease',
      operationId: 'selfLease',
      summary:
        "This fleetd's own lease, from its local state (no etcd read): whether it was renewed recently, how long ago, since when it is alive. Peers cut off from etcd ask it before they stop their AtMostOnce units",
      whileUnregistered: true,
      response: selfLeaseResponse,
      handler: () =>
        Promise.resolve(
          deps.selfLease?.() ?? {
            machine: self,
            leaseAlive: deps.registered(),
            renewedAgoMs: null,
            liveSinceMs: null,
          },
        ),
    }),
    jsonRoute({
      method: 'GET',
      url: '/v1/units',
      operationId: 'listUnits',
      summary: 'List units (sorted by name, paginated) with placement and observed state',
      query: listUnitsQuery,
      response: listUnitsResponse,
      async handler({ query }) {
        const snapshot = await registry.snapshot({ unitFiles: 'none' });
        const wanted =
          query.names === undefined ? undefined : new Set(query.names.split(',').filter((n) => n !== ''));
        const after = query.pageToken;
        const page = [];
        let more = false;
        for (const unit of snapshot.units.values()) {
          if (after !== undefined && unit.name <= after) continue;
          if (wanted !== undefined && !wanted.has(unit.name)) continue;
          if (page.length === query.limit) {
            more = true;
            break;
          }
          page.push(unit);
        }
        const units = summarizeUnits(snapshot, page);
        const last = units.at(-1);
        const problems = storedProblems(snapshot.problems, UNIT_TREES);
        return {
          units,
          ...(more && last !== undefined ? { nextPageToken: last.name } : {}),
          ...(problems.length === 0 ? {} : { problems }),
        };
      },
    }),
    jsonRoute({
      method: 'PUT',
      url: '/v1/units',
      operationId: 'putUnits',
      summary: 'Submit units and/or set their target states, in one batch (all validated first)',
      body: putUnitsBody,
      response: putUnitsResponse,
      errors: [404, 409, 422, 507],
      async handler({ body }) {
        const units = await submitUnits(registry, body.units, {
          replace: body.replace ?? false,
          create: body.create ?? true,
          ...(deps.limits === undefined ? {} : { limits: deps.limits }),
        });
        return { units };
      },
    }),
    jsonRoute({
      method: 'GET',
      url: '/v1/units/:name',
      operationId: 'getUnit',
      summary: 'One unit, with the exact text of its unit file',
      params: unitParams,
      response: unitDetail,
      errors: [404, 422],
      async handler({ params }) {
        const name = await requestedUnit(registry, params.name);
        const snapshot = await registry.snapshot({ unitFiles: 'none' });
        const unit = snapshot.units.get(name);
        if (unit === undefined) {
          const problem = unitProblem(snapshot.problems, name);
          if (problem !== undefined) throw corruptUnitKey(name, problem);
          throw new ApiError(404, 'not_found', `unit ${name} is not submitted`);
        }
        const text = await aboutUnit(name, () => registry.getUnitFile(unit.hash));
        if (text === undefined)
          throw new ApiError(
            404,
            'not_found',
            `the unit file of ${name} is missing from the registry; submit it again`,
          );
        return { ...summarizeUnit(snapshot, unit), text };
      },
    }),
    jsonRoute({
      method: 'PUT',
      url: '/v1/units/:name',
      operationId: 'putUnit',
      summary: 'Submit a unit and/or set its target state',
      params: unitParams,
      body: putUnitBody,
      response: putUnitResult,
      errors: [404, 409, 422, 507],
      async handler({ params, body }) {
        await requestedUnit(registry, params.name);
        const [result] = await submitUnits(
          registry,
          [{ name: params.name, text: body.text, target: body.target }],
          { replace: body.replace ?? false, ...(deps.limits === undefined ? {} : { limits: deps.limits }) },
        );
        if (result === undefined) throw new Error('submitUnits returned nothing');
        return result;
      },
    }),
    emptyRoute({
      method: 'DELETE',
      url: '/v1/units/:name',
      operationId: 'deleteUnit',
      summary: 'Destroy a unit (its host stops and forgets it)',
      params: unitParams,
      errors: [404],
      async handler({ params }) {
        let name: UnitName;
        try {
          name = nameOf(params.name);
        } catch (error) {
          // A key under units/ that is no valid unit name (written by hand or by a bug) is removed
          // by the name it is stored under; any other invalid name is the client's mistake.
          if (error instanceof FleetError && (await registry.deleteInvalidUnit(params.name))) return;
          throw error;
        }
        if (!(await registry.deleteUnit(name)))
          throw new ApiError(404, 'not_found', `unit ${name} is not submitted`);
      },
    }),
    jsonRoute({
      method: 'GET',
      url: '/v1/units/:name/status',
      operationId: 'unitStatus',
      summary: "A unit's state, host, pid/container, last exit and last log lines, from its own host",
      params: unitParams,
      query: statusQuery,
      response: statusResponse,
      errors: [404, 422],
      handler: async ({ params, query, signal }) =>
        hosts.status(await requestedUnit(registry, params.name), query.lines, signal),
    }),
    textStreamRoute({
      method: 'GET',
      url: '/v1/units/:name/journal',
      operationId: 'unitJournal',
      summary: "A unit's journal from its own host: the last lines, then (follow) new ones as they come",
      params: unitParams,
      query: journalQuery,
      errors: [404, 422, 502],
      handler: async ({ params, query, signal }) =>
        hosts.journal(
          await requestedUnit(registry, params.name),
          { lines: query.lines, follow: query.follow, machine: query.machine },
          signal,
        ),
    }),
    jsonRoute({
      method: 'GET',
      url: '/v1/state',
      operationId: 'listUnitStates',
      summary: "Units' observed states as their hosts report them (fleet's unit state)",
      query: statesQuery,
      response: statesResponse,
      async handler({ query }) {
        const set = await registry.listStatuses(query.unit === undefined ? undefined : nameOf(query.unit));
        const states = set.items.filter((s) => query.machine === undefined || s.machine === query.machine);
        const problems = storedProblems(set.problems, ['statuses']);
        return { states: states.map((s) => ({ ...s })), ...(problems.length === 0 ? {} : { problems }) };
      },
    }),
    jsonRoute({
      method: 'GET',
      url: '/v1/machines',
      operationId: 'listMachines',
      summary: 'Machines in the cluster (sorted by id) with metadata and unit counts',
      response: machinesResponse,
      async handler() {
        const snapshot = await registry.snapshot({ unitFiles: 'none' });
        const problems = storedProblems(snapshot.problems, MACHINE_TREES);
        return { machines: summarizeMachines(snapshot), ...(problems.length === 0 ? {} : { problems }) };
      },
    }),
    jsonRoute({
      method: 'PATCH',
      url: '/v1/machines',
      operationId: 'patchMachineMetadata',
      summary: 'Add, replace or remove machine metadata (JSON Patch on /<machine>/metadata/<key>)',
      body: metadataPatch,
      response: machinesResponse,
      errors: [404, 409],
      async handler({ body }) {
        const machines = (await registry.listMachines()).items;
        // Keys are looked up as own properties only (a key like toString is an ordinary key here).
        const own = (record: Readonly<Record<string, string | null>>, key: string) =>
          Object.hasOwn(record, key) ? record[key] : undefined;
        const patches = new Map<MachineId, Record<string, string | null>>();
        for (const op of body) {
          const [, id = '', , key = ''] = op.path.split('/');
          const machine = machines.find((m) => m.id === id);
          if (machine === undefined)
            throw new ApiError(404, 'not_found', `machine ${id} is not in the cluster`);
          const patch = patches.get(machine.id) ?? {};
          patches.set(machine.id, patch);
          const current = Object.hasOwn(patch, key) ? patch[key] : own(machine.metadata, key);
          if (op.op === 'remove') {
            if (current === undefined || current === null)
              throw new ApiError(404, 'not_found', `machine ${id} has no metadata key ${key}`);
            if (own(machine.configuredMetadata, key) !== undefined)
              throw new ApiError(
                409,
                'conflict',
                `metadata ${key} of machine ${id} comes from its fleetd configuration; change it there (or replace its value)`,
              );
            patch[key] = null;
            continue;
          }
          if (op.value === undefined) throw new ApiError(400, 'invalid', `${op.op} ${op.path} needs a value`);
          if (op.op === 'replace' && (current === undefined || current === null))
            throw new ApiError(
              404,
              'not_found',
              `machine ${id} has no metadata key ${key} to replace; use add`,
            );
          patch[key] = op.value;
        }
        for (const [id, patch] of patches) await registry.patchMachineMetadata(id, patch);
        const after = summarizeMachines(await registry.snapshot({ unitFiles: 'none' }));
        return { machines: after.filter((m) => patches.has(asMachineId(m.id))) };
      },
    }),
    jsonRoute({
      method: 'GET',
      url: '/v1/machines/:id/drain',
      operationId: 'getDrain',
      summary: "A machine's drain: the units still on it, and what the engine's current step waits for",
      params: machineParams,
      response: drainStatus,
      errors: [404],
      async handler({ params }) {
        const id = asMachineId(params.id);
        const status = drainStatusOf(await registry.snapshot({ services: true }), id);
        if (status === undefined) throw new ApiError(404, 'not_found', `machine ${id} is not drained`);
        return status;
      },
    }),
    jsonRoute({
      method: 'PUT',
      url: '/v1/machines/:id/drain',
      operationId: 'drainMachine',
      summary:
        'Drain a machine (stored in etcd until undrained): it takes no new placements, and the engine moves its units elsewhere one at a time',
      params: machineParams,
      response: drainStatus,
      errors: [404, 409],
      async handler({ params }) {
        const id = asMachineId(params.id);
        const before = await registry.snapshot({ unitFiles: 'none' });
        if (!before.machines.has(id) && !before.drains.has(id))
          throw new ApiError(
            404,
            'not_found',
            `machine ${id} is not in the cluster (see fleetts list-machines)`,
          );
        await registry.drainMachine(id, new Date(deps.clock.now()).toISOString());
        const status = drainStatusOf(await registry.snapshot({ services: true }), id);
        if (status === undefined)
          throw new ApiError(409, 'conflict', `machine ${id} was undrained meanwhile; drain it again`);
        return status;
      },
    }),
    emptyRoute({
      method: 'DELETE',
      url: '/v1/machines/:id/drain',
      operationId: 'undrainMachine',
      summary: 'End a drain: the machine takes placements again (nothing moves back to it)',
      params: machineParams,
      errors: [404],
      async handler({ params }) {
        const id = asMachineId(params.id);
        if (!(await registry.undrainMachine(id)))
          throw new ApiError(404, 'not_found', `machine ${id} is not drained`);
      },
    }),
    jsonRoute({
      method: 'POST',
      url: '/v1/plan',
      operationId: 'plan',
      summary:
        'What the scheduler would do with units (submitted, or given as text), and why; changes nothing',
      body: planBody,
      response: planResponse,
      errors: [404],
      async handler({ body }) {
        const snapshot = await registry.snapshot();
        const requests: PlanRequest[] = [];
        for (const item of body.units) {
          const name = parseUnitName(item.name);
          if (name.kind === 'template')
            throw new ApiError(
              400,
              'invalid',
              `${name.name} is a template; plan an instance of it, such as ${name.prefix}@1.${name.type}`,
            );
          let text = item.text;
          if (text === undefined) {
            const unit = snapshot.units.get(name.name);
            const template = templateOf(name);
            const source = unit ?? (template === undefined ? undefined : snapshot.units.get(template));
            text = source === undefined ? undefined : snapshot.unitFiles.get(source.hash);
            if (text === undefined)
              throw new ApiError(
                404,
                'not_found',
                `unit ${name.name} is not submitted${template === undefined ? '' : `, and neither is ${template}`}; give its unit file`,
              );
          }
          requests.push({
            spec: parseUnitSpec(text, name, { file: name.name }),
            target: item.target ?? 'launched',
          });
        }
        return { units: planUnits(snapshot, requests) };
      },
    }),
    ...rolloutRoutes(deps),
    jsonRoute({
      method: 'GET',
      url: '/v1/local/units/:name/status',
      operationId: 'localUnitStatus',
      summary: 'What this host observes of a unit (used by peers to serve status)',
      whileUnregistered: true,
      params: unitParams,
      query: statusQuery,
      response: hostStatus,
      handler: ({ params, query, signal }) => hosts.localStatus(nameOf(params.name), query.lines, signal),
    }),
    textStreamRoute({
      method: 'GET',
      url: '/v1/local/units/:name/journal',
      operationId: 'localUnitJournal',
      summary: "This host's journal of a unit (used by peers to serve journals)",
      whileUnregistered: true,
      params: unitParams,
      query: journalQuery,
      errors: [404],
      handler: ({ params, query, signal }) =>
        hosts.localJournal(nameOf(params.name), { lines: query.lines, follow: query.follow }, signal),
    }),
    ...(deps.metrics === undefined ? [] : [metricsRoute(deps.metrics)]),
    heartbeat,
    eventsRoute({
      source: registry,
      clock: deps.clock,
      log: deps.log,
      ...(deps.events === undefined ? {} : { options: deps.events }),
      ...(deps.eventStats === undefined ? {} : { stats: deps.eventStats }),
    }),
  ];
}

/** GET /metrics: under the API's authentication, like every route; served while unregistered too. */
function metricsRoute(metrics: ApiMetrics): RouteSpec {
  return {
    ...textStreamRoute({
      method: 'GET',
      url: '/metrics',
      operationId: 'metrics',
      summary:
        "This fleetd's metrics in the Prometheus text format (docs/metrics.md); the machine and unit gauges read the cluster from etcd",
      whileUnregistered: true,
      handler: () => Promise.reject(new Error('served by handle')),
    }),
    async handle(_request, reply) {
      const text = await metrics.text();
      await reply.code(200).header('content-type', metrics.contentType).send(text);
    },
  };
}
