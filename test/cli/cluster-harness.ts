// A two-host cluster in one process for CLI tests: a real etcd registry, the real engine (so units
// really get placed), the real API on a unix socket (host A) and on loopback TCP with a token
// (both hosts), peers reached over real HTTP. Each host's agent is a stand-in that reports what an
// agent would for its assignments (the real agent is tested in its own area and end to end).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { asMachineId, type Assignment, type MachineId, type UnitName } from '../../src/cluster/types.js';
import { systemClock } from '../../src/lib/clock.js';
import { createRandom } from '../../src/lib/random.js';
import { FleetError } from '../../src/lib/errors.js';
import { silentLogger } from '../../src/lib/logger.js';
import { Engine } from '../../src/engine/engine.js';
import { createEtcdRegistry, type EtcdRegistry } from '../../src/registry/etcd-registry.js';
import type { Membership, Subscription } from '../../src/registry/registry.js';
import { createPeerClient } from '../../src/api/peer-client.js';
import type { LocalUnits, ObservedUnit } from '../../src/api/local-units.js';
import { serveApi, type ApiServer } from '../../src/api/serve-api.js';
import { run } from '../../src/cli/main.js';
import { BufferOutput } from '../../src/cli/output.js';
import { randomPrefix } from '../helpers/etcd.js';

export const TOKEN = 'cli-test-token-0123456789';

/** Stands in for a host's agent: follows its assignments, reports statuses, keeps a journal. */
class StandInAgent implements LocalUnits {
  readonly observed = new Map<string, ObservedUnit>();
  readonly journals = new Map<string, string[]>();
  /** Every (unit, active) transition, in order. */
  readonly history: string[] = [];
  readonly #live = new Set<{ unit: string; stream: PassThrough }>();
  #sub: Subscription | undefined;
  #pid = 1000;
  #queue = Promise.resolve();

  constructor(
    readonly machine: MachineId,
    readonly registry: EtcdRegistry,
    readonly membership: Membership,
  ) {}

  async start(): Promise<void> {
    this.#sub = await this.registry.watchAssignments(this.machine, (set) => {
      this.#queue = this.#queue.then(() => this.#apply(set.items)).catch(() => undefined);
    });
  }

  stop(): void {
    this.#sub?.close();
    for (const l of this.#live) l.stream.end();
  }

  async #apply(assignments: readonly Assignment[]): Promise<void> {
    for (const a of assignments) {
      const before = this.observed.get(a.unit);
      const text = (await this.registry.getUnitFile(a.hash)) ?? '';
      const fails = text.includes('ExecStart=/bin/false');
      const active = a.target === 'launched' ? (fails ? 'failed' : 'active') : 'inactive';
      if (before?.active === active && before.hash === a.hash) continue;
      const now = new Date().toISOString();
      const o = {
        unit: a.unit,
        hash: a.hash,
        load: 'loaded',
        active,
        sub: active === 'active' ? 'running' : active === 'failed' ? 'failed' : 'dead',
        since: now,
        ...(active === 'active' ? { pid: this.#pid++ } : {}),
        ...(fails
          ? { reason: 'ExecStart=/bin/false exited with code 1', lastExit: { code: 1, at: now } }
          : {}),
      } satisfies ObservedUnit;
      this.observed.set(a.unit, o);
      this.history.push(`${a.unit} ${active}`);
      this.#log(
        a.unit,
        `${active === 'active' ? 'Started' : active === 'failed' ? 'Failed' : 'Stopped'} ${a.unit} (${a.hash.slice(0, 7)})`,
      );
      await this.registry.putStatus(this.membership, { ...o, machine: this.machine });
    }
    for (const unit of [...this.observed.keys()]) {
      if (assignments.some((a) => a.unit === unit)) continue;
      this.observed.delete(unit);
      this.history.push(`${unit} removed`);
      await this.registry.deleteStatus(unit as UnitName, this.machine);
    }
  }

  #log(unit: string, line: string): void {
    const lines = this.journals.get(unit) ?? [];
    lines.push(line);
    this.journals.set(unit, lines);
    for (const l of this.#live) if (l.unit === unit) l.stream.write(line);
  }

  /** Adds a journal line to a unit (followers see it). */
  say(unit: string, line: string): void {
    this.#log(unit, line);
  }

  status(unit: UnitName): ObservedUnit | undefined {
    return this.observed.get(unit);
  }

  journal(unit: UnitName, o: { lines: number; follow: boolean; signal: AbortSignal }): AsyncIterable<string> {
    const lines = this.journals.get(unit);
    if (lines === undefined) throw new FleetError('not_found', `no journal of ${unit}`);
    const live = this.#live;
    return (async function* () {
      yield* o.lines === 0 ? [] : lines.slice(-o.lines);
      if (!o.follow) return;
      const entry = { unit, stream: new PassThrough({ objectMode: true }) };
      live.add(entry);
      o.signal.addEventListener('abort', () => entry.stream.end(), { once: true });
      try {
        for await (const line of entry.stream) yield line as string;
      } finally {
        live.delete(entry);
      }
    })();
  }
}

