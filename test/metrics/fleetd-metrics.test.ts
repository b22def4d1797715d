// GET /metrics of a REAL fleetd (the built binary) on a real etcd, over TCP with the API token:
// parsed as Prometheus text, it shows the host up, a started unit placed, started and active, the
// engine leading, etcd requests and keepalives timed, and a crashing unit's Restart= restarts.
import test from 'ava';
import { useEtcd } from '../helpers/etcd.js';
import { startTcpFleetd, type TcpFleetd } from '../helpers/fleetd.js';
import { metricValue, parsePrometheusText, type Sample } from '../helpers/prometheus-text.js';
import { waitFor } from '../helpers/wait.js';

const etcd = useEtcd(test);

async function scrape(f: TcpFleetd): Promise<Sample[]> {
  const res = await f.request('GET', '/metrics');
  if (res.status !== 200) throw new Error(`GET /metrics answered ${res.status}: ${await res.text()}`);
  return parsePrometheusText(await res.text());
}

async function until(f: TcpFleetd, what: string, check: (s: Sample[]) => boolean): Promise<Sample[]> {
  return waitFor(what, async () => {
    const s = await scrape(f);
    return check(s) ? s : undefined;
  });
}

test('a real fleetd serves its metrics under the API token, and they follow a unit started and a crashing one', async (t) => {
  const f = await startTcpFleetd({ etcdEndpoint: etcd().endpoint, machineId: 'c'.repeat(32) });
  try {
    const anonymous = await fetch(`${f.url}/metrics`);
    t.is(anonymous.status, 401, 'the TCP API token guards /metrics too');
    // The engine can lead before the lease's first renewal (a third of the TTL in): wait for both.
    let s = await until(
      f,
      'the engine leading and the lease renewed once',
      (x) =>
        metricValue(x, 'fleetts_engine_leader') === 1 &&
        (metricValue(x, 'fleetts_lease_keepalive_seconds_count') ?? 0) >= 1,
    );
    t.is(metricValue(s, 'fleetts_machines', { state: 'up' }), 1);
    t.is(metricValue(s, 'fleetts_units'), 0);
    t.true((metricValue(s, 'fleetts_lease_keepalive_seconds_sum') ?? 0) > 0, 'keepalives are timed');
    t.true((metricValue(s, 'fleetts_etcd_request_seconds_count', { op: 'txn' }) ?? 0) >= 1);
    t.true((metricValue(s, 'process_resident_memory_bytes') ?? 0) > 0);
    t.true((metricValue(s, 'nodejs_heap_size_used_bytes') ?? 0) > 0);

    const put = await f.request('PUT', '/v1/units', {
      units: [
        { name: 'sleep.unit', text: '[Service]\nExecStart=/bin/sleep 1000\n', target: 'launched' },
        {
          name: 'crash.unit',
          text: '[Service]\nExecStart=/bin/sh -c "exit 3"\nRestart=on-failure\nRestartSec=100ms\nStartLimitBurst=3\n',
          target: 'launched',
        },
      ],
    });
    t.is(put.status, 200, await put.text());
    s = await until(
      f,
      'sleep.unit launched and crash.unit failed after its restarts',
      (x) =>
        metricValue(x, 'fleetts_units', { target: 'launched', state: 'launched' }) === 1 &&
        metricValue(x, 'fleetts_unit_statuses', { active: 'failed' }) === 1 &&
        (metricValue(x, 'fleetts_supervisor_restarts_total', { runtime: 'process' }) ?? 0) >= 3,
    );
    t.is(metricValue(s, 'fleetts_engine_placements_total', { kind: 'new' }), 2);
    t.is(metricValue(s, 'fleetts_agent_actions_total', { action: 'start', result: 'ok' }), 2);
    t.is(metricValue(s, 'fleetts_unit_statuses', { active: 'active' }), 1);
    t.true((metricValue(s, 'fleetts_engine_pass_seconds_count', { outcome: 'applied' }) ?? 0) >= 1);
    t.is(metricValue(s, 'fleetts_failover_seconds_count'), 0, 'no failover on one host');
    // Destroyed, so that no unit outlives the test under its supervisor.
    for (const name of ['sleep.unit', 'crash.unit'])
      t.is((await f.request('DELETE', `/v1/units/${name}`)).status, 204);
    await until(f, 'the units gone', (x) => metricValue(x, 'fleetts_unit_statuses') === 0);
  } finally {
    await f.stop();
  }
});
