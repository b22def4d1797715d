// What wakes the engine: one range watch per tree of the layout from a snapshot's revision, each
// batch of events turned into reasons for logs (level-triggered: the engine re-reads a snapshot).
import type { Clock } from '../lib/clock.js';
import type { Random } from '../lib/random.js';
import type { RegistryKeys, TreeName } from './keys.js';
import type { KvCore } from './kv-core.js';
import type { KeyValue, Kv, Revision } from './kv.js';
import type { ClusterWatcher, Subscription, Wake, WakeReason, WakeTopic } from './registry.js';
import { RangeWatch } from './watch-range.js';

export class KvClusterWatcher implements ClusterWatcher {
  readonly #core: KvCore;
  readonly #kv: Kv;
  readonly #keys: RegistryKeys;
  readonly #clock: Clock;
  readonly #random: Random;

  constructor(core: KvCore) {
    this.#core = core;
    this.#kv = core.kv;
    this.#keys = core.keys;
    this.#clock = core.clock;
    this.#random = core.random;
  }

  watchCluster(
    topics: readonly WakeTopic[],
    fromRevision: Revision,
    onWake: (wake: Wake) => void,
  ): Subscription {
    const trees: TreeName[] = [];
    for (const topic of new Set(topics)) {
      if (topic === 'machines') trees.push('machines', 'machineMetadata');
      else trees.push(topic);
    }
    const watches = trees.map(
      (tree) =>
        new RangeWatch({
          kv: this.#kv,
          clock: this.#clock,
          random: this.#random,
          range: this.#keys.tree(tree),
          after: fromRevision,
          onEvents: (events) => {
            const reasons: WakeReason[] = [];
            let revision = fromRevision;
            for (const event of events) {
              revision = Math.max(revision, event.kv.modRevision);
              const reason = this.#wakeReason(event.type, event.kv);
              if (reason !== undefined) reasons.push(reason);
            }
            if (reasons.length > 0) onWake({ revision, reasons });
          },
          resync: async () => {
            const res = await this.#kv.range(this.#keys.leader());
            onWake({ revision: res.revision, reasons: [{ kind: 'resync' }] });
            return res.revision;
          },
        }),
    );
    return this.#core.track({ close: () => watches.forEach((w) => w.close()) });
  }

  #wakeReason(type: 'put' | 'delete', kv: KeyValue): WakeReason | undefined {
    const inspected = this.#keys.inspect(kv.key);
    if (!inspected.ok) return { kind: 'invalid_key', key: kv.key };
    const parsed = inspected.parsed;
    switch (parsed.kind) {
      case 'machine':
        if (type === 'delete') return { kind: 'machine_left', machine: parsed.machine };
        return { kind: kv.version === 1 ? 'machine_joined' : 'machine_changed', machine: parsed.machine };
      case 'machine-metadata':
        return { kind: 'machine_changed', machine: parsed.machine };
      case 'unit':
        return { kind: 'unit_changed', unit: parsed.unit };
      case 'status':
        return { kind: 'status_changed', unit: parsed.unit, machine: parsed.machine };
      case 'assignment':
        return { kind: 'assignment_changed', unit: parsed.unit, machine: parsed.machine };
      case 'unschedulable':
        return { kind: 'unschedulable_changed', unit: parsed.unit };
      case 'drain':
        return { kind: 'drain_changed', machine: parsed.machine };
      case 'service':
        return { kind: 'service_changed', service: parsed.service, instance: parsed.instance };
      default:
        return undefined;
    }
  }
}
