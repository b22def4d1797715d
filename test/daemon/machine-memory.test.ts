// A fleetd records its host's total memory with its machine (machines/<id>, written at
// registration): GET /v1/machines and the dashboard's host cards show it. Through the real fleetd
// binary and a real etcd; an older fleetd's record without it is still read (pure decode).
import { totalmem } from 'node:os';
import test from 'ava';
import { decodeValue, encodeValue } from '../../src/registry/codec.js';
import { useEtcd } from '../helpers/etcd.js';
import { startTcpFleetd } from '../helpers/fleetd.js';

const etcd = useEtcd(test);

test('GET /v1/machines has the memory of each host, as its fleetd read it at start', async (t) => {
  const fleetd = await startTcpFleetd({ etcdEndpoint: etcd().endpoint, machineId: 'm'.repeat(32) });
  t.teardown(() => fleetd.stop());
  const res = await fleetd.request('GET', '/v1/machines');
  t.is(res.status, 200);
  const body = (await res.json()) as { machines: { id: string; memoryBytes?: number }[] };
  t.deepEqual(
    body.machines.map((m) => [m.id, m.memoryBytes]),
    [['m'.repeat(32), totalmem()]],
  );
});

test('a machine record without memory (an older fleetd) still decodes, and has none', (t) => {
  const old = encodeValue('machine', {
    v: 1,
    ip: '10.0.0.1',
    metadata: {},
    version: '0.1.0',
    startedAt: '2026-12-06T12:00:00.000Z',
  });
  const decoded = decodeValue('machine', 'machines/x', old);
  t.true(decoded.ok);
  t.is(decoded.ok ? decoded.value.memoryBytes : 'bad', undefined);
});
