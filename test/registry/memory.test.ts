// The registry contract on the in-memory etcd (fake clock), plus what only the fake offers:
// compaction and per-client faults.
import test from 'ava';
import { FakeClock } from '../../src/lib/clock.js';
import type { MemoryKv } from '../../src/registry/memory-kv.js';
import { MemoryEtcd, MemoryRegistry } from '../../src/registry/memory-registry.js';
import type { Registry } from '../../src/registry/registry.js';
import { registryContract, type ContractEnv } from './contract.js';
import { corruptKeysContract } from './corrupt-contract.js';

function memoryEnv(): ContractEnv {
  const clock = new FakeClock();
  const store = new MemoryEtcd({ clock });
  const prefix = '/fleetts-test/mem/';
  const opened: MemoryRegistry[] = [];
  const raw = new MemoryRegistry({ store, prefix });
  const kvs: MemoryKv[] = [];
  return {
    connect(options = {}) {
      const r = new MemoryRegistry({
        store,
        prefix,
        ...(options.lease === undefined ? {} : { lease: options.lease }),
      });
      opened.push(r);
      return r;
    },
    pass: (ms) => clock.advance(ms),
    dropKeepalives(registry: Registry) {
      (registry as MemoryRegistry).setFaults({ dropKeepalives: true });
    },
    async rawPut(relativeKey, value) {
      await store.client().txn({ compare: [], success: [{ kind: 'put', key: prefix + relativeKey, value }] });
    },
    kv() {
      const kv = store.client();
      kvs.push(kv);
      return { kv, prefix };
    },
    compact() {
      store.compact(store.revision);
      return Promise.resolve();
    },
    async close() {
      kvs.forEach((kv) => kv.close());
      await Promise.all([raw, ...opened].map((r) => r.close()));
    },
  };
}

registryContract(test, () => Promise.resolve(memoryEnv()));
corruptKeysContract(test, () => Promise.resolve(memoryEnv()));
