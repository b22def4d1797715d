// How one fleetd proves to another that it holds the cluster's token without sending it
// (docs/security.md). A peer's address comes from etcd, and whoever can write etcd can publish a
// machine record pointing at a listener of theirs: a bearer token sent there would be theirs. So
// peer requests carry an HMAC of the request under the token instead:
//
//   authorization: FleetPeer from=<machine>, to=<machine>, ts=<unix ms>, nonce=<hex>, sig=<hex>
//
// sig = HMAC-SHA256(token, "fleetts-peer-v1\n" method "\n" path "\n" from "\n" to "\n" ts "\n" nonce).
// The receiver accepts it only when `to` is itself, ts is within PEER_AUTH_WINDOW_MS of its clock
// and the nonce is new: a captured header cannot be replayed to another fleetd, nor later, nor
// for another path. The token never leaves the host.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export const PEER_AUTH_SCHEME = 'FleetPeer';
/** How far apart the hosts' clocks may be (they run NTP); also how long nonces are remembered. */
export const PEER_AUTH_WINDOW_MS = 30_000;
/** Nonces remembered at most (a peer sends a few requests a second at most). */
const MAX_NONCES = 100_000;

export interface PeerRequest {
  readonly method: string;
  /** The path as sent on the wire, query string included. */
  readonly path: string;
}

function signature(
  token: string,
  req: PeerRequest,
  from: string,
  to: string,
  ts: number,
  nonce: string,
): string {
  return createHmac('sha256', token)
    .update(['fleetts-peer-v1', req.method.toUpperCase(), req.path, from, to, String(ts), nonce].join('\n'))
    .digest('hex');
}

/** The authorization header of a request from machine `from` to machine `to`. */
export function signPeerRequest(
  token: string,
  req: PeerRequest,
  o: { readonly from: string; readonly to: string; readonly now: number; readonly nonce?: string },
): string {
  const nonce = o.nonce ?? randomBytes(16).toString('hex');
  const sig = signature(token, req, o.from, o.to, o.now, nonce);
  return `${PEER_AUTH_SCHEME} from=${o.from}, to=${o.to}, ts=${o.now}, nonce=${nonce}, sig=${sig}`;
}

export function isPeerAuthorization(header: string): boolean {
  return header.startsWith(`${PEER_AUTH_SCHEME} `);
}

const FIELD = /^(from|to|ts|nonce|sig)=([A-Za-z0-9_-]{1,128})$/;

/** Checks FleetPeer headers for one fleetd (its machine id and the cluster token). */
export class PeerAuthVerifier {
  readonly #token: string;
  readonly #self: string;
  readonly #now: () => number;
  /** nonce → when it may be forgotten (ts + window). */
  readonly #nonces = new Map<string, number>();
  #sweptAt = 0;

  constructor(o: { readonly token: string; readonly self: string; readonly now: () => number }) {
    this.#token = o.token;
    this.#self = o.self;
    this.#now = o.now;
  }

  /** undefined when the header is valid, else why it is refused (for the 401 answer). */
  verify(header: string, req: PeerRequest): string | undefined {
    if (!isPeerAuthorization(header)) return 'not a FleetPeer authorization';
    const fields = new Map<string, string>();
    for (const part of header.slice(PEER_AUTH_SCHEME.length + 1).split(',')) {
      const m = FIELD.exec(part.trim());
      if (m === null || fields.has(m[1] as string)) return 'a malformed FleetPeer authorization';
      fields.set(m[1] as string, m[2] as string);
    }
    const [from, to, tsText, nonce, sig] = ['from', 'to', 'ts', 'nonce', 'sig'].map((k) => fields.get(k));
    if (
      from === undefined ||
      to === undefined ||
      tsText === undefined ||
      nonce === undefined ||
      sig === undefined
    )
      return 'a FleetPeer authorization needs from, to, ts, nonce and sig';
    if (to !== this.#self) return `a peer request meant for machine ${to}, not this one (${this.#self})`;
    const ts = Number(tsText);
    const now = this.#now();
    if (!Number.isSafeInteger(ts) || Math.abs(now - ts) > PEER_AUTH_WINDOW_MS)
      return `a peer request stamped ${Number.isSafeInteger(ts) ? `${Math.round((now - ts) / 1000)} s` : 'at no time'} from this host's clock (at most ${PEER_AUTH_WINDOW_MS / 1000} s: check NTP on both hosts)`;
    const expected = Buffer.from(signature(this.#token, req, from, to, ts, nonce), 'hex');
    const given = Buffer.from(sig, 'hex');
    if (given.length !== expected.length || !timingSafeEqual(given, expected))
      return 'a peer request whose signature does not match this cluster’s token';
    this.#forget(now);
    if (this.#nonces.has(nonce)) return 'a peer request replayed (its nonce was used before)';
    if (this.#nonces.size >= MAX_NONCES) return 'too many peer requests in the last 30 s';
    this.#nonces.set(nonce, ts + PEER_AUTH_WINDOW_MS);
    return undefined;
  }

  #forget(now: number): void {
    if (now - this.#sweptAt < 1_000 && this.#nonces.size < MAX_NONCES) return;
    this.#sweptAt = now;
    for (const [nonce, until] of this.#nonces) if (until < now) this.#nonces.delete(nonce);
  }
}
