// GET /metrics through the API (inject): the Prometheus text and content type, under the API's
// bearer token like every route, served while the host is not registered, and in the OpenAPI document.
import test from 'ava';
import { buildApp } from '../../src/api/build-app.js';
import type { PeerClient } from '../../src/api/peer-client.js';
import { asMachineId } from '../../src/cluster/types.js';
import { FakeClock } from '../../src/lib/clock.js';
import { silentLogger } from '../../src/lib/logger.js';
import { FleetMetrics } from '../../src/metrics/fleet-metrics.js';
import { MemoryEtcd, MemoryRegistry } from '../../src/registry/memory-registry.js';
import { FakeLocalUnits } from '../api/fixture.js';
import { metricValue, parsePrometheusText } from '../helpers/prometheus-text.js';

const TOKEN = '0123456789abcdef0123456789abcdef';

test('GET /metrics serves the Prometheus text under the API token, also while unregistered', async (t) => {
  const clock = new FakeClock();
  const store = new MemoryEtcd({ clock });
  const metrics = new FleetMetrics();
  const registry = new MemoryRegistry({ store, metrics });
  const me = asMachineId('aaaa');
  await registry.register({
    id: me,
    ip: '10.0.0.1',
    metadata: {},
    version: 'test',
    startedAt: '2026-01-01T00:00:00Z',
  });
  metrics.observeCluster(registry);
  const peers: PeerClient = { get: () => Promise.reject(new Error('no peer in this test')) };
  const app = buildApp({
    registry,
    machineId: me,
    local: new FakeLocalUnits(),
    peers,
    registered: () => false,
    clock,
    log: silentLogger,
    auth: { kind: 'token', token: TOKEN },
    metrics,
  });
  try {
    const refused = await app.inject({ method: 'GET', url: '/metrics' });
    t.is(refused.statusCode, 401);
    const res = await app.inject({
      method: 'GET',
      url: '/metrics',
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    t.is(res.statusCode, 200);
    t.is(res.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
    const samples = parsePrometheusText(res.body);
    t.is(metricValue(samples, 'fleetts_machines', { state: 'up' }), 1);
    t.true((metricValue(samples, 'fleetts_etcd_request_seconds_count') ?? 0) >= 1);
    t.true((metricValue(samples, 'process_resident_memory_bytes') ?? 0) > 0);
    const doc = await app.inject({
      method: 'GET',
      url: '/openapi.json',
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    const paths = (JSON.parse(doc.body) as { paths: Record<string, unknown> }).paths;
    t.truthy(paths['/metrics'], 'listed in the OpenAPI document');
  } finally {
    await app.close();
  }
});
