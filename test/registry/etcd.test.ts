// The registry contract against a REAL etcd on loopback (one per file; one key prefix per test).
import test from 'ava';
import { Etcd3 } from 'etcd3';
import { systemClock } from '../../src/lib/clock.js';
import { createRandom } from '../../src/lib/random.js';
import { EtcdKv } from '../../src/registry/etcd-kv.js';
import type { Kv, LeaseId } from '../../src/registry/kv.js';
import { KvRegistry } from '../../src/registry/kv-registry.js';
import { RegistryError } from '../../src/registry/registry-error.js';
import type { Registry } from '../../src/registry/registry.js';
import { randomPrefix, useEtcd } from '../helpers/etcd.js';
import { registryContract, type ContractEnv } from './contract.js';
import { corruptKeysContract } from './corrupt-contract.js';

const etcd = useEtcd(test);

/** Real etcd with one injectable fault: keepalives that never arrive (a frozen host). */
class DroppingKv implements Kv {
  drop = false;
  constructor(readonly inner: EtcdKv) {}
  get maxTxnOps(): number {
    return this.inner.maxTxnOps;
  }
  range: Kv['range'] = (key, end, options) => this.inner.range(key, end, options);
  txn: Kv['txn'] = (request) => this.inner.txn(request);
  watch: Kv['watch'] = (key, end, start, handlers, options) =>
    this.inner.watch(key, end, start, handlers, options);
  leaseGrant: Kv['leaseGrant'] = (ttl) => this.inner.leaseGrant(ttl);
  leaseRevoke: Kv['leaseRevoke'] = (id) => this.inner.leaseRevoke(id);
  async leaseKeepAlive(id: LeaseId, options: { timeoutMs: number }): Promise<number> {
    if (!this.drop) return this.inner.leaseKeepAlive(id, options);
    await systemClock.sleep(options.timeoutMs);
    throw new RegistryError('unavailable', 'keepalive dropped (injected fault)');
  }
  close(): void {
    this.inner.close();
  }
}

function etcdEnv(): ContractEnv {
  const prefix = randomPrefix();
  const endpoint = etcd().endpoint;
  const opened = new Map<Registry, DroppingKv>();
  const kvFor = (): DroppingKv => new DroppingKv(new EtcdKv({ endpoints: [endpoint] }, systemClock));
  const raw = kvFor();
  const kvs: DroppingKv[] = [];
  return {
    connect(options = {}) {
      const kv = kvFor();
      const r = new KvRegistry({
        kv,
        clock: systemClock,
        random: createRandom(1),
        prefix,
        ...(options.lease === undefined ? {} : { lease: options.lease }),
      });
      opened.set(r, kv);
      return r;
    },
    pass: (ms) => systemClock.sleep(ms),
    dropKeepalives(registry) {
      const kv = opened.get(registry);
      if (kv === undefined) throw new Error('not a registry of this env');
      kv.drop = true;
    },
    async rawPut(relativeKey, value) {
      await raw.txn({ compare: [], success: [{ kind: 'put', key: prefix + relativeKey, value }] });
    },
    kv() {
      const kv = kvFor();
      kvs.push(kv);
      return { kv, prefix };
    },
    async compact() {
      const client = new Etcd3({ hosts: endpoint });
      try {
        const revision = (await raw.range(prefix)).revision;
        await client.kv.compact({ revision, physical: true });
      } finally {
        client.close();
      }
    },
    async close() {
      await Promise.all([...opened.keys()].map((r) => r.close()));
      kvs.forEach((kv) => kv.close());
      raw.close();
    },
  };
}

registryContract(test, () => Promise.resolve(etcdEnv()));
corruptKeysContract(test, () => Promise.resolve(etcdEnv()));
