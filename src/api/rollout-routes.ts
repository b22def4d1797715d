// The API's part in rolling changes (`fleetts restart` one unit at a time, `fleetts rollout`): the
// live service instances with their keys' revisions (is a restarted unit announced again?), and a
// template's rollout record (its new file and the previous one, kept in etcd for --rollback).
import type { UnitName } from '../cluster/types.js';
import type { RolloutRecord, RolloutStore, ServiceLister, UnitStore } from '../registry/registry.js';
import type { SnapshotReader } from '../registry/registry.js';
import { parseUnitName } from '../unit/names.js';
import { parseUnitSpec } from '../unit/unit-spec.js';
import type { Clock } from '../lib/clock.js';
import { ApiError } from './api-error.js';
import { jsonRoute, type RouteSpec } from './route.js';
import {
  putRolloutBody,
  putRolloutResponse,
  rolloutEntry,
  servicesQuery,
  servicesResponse,
  unitParams,
  type RolloutEntry,
} from './schemas.js';
import { aboutUnit, requestedUnit, storedProblems } from './stored-problems.js';

export type RolloutRegistry = SnapshotReader & UnitStore & RolloutStore & ServiceLister;

export function rolloutRoutes(deps: {
  readonly registry: RolloutRegistry;
  readonly clock: Clock;
}): RouteSpec[] {
  const { registry } = deps;
  return [
    jsonRoute({
      method: 'GET',
      url: '/v1/services',
      operationId: 'listServiceInstances',
      summary: 'Live service instances as their announcers wrote them, with the etcd revision of each key',
      query: servicesQuery,
      response: servicesResponse,
      async handler({ query }) {
        const set = await registry.listAllServiceInstances();
        const instances = set.items
          .filter((i) => query.service === undefined || i.service === query.service)
          .map(({ modRevision, ...i }) => ({ ...i, revision: modRevision }));
        const problems = storedProblems(set.problems, ['services']);
        return {
          instances,
          revision: set.revision,
          ...(problems.length === 0 ? {} : { problems }),
        };
      },
    }),
    jsonRoute({
      method: 'GET',
      url: '/v1/units/:name/rollout',
      operationId: 'getRollout',
      summary: "A unit's last rollout: the file it put in place and the previous file (for rollback)",
      params: unitParams,
      response: rolloutEntry,
      errors: [404, 422],
      async handler({ params }) {
        const name = await requestedUnit(registry, params.name);
        const record = await aboutUnit(name, () => registry.getRollout(name));
        if (record === undefined)
          throw new ApiError(404, 'not_found', `unit ${name} has had no rollout; nothing to roll back to`);
        return entry(record);
      },
    }),
    jsonRoute({
      method: 'PUT',
      url: '/v1/units/:name/rollout',
      operationId: 'beginRollout',
      summary:
        'Gives a submitted unit (a template) a new file and keeps its previous file in etcd, in one transaction; its instances keep their files until each is replaced',
      params: unitParams,
      body: putRolloutBody,
      response: putRolloutResponse,
      errors: [404, 409, 422],
      async handler({ params, body }) {
        const name: UnitName = await requestedUnit(registry, params.name);
        parseUnitSpec(body.text, parseUnitName(name), { file: name });
        const unit = await aboutUnit(name, () => registry.getUnit(name));
        if (unit === undefined)
          throw new ApiError(
            404,
            'not_found',
            `unit ${name} is not submitted; submit it first (fleetts submit ${name}), then roll out changes`,
          );
        const previousText = await aboutUnit(name, () => registry.getUnitFile(unit.hash));
        if (previousText === undefined)
          throw new ApiError(
            404,
            'not_found',
            `the unit file of ${name} is missing from the registry; submit it again`,
          );
        const began = await registry.beginRollout(
          unit,
          previousText,
          body.text,
          new Date(deps.clock.now()).toISOString(),
        );
        return {
          name,
          hash: began.unit.hash,
          started: began.unit.hash !== unit.hash,
          ...(began.rollout === undefined ? {} : { rollout: entry(began.rollout) }),
        };
      },
    }),
  ];
}

function entry(r: RolloutRecord): RolloutEntry {
  return {
    name: r.unit,
    hash: r.hash,
    previousHash: r.previousHash,
    previousText: r.previousText,
    startedAt: r.startedAt,
  };
}
