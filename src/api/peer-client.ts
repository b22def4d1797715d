// How one fleetd reaches another's API (to serve a unit's status and journal from the unit's own
// host). fleetd builds one with the cluster's token or TLS client certificate; tests pass their own.
import type { SelfLeaseReport } from '../agent/peer-check.js';
import { FleetError } from '../lib/errors.js';
import {
  parseEndpoint,
  readText,
  sendRequest,
  type HttpResponse,
  type TransportOptions,
} from './http-transport.js';
import { selfLeaseResponse } from './schemas.js';

export interface PeerClient {
  /**
   * GETs `path` from the fleetd API at `apiAddress` (a machine's registered address, e.g.
   * `http://10.0.0.2:4003`) and returns the response with its body unread. Throws a FleetError
   * (`unreachable`) when the peer cannot be reached or sends no headers within `timeoutMs`.
   */
  get(
    apiAddress: string,
    path: string,
    options?: { readonly signal?: AbortSignal; readonly timeoutMs?: number },
  ): Promise<HttpResponse>;
}

export function createPeerClient(transport: TransportOptions = {}): PeerClient {
  return {
    get: (apiAddress, path, options = {}) =>
      sendRequest(
        parseEndpoint(apiAddress),
        {
          method: 'GET',
          path,
          timeoutMs: options.timeoutMs ?? 5_000,
          ...(options.signal === undefined ? {} : { signal: options.signal }),
        },
        transport,
      ),
  };
}

/**
 * A peer's GET /v1/self/lease (the peer check of self-fencing, docs/fencing.md). Throws a FleetError
 * (`unreachable`) when it cannot be reached, answers with an error, or answers something else.
 */
export async function askSelfLease(
  client: PeerClient,
  apiAddress: string,
  options: { readonly signal?: AbortSignal; readonly timeoutMs?: number } = {},
): Promise<SelfLeaseReport> {
  const res = await client.get(apiAddress, '/v1/self/lease', options);
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
