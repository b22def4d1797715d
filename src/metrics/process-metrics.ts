// What every fleetts process that serves metrics has (fleetd, and the `announce` and `upstream`
// sidekicks): its own prom-client Registry (never the global default, so several instances in one
// process do not clash), Node's process metrics under their standard names, and its etcd requests.
import { collectDefaultMetrics, Counter, Histogram, Registry } from 'prom-client';

/** etcd requests by kind (a bounded label: the Kv interface's unary calls). */
export type EtcdOp = 'range' | 'txn' | 'lease_grant' | 'lease_keepalive' | 'lease_revoke';

/** Seconds: etcd answers in ms on a healthy cluster, in seconds when it is not. */
export const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/**
 * How often the event-loop lag metrics sample the loop (prom-client's eventLoopMonitoringPrecision):
 * each sample wakes an idle fleetd (its default, 10 ms, was half of its wakeups; docs/memory.md).
 */
export const EVENT_LOOP_SAMPLE_MS = 1_000;

export class ProcessMetrics {
  readonly registry = new Registry();
  readonly etcdRequestSeconds: Histogram<'op'>;
  readonly etcdRequestErrors: Counter<'op' | 'code'>;
  readonly leaseKeepaliveSeconds: Histogram;

  /** `defaultMetrics: false` leaves out Node's process metrics (tests that count samples). */
  constructor(options: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    // The event-loop lag is sampled by a timer; prom-client's default (every 10 ms) woke an idle
    // fleetd 100 times a second, about half of its idle CPU. Every 500 ms still shows a stalled loop.
    if (options.defaultMetrics !== false)
      collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
    this.etcdRequestSeconds = new Histogram({
      name: 'fleetts_etcd_request_seconds',
      help: "Latency of this process's etcd requests, by op (errors included)",
      labelNames: ['op'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.etcdRequestErrors = new Counter({
      name: 'fleetts_etcd_request_errors_total',
      help: 'etcd requests that failed, by op and error code (unavailable: etcd not reached in time)',
      labelNames: ['op', 'code'],
      registers,
    });
    this.leaseKeepaliveSeconds = new Histogram({
      name: 'fleetts_lease_keepalive_seconds',
      help: 'Latency of lease keepalives that etcd answered (membership, engine leadership, announcements)',
      buckets: LATENCY_BUCKETS,
      registers,
    });
  }

  /** The content type of `text()` (Prometheus text format 0.0.4). */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** Every metric in the Prometheus text format. */
  text(): Promise<string> {
    return this.registry.metrics();
  }
}
