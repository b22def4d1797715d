// Status and journal of a unit, served by the unit's own host: asked of any fleetd, they are read
// from this host's agent when the unit runs here and proxied to the host that runs it otherwise
// (fleet needed SSH for this). The proxied request goes to the peer's /v1/local/… routes.
import { Readable } from 'node:stream';
import type { MachineId, UnitName } from '../cluster/types.js';
import { FleetError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import type { ClusterSnapshot, MachineRecord, SnapshotReader } from '../registry/registry.js';
import { ApiError } from './api-error.js';
import { readText, type HttpResponse } from './http-transport.js';
import type { LocalUnits } from './local-units.js';
import type { PeerClient } from './peer-client.js';
import { errorBody, hostStatus, type HostStatus, type StatusResponse } from './schemas.js';
import { corruptUnitKey, unitProblem } from './stored-problems.js';
import { summarizeUnit } from './unit-summaries.js';

export interface UnitHostsDeps {
  readonly registry: SnapshotReader;
  readonly machineId: MachineId;
  readonly local: LocalUnits;
  readonly peers: PeerClient;
  readonly log: Logger;
}

export class UnitHosts {
  readonly #deps: UnitHostsDeps;

  constructor(deps: UnitHostsDeps) {
    this.#deps = deps;
  }

  /** The unit's summary and, for every machine it is on, what that machine observes. */
  async status(name: UnitName, lines: number, signal: AbortSignal): Promise<StatusResponse> {
    const snapshot = await this.#deps.registry.snapshot({ unitFiles: 'none' });
    const unit = snapshot.units.get(name);
    if (unit === undefined) throw notSubmitted(snapshot, name);
    const hosts = await Promise.all(
      hostsOf(snapshot, name).map((m) => this.#hostStatus(snapshot, m, name, lines, signal)),
    );
    return { unit: summarizeUnit(snapshot, unit), hosts };
  }

  /** What this host observes of the unit (served to peers and for local units). */
  async localStatus(name: UnitName, lines: number, signal: AbortSignal): Promise<HostStatus> {
    const observed = (await this.#deps.local.status(name)) ?? null;
    const log: string[] = [];
    if (lines > 0) {
      try {
        for await (const line of this.#deps.local.journal(name, { lines, follow: false, signal }))
          log.push(line);
      } catch (err) {
        if (!(err instanceof FleetError && err.code === 'not_found')) throw err;
      }
    }
    return { machine: this.#deps.machineId, observed, log };
  }

  /** The unit's journal from the host it runs on (`machine` picks one of several). */
  async journal(
    name: UnitName,
    options: { lines: number; follow: boolean; machine?: string | undefined },
    signal: AbortSignal,
  ): Promise<Readable> {
    const snapshot = await this.#deps.registry.snapshot({ unitFiles: 'none' });
    if (!snapshot.units.has(name)) throw notSubmitted(snapshot, name);
    const hosts = hostsOf(snapshot, name);
    const host = options.machine === undefined ? hosts[0] : hosts.find((h) => h === options.machine);
    if (host === undefined) {
      throw new ApiError(
        404,
        'not_found',
        options.machine === undefined
          ? `unit ${name} is not placed on any machine, so it has no journal; start it first (fleetts start ${name})`
          : `unit ${name} is not placed on machine ${options.machine}; it is on: ${hosts.join(', ') || 'none'}`,
      );
    }
    if (host === this.#deps.machineId) return this.localJournal(name, options, signal);
    const query = `lines=${options.lines}&follow=${options.follow}`;
    const res = await this.#ask(
      snapshot.machines.get(host),
      host,
      `/v1/local/units/${encodeURIComponent(name)}/journal?${query}`,
      signal,
    );
    return res.body;
  }

  /** This host's journal of the unit, as a stream of lines. */
  async localJournal(
    name: UnitName,
    options: { lines: number; follow: boolean },
    signal: AbortSignal,
  ): Promise<Readable> {
    if ((await this.#deps.local.status(name)) === undefined) {
      throw new ApiError(404, 'not_found', `unit ${name} is not known on machine ${this.#deps.machineId}`);
    }
    const lines = this.#deps.local.journal(name, { ...options, signal });
    return Readable.from(withNewlines(lines));
  }

  async #hostStatus(
    snapshot: ClusterSnapshot,
    machine: MachineId,
    name: UnitName,
    lines: number,
    signal: AbortSignal,
  ): Promise<HostStatus> {
    const record = snapshot.machines.get(machine);
    const ip = record?.ip === undefined ? {} : { ip: record.ip };
    if (machine === this.#deps.machineId) return { ...(await this.localStatus(name, lines, signal)), ...ip };
    try {
      const res = await this.#ask(
        record,
        machine,
        `/v1/local/units/${encodeURIComponent(name)}/status?lines=${lines}`,
        signal,
      );
      const parsed = hostStatus.safeParse(JSON.parse(await readText(res)));
      if (!parsed.success) throw new FleetError('unreachable', `machine ${machine} sent a malformed status`);
      return { ...parsed.data, ...ip };
    } catch (err) {
      if (!(err instanceof FleetError)) throw err;
      this.#deps.log.warn({ event: 'api.peer_failed', machine, unit: name, err: err.message }, err.message);
      return { machine, ...ip, observed: null, log: [], error: err.message };
    }
  }

  /** GETs a peer's local route; non-2xx answers are rethrown as the peer's own error. */
  async #ask(
    record: MachineRecord | undefined,
    machine: MachineId,
    path: string,
    signal: AbortSignal,
  ): Promise<HttpResponse> {
    if (record === undefined)
      throw new ApiError(
        502,
        'unreachable',
        `machine ${machine} has left the cluster (no live membership lease); cannot ask it about its units. ` +
          'After an etcd outage the engine keeps them assigned to it while it may be re-registering, and moves them if it does not',
      );
    if (record.apiAddress === undefined)
      throw new ApiError(
        502,
        'unreachable',
        `machine ${machine} publishes no API address; cannot ask it about its units`,
      );
    let res: HttpResponse;
    try {
      res = await this.#deps.peers.get({ id: machine, apiAddress: record.apiAddress }, path, { signal });
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      throw new ApiError(
        502,
        'unreachable',
        `cannot reach machine ${machine} at ${record.apiAddress}: ${why}`,
        {
          cause: err,
        },
      );
    }
    if (res.status >= 200 && res.status < 300) return res;
    const text = await readText(res);
    const body = errorBody.safeParse(safeJson(text));
    if (body.success)
      throw new ApiError(res.status, body.data.error.code, `machine ${machine}: ${body.data.error.message}`);
    throw new ApiError(
      502,
      'unreachable',
      `machine ${machine} answered ${res.status}: ${text.slice(0, 200)}`,
    );
  }
}

/** The machines a unit is placed on; when unplaced, those that still report it. */
function hostsOf(snapshot: ClusterSnapshot, name: UnitName): MachineId[] {
  const placed = snapshot.assignments.filter((a) => a.unit === name).map((a) => a.machine);
  if (placed.length > 0) return placed;
  return [...new Set(snapshot.statuses.filter((s) => s.unit === name).map((s) => s.machine))];
}

/** Why the snapshot has no unit `name`: never submitted (404), or corrupt in etcd (422). */
function notSubmitted(snapshot: ClusterSnapshot, name: UnitName): ApiError {
  const problem = unitProblem(snapshot.problems, name);
  if (problem !== undefined) return corruptUnitKey(name, problem);
  return new ApiError(404, 'not_found', `unit ${name} is not submitted (see fleetts list-unit-files)`);
}

async function* withNewlines(lines: AsyncIterable<string>): AsyncGenerator<string> {
  for await (const line of lines) yield line + '\n';
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
