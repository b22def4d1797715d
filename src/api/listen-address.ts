// Where the TCP API listens: `host:port` parsed as an address (config.ts checks the setting with it)
// and, at start, the host resolved once to the addresses serve-api binds and judges. "Loopback"
// is a property of addresses, never of how a name is spelled (`127.0.0.1.evil.com` is a DNS name).
import { lookup as dnsLookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';
import { UsageError } from '../lib/errors.js';

export interface ListenAddress {
  /** An IP address (IPv6 without brackets) or a DNS name, as given. */
  readonly host: string;
  /** 0–65535; 0 lets the kernel pick a free port (tests). */
  readonly port: number;
}

/** A resolved address: what the listener binds, and whether it is loopback. */
export interface ResolvedAddress {
  readonly address: string;
  readonly family: 4 | 6;
  readonly loopback: boolean;
}

/** dns.lookup with `all`: every address a name resolves to, in the resolver's order. */
export type LookupAll = (host: string) => Promise<readonly { address: string; family: number }[]>;

const LABEL = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
const EXAMPLE = 'use host:port, such as 127.0.0.1:4003, 0.0.0.0:4003, [::1]:4003 or fleet1.example.com:4003';

/** Parses `host:port` (`[v6]:port` for IPv6); the message says what is wrong and what is right. */
export function parseListenAddress(s: string): { ok: ListenAddress } | { problem: string } {
  let host: string;
  let portText: string;
  if (s.startsWith('[')) {
    const close = s.indexOf(']');
    if (close < 0) return { problem: `"[" without "]"; ${EXAMPLE}` };
    host = s.slice(1, close);
    if (isIP(host) !== 6) return { problem: `"${host}" in brackets is not an IPv6 address; ${EXAMPLE}` };
    if (s[close + 1] !== ':') return { problem: `no port after [${host}]; ${EXAMPLE}` };
    portText = s.slice(close + 2);
  } else {
    const colon = s.lastIndexOf(':');
    if (colon < 0) return { problem: `no port; ${EXAMPLE}` };
    host = s.slice(0, colon);
    portText = s.slice(colon + 1);
    if (host.includes(':')) return { problem: `put an IPv6 address in brackets, as in [::1]:4003` };
  }
  if (!/^\d+$/.test(portText)) return { problem: `port "${portText}" is not a number; ${EXAMPLE}` };
  const port = Number(portText);
  if (port > 65535) return { problem: `port ${port} is out of range; use 1–65535 (or 0 for any free port)` };
  if (host === '') return { problem: `no host; ${EXAMPLE}` };
  if (isIP(host) === 0) {
    const labels = host.replace(/\.$/, '').split('.');
    if (host.length > 253 || !labels.every((l) => LABEL.test(l)))
      return { problem: `"${host}" is neither an IP address nor a host name; ${EXAMPLE}` };
    // inet_aton would read `127.1` or `2130706433` as an IPv4 address; DNS names never end in a number.
    if (/^\d+$/.test(labels.at(-1) ?? ''))
      return { problem: `"${host}" is not an IPv4 address (four numbers 0–255); ${EXAMPLE}` };
  }
  return { ok: { host, port } };
}

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6'); // IPv4-mapped ::ffff:127.x.y.z are matched by the IPv4 rule

/** True for 127.0.0.0/8, ::1 and IPv4-mapped loopback; false for anything else (0.0.0.0, ::, names). */
export function isLoopbackAddress(address: string): boolean {
  const ip = address.replace(/%.*$/, ''); // a zone (fe80::1%eth0) does not change the address
  const family = isIP(ip);
  if (family === 0) return false;
  return LOOPBACK.check(ip, family === 6 ? 'ipv6' : 'ipv4');
}

const systemLookup: LookupAll = (host) => dnsLookup(host, { all: true, verbatim: true });

/**
 * The addresses `host` stands for: itself when it is an IP address, else every address the name
 * resolves to now. The caller binds the first (as the OS would for the name) and judges them all,
 * so a check and a bind never see two different answers. A name that does not resolve is a
 * UsageError naming it.
 */
export async function resolveListenHost(
  host: string,
  lookup: LookupAll = systemLookup,
): Promise<readonly [ResolvedAddress, ...ResolvedAddress[]]> {
  const family = isIP(host);
  if (family !== 0)
    return [{ address: host, family: family === 6 ? 6 : 4, loopback: isLoopbackAddress(host) }];
  let found: readonly { address: string; family: number }[];
  try {
    found = await lookup(host);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new UsageError(
      `cannot resolve ${host}, the API's listen host (${code}); use an IP address such as 127.0.0.1 or 0.0.0.0`,
      { cause: err },
    );
  }
  const out = found.map((a): ResolvedAddress => ({
    address: a.address,
    family: a.family === 6 ? 6 : 4,
    loopback: isLoopbackAddress(a.address),
  }));
  const [first, ...rest] = out;
  if (first === undefined)
    throw new UsageError(
      `${host}, the API's listen host, resolves to no address; use an IP address such as 127.0.0.1`,
    );
  return [first, ...rest];
}
