// The composition root of one host's daemon: the only place that constructs real adapters. It
// serves the API, keeps the host's membership in etcd (re-registering after a loss), runs the
// engine (leader-elected) and the agent (this host's units on the process and Docker runtimes).
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { Agent, type AgentPeers } from '../agent/agent.js';
import { selfLeaseReport, trustedDead, type SelfLeaseReport } from '../agent/peer-check.js';
import {
  askPeerViews,
  askSelfLease,
  createPeerClient,
  listenHeartbeat,
  probePeer,
  type PeerClient,
} from '../api/peer-client.js';
import { PeerWatch, PROBE_TIMEOUT_MS } from './peer-watch.js';
import { serveApi, type ApiServer } from '../api/serve-api.js';
import { asMachineId, MACHINE_ID_RULE, machineIdProblem, type MachineId } from '../cluster/types.js';
import { Engine } from '../engine/engine.js';
import type { Clock } from '../lib/clock.js';
import { FleetError, UsageError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import type { Random } from '../lib/random.js';
import type { FleetMetrics } from '../metrics/fleet-metrics.js';
import { VERSION } from '../lib/version.js';
import type { Membership, Registry } from '../registry/registry.js';
import { isRegistryError } from '../registry/registry-error.js';
import type { ProcessUnitConfig, Runtime } from '../runtime/runtime.js';
import { fenceAfterMsOf, type DaemonConfig } from './config.js';
import { MembershipLoop } from './membership-loop.js';
import { Backoff } from '../lib/backoff.js';

export interface FleetdDeps {
  readonly config: DaemonConfig;
  readonly registry: Registry;
  readonly clock: Clock;
  /** Draws retry jitter: main.ts seeds one per process from entropy, so hosts retry apart. */
  readonly random: Random;
  readonly log: Logger;
  readonly machineId: string;
  readonly publicIp: string;
  readonly runtimes: { readonly process: Runtime<ProcessUnitConfig>; readonly container?: Runtime };
  /** The API's TCP token and TLS files, already read (main.ts reads the files). */
  readonly api?: {
    readonly token?: string;
    readonly tls?: { readonly cert: string; readonly key: string; readonly ca?: string };
  };
  /**
   * This fleetd's metrics, served at GET /metrics (docs/metrics.md); main.ts builds one and gives
   * it to the registry and the runtimes too. Without it there is no /metrics.
   */
  readonly metrics?: FleetMetrics;
}

/** Keepalive period: a third of the TTL at most, and about every second with the default TTL. */
/** How often ending a dead leader's term is tried again, and how many times (about 10 s in all). */
const DEPOSE_RETRY_MS = 250;
const DEPOSE_ATTEMPTS = 40;

export function keepaliveMsFor(ttlMs: number): number {
  return Math.max(500, Math.min(1_000, Math.floor(ttlMs / 3)));
}

export class Fleetd {
  readonly #deps: FleetdDeps;
  readonly #stop = new AbortController();
  readonly machineId: MachineId;
  readonly engine: Engine;
  readonly agent: Agent;
  #api: ApiServer | undefined;
  /** Holds the membership once registered, and registers again after a loss (membership-loop.ts). */
  #loop: MembershipLoop | undefined;
  /** When (monotonic) the current membership was registered or resumed. */
  #membershipSince = 0;
  #running: Promise<void> | undefined;
  readonly #peers: PeerClient;
  /** Asks the peers' fleetd whether they are there (peer-watch.ts). */
  readonly #peerWatch: PeerWatch;
  #peerWatchRun: Promise<void> | undefined;

  constructor(deps: FleetdDeps) {
    this.#deps = deps;
    const { config } = deps;
    const problem = machineIdProblem(deps.machineId);
    if (problem !== undefined)
      throw new UsageError(
        `machine id ${JSON.stringify(deps.machineId)} is invalid (${problem}); use ${MACHINE_ID_RULE}`,
      );
    this.machineId = asMachineId(deps.machineId);
    const token = deps.api?.token;
    const tls = deps.api?.tls;
    this.#peers = createPeerClient({
      self: this.machineId,
      now: () => deps.clock.now(),
      ...(token === undefined ? {} : { token }),
      ...(tls === undefined
        ? {}
        : { tls: { ...(tls.ca === undefined ? {} : { ca: tls.ca }), cert: tls.cert, key: tls.key } }),
    });
    const peers: AgentPeers = {
      list: async () => (await deps.registry.listMachines()).items,
      ask: (peer, signal) =>
        askSelfLease(this.#peers, { id: peer.id, apiAddress: peer.apiAddress }, { signal }),
    };
    this.#peerWatch = new PeerWatch({
      self: this.machineId,
      clock: deps.clock,
      log: deps.log.child({ component: 'peers' }),
      machines: async () =>
        (await deps.registry.listMachines()).items.flatMap((m) =>
          m.apiAddress === undefined
            ? []
            : [{ id: m.id, apiAddress: m.apiAddress, createRevision: m.createRevision }],
        ),
      probe: (peer, signal) => probePeer(peer, signal),
      listen: (peer, onBeat, signal) => listenHeartbeat(this.#peers, peer, onBeat, signal),
      views: (peer, signal) => askPeerViews(this.#peers, peer, { signal, timeoutMs: PROBE_TIMEOUT_MS }),
      onChange: (dead) => this.#peersChanged(dead),
    });
    const lease = { ttlMs: config.leaseTtlMs, keepaliveMs: keepaliveMsFor(config.leaseTtlMs) };
    this.engine = new Engine({
      deadMachines: () => this.#peerWatch.deadRegistrations,
      registry: deps.registry,
      clock: deps.clock,
      random: deps.random,
      log: deps.log.child({ component: 'engine' }),
      candidate: deps.machineId,
      lease,
      ...(deps.metrics === undefined ? {} : { metrics: deps.metrics }),
    });
    this.agent = new Agent({
      registry: deps.registry,
      runtimes: deps.runtimes,
      machine: { id: this.machineId, ip: deps.publicIp, metadata: config.metadata },
      getMembership: () => this.membership,
      clock: deps.clock,
      log: deps.log.child({ component: 'agent' }),
      fencing: { policy: config.fencePolicy, deadlineMs: fenceAfterMsOf(config) },
      peers,
      deadMachines: () =>
        trustedDead(this.#peerWatch.dead, deps.registry.health.lastFailureAt(), deps.clock.monotonic()),
      // Sidekicks (`fleetts announce`, `fleetts upstream`) reach etcd and this host's API with these.
      environment: {
        FLEETTS_ETCD_ENDPOINTS: config.etcdEndpoints.join(','),
        FLEETTS_ETCD_KEY_PREFIX: config.etcdKeyPrefix,
        FLEETTS_ENDPOINT: `unix://${config.apiSocket}`,
        // Units that drive Docker themselves (`docker run` in ExecStart, `fleetts galera member
        // --image`) must reach this host's dockerd, not the machine's default one.
        ...(deps.runtimes.container === undefined || config.dockerHost === undefined
          ? {}
          : { DOCKER_HOST: config.dockerHost }),
      },
      ...(deps.metrics === undefined ? {} : { metrics: deps.metrics }),
    });
    deps.metrics?.observeCluster(deps.registry, () => this.engine.stats.isLeader);
  }

  /** The live membership, or undefined while this host is not registered. */
  get membership(): Membership | undefined {
    const m = this.#loop?.current;
    return m === undefined || m.signal.aborted ? undefined : m;
  }

  /**
   * The peers confirmed dead changed: the engine plans again, and a dead engine leader's term is
   * ended so that a live candidate leads at once (its lease would outlive it, docs/control-plane-faults.md).
   */
  #peersChanged(dead: ReadonlySet<MachineId>): void {
    this.engine.peersChanged();
    for (const machine of dead) this.#depose(machine, 1);
  }

  /**
   * Ends the dead machine's engine term if it holds one. The verdict often comes while etcd is
   * still electing a leader (the dead host held it), when the request fails at once: it is tried
   * again every DEPOSE_RETRY_MS while the machine stays dead, for as long as its term could last.
   */
  #depose(machine: MachineId, attempt: number): void {
    const { registry, log, clock } = this.#deps;
    registry.deposeLeader(machine).then(
      (ended) => {
        if (ended)
          log.warn(
            { event: 'fleetd.leader_deposed', machine },
            `ended the engine term of ${machine}: its peers found it dead`,
          );
      },
      (err: unknown) => {
        const again =
          attempt < DEPOSE_ATTEMPTS && !this.#stop.signal.aborted && this.#peerWatch.dead.has(machine);
        if (attempt === 1 || !again)
          log.warn(
            { event: 'fleetd.depose_failed', machine, attempt, err },
            `could not end the term of dead leader ${machine}${again ? '; trying again' : ''}`,
          );
        if (again) clock.setTimer(DEPOSE_RETRY_MS, () => this.#depose(machine, attempt + 1));
      },
    );
  }

  /** What GET /v1/self/lease answers: this host's lease from local state (docs/fencing.md). */
  selfLease(): SelfLeaseReport {
    const m = this.#loop?.current;
    return selfLeaseReport({
      machine: this.machineId,
      now: this.#deps.clock.monotonic(),
      keepaliveMs: keepaliveMsFor(this.#deps.config.leaseTtlMs),
      lease:
        m === undefined
          ? undefined
          : {
              renewedAt: m.renewedAt(),
              since: Math.max(this.#membershipSince, m.resumedAt()),
              lost: m.signal.aborted,
            },
    });
  }

  get apiServer(): ApiServer | undefined {
    return this.#api;
  }

  /**
   * Serves the API, registers this host (retrying once after one TTL when the id is held: that may
   * be this host's own previous fleetd, killed before its lease expired), then starts the engine
   * and the agent. Throws FleetError `machine_id_taken` when another live fleetd holds the id.
   */
  async start(): Promise<void> {
    const { log, clock, config } = this.#deps;
    this.#api = await this.#serveApi();
    let first: Membership;
    try {
      first = await this.#firstRegister();
    } catch (err) {
      if (!isRegistryError(err, 'machine_id_taken')) throw await this.#abortStart(err);
      log.warn(
        { event: 'fleetd.machine_id_held', machine: this.machineId },
        err.message + '; waiting one lease TTL',
      );
      await clock.sleep(config.leaseTtlMs + 1_000, this.#stop.signal);
      try {
        first = await this.#register();
      } catch (again) {
        if (!isRegistryError(again, 'machine_id_taken')) throw await this.#abortStart(again);
        throw await this.#abortStart(
          new FleetError(
            'machine_id_taken',
            `machine id ${this.machineId} is used by another running fleetd; ` +
              `give each host its own id (--machine-id, or a distinct /etc/machine-id)`,
          ),
        );
      }
    }
    this.#loop = new MembershipLoop(
      {
        register: () => this.#register(),
        clock,
        random: this.#deps.random,
        log,
        machine: this.machineId,
      },
      first,
    );
    log.info(
      {
        event: 'fleetd.registered',
        machine: this.machineId,
        ip: this.#deps.publicIp,
        metadata: config.metadata,
      },
      `registered as machine ${this.machineId}`,
    );
    if (config.fencePolicy === 'keep-running')
      log.warn(
        { event: 'fleetd.fencing_off', policy: config.fencePolicy },
        'fence policy keep-running: no unit is stopped when this host is cut off from etcd, not even AtMostOnce=true units, which may then run on two machines at once',
      );
    this.engine.start();
    await this.agent.start();
    this.#running = this.#loop.run(this.#stop.signal);
    this.#peerWatchRun = this.#peerWatch.run(this.#stop.signal);
  }

  async #abortStart(err: unknown): Promise<unknown> {
    await this.#api?.close().catch(() => undefined);
    return err;
  }

  async #serveApi(): Promise<ApiServer> {
    const { config, registry, clock, log } = this.#deps;
    const token = this.#deps.api?.token;
    const tls = this.#deps.api?.tls;
    await mkdir(dirname(config.apiSocket), { recursive: true });
    let tcp: { host: string; port: number; token?: string; tls?: typeof tls } | undefined;
    if (config.apiListen !== undefined) {
      tcp = {
        host: config.apiListen.host,
        port: config.apiListen.port,
        ...(token === undefined ? {} : { token }),
        ...(tls === undefined ? {} : { tls }),
      };
    }
    return serveApi(
      {
        registry,
        machineId: this.machineId,
        local: this.agent,
        peers: this.#peers,
        registered: () => this.membership !== undefined,
        selfLease: () => this.selfLease(),
        peerViews: () => this.#peerWatch.views(),
        limits: { maxUnits: config.maxUnits, maxUnitFileBytes: config.maxUnitFileBytes },
        clock,
        log: log.child({ component: 'api' }),
        ...(token === undefined ? {} : { auth: { kind: 'token' as const, token } }),
        ...(this.#deps.metrics === undefined ? {} : { metrics: this.#deps.metrics }),
      },
      { socketPath: config.apiSocket, tcp },
    );
  }

  /** Where peers reach this host's API: its TCP address, else its unix socket (one-machine clusters). */
  #apiAddress(): string {
    const { config, publicIp } = this.#deps;
    if (config.apiListen === undefined) return `unix://${config.apiSocket}`;
    const port = this.#api?.tcpAddress?.split(':').at(-1) ?? String(config.apiListen.port);
    const scheme = this.#deps.api?.tls === undefined ? 'http' : 'https';
    const host = publicIp.includes(':') ? `[${publicIp}]` : publicIp;
    return `${scheme}://${host}:${port}`;
  }

  /**
   * The first registration, tried again while etcd cannot be reached: a host that boots before its
   * network is up, or in a cluster cold start before etcd has a quorum, waits for etcd as fleet
   * did (the membership loop's own retries take over once registered). Other errors end the start.
   */
  async #firstRegister(): Promise<Membership> {
    const { log, clock, random } = this.#deps;
    const retry = new Backoff({ clock, random, minMs: 500, maxMs: 5_000 });
    for (;;) {
      try {
        return await this.#register();
      } catch (err) {
        if (!isRegistryError(err, 'unavailable') || this.#stop.signal.aborted) throw err;
        const waitMs = retry.next();
        const fields = {
          event: 'fleetd.etcd_unreachable',
          machine: this.machineId,
          retryInMs: Math.round(waitMs),
        };
        if (retry.failures === 1)
          log.warn(fields, `cannot register yet (${err.message}); trying again until etcd answers`);
        else log.debug(fields, 'cannot register yet; trying again');
        await clock.sleep(waitMs, this.#stop.signal);
      }
    }
  }

  async #register(): Promise<Membership> {
    const { config, registry, publicIp } = this.#deps;
    const resumeLeaseId = await this.#readLeaseId();
    const membership = await registry.register(
      {
        id: this.machineId,
        ip: publicIp,
        metadata: config.metadata,
        apiAddress: this.#apiAddress(),
        version: VERSION,
        startedAt: new Date(this.#deps.clock.now()).toISOString(),
        memoryBytes: totalmem(),
      },
      {
        ttlMs: config.leaseTtlMs,
        keepaliveMs: keepaliveMsFor(config.leaseTtlMs),
        ...(resumeLeaseId === undefined ? {} : { resumeLeaseId }),
      },
    );
    await this.#writeLeaseId(membership.leaseId);
    this.#membershipSince = this.#deps.clock.monotonic();
    return membership;
  }

  // The membership lease id is kept in the state dir so that a restarted fleetd (upgrade, crash)
  // resumes the same lease while it is alive: same membership, units adopted, nothing moves.
  get #leaseFile(): string {
    return join(this.#deps.config.stateDir, 'lease-id');
  }

  async #readLeaseId(): Promise<string | undefined> {
    try {
      const id = (await readFile(this.#leaseFile, 'utf8')).trim();
      return /^[0-9]+$/.test(id) ? id : undefined;
    } catch {
      return undefined;
    }
  }

  async #writeLeaseId(id: string): Promise<void> {
    await mkdir(this.#deps.config.stateDir, { recursive: true });
    const tmp = `${this.#leaseFile}.tmp`;
    await writeFile(tmp, id + '\n');
    await rename(tmp, this.#leaseFile);
  }

  /**
   * Shutdown for a restart or upgrade: hands engine leadership over at once, leaves the units
   * running under their supervisors, and releases (does not revoke) the membership lease, so a
   * fleetd started again within the fencing deadline resumes it and adopts its units; if none comes
   * back, the supervisors stop the units at the deadline and the lease expires (DESIGN invariant 1).
   * With `leave`, the host leaves the cluster: its units are stopped, then its lease is revoked
   * so the engine moves them at once.
   */
  async stop(options: { leave?: boolean } = {}): Promise<void> {
    this.#stop.abort(new Error('fleetd stopping'));
    await this.engine.stop();
    await this.agent.stop({ stopUnits: options.leave === true });
    await this.#running;
    await this.#peerWatchRun;
    await this.#api?.close().catch(() => undefined);
    if (options.leave === true) await this.#loop?.current?.close().catch(() => undefined);
    else this.#loop?.current?.release();
    await this.#deps.registry.close();
  }
}
