// The Prometheus metrics of one fleetd (docs/metrics.md): one prom-client Registry per instance,
// never the global one, so that tests and simulations running several fleetds in one process keep
// theirs apart. Built by the composition root and handed to the registry (etcd calls), the engine,
// the agent and the runtimes' event sink; each of them takes it as an optional dependency.
import { Counter, Gauge, Histogram } from 'prom-client';
import type { MachineId } from '../cluster/types.js';
import type { Clock } from '../lib/clock.js';
import type { ClusterSnapshot, SnapshotReader } from '../registry/registry.js';
import { clusterCounts, MACHINE_STATES, UNIT_STATES } from './cluster-counts.js';
import { EngineMetrics } from './engine-metrics.js';
import { LATENCY_BUCKETS, ProcessMetrics } from './process-metrics.js';

/** A pass takes milliseconds on small clusters, seconds on 10,000 units (BENCHMARKS.md). */
const PASS_BUCKETS = LATENCY_BUCKETS;
/** Seconds from a machine's loss to its units active elsewhere: about one lease TTL (5 s) and up. */
const FAILOVER_BUCKETS = [1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 15, 20, 30, 60, 120, 300];

export class FleetMetrics extends ProcessMetrics {
  readonly enginePassSeconds: Histogram<'outcome'>;
  readonly placements: Counter<'kind'>;
  readonly moves: Counter<'reason'>;
  readonly failoverSeconds: Histogram;
  readonly agentActions: Counter<'action' | 'result'>;
  readonly supervisorRestarts: Counter<'runtime'>;
  #cluster: { reader: SnapshotReader; seen: Set<MachineId> } | undefined;
  #leader: (() => boolean) | undefined;
  #reading: Promise<ClusterSnapshot | undefined> | undefined;

  constructor(options: { defaultMetrics?: boolean } = {}) {
    super(options);
    const registers = [this.registry];
    this.enginePassSeconds = new Histogram({
      name: 'fleetts_engine_pass_seconds',
      help: 'Duration of scheduling passes of the engine leader (snapshot to written plan), by outcome',
      labelNames: ['outcome'],
      buckets: PASS_BUCKETS,
      registers,
    });
    this.placements = new Counter({
      name: 'fleetts_engine_placements_total',
      help: 'Units written to a machine by this engine: kind new (first placement) or move',
      labelNames: ['kind'],
      registers,
    });
    this.moves = new Counter({
      name: 'fleetts_engine_moves_total',
      help: 'Units moved to another machine: reason machine_gone (its machine left the cluster) or constraint (it no longer fits there: Replaces, Conflicts, metadata)',
      labelNames: ['reason'],
      registers,
    });
    this.failoverSeconds = new Histogram({
      name: 'fleetts_failover_seconds',
      help: "Seconds from a machine's loss (its key deleted at lease expiry, as the engine saw it) to a unit it ran being active on another machine",
      buckets: FAILOVER_BUCKETS,
      registers,
    });
    this.agentActions = new Counter({
      name: 'fleetts_agent_actions_total',
      help: "Actions of this host's agent (start, replace, stop, remove) by result (ok, error, waiting: for the run claim)",
      labelNames: ['action', 'result'],
      registers,
    });
    this.supervisorRestarts = new Counter({
      name: 'fleetts_supervisor_restarts_total',
      help: "Restarts of units on this host by their Restart= policy, by runtime (as systemd's NRestarts: one refused by the start limit counts)",
      labelNames: ['runtime'],
      registers,
    });
    const leader: Gauge = new Gauge({
      name: 'fleetts_engine_leader',
      help: '1 while this fleetd leads the engine',
      registers,
      collect: () => leader.set(this.#leader?.() === true ? 1 : 0),
    });
    const machines = new Gauge({
      name: 'fleetts_machines',
      help: 'Machines by state: up (registered), down (seen up by this fleetd since it started, gone now). The same cluster view on every fleetd',
      labelNames: ['state'],
      registers,
      collect: async () => {
        const snapshot = await this.#snapshot();
        machines.reset();
        if (snapshot === undefined || this.#cluster === undefined) return;
        const counts = clusterCounts(snapshot, this.#cluster.seen);
        for (const state of MACHINE_STATES) machines.set({ state }, counts.machines[state]);
      },
    });
    const units = new Gauge({
      name: 'fleetts_units',
      help: 'Units by target state and current state (launched: active where assigned; loaded: assigned and reported; inactive)',
      labelNames: ['target', 'state'],
      registers,
      collect: async () => {
        const snapshot = await this.#snapshot();
        units.reset();
        if (snapshot === undefined || this.#cluster === undefined) return;
        for (const [key, n] of clusterCounts(snapshot, this.#cluster.seen).units) {
          const [target = '', state = ''] = key.split(' ');
          units.set({ target, state }, n);
        }
      },
    });
    const statuses = new Gauge({
      name: 'fleetts_unit_statuses',
      help: 'Unit statuses reported by the hosts, by active state (failed: ended in failure)',
      labelNames: ['active'],
      registers,
      collect: async () => {
        const snapshot = await this.#snapshot();
        statuses.reset();
        if (snapshot === undefined) return;
        const counts = new Map<string, number>(UNIT_STATES.active.map((a) => [a, 0]));
        for (const s of snapshot.statuses) counts.set(s.active, (counts.get(s.active) ?? 0) + 1);
        for (const [active, n] of counts) statuses.set({ active }, n);
      },
    });
  }

  /** Where the machine and unit gauges come from at scrape time: one snapshot per scrape. */
  observeCluster(reader: SnapshotReader, isLeader?: () => boolean): void {
    this.#cluster = { reader, seen: new Set() };
    if (isLeader !== undefined) this.#leader = isLeader;
  }

  /** What the engine records (placements, moves, failovers, passes), on its clock. */
  forEngine(clock: Clock): EngineMetrics {
    return new EngineMetrics(this, clock);
  }

  /** One snapshot for every gauge of a scrape (their collects run together); undefined if unreadable. */
  #snapshot(): Promise<ClusterSnapshot | undefined> {
    const cluster = this.#cluster;
    if (cluster === undefined) return Promise.resolve(undefined);
    this.#reading ??= cluster.reader
      .snapshot({ unitFiles: 'none' })
      .then(
        (s) => s,
        () => undefined, // etcd unreachable: the gauges are left out; etcd errors show it
      )
      .finally(() => (this.#reading = undefined));
    return this.#reading;
  }
}
