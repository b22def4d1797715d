// Discovery over the Kv: kept leases for announcers, `services/<service>/<instance>` written under
// them (and `upstreams/<host>/<service>`, each upstream's last reload), and level-triggered reads of
// a service's live instances.
import type { Clock } from '../lib/clock.js';
import type { Random } from '../lib/random.js';
import type { DecodeProblem } from './codec.js';
import { encodeValue } from './codec.js';
import { KeptLease } from './kept-lease.js';
import type { RegistryKeys } from './keys.js';
import type { KvCore } from './kv-core.js';
import { decodeService } from './kv-decode.js';
import type { Kv, Revision } from './kv.js';
import type {
  AnnouncedInstance,
  LeaseHandle,
  LeaseOptions,
  LeaseSource,
  ServiceAnnouncer,
  ServiceInstance,
  ServiceLister,
  ServiceReader,
  Subscription,
  UpstreamReload,
  UpstreamReporter,
  WatchedSet,
} from './registry.js';
import { watchRangeSet } from './watch-range.js';

export class KvServiceStore
  implements LeaseSource, ServiceAnnouncer, UpstreamReporter, ServiceReader, ServiceLister
{
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

  async listServiceInstances(service: string): Promise<WatchedSet<ServiceInstance>> {
    const range = this.#keys.instancesOf(service);
    const res = await this.#kv.range(range.start, range.end);
    const problems: DecodeProblem[] = [];
    const items: ServiceInstance[] = [];
    for (const kv of res.kvs) {
      const decoded = decodeService(this.#keys, kv);
      if (decoded.ok) items.push(decoded.value);
      else problems.push(decoded.problem);
    }
    return { revision: res.revision, items, problems };
  }

  async listAllServiceInstances(): Promise<WatchedSet<AnnouncedInstance>> {
    const range = this.#keys.tree('services');
    const res = await this.#kv.range(range.start, range.end);
    const problems: DecodeProblem[] = [];
    const items: AnnouncedInstance[] = [];
    for (const kv of res.kvs) {
      const decoded = decodeService(this.#keys, kv);
      if (decoded.ok) items.push({ ...decoded.value, modRevision: kv.modRevision });
      else problems.push(decoded.problem);
    }
    return { revision: res.revision, items, problems };
  }

  async openLease(options?: LeaseOptions): Promise<LeaseHandle> {
    const lease = await KeptLease.grant(this.#kv, this.#clock, { ...this.#core.leaseDefaults, ...options });
    this.#core.keep(lease);
    return lease;
  }

  async announce(lease: Pick<LeaseHandle, 'leaseId'>, instance: ServiceInstance): Promise<Revision> {
    const value = encodeValue('service', {
      v: 1,
      address: instance.address,
      ...(instance.machine === undefined ? {} : { machine: instance.machine }),
      ...(instance.unit === undefined ? {} : { unit: instance.unit }),
      since: instance.since,
    });
    const res = await this.#kv.txn({
      compare: [],
      success: [
        {
          kind: 'put',
          key: this.#keys.service(instance.service, instance.instance),
          value,
          lease: lease.leaseId,
        },
      ],
    });
    return res.revision;
  }

  async recordUpstreamReload(lease: Pick<LeaseHandle, 'leaseId'>, reload: UpstreamReload): Promise<Revision> {
    const value = encodeValue('upstream', {
      v: 1,
      servers: reload.servers,
      checksum: reload.checksum,
      revision: reload.revision,
      reloadedAt: reload.reloadedAt,
    });
    const key = this.#keys.upstream(reload.host, reload.service);
    const res = await this.#kv.txn({
      compare: [],
      success: [{ kind: 'put', key, value, lease: lease.leaseId }],
    });
    return res.revision;
  }

  async withdraw(service: string, instance: string, lease?: Pick<LeaseHandle, 'leaseId'>): Promise<void> {
    const key = this.#keys.service(service, instance);
    await this.#kv.txn({
      compare: lease === undefined ? [] : [{ target: 'lease', key, op: '==', lease: lease.leaseId }],
      success: [{ kind: 'delete', key }],
    });
  }

  async watchServiceInstances(
    service: string,
    onChange: (set: WatchedSet<ServiceInstance>) => void,
  ): Promise<Subscription> {
    return this.#core.track(
      await watchRangeSet<ServiceInstance>({
        kv: this.#kv,
        clock: this.#clock,
        random: this.#random,
        range: this.#keys.instancesOf(service),
        decode: (kv) => decodeService(this.#keys, kv),
        onChange,
      }),
    );
  }
}
