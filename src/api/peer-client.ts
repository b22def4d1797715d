// How one fleetd reaches another's API (to serve a unit's status and journal from the unit's own
// host). fleetd builds one with the cluster's token or TLS client certificate; tests pass their own.
import { parseEndpoint, sendRequest, type HttpResponse, type TransportOptions } from './http-transport.js';

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
