// The CLI's client of the fleetd API: one method per route, every response parsed with the API's
// own zod schemas, every error turned into one FleetError whose message the CLI prints as is.
// Requests go to the first endpoint of the list that accepts a connection (endpoint-list.ts).
import type { Readable } from 'node:stream';
import type { z } from 'zod';
import type { TargetState } from '../cluster/types.js';
import type { Clock } from '../lib/clock.js';
import { FleetError } from '../lib/errors.js';
import {
  readText,
  sendRequest,
  TransportError,
  type HttpRequest,
  type HttpResponse,
  type TlsFiles,
} from '../api/http-transport.js';
import {
  drainStatus,
  errorBody,
  healthResponse,
  listUnitsResponse,
  machinesResponse,
  planResponse,
  putRolloutResponse,
  putUnitsResponse,
  rolloutEntry,
  servicesResponse,
  statusResponse,
  unitDetail,
  type DrainStatus,
  type HealthResponse,
  type MachineEntry,
  type PutRolloutResponse,
  type PutUnitResult,
  type RolloutEntry,
  type ServicesResponse,
  type StatusResponse,
  type StoredProblem,
  type UnitDetail,
  type UnitPlan,
  type UnitSummary,
} from '../api/schemas.js';
import { batchTimeoutMs } from './batch-timeout.js';
import type { EndpointList } from './endpoint-list.js';
import type { Output } from './output.js';

export interface ClientOptions {
  /** Tried in order; the one that answered is kept for later requests. */
  readonly endpoints: EndpointList;
  /** How long to wait for a response's headers (a batch gets more: batch-timeout.ts). */
  readonly timeoutMs: number;
  readonly token?: string | undefined;
  readonly tls?: TlsFiles | undefined;
  /** Called with a line per request and response (--debug). */
  readonly debug?: ((line: string) => void) | undefined;
  readonly signal?: AbortSignal | undefined;
}

/** The API answered with an error: its code, status and message. */
export class ApiClientError extends FleetError {
  readonly status: number;
  constructor(status: number, code: string, message: string) {
    super(code, message);
    this.status = status;
  }
}

/**
 * An error the same request may not get a moment later: fleetd not registered (503, its lease
 * lapsed under load and it is registering again, or it is starting) or unreachable.
 */
export function isTransient(err: unknown): err is FleetError {
  return (
    err instanceof FleetError && (err.recoverable || (err instanceof ApiClientError && err.status === 503))
  );
}

/**
 * A way to run requests that asks again every `pollMs` while one fails transiently (isTransient:
 * fleetd registering again after its lease lapsed under load, or restarting), until `expired()`;
 * says so once per outage on stderr, followed by `note`. For commands that wait on the cluster
 * (rolling restart, rollout, drain): the cluster goes on meanwhile, only the CLI's view waits.
 */
export function askAgainWhileTransient(o: {
  readonly clock: Pick<Clock, 'sleep'>;
  readonly output: Pick<Output, 'progress' | 'err'>;
  readonly pollMs: number;
  readonly signal?: AbortSignal | undefined;
  readonly expired: () => boolean;
  /** Said after the error, e.g. `asking again until --health-timeout`. */
  readonly note: string;
}): <T>(request: () => Promise<T>) => Promise<T> {
  let outage = false;
  return async <T>(request: () => Promise<T>): Promise<T> => {
    for (;;) {
      try {
        const answer = await request();
        outage = false;
        return answer;
      } catch (err) {
        if (!isTransient(err) || o.expired()) throw err;
        if (!outage) {
          o.output.progress('');
          o.output.err(`fleetts: ${err.message} (${o.note})`);
        }
        outage = true;
        await o.clock.sleep(o.pollMs, o.signal);
      }
    }
  };
}

/** The longest `names=` filter one listing request carries (URL-encoded). */
const NAMES_PER_URL_CHARS = 6_000;

