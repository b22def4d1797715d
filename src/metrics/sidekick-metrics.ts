// The metrics of the `fleetts announce` and `fleetts upstream` sidekicks, served by each on its
// own `--metrics-listen` address (serve-metrics.ts; docs/metrics.md says why not through fleetd).
import { Counter } from 'prom-client';
import { ProcessMetrics } from './process-metrics.js';

export class SidekickMetrics extends ProcessMetrics {
  readonly announceChecks: Counter<'service' | 'result'>;
  readonly upstreamRenders: Counter<'service' | 'result'>;
  readonly upstreamReloads: Counter<'service' | 'result'>;

  constructor(options: { defaultMetrics?: boolean } = {}) {
    super(options);
    const registers = [this.registry];
    this.announceChecks = new Counter({
      name: 'fleetts_announce_checks_total',
      help: 'Health checks of the announced backend, by result (pass, fail)',
      labelNames: ['service', 'result'],
      registers,
    });
    this.upstreamRenders = new Counter({
      name: 'fleetts_upstream_renders_total',
      help: 'Upstream files rendered from the live instances, by result: unchanged (nginx runs it already), applied (swapped in and reloaded), invalid (refused by the check command), reload_failed, error (not written)',
      labelNames: ['service', 'result'],
      registers,
    });
    this.upstreamReloads = new Counter({
      name: 'fleetts_upstream_reloads_total',
      help: 'nginx reloads (the reload command), by result (ok, failed)',
      labelNames: ['service', 'result'],
      registers,
    });
  }
}