export interface Host {
  readonly id: MachineId;
  readonly agent: StandInAgent;
  readonly server: ApiServer;
}

export interface TestCluster {
  readonly a: Host;
  readonly b: Host;
  readonly dir: string;
  /** The hosts' registry (tests write what other components would: announcements). */
  readonly registry: EtcdRegistry;
  /** `--endpoint unix://…` of host A. */
  readonly socket: string;
  /**
   * Host A's API answers 503 not_registered (as fleetd does while it registers again after its
   * lease lapsed) while `registered` is false; `asked` counts its API requests, `refused` those it
   * turned away.
   */
  readonly registrationOfA: { registered: boolean; asked: number; refused: number };
  /** Runs fleetts in-process against host A's unix socket (unless argv gives --endpoint). */
  fleetts(
    argv: readonly string[],
    options?: { signal?: AbortSignal; tty?: boolean; pollMs?: number },
  ): Promise<{ code: number; stdout: string; stderr: string; progress: string[] }>;
  close(): Promise<void>;
}

export async function startTestCluster(etcdEndpoint: string): Promise<TestCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'fleetts-cli-'));
  const registry = createEtcdRegistry({ endpoints: [etcdEndpoint], prefix: randomPrefix() });
  const engine = new Engine({
    registry,
    clock: systemClock,
    random: createRandom(1),
    log: silentLogger,
    candidate: 'test-engine',
  });
  const hosts: Host[] = [];
  const registrationOfA = { registered: true, asked: 0, refused: 0 };
  const cleanups: (() => Promise<void> | void)[] = [];
  try {
    for (const [id, ip, metadata] of [
      ['aaaa1111bbbb2222', '127.0.0.1', { region: 'eu' }],
      ['cccc3333dddd4444', '127.0.0.2', { region: 'us' }],
    ] as const) {
      const machine = asMachineId(id);
      const local: { agent?: StandInAgent } = {};
      const isA = hosts.length === 0;
      const deps = {
        registry,
        machineId: machine,
        local: {
          status: (u: UnitName) => local.agent?.status(u),
          journal: (u: UnitName, o: { lines: number; follow: boolean; signal: AbortSignal }) => {
            if (local.agent === undefined) throw new FleetError('not_found', 'no agent');
            return local.agent.journal(u, o);
          },
        },
        peers: createPeerClient({ token: TOKEN, self: machine }),
        registered: () => {
          if (!isA) return true;
          registrationOfA.asked += 1;
          if (registrationOfA.registered) return true;
          registrationOfA.refused += 1;
          return false;
        },
        clock: systemClock,
        log: silentLogger,
      };
      const server = await serveApi(deps, {
        socketPath: hosts.length === 0 ? join(dir, 'fleetd.sock') : undefined,
        tcp: { host: '127.0.0.1', port: 0, token: TOKEN },
      });
      cleanups.push(() => server.close());
      const membership = await registry.register(
        {
          id: machine,
          ip,
          metadata,
          version: 'test',
          startedAt: new Date().toISOString(),
          ...(server.tcpAddress === undefined ? {} : { apiAddress: server.tcpAddress }),
        },
        { ttlMs: 5_000, keepaliveMs: 1_000 },
      );
      cleanups.push(() => membership.close());
      local.agent = new StandInAgent(machine, registry, membership);
      await local.agent.start();
      const agent = local.agent;
      cleanups.push(() => agent.stop());
      hosts.push({ id: machine, agent, server });
    }
    engine.start();
  } catch (err) {
    for (const c of cleanups.reverse()) await c();
    await registry.close();
    throw err;
  }
  const [a, b] = hosts as [Host, Host];
  const socket = `unix://${join(dir, 'fleetd.sock')}`;
  return {
    a,
    b,
    dir,
    registry,
    socket,
    registrationOfA,
    async fleetts(argv, options = {}) {
      const out = new BufferOutput({ isTTY: options.tty ?? false });
      const withEndpoint = argv.some((x) => x.startsWith('--endpoint'))
        ? argv
        : ['--endpoint', socket, ...argv];
      const code = await run(withEndpoint, out, {
        cwd: dir,
        pollMs: options.pollMs ?? 100,
        ...(options.signal === undefined ? {} : { signal: options.signal }),
      });
      return { code, stdout: out.stdout, stderr: out.stderr, progress: out.progressLines };
    },
    async close() {
      await engine.stop();
      for (const c of cleanups.reverse()) await Promise.resolve(c()).catch(() => undefined);
      await registry.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
