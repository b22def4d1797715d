// Watching a floating address on a dev cluster from outside the hosts: a sampler that reads every
// host's `ip addr` again and again (which hosts have the address up, every change, every sample
// with two holders), and one GET through the address on a fresh connection.
import { get } from 'node:http';
import { systemClock } from '../../src/lib/clock.js';
import type { HostPlan } from '../../src/dev/plan.js';
import { runCommand } from '../../src/dev/system.js';

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
