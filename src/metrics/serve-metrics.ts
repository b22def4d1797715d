// `--metrics-listen HOST:PORT` of the sidekicks: GET /metrics on a plain HTTP listener of its own,
// without authentication (the sidekicks have no API token), so bind it to loopback or a private
// address. fleetd serves its metrics on its API instead, under the API's authentication.
import { createServer, type Server } from 'node:http';
import { isIP } from 'node:net';
import { isLoopbackAddress, parseListenAddress } from '../api/listen-address.js';
import { UsageError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import type { ProcessMetrics } from './process-metrics.js';

export interface MetricsServer {
  /** `host:port` actually bound (the port chosen when 0 was asked). */
  readonly address: string;
  close(): Promise<void>;
}

/** Parses `--metrics-listen`; the message names the flag and shows a good value. */
export function parseMetricsListen(flag: string, value: string): { host: string; port: number } {
  const parsed = parseListenAddress(value);
  if ('problem' in parsed) throw new UsageError(`${flag} ${value}: ${parsed.problem}`);
  return parsed.ok;
}

export async function serveMetrics(
  metrics: Pick<ProcessMetrics, 'contentType' | 'text'>,
  where: { readonly host: string; readonly port: number },
  log: Logger,
): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('only GET /metrics is served here\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('use GET\n');
      return;
    }
    metrics.text().then(
      (text) => res.writeHead(200, { 'content-type': metrics.contentType }).end(text),
      (err: unknown) => {
        log.error(
          { event: 'metrics.collect_failed', err: String(err) },
          `collecting metrics failed: ${String(err)}`,
        );
        res.writeHead(500, { 'content-type': 'text/plain' }).end('collecting metrics failed\n');
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(where.port, where.host, () => {
      server.off('error', reject);
      resolve();
    });
  }).catch((err: unknown) => {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === 'EADDRINUSE'
        ? 'the port is in use; pick another one'
        : code === 'EADDRNOTAVAIL'
          ? "the address is not one of this host's"
          : code === 'EACCES'
            ? 'permission denied (ports below 1024 need root)'
            : String((err as Error).message);
    throw new UsageError(`cannot serve metrics on ${where.host}:${where.port}: ${why}`, { cause: err });
  });
  const bound = server.address();
  const port = typeof bound === 'object' && bound !== null ? bound.port : where.port;
  const address = `${isIP(where.host) === 6 ? `[${where.host}]` : where.host}:${port}`;
  log.info({ event: 'metrics.listening', address }, `metrics at http://${address}/metrics`);
  if (!isLoopbackAddress(where.host))
    log.warn(
      { event: 'metrics.unauthenticated', address },
      'metrics are served without authentication on an address that is not loopback',
    );
  return {
    address,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
