// fleetts' global options (endpoint, timeout, TLS, token, debug) and the API client they describe.
import { readFile } from 'node:fs/promises';
import { Option, type Command } from 'commander';
import { UsageError } from '../lib/errors.js';
import { devContextPath, readDevContext } from '../dev/context.js';
import type { Endpoint } from '../api/http-transport.js';
import { DEFAULT_API_ENDPOINT } from '../api/defaults.js';
import type { ApiClient } from './client.js';
import { EndpointList, parseEndpointList } from './endpoint-list.js';
import type { Output } from './output.js';

/** fleetctl's default was 3 s; listing thousands of units over a slow link needs more. */
export const DEFAULT_REQUEST_TIMEOUT_S = 10;

export interface GlobalOptions {
  readonly endpoint?: string;
  readonly requestTimeout: string;
  readonly caFile?: string;
  readonly certFile?: string;
  readonly keyFile?: string;
  readonly token?: string;
  readonly debug?: boolean;
}

export function addGlobalOptions(program: Command): void {
  program
    .addOption(
      new Option(
        '--endpoint <urls>',
        `the fleetd API: unix:///path/to/fleetd.sock or http(s)://host:port, or several separated by ` +
          `commas, tried in order until one accepts a connection (default: the dev cluster's hosts, ` +
          `from \`fleetts dev up\`, else ${DEFAULT_API_ENDPOINT})`,
      ).env('FLEETTS_ENDPOINT'),
    )
    .addOption(
      new Option(
        '--request-timeout <seconds>',
        'give up on a request after this many seconds; a batch (submit, start… of many units) gets ' +
          'more in proportion to its units and bytes',
      ).default(String(DEFAULT_REQUEST_TIMEOUT_S)),
    )
    .addOption(
      new Option('--ca-file <path>', 'CA certificate (PEM) to verify an https endpoint').env(
        'FLEETTS_CA_FILE',
      ),
    )
    .addOption(
      new Option('--cert-file <path>', 'client certificate (PEM) for an https endpoint').env(
        'FLEETTS_CERT_FILE',
      ),
    )
    .addOption(
      new Option('--key-file <path>', 'client key (PEM) for an https endpoint').env('FLEETTS_KEY_FILE'),
    )
    .addOption(new Option('--token <token>', 'bearer token of a TCP endpoint').env('FLEETTS_TOKEN'))
    .addOption(new Option('--debug', 'print every API request and response on stderr'));
}

/** `endpointSource`: commander's source of --endpoint (`env` when it came from FLEETTS_ENDPOINT). */
export async function clientFromOptions(
  opts: GlobalOptions,
  output: Output,
  signal: AbortSignal | undefined,
  endpointSource?: string,
): Promise<ApiClient> {
  const endpoints = chooseEndpoints(opts.endpoint, endpointSource);
  const seconds = Number(opts.requestTimeout);
  if (!Number.isFinite(seconds) || seconds <= 0)
    throw new UsageError(
      `--request-timeout must be a number of seconds greater than 0, not "${opts.requestTimeout}"`,
    );
  const tls = {
    ...(opts.caFile === undefined ? {} : { ca: await readPem(opts.caFile, '--ca-file') }),
    ...(opts.certFile === undefined ? {} : { cert: await readPem(opts.certFile, '--cert-file') }),
    ...(opts.keyFile === undefined ? {} : { key: await readPem(opts.keyFile, '--key-file') }),
  };
  if ((tls.cert === undefined) !== (tls.key === undefined))
    throw new UsageError('--cert-file and --key-file go together: give both or neither');
  const debug = opts.debug === true ? (line: string) => output.err(`debug: ${line}`) : undefined;
  // The client and its response schemas (zod) load only for a command that talks to fleetd.
  const { ApiClient } = await import('./client.js');
  return new ApiClient({
    endpoints: new EndpointList(endpoints, debug),
    timeoutMs: Math.round(seconds * 1000),
    token: opts.token,
    tls,
    debug,
    signal,
  });
}

/** The endpoints the options name: --endpoint or FLEETTS_ENDPOINT, else the dev context, else the default. */
export function chooseEndpoints(option: string | undefined, source: string | undefined): Endpoint[] {
  if (option !== undefined)
    return parseEndpointList(option, source === 'env' ? 'FLEETTS_ENDPOINT' : '--endpoint');
  // As kind sets the kubectl context: `fleetts dev up` leaves every host's endpoint for plain
  // commands (host1 first; the others answer while it is powered off).
  const path = devContextPath();
  const dev = readDevContext(path);
  if (dev.length > 0) return parseEndpointList(dev.join(','), `the dev context ${path}`);
  return parseEndpointList(DEFAULT_API_ENDPOINT, 'the default endpoint');
}

async function readPem(path: string, flag: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new UsageError(`${flag} ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
}
