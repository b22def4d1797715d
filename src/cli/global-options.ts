// fleetts' global options (endpoint, timeout, TLS, token, debug) and the API client they describe.
import { readFile } from 'node:fs/promises';
import { Option, type Command } from 'commander';
import { UsageError } from '../lib/errors.js';
import { liveDevEndpoint } from '../dev/context.js';
import { parseEndpoint } from '../api/http-transport.js';
import { DEFAULT_API_ENDPOINT } from '../api/defaults.js';
import { ApiClient } from './client.js';
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
        '--endpoint <url>',
        `the fleetd API: unix:///path/to/fleetd.sock or http(s)://host:port (default: the dev cluster's, ` +
          `from \`fleetts dev up\`, else ${DEFAULT_API_ENDPOINT})`,
      ).env('FLEETTS_ENDPOINT'),
    )
    .addOption(
      new Option('--request-timeout <seconds>', 'give up on a request after this many seconds').default(
        String(DEFAULT_REQUEST_TIMEOUT_S),
      ),
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

export async function clientFromOptions(
  opts: GlobalOptions,
  output: Output,
  signal: AbortSignal | undefined,
): Promise<ApiClient> {
  // As kind sets the kubectl context: `fleetts dev up` leaves its endpoint for plain commands.
  const endpoint = parseEndpoint(opts.endpoint ?? (await liveDevEndpoint()) ?? DEFAULT_API_ENDPOINT);
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
  return new ApiClient({
    endpoint,
    timeoutMs: Math.round(seconds * 1000),
    token: opts.token,
    tls,
    debug: opts.debug === true ? (line) => output.err(`debug: ${line}`) : undefined,
    signal,
  });
}

async function readPem(path: string, flag: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new UsageError(`${flag} ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
}
