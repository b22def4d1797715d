// A floating address on a dev cluster, watched from outside the hosts: the cluster the tests share
// (3 hosts, etcd outside them, a fleetd lease of 4 s, the address .250 of the bridge's subnet), a
// sampler that reads every host's `ip addr` again and again (which hosts have the address up, every
// change, every sample with two holders), and one GET through the address on a fresh connection.
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { asUnitName } from '../../src/cluster/types.js';
import { systemClock } from '../../src/lib/clock.js';
import { DevCluster } from '../../src/dev/dev-cluster.js';
import type { ClusterPlan, HostPlan } from '../../src/dev/plan.js';
import { runCommand } from '../../src/dev/system.js';
import { createEtcdRegistry, type EtcdRegistry } from '../../src/registry/etcd-registry.js';
import { unitHash } from '../../src/unit/hash.js';
import { ROOT } from './cli.js';

/** A 3-host dev cluster with the floating address's sampler running and `units` launched. */
export class FloatingCluster {
  private constructor(
    readonly root: string,
    readonly dev: DevCluster,
    readonly plan: ClusterPlan,
    readonly registry: EtcdRegistry,
    readonly sampler: AddressSampler,
    readonly vip: string,
  ) {}

  /**
   * Brings the cluster up in a fresh directory (`tag` names it) and launches the units that
   * `units(root, vip)` returns. Needs root and a built dist/ (the hosts run bin/).
   */
  static async up(
    tag: string,
    units: (root: string, vip: string) => Promise<Record<string, string>>,
  ): Promise<FloatingCluster> {
    if (process.getuid?.() !== 0)
      throw new Error('the floating address tests need root (network namespaces, ip addr); run them as root');
    if (!existsSync(join(ROOT, 'dist', 'cli', 'main.js')))
      throw new Error(
        `run \`npm run build\` in ${ROOT} first: the hosts run bin/fleetd.js and bin/fleetts.js`,
      );
    const root = await mkdtemp(join(tmpdir(), `fleetts-${tag}-`));
    await chmod(root, 0o755);
    const dev = new DevCluster({
      stateDir: join(root, 'state'),
      clock: systemClock,
      progress: () => undefined,
      contextFile: join(root, 'context.json'),
    });
    let c: FloatingCluster | undefined;
    try {
      // etcd outside the hosts: the faults the tests make are the holder's host's, not etcd's.
      const { plan } = await dev.up({
        nodes: 3,
        leaseTtlMs: 4_000,
        sharedPath: join(root, 'shared'),
        etcd: 'external',
        timeoutMs: 60_000,
      });
      const vip = plan.bridge.ip.replace(/\.1$/, '.250');
      const registry = createEtcdRegistry({ endpoints: [...plan.etcd.endpoints], requestTimeoutMs: 2_000 });
      c = new FloatingCluster(root, dev, plan, registry, new AddressSampler(plan.hosts, vip), vip);
      for (const [name, text] of Object.entries(await units(root, vip)))
        await registry.createUnit({ name: asUnitName(name), hash: unitHash(text), target: 'launched' }, text);
      return c;
    } catch (err) {
      if (c !== undefined) await c.down();
      else {
        await dev.down().catch(() => undefined);
        await rm(root, { recursive: true, force: true });
      }
      throw err;
    }
  }

  /** The hosts where `unit` is active now (from etcd: the CLI's endpoint may be a dead host's). */
  async activeHosts(unit: string): Promise<HostPlan[]> {
    const statuses = await this.registry.listStatuses(asUnitName(unit));
    return statuses.items
      .filter((s) => s.active === 'active')
      .map((s) => this.plan.hosts.find((h) => h.machineId === String(s.machine)))
      .filter((h): h is HostPlan => h !== undefined);
  }

  async down(): Promise<void> {
    await this.sampler.stop();
    await this.registry.close().catch(() => undefined);
    await this.dev.down().catch((err: unknown) => console.error('dev down failed:', err));
    await rm(this.root, { recursive: true, force: true });
  }
}

/** Which hosts have the address up, read from every host's namespace in parallel, again and again. */
export class AddressSampler {
  samples = 0;
  /** Every sample in which more than one host had the address. */
  readonly overlaps: string[] = [];
  /** Each change of holders: when (ms since the epoch) and who. */
  readonly changes: { at: number; hosts: string[] }[] = [];
  #running = true;
  readonly #done: Promise<void>;

  constructor(
    readonly hosts: readonly HostPlan[],
    readonly address: string,
  ) {
    this.#done = this.#loop();
  }

  get current(): string[] {
    return this.changes.at(-1)?.hosts ?? [];
  }

  /** The samples taken from now on (to prove a phase was sampled). */
  mark(): () => number {
    const from = this.samples;
    return () => this.samples - from;
  }

  /** The holders' history from `t0` (ms since the epoch): `+ms:host` entries, `-` for nobody. */
  history(t0: number): string {
    return this.changes
      .filter((c) => c.at >= t0)
      .map((c) => `+${c.at - t0}:${c.hosts.join('+') || '-'}`)
      .join(' ');
  }

  async stop(): Promise<void> {
    this.#running = false;
    await this.#done;
  }

  async #loop(): Promise<void> {
    while (this.#running) {
      const up = await Promise.all(this.hosts.map((h) => hasAddress(h, this.address)));
      const hosts = this.hosts.filter((_, i) => up[i]).map((h) => h.name);
      this.samples++;
      const at = Date.now();
      if (hosts.length > 1) this.overlaps.push(`${new Date(at).toISOString()} ${hosts.join(' + ')}`);
      if (hosts.join() !== this.current.join() || this.changes.length === 0) this.changes.push({ at, hosts });
      // Sampling cadence only (three `ip` processes per sample); nothing is asserted on time.
      await systemClock.sleep(20);
    }
  }
}

export async function hasAddress(host: HostPlan, address: string): Promise<boolean> {
  const r = await runCommand(['ip', '-n', host.netns, '-o', '-4', 'addr', 'show', 'dev', 'eth0'], {
    allowFail: true,
  });
  return r.stdout.includes(`inet ${address}/`);
}

/** One GET to http://ADDRESS/ from outside the hosts, on a fresh connection: the body. */
export function getThrough(address: string, path = '/'): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = get({ host: address, port: 80, path, agent: false, timeout: 2_000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve(body));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
  });
}
