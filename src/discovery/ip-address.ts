// The floating address on a real interface: `ip addr` (iproute2) adds, lists and removes it, and
// `arping -U` (iputils-arping) announces it by gratuitous ARP. The edge behind AddressControl; the
// driver (floating-address.ts) decides when, and tests give it a fake.
import type { Clock } from '../lib/clock.js';
import { runFile } from '../lib/run-file.js';
import { DiscoveryError } from './discovery-error.js';

/** An IPv4 address with its prefix length on one interface of this host. */
export interface FloatingTarget {
  readonly address: string;
  readonly prefixLength: number;
  readonly device: string;
}

export interface AddressControl {
  /** Whether the address is on the interface (with any prefix length). */
  present(): Promise<boolean>;
  /** Adds it; already there is not an error. */
  add(): Promise<void>;
  /** Removes it (every prefix length it is there with); absent is not an error. */
  remove(): Promise<void>;
  /**
   * Tells the segment that the address is now at this host's MAC (gratuitous ARP), so that
   * neighbours and switches stop sending its packets to the old holder. Stops when `signal` aborts:
   * it must never go on once the address is removed.
   */
  announce(signal: AbortSignal): Promise<void>;
}

/** Gratuitous ARPs sent after an add, one a second: one may be lost, a switch may learn late. */
export const ARP_COUNT = 3;
const IP_TIMEOUT_MS = 2_000;

export function describeTarget(t: FloatingTarget): string {
  return `${t.address}/${t.prefixLength} on ${t.device}`;
}

/** The prefix lengths `address` has in `ip -o -4 addr show` output (usually none or one). */
export function prefixLengthsOf(output: string, address: string): number[] {
  const found: number[] = [];
  for (const m of output.matchAll(/\binet (\d+\.\d+\.\d+\.\d+)\/(\d+)/g))
    if (m[1] === address) found.push(Number(m[2]));
  return found;
}

export class IpAddressControl implements AddressControl {
  readonly #t: FloatingTarget;
  readonly #clock: Clock;
  readonly #ip: string;
  readonly #arping: string;

  constructor(deps: { target: FloatingTarget; clock: Clock; ipPath?: string; arpingPath?: string }) {
    this.#t = deps.target;
    this.#clock = deps.clock;
    this.#ip = deps.ipPath ?? 'ip';
    this.#arping = deps.arpingPath ?? 'arping';
  }

  async present(): Promise<boolean> {
    return (await this.#prefixLengths()).length > 0;
  }

  async add(): Promise<void> {
    const { address, prefixLength, device } = this.#t;
    const r = await this.#run(this.#ip, ['addr', 'add', `${address}/${prefixLength}`, 'dev', device]);
    if (r.ok || (await this.present().catch(() => false))) return;
    throw this.#failed('add', r.stderr);
  }

  async remove(): Promise<void> {
    for (const len of await this.#prefixLengths()) {
      const { address, device } = this.#t;
      const r = await this.#run(this.#ip, ['addr', 'del', `${address}/${len}`, 'dev', device]);
      if (!r.ok && (await this.#prefixLengths()).includes(len)) throw this.#failed('remove', r.stderr);
    }
  }

  async announce(signal: AbortSignal): Promise<void> {
    const { address, device } = this.#t;
    const r = await runFile(
      { file: this.#arping, args: ['-U', '-c', String(ARP_COUNT), '-I', device, address] },
      { clock: this.#clock, timeoutMs: (ARP_COUNT + 2) * 1000, signal },
    );
    if (!r.ok && !signal.aborted) throw this.#failed('announce (arping)', r.stderr);
  }

  async #prefixLengths(): Promise<number[]> {
    const r = await this.#run(this.#ip, ['-o', '-4', 'addr', 'show', 'dev', this.#t.device]);
    if (!r.ok) throw this.#failed('list', r.stderr);
    return prefixLengthsOf(r.stdout, this.#t.address);
  }

  #run(file: string, args: string[]): ReturnType<typeof runFile> {
    return runFile({ file, args }, { clock: this.#clock, timeoutMs: IP_TIMEOUT_MS });
  }

  #failed(op: string, stderr: string): DiscoveryError {
    return new DiscoveryError(
      'command_failed',
      `cannot ${op} ${describeTarget(this.#t)}: ${stderr || 'no output'} (needs root or CAP_NET_ADMIN, and the interface must exist)`,
      { recoverable: true },
    );
  }
}
