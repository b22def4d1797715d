// Puts the API on the network for fleetd: always on a unix socket (mode 0660: the socket's group is
// who may call), optionally on TCP, which must authenticate callers (a bearer token or TLS client
// certificates) unless it listens on loopback only.
import { chmod, mkdir, rm } from 'node:fs/promises';
import { isIP, connect } from 'node:net';
import { dirname } from 'node:path';
import { UsageError } from '../lib/errors.js';
import { checkApiToken } from './api-token.js';
import { buildApp, type ApiApp, type ApiDeps, type ApiTls } from './build-app.js';

/** Where fleetd listens, and where fleetts looks, by default (fleet used /var/run/fleet.sock). */
export { DEFAULT_API_ENDPOINT, DEFAULT_API_SOCKET } from './defaults.js';

export interface TcpListenOptions {
  readonly host: string;
  /** 0 picks a free port (tests). */
  readonly port: number;
  readonly token?: string | undefined;
  /** With `ca`, clients must present a certificate signed by it. */
  readonly tls?: ApiTls | undefined;
}

export interface ServeApiOptions {
  /** The unix socket; `undefined` for none. */
  readonly socketPath?: string | undefined;
  /** Default 0o660. */
  readonly socketMode?: number;
  readonly tcp?: TcpListenOptions | undefined;
}

export interface ApiServer {
  readonly socketPath?: string;
  /** `http(s)://host:port` of the TCP listener: what to register as the machine's apiAddress. */
  readonly tcpAddress?: string;
  close(): Promise<void>;
}

export async function serveApi(
  deps: Omit<ApiDeps, 'auth' | 'tls'>,
  options: ServeApiOptions,
): Promise<ApiServer> {
  const apps: ApiApp[] = [];
  const result: { socketPath?: string; tcpAddress?: string } = {};
  const close = async (): Promise<void> => {
    await Promise.all(apps.map((a) => a.close()));
  };
  try {
    const tcp = options.tcp;
    if (tcp !== undefined) {
      if (tcp.token !== undefined) checkApiToken(tcp.token, `api on ${tcp.host}`);
      const secured = tcp.token !== undefined || tcp.tls?.ca !== undefined;
      if (!secured && !isLoopback(tcp.host))
        throw new UsageError(
          `refusing to serve the API on ${tcp.host} without authentication: set an API token or TLS client certificates (a CA), or listen on 127.0.0.1`,
        );
      if (!secured)
        deps.log.warn(
          { event: 'api.unauthenticated', host: tcp.host },
          'the TCP API has no token or client certificates (loopback only)',
        );
      const app = buildApp({
        ...deps,
        auth: tcp.token === undefined ? { kind: 'none' } : { kind: 'token', token: tcp.token },
        ...(tcp.tls === undefined ? {} : { tls: tcp.tls }),
      });
      apps.push(app);
      await app.listen({ host: tcp.host, port: tcp.port });
      const address = app.server.address();
      const port = typeof address === 'object' && address !== null ? address.port : tcp.port;
      const host = isIP(tcp.host) === 6 ? `[${tcp.host}]` : tcp.host;
      result.tcpAddress = `${tcp.tls === undefined ? 'http' : 'https'}://${host}:${port}`;
    }
    if (options.socketPath !== undefined) {
      const path = options.socketPath;
      await mkdir(dirname(path), { recursive: true, mode: 0o755 });
      await removeStaleSocket(path);
      const app = buildApp({ ...deps, auth: { kind: 'none' } });
      apps.push(app);
      await app.listen({ path });
      await chmod(path, options.socketMode ?? 0o660);
      result.socketPath = path;
    }
  } catch (err) {
    await close().catch(() => undefined);
    throw err;
  }
  deps.log.info({ event: 'api.listening', ...result }, 'API listening');
  return { ...result, close };
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

/** A socket file left by a killed fleetd is removed; one a live fleetd answers on is an error. */
async function removeStaleSocket(path: string): Promise<void> {
  const live = await new Promise<boolean>((resolve) => {
    const s = connect({ path });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
  if (live)
    throw new UsageError(`${path} is in use by another running fleetd; stop it or use another --api-socket`);
  await rm(path, { force: true });
}