/** `names` in groups whose encoded filter stays within NAMES_PER_URL_CHARS. */
export function chunkNames(names: readonly string[]): string[][] {
  const chunks: string[][] = [];
  let current: string[] = [];
  let length = 0;
  for (const name of names) {
    const size = encodeURIComponent(name).length + 1;
    if (current.length > 0 && length + size > NAMES_PER_URL_CHARS) {
      chunks.push(current);
      current = [];
      length = 0;
    }
    current.push(name);
    length += size;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}

/** A batch whose connection broke is sent this many times in all (see putUnits). */
const BATCH_ATTEMPTS = 3;

/** Page size for listing; the API allows up to 10,000. */
const PAGE = 5_000;

export class ApiClient {
  readonly #o: ClientOptions;

  constructor(options: ClientOptions) {
    this.#o = options;
  }

  /** The endpoint in use (the one that answered last). */
  get endpoint(): string {
    return this.#o.endpoints.current.url;
  }

  health(): Promise<HealthResponse> {
    return this.#json({ method: 'GET', path: '/v1/health' }, healthResponse);
  }

  /** Every unit (all pages), or only `names`, sorted by name. */
  async listUnits(names?: readonly string[]): Promise<UnitSummary[]> {
    return (await this.listUnitFiles(names)).units;
  }

  /** `listUnits`, and the unit keys in etcd the API skipped because they are corrupt. */
  async listUnitFiles(
    names?: readonly string[],
  ): Promise<{ units: UnitSummary[]; problems: StoredProblem[] }> {
    if (names !== undefined && names.length > 0) {
      // Many names do not fit one URL (fleetd, like most HTTP servers, refuses header blocks
      // over 16 KiB with 431): ask in chunks, then merge.
      const chunks = chunkNames(names);
      if (chunks.length > 1) {
        const units = new Map<string, UnitSummary>();
        const problems = new Map<string, StoredProblem>();
        for (const chunk of chunks) {
          const part = await this.listUnitFiles(chunk);
          for (const u of part.units) units.set(u.name, u);
          for (const p of part.problems) problems.set(JSON.stringify(p), p);
        }
        return {
          units: [...units.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
          problems: [...problems.values()],
        };
      }
    }
    const out: UnitSummary[] = [];
    let problems: StoredProblem[] = [];
    let token: string | undefined;
    const filter = names === undefined ? '' : `&names=${names.map(encodeURIComponent).join(',')}`;
    do {
      const page = await this.#json(
        {
          method: 'GET',
          path: `/v1/units?limit=${PAGE}${filter}${token === undefined ? '' : `&pageToken=${encodeURIComponent(token)}`}`,
        },
        listUnitsResponse,
      );
      out.push(...page.units);
      problems = page.problems ?? [];
      token = page.nextPageToken;
    } while (token !== undefined);
    return { units: out, problems };
  }

  getUnit(name: string): Promise<UnitDetail> {
    return this.#json({ method: 'GET', path: `/v1/units/${encodeURIComponent(name)}` }, unitDetail);
  }

  async putUnits(
    units: readonly { name: string; text?: string | undefined; target?: TargetState | undefined }[],
    options: { replace?: boolean; create?: boolean } = {},
  ): Promise<PutUnitResult[]> {
    const body = {
      units: units.map((u) => ({
        name: u.name,
        ...(u.text === undefined ? {} : { text: u.text }),
        ...(u.target === undefined ? {} : { target: u.target }),
      })),
      ...(options.replace === undefined ? {} : { replace: options.replace }),
      ...(options.create === undefined ? {} : { create: options.create }),
    };
    const req = {
      method: 'PUT',
      path: '/v1/units',
      body,
      answerTimeoutMs: this.#batchTimeoutMs(units),
    } as const;
    // A batch is idempotent (units already stored as given are left as they are), so a connection
    // that broke while fleetd worked on it (fleetd killed, its host powered off) is retried, through
    // the next endpoint when that one is gone. A batch that got no answer in time is not: fleetd
    // may still be working on it, and a second copy would only add to its load.
    for (let attempt = 1; ; attempt++) {
      try {
        return (await this.#json(req, putUnitsResponse)).units;
      } catch (err) {
        if (!(err instanceof TransportError) || err.stage !== 'exchange') throw err;
        if (!err.timedOut && attempt < BATCH_ATTEMPTS) {
          this.#o.debug?.(`✗ ${err.reason} during the batch; sending it again (attempt ${attempt + 1})`);
          continue;
        }
        throw this.#batchUnknown(err);
      }
    }
  }

  #batchUnknown(err: TransportError): FleetError {
    return new FleetError(
      err.code,
      `${err.message}; the batch may still be applied there: see fleetts list-unit-files, or run the command again (units already stored as given are left as they are)`,
      { cause: err },
    );
  }

  async deleteUnit(name: string): Promise<void> {
    const res = await this.#send({ method: 'DELETE', path: `/v1/units/${encodeURIComponent(name)}` });
    await this.#check(res);
    res.body.resume();
  }

  /** Live service instances (all services, or one), with the revision each key was written at. */
  listServices(service?: string): Promise<ServicesResponse> {
    const query = service === undefined ? '' : `?service=${encodeURIComponent(service)}`;
    return this.#json({ method: 'GET', path: `/v1/services${query}` }, servicesResponse);
  }

  /** A unit's last rollout (its previous file); undefined when it had none. */
  async getRollout(name: string): Promise<RolloutEntry | undefined> {
    try {
      return await this.#json(
        { method: 'GET', path: `/v1/units/${encodeURIComponent(name)}/rollout` },
        rolloutEntry,
      );
    } catch (err) {
      if (err instanceof ApiClientError && err.code === 'not_found') return undefined;
      throw err;
    }
  }

  /** Gives a submitted unit a new file, keeping its previous one for --rollback. */
  beginRollout(name: string, text: string): Promise<PutRolloutResponse> {
    return this.#json(
      {
        method: 'PUT',
        path: `/v1/units/${encodeURIComponent(name)}/rollout`,
        body: { text },
        answerTimeoutMs: this.#batchTimeoutMs([{ text }]),
      },
      putRolloutResponse,
    );
  }

  async listMachines(): Promise<MachineEntry[]> {
    return (await this.#json({ method: 'GET', path: '/v1/machines' }, machinesResponse)).machines;
  }

  /** Drains a machine (idempotent): its drain as it stands. */
  drainMachine(id: string): Promise<DrainStatus> {
    return this.#json({ method: 'PUT', path: `/v1/machines/${encodeURIComponent(id)}/drain` }, drainStatus);
  }

  drainStatus(id: string): Promise<DrainStatus> {
    return this.#json({ method: 'GET', path: `/v1/machines/${encodeURIComponent(id)}/drain` }, drainStatus);
  }

  async undrainMachine(id: string): Promise<void> {
    const res = await this.#send({ method: 'DELETE', path: `/v1/machines/${encodeURIComponent(id)}/drain` });
    await this.#check(res);
    res.body.resume();
  }

  async plan(units: readonly { name: string; text?: string | undefined }[]): Promise<UnitPlan[]> {
    const body = {
      units: units.map((u) => ({ name: u.name, ...(u.text === undefined ? {} : { text: u.text }) })),
    };
    const req = {
      method: 'POST',
      path: '/v1/plan',
      body,
      answerTimeoutMs: this.#batchTimeoutMs(units),
    } as const;
    return (await this.#json(req, planResponse)).units;
  }

  status(name: string, lines: number): Promise<StatusResponse> {
    return this.#json(
      { method: 'GET', path: `/v1/units/${encodeURIComponent(name)}/status?lines=${lines}` },
      statusResponse,
    );
  }

  /** The journal as a stream of text (it ends unless `follow`). */
  async journal(
    name: string,
    o: { lines: number; follow: boolean; machine?: string | undefined },
  ): Promise<Readable> {
    const machine = o.machine === undefined ? '' : `&machine=${encodeURIComponent(o.machine)}`;
    const res = await this.#send({
      method: 'GET',
      path: `/v1/units/${encodeURIComponent(name)}/journal?lines=${o.lines}&follow=${o.follow}${machine}`,
    });
    await this.#check(res);
    return res.body;
  }

  /** GET /v1/events as a stream of server-sent events (sse-reader.ts reads it). */
  async events(o: {
    since?: string | undefined;
    follow: boolean;
    unit?: string | undefined;
    machine?: string | undefined;
  }): Promise<Readable> {
    const query = new URLSearchParams({ follow: String(o.follow) });
    if (o.since !== undefined) query.set('since', o.since);
    if (o.unit !== undefined) query.set('unit', o.unit);
    if (o.machine !== undefined) query.set('machine', o.machine);
    const res = await this.#send({
      method: 'GET',
      path: `/v1/events?${query.toString()}`,
      headers: { accept: 'text/event-stream' },
    });
    await this.#check(res);
    return res.body;
  }

  #batchTimeoutMs(units: readonly { text?: string | undefined }[]): number {
    const bytes = units.reduce((n, u) => n + (u.text === undefined ? 0 : Buffer.byteLength(u.text)), 0);
    return batchTimeoutMs(this.#o.timeoutMs, units.length, bytes);
  }

  async #json<S extends z.ZodType>(req: HttpRequest, schema: S): Promise<z.infer<S>> {
    const res = await this.#send(req);
    await this.#check(res);
    const text = await readText(res);
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw this.#badResponse(req, `not JSON: ${text.slice(0, 100)}`);
    }
    const parsed = schema.safeParse(value);
    if (!parsed.success) throw this.#badResponse(req, parsed.error.issues[0]?.message ?? 'unexpected shape');
    return parsed.data;
  }

  async #send(req: HttpRequest): Promise<HttpResponse> {
    const o = this.#o;
    return o.endpoints.send(async (endpoint) => {
      o.debug?.(`→ ${req.method} ${endpoint.url}${req.path}`);
      const res = await sendRequest(
        endpoint,
        { timeoutMs: o.timeoutMs, ...req, ...(o.signal === undefined ? {} : { signal: o.signal }) },
        {
          ...(o.token === undefined ? {} : { token: o.token }),
          ...(o.tls === undefined ? {} : { tls: o.tls }),
        },
      );
      o.debug?.(`← ${res.status} ${res.contentType}`);
      return res;
    });
  }

  async #check(res: HttpResponse): Promise<void> {
    if (res.status >= 200 && res.status < 300) return;
    const text = await readText(res);
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    const parsed = errorBody.safeParse(body);
    if (parsed.success)
      throw new ApiClientError(res.status, parsed.data.error.code, parsed.data.error.message);
    throw new ApiClientError(
      res.status,
      'http',
      `${this.endpoint} answered HTTP ${res.status}${text === '' ? '' : `: ${text.slice(0, 200)}`} (is it a fleetd API?)`,
    );
  }

  #badResponse(req: HttpRequest, why: string): FleetError {
    return new FleetError(
      'bad_response',
      `${this.endpoint} sent an unexpected answer to ${req.method} ${req.path.split('?')[0] ?? ''} (${why}); is it a fleetd of this version?`,
    );
  }
}
