// Puts the API on the network for fleetd: always on a unix socket (mode 0660: the socket's group is
// who may call), optionally on TCP, which must authenticate callers (a bearer token or TLS client
// certificates) unless every address it stands for is loopback (listen-address.ts: a name is resolved
// once, judged by its addresses, and the first one is bound).
import { chmod, mkdir, rm } from 'node:fs/promises';
import { isIP, connect } from 'node:net';
import { dirname } from 'node:path';
import { UsageError } from '../lib/errors.js';
import { checkApiToken } from './api-token.js';
import { buildApp, type ApiApp, type ApiDeps, type ApiTls } from './build-app.js';
import { resolveListenHost, type LookupAll } from './listen-address.js';

/** Where fleetd listens, and where fleetts looks, by default (fleet used /var/run/fleet.sock). */
export { DEFAULT_API_ENDPOINT, DEFAULT_API_SOCKET } from './defaults.js';

export interface TcpListenOptions {
  /** An IP address or a DNS name (resolved once at start; see resolveListenHost). */
  readonly host: string;
  /** 0 picks a free port (tests). */
  readonly port: number;
  readonly token?: string | undefined;
  /** With `ca`, clients must present a certificate signed by it. */
  readonly tls?: ApiTls | undefined;
  /** Resolves a host name (tests); default dns.lookup. */
  readonly lookup?: LookupAll | undefined;
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
      const addresses = await resolveListenHost(tcp.host, tcp.lookup);
      const open = addresses.filter((a) => !a.loopback).map((a) => a.address);
      if (!secured && open.length > 0)
        throw new UsageError(
          `refusing to serve the API on ${tcp.host} without authentication: ${
            isIP(tcp.host) === 0 ? `it resolves to ${open.join(', ')}, which is not loopback; ` : ''
          }set an API token or TLS client certificates (a CA), or listen on 127.0.0.1`,
        );
      if (!secured)
        deps.log.warn(
          { event: 'api.unauthenticated', host: tcp.host },
          'the TCP API has no token or client certificates (loopback only)',
        );
      // The address judged above, not the name again: DNS may answer differently a moment later.
      const bind = addresses[0].address;
      const app = buildApp({
        ...deps,
        auth: tcp.token === undefined ? { kind: 'none' } : { kind: 'token', token: tcp.token },
        ...(tcp.tls === undefined ? {} : { tls: tcp.tls }),
      });
      apps.push(app);
      await listenOrExplain(app, bind, tcp.port);
      const address = app.server.address();
      const port = typeof address === 'object' && address !== null ? address.port : tcp.port;
      const host = isIP(bind) === 6 ? `[${bind}]` : bind;
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

/** Listens; the errors a setting can cause (port taken, address not on this host) say so in one line. */
async function listenOrExplain(app: ApiApp, host: string, port: number): Promise<void> {
  try {
    await app.listen({ host, port });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const where = `${isIP(host) === 6 ? `[${host}]` : host}:${port}`;
    const why: Record<string, string> = {
      EADDRINUSE: 'the port is in use by another process; pick another port',
      EADDRNOTAVAIL: "the address is not one of this host's; use one of its addresses, or 0.0.0.0",
      EACCES: 'permission denied (ports below 1024 need root); pick a port from 1024 up',
    };
    const reason = code === undefined ? undefined : why[code];
    if (reason === undefined) throw err;
    throw new UsageError(`cannot serve the API on ${where}: ${reason}`, { cause: err });
  }
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
