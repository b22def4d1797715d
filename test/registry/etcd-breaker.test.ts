// The etcd connection's circuit breaker opens only when etcd is unavailable (issue 14, item 5): big
// or corrupt values that fail a read must not turn every later read into "circuit breaker is open".
import test from 'ava';
import {
  GRPCCancelledError,
  GRPCDeadlineExceededError,
  GRPCInternalError,
  GRPCResourceExhastedError,
  GRPCUnavailableError,
} from 'etcd3';
import { systemClock } from '../../src/lib/clock.js';
import { createRandom } from '../../src/lib/random.js';
import { EtcdKv, isEtcdUnavailable } from '../../src/registry/etcd-kv.js';
import { KvRegistry } from '../../src/registry/kv-registry.js';
import { randomPrefix, useEtcd } from '../helpers/etcd.js';

const etcd = useEtcd(test);

test('only unavailability counts for the breaker, not errors of one call', (t) => {
  t.true(isEtcdUnavailable(new GRPCUnavailableError('14 UNAVAILABLE: No connection established')));
  t.true(isEtcdUnavailable(new GRPCDeadlineExceededError('4 DEADLINE_EXCEEDED: Deadline exceeded')));
  t.true(
    isEtcdUnavailable(new GRPCResourceExhastedError('8 RESOURCE_EXHAUSTED: etcdserver: too many requests')),
  );
  t.false(
    isEtcdUnavailable(
      new GRPCResourceExhastedError(
        '8 RESOURCE_EXHAUSTED: Received message larger than max (4200242 vs 4194304)',
      ),
    ),
  );
  t.false(isEtcdUnavailable(new GRPCCancelledError('1 CANCELLED: Cancelled on client')));
  t.false(isEtcdUnavailable(new GRPCInternalError('13 INTERNAL: oops')));
});

test('values over 4 MiB in one tree are read and reported; reads go on with no breaker opened', async (t) => {
  const prefix = randomPrefix();
  const kv = new EtcdKv({ endpoints: [etcd().endpoint] }, systemClock);
  const registry = new KvRegistry({
    kv: new EtcdKv({ endpoints: [etcd().endpoint] }, systemClock),
    clock: systemClock,
    random: createRandom(1),
    prefix,
  });
  t.teardown(async () => {
    kv.close();
    await registry.close();
  });
  // Three values under etcd's 1.5 MiB request limit make one response over grpc-js's default
  // 4 MiB: before the fix every snapshot failed, and the breaker then failed every other read.
  const big = 'x'.repeat(1_400_000);
  for (const n of [1, 2, 3])
    await kv.txn({
      compare: [],
      success: [{ kind: 'put', key: `${prefix}units/big${n}.service`, value: big }],
    });

  for (let i = 0; i < 5; i++) {
    const snapshot = await registry.snapshot();
    t.is(snapshot.units.size, 0);
    t.deepEqual(
      snapshot.problems.map((p) => p.name),
      ['big1.service', 'big2.service', 'big3.service'],
    );
    t.regex(
      snapshot.problems[0]?.message ?? '',
      /unit value of 1400000 bytes is larger than any fleetts writes/,
    );
    t.deepEqual((await registry.listMachines()).items, []);
  }
});
