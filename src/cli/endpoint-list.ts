// The fleetd endpoints the CLI may use (--endpoint, FLEETTS_ENDPOINT or the dev context): parsed
// from a comma-separated list, tried in order, and the one that answered kept for the next request.
import { UsageError } from '../lib/errors.js';
import { parseEndpoint, TransportError, type Endpoint } from '../api/http-transport.js';

const EXAMPLE = 'unix:///run/fleetts/fleetd.sock,http://10.0.0.2:4003';

/**
 * Parses `unix:///a.sock,http://host:4003,…` (spaces around an item are ignored; a comma cannot be
 * part of an endpoint). `where` names the source in errors (`--endpoint`, `FLEETTS_ENDPOINT`).
 * Throws UsageError for an empty list or item, or a malformed endpoint, saying which one.
 */
export function parseEndpointList(spec: string, where: string): Endpoint[] {
  if (spec.trim() === '')
    throw new UsageError(
      `${where} is empty: give unix:///path/to/fleetd.sock or http(s)://host:port, or several separated by commas`,
    );
  const items = spec.split(',').map((s) => s.trim());
  const endpoints: Endpoint[] = [];
  for (const [i, item] of items.entries()) {
    const at = items.length === 1 ? `in ${where}` : `(item ${i + 1} of ${where} "${spec}")`;
    if (item === '')
      throw new UsageError(
        `empty endpoint ${at}: separate endpoints by single commas, with none at either end, e.g. ${EXAMPLE}`,
      );
    try {
      const e = parseEndpoint(item);
      // The same endpoint twice would only be tried twice.
      if (!endpoints.some((x) => x.url === e.url)) endpoints.push(e);
    } catch (err) {
      if (!(err instanceof UsageError)) throw err;
      throw new UsageError(err.message.replace(/^(bad endpoint "[^"]*")/, `$1 ${at}`));
    }
  }
  return endpoints;
}

/**
 * Sends each request to the endpoint that answered last (at first the first one), and on to the
 * next ones in order only when no connection could be made to it.
 */
export class EndpointList {
  readonly #endpoints: readonly Endpoint[];
  readonly #debug: ((line: string) => void) | undefined;
  /** The endpoint that answered last: later requests go there first, skipping dead ones. */
  #current = 0;

  constructor(endpoints: readonly Endpoint[], debug?: (line: string) => void) {
    if (endpoints.length === 0) throw new Error('EndpointList needs at least one endpoint');
    this.#endpoints = endpoints;
    this.#debug = debug;
  }

  /** The endpoint in use: the one that answered last, else the first. */
  get current(): Endpoint {
    return this.#endpoints[this.#current] ?? (this.#endpoints[0] as Endpoint);
  }

  /**
   * Runs `attempt` on the current endpoint, then on the others in list order while it fails with a
   * TransportError of stage `connect`. Only that stage fails over: the request reached no fleetd,
   * so sending it elsewhere cannot apply it twice. Any other failure is thrown at once: an
   * `exchange` TransportError (connected, then reset or timed out: the request may have arrived
   * and a PUT taken effect), an API error (a fleetd answered, even with 5xx: that is the answer),
   * an abort. When every endpoint fails to connect, one error names each endpoint and why.
   */
  async send<T>(attempt: (endpoint: Endpoint) => Promise<T>): Promise<T> {
    const order = [this.#current, ...this.#endpoints.keys()].filter((i, at, all) => all.indexOf(i) === at);
    const failed: { endpoint: Endpoint; error: TransportError }[] = [];
    for (const i of order) {
      const endpoint = this.#endpoints[i] as Endpoint;
      try {
        const result = await attempt(endpoint);
        this.#current = i;
        return result;
      } catch (err) {
        if (!(err instanceof TransportError) || err.stage !== 'connect') throw err;
        failed.push({ endpoint, error: err });
        if (failed.length < order.length)
          this.#debug?.(`✗ ${endpoint.url}: ${err.reason}; trying the next endpoint`);
      }
    }
    const [only] = failed;
    if (failed.length === 1 && only !== undefined) throw only.error;
    throw new TransportError(
      [
        `no fleetd answered at any of the ${failed.length} endpoints:`,
        ...failed.map((f) => `  ${f.endpoint.url}: ${f.error.reason}`),
        'Is fleetd running there? Set --endpoint or FLEETTS_ENDPOINT to live fleetds.',
      ].join('\n'),
      { stage: 'connect', reason: 'no endpoint answered' },
    );
  }
}
