// A small cluster for API tests: two machines on one in-memory registry (fake clock), the real
// engine's scheduling pass on demand, and each machine's local units faked (the agent is not under
// test here). Peers are reached through inject(), so no port is opened.
import { PassThrough } from 'node:stream';
import {
  asMachineId,
  asUnitName,
  type MachineId,
  type UnitName,
  type UnitStatus,
} from '../../src/cluster/types.js';
import { FakeClock } from '../../src/lib/clock.js';
import { createRandom } from '../../src/lib/random.js';
import { FleetError } from '../../src/lib/errors.js';
import { silentLogger } from '../../src/lib/logger.js';
import { Engine } from '../../src/engine/engine.js';
import { MemoryEtcd, MemoryRegistry } from '../../src/registry/memory-registry.js';
import type { Membership } from '../../src/registry/registry.js';
import type { LeaderTerm } from '../../src/registry/leadership.js';
import { buildApp, type ApiApp, type ApiAuth } from '../../src/api/build-app.js';
import type { LocalUnits, ObservedUnit } from '../../src/api/local-units.js';
import type { PeerClient } from '../../src/api/peer-client.js';
import { unitHash } from '../../src/unit/hash.js';

export const A = asMachineId('aaaa');
export const B = asMachineId('bbbb');

/** Fake local units of one host: observed states and journal lines set by the test. */
export class FakeLocalUnits implements LocalUnits {
  readonly observed = new Map<string, ObservedUnit>();
  readonly journals = new Map<string, string[]>();
  /** Lines pushed here after a follow started are streamed to it. */
  readonly followers = new Set<PassThrough>();

  status(unit: UnitName): ObservedUnit | undefined {
    return this.observed.get(unit);
  }

  journal(unit: UnitName, o: { lines: number; follow: boolean; signal: AbortSignal }): AsyncIterable<string> {
    const lines = this.journals.get(unit);
    if (lines === undefined) throw new FleetError('not_found', `no journal of ${unit}`);
    const followers = this.followers;
    return (async function* () {
      yield* o.lines === 0 ? [] : lines.slice(-o.lines);
      if (!o.follow) return;
      const live = new PassThrough({ objectMode: true });
      followers.add(live);
      o.signal.addEventListener('abort', () => live.end(), { once: true });
      try {
        for await (const line of live) yield line as string;
      } finally {
        followers.delete(live);
      }
    })();
  }

  push(line: string): void {
    for (const f of this.followers) f.write(line);
  }
}

export interface Cluster {
  readonly clock: FakeClock;
  readonly registry: MemoryRegistry;
  readonly apps: Record<'a' | 'b', ApiApp>;
  readonly local: Record<'a' | 'b', FakeLocalUnits>;
  readonly memberships: Record<'a' | 'b', Membership>;
  registered: boolean;
  /** One scheduling pass of the real engine. */
  schedule(): Promise<void>;
  putStatus(machine: MachineId, unit: string, fields?: Partial<UnitStatus>): Promise<void>;
  close(): Promise<void>;
}

export async function startCluster(
  options: { auth?: ApiAuth; metadataB?: Record<string, string>; bAddress?: string } = {},
): Promise<Cluster> {
  const clock = new FakeClock();
  const store = new MemoryEtcd({ clock });
  const registry = new MemoryRegistry({ store, prefix: '/api-test/' });
  const machine = (id: MachineId, ip: string, metadata: Record<string, string>, apiAddress?: string) =>
    registry.register({
      id,
      ip,
      metadata,
      version: 'test',
      startedAt: '2026-01-01T00:00:00.000Z',
      ...(apiAddress === undefined ? {} : { apiAddress }),
    });
  const memberships = {
    a: await machine(A, '10.0.0.1', { region: 'eu' }, 'http://a.test:4003'),
    b: await machine(
      B,
      '10.0.0.2',
      options.metadataB ?? { region: 'us' },
      options.bAddress ?? 'http://b.test:4003',
    ),
  };
  const local = { a: new FakeLocalUnits(), b: new FakeLocalUnits() };
  const apps = {} as Record<'a' | 'b', ApiApp>;
  const peers: PeerClient = {
    async get({ apiAddress }, path) {
      const target =
        apiAddress === 'http://a.test:4003'
          ? apps.a
          : apiAddress === 'http://b.test:4003'
            ? apps.b
            : undefined;
      if (target === undefined) throw new FleetError('unreachable', `connection refused`);
      const res = await target.inject({ method: 'GET', url: path });
      const body = new PassThrough();
      body.end(res.rawPayload);
      return { status: res.statusCode, contentType: String(res.headers['content-type'] ?? ''), body };
    },
  };
  const cluster: Cluster = {
    clock,
    registry,
    apps,
    local,
    memberships,
    registered: true,
    async schedule() {
      const engine = new Engine({
        registry,
        clock,
        random: createRandom(1),
        log: silentLogger,
        candidate: 'test',
      });
      term ??= await registry.leadership({ candidate: 'test' }).campaign();
      await engine.runPass(await registry.snapshot(), term);
    },
    async putStatus(m, unit, fields = {}) {
      const record = await registry.getUnit(asUnitName(unit));
      await registry.putStatus(m === A ? memberships.a : memberships.b, {
        unit: asUnitName(unit),
        machine: m,
        hash: record?.hash ?? unitHash(''),
        load: 'loaded',
        active: 'active',
        sub: 'running',
        since: '2026-01-01T00:00:01.000Z',
        ...fields,
      });
    },
    async close() {
      await Promise.all([apps.a.close(), apps.b.close()]);
      await registry.close();
    },
  };
  let term: LeaderTerm | undefined;
  for (const [key, id] of [
    ['a', A],
    ['b', B],
  ] as const) {
    apps[key] = buildApp({
      registry,
      machineId: id,
      local: local[key],
      peers,
      registered: () => cluster.registered,
      clock,
      log: silentLogger,
      ...(options.auth === undefined ? {} : { auth: options.auth }),
    });
  }
  return cluster;
}

export const SIMPLE = '[Unit]\nDescription=hello\n\n[Service]\nExecStart=/bin/sleep 1000\n';
export const ON_US = SIMPLE + '\n[X-Fleet]\nMachineMetadata=region=us\n';
export const NOWHERE = SIMPLE + '\n[X-Fleet]\nMachineMetadata=region=mars\n';
