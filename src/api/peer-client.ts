// How one fleetd reaches another's API (to serve a unit's status and journal from the unit's own
// host). fleetd builds one with the cluster's token or TLS client certificate; tests pass their own.
import type { SelfLeaseReport } from '../agent/peer-check.js';
import { connect } from 'node:net';
import { FleetError } from '../lib/errors.js';
import {
  parseEndpoint,
  readText,
  sendRequest,
  type HttpResponse,
  type TlsFiles,
  type TransportOptions,
} from './http-transport.js';
import { signPeerRequest } from './peer-auth.js';
import { peerViewsResponse, selfLeaseResponse } from './schemas.js';
import type { PeerViewsReport } from '../daemon/peer-watch.js';

/** Where a peer is: its machine id (what a signed request is meant for) and API address. */
export interface PeerAddress {
  readonly id: string;
  /** A machine's registered address, e.g. `http://10.0.0.2:4003`. */
  readonly apiAddress: string;
}

export interface PeerClient {
  /**
   * GETs `path` from the fleetd API of `peer` and returns the response with its body unread.
   * Throws a FleetError (`unreachable`) when the peer cannot be reached or sends no headers
   * within `timeoutMs`.
   */
  get(
    peer: PeerAddress,
    path: string,
    options?: { readonly signal?: AbortSignal; readonly timeoutMs?: number },
  ): Promise<HttpResponse>;
}

/**
 * A client for this fleetd's peers. With the cluster token, each request carries a FleetPeer
 * signature of itself (peer-auth.ts), never the token: a peer's address is read from etcd, and
 * whoever can write etcd could point it anywhere. With TLS, the client certificate is presented.
 */
export function createPeerClient(
  o: {
    readonly token?: string;
    readonly tls?: TlsFiles;
    /** This fleetd's machine id (the `from` of signed requests). */
    readonly self?: string;
    readonly now?: () => number;
  } = {},
): PeerClient {
  const transport: TransportOptions = o.tls === undefined ? {} : { tls: o.tls };
  const now = o.now ?? Date.now;
  return {
    get: (peer, path, options = {}) => {
      const endpoint = parseEndpoint(peer.apiAddress);
      const wirePath = endpoint.kind === 'tcp' ? endpoint.base + path : path;
      const headers =
        o.token === undefined
          ? {}
          : {
              authorization: signPeerRequest(
                o.token,
                { method: 'GET', path: wirePath },
                { from: o.self ?? 'unknown', to: peer.id, now: now() },
              ),
            };
      return sendRequest(
        endpoint,
        {
          method: 'GET',
          path,
          headers,
          timeoutMs: options.timeoutMs ?? 5_000,
          ...(options.signal === undefined ? {} : { signal: options.signal }),
        },
        transport,
      );
    },
  };
}

/**
 * A peer's GET /v1/self/lease (the peer check of self-fencing, docs/fencing.md). Throws a FleetError
 * (`unreachable`) when it cannot be reached, answers with an error, or answers something else.
 */
export async function askSelfLease(
  client: PeerClient,
  peer: PeerAddress,
  options: { readonly signal?: AbortSignal; readonly timeoutMs?: number } = {},
): Promise<SelfLeaseReport> {
  const { apiAddress } = peer;
  const res = await client.get(peer, '/v1/self/lease', options);
  const text = await readText(res);
  if (res.status !== 200)
    throw new FleetError('unreachable', `${apiAddress} answered ${res.status}: ${text.slice(0, 200)}`);
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new FleetError('unreachable', `${apiAddress} answered no JSON: ${text.slice(0, 200)}`);
  }
  const parsed = selfLeaseResponse.safeParse(body);
  if (!parsed.success)
    throw new FleetError('unreachable', `${apiAddress} answered no lease report: ${text.slice(0, 200)}`);
  return parsed.data;
}

/**
 * The peer watch's probe: whether the peer's API port accepts a TCP connection (until `signal`
 * aborts: the watch's timeout). A host that is gone refuses it or never answers; a fleetd that is
 * alive but too busy to answer HTTP in time (a loaded machine) still has its connection accepted
 * by its kernel, so it is not taken for dead. Rejects with FleetError `unreachable` otherwise.
 */
export function probePeer(peer: PeerAddress, signal: AbortSignal): Promise<void> {
  const endpoint = parseEndpoint(peer.apiAddress);
  if (endpoint.kind !== 'tcp')
    return Promise.reject(new FleetError('unreachable', `${peer.apiAddress} is not a TCP address`));
  return new Promise<void>((resolve, reject) => {
    if (signal.aborted) return reject(new FleetError('unreachable', `${peer.apiAddress}: probe aborted`));
    const socket = connect({ host: endpoint.host, port: endpoint.port });
    const done = (err?: Error): void => {
      signal.removeEventListener('abort', onAbort);
      socket.destroy();
      if (err === undefined) resolve();
      else reject(new FleetError('unreachable', `${peer.apiAddress}: ${err.message}`));
    };
    const onAbort = (): void => done(new Error('no connection in time'));
    signal.addEventListener('abort', onAbort, { once: true });
    socket.once('connect', () => done());
    socket.once('error', (err) => done(err));
  });
}

/** A peer's view of its own peers (GET /v1/self/peers); throws FleetError `unreachable` when none. */
export async function askPeerViews(
  client: PeerClient,
  peer: PeerAddress,
  options: { readonly signal?: AbortSignal; readonly timeoutMs?: number } = {},
): Promise<PeerViewsReport> {
  const res = await client.get(peer, '/v1/self/peers', options);
  const text = await readText(res);
  if (res.status !== 200)
    throw new FleetError('unreachable', `${peer.apiAddress} answered ${res.status}: ${text.slice(0, 200)}`);
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new FleetError('unreachable', `${peer.apiAddress} answered no JSON: ${text.slice(0, 200)}`);
  }
  const parsed = peerViewsResponse.safeParse(body);
  if (!parsed.success)
    throw new FleetError('unreachable', `${peer.apiAddress} answered no peer views: ${text.slice(0, 200)}`);
  return parsed.data;
}

/**
 * Listens to the peer's heartbeat (GET /v1/self/heartbeat, api/heartbeat-route.ts): `onBeat` at
 * each byte it sends. Resolves when the connection ends, rejects with FleetError `unreachable` when
 * it cannot be opened; aborting `signal` closes it.
 */
export async function listenHeartbeat(
  client: PeerClient,
  peer: PeerAddress,
  onBeat: () => void,
  signal: AbortSignal,
): Promise<void> {
  const res = await client.get(peer, '/v1/self/heartbeat', { signal, timeoutMs: 2_000 });
  if (res.status !== 200) {
    const text = await readText(res).catch(() => '');
    throw new FleetError('unreachable', `${peer.apiAddress} answered ${res.status}: ${text.slice(0, 200)}`);
  }
  await new Promise<void>((resolve) => {
    const end = (): void => {
      signal.removeEventListener('abort', end);
      res.body.destroy();
      resolve();
    };
    if (signal.aborted) return end();
    signal.addEventListener('abort', end, { once: true });
    res.body.on('data', onBeat);
    res.body.once('end', end);
    res.body.once('close', end);
    res.body.once('error', end);
  });
}
