// HTTP requests to a fleetd API over a unix socket or TCP (optionally TLS with a client
// certificate): used by the CLI's client and by fleetd to reach a peer that runs a unit. node:http
// rather than fetch, because fetch cannot dial a unix socket or present a client certificate.
import { request as httpRequest, type IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import { https } from '../lib/lazy-https.js';
import { FleetError, UsageError } from '../lib/errors.js';

/** Where a fleetd API listens: `unix:///run/fleetts/fleetd.sock`, `http://host:4003`, `https://…`. */
export type Endpoint =
  | { readonly kind: 'unix'; readonly socketPath: string; readonly url: string }
  | {
      readonly kind: 'tcp';
      readonly protocol: 'http:' | 'https:';
      readonly host: string;
      readonly port: number;
      /** Path prefix of the API (usually empty). */
      readonly base: string;
      readonly url: string;
    };

export interface TlsFiles {
  /** PEM texts (not paths). */
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
}

export interface TransportOptions {
  readonly token?: string;
  readonly tls?: TlsFiles;
}

/** Parses an endpoint URL; throws UsageError saying what is accepted. */
export function parseEndpoint(spec: string): Endpoint {
  const hint = 'use unix:///path/to/fleetd.sock or http(s)://host:port';
  if (spec.startsWith('unix://')) {
    const socketPath = spec.slice('unix://'.length);
    if (!socketPath.startsWith('/')) throw new UsageError(`bad endpoint "${spec}": ${hint}`);
    return { kind: 'unix', socketPath, url: spec };
  }
  let url: URL;
  try {
    url = new URL(spec);
  } catch {
    throw new UsageError(`bad endpoint "${spec}": ${hint}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new UsageError(`bad endpoint "${spec}": scheme ${url.protocol} is not supported; ${hint}`);
  if (url.hostname === '') throw new UsageError(`bad endpoint "${spec}": no host; ${hint}`);
  const port = url.port === '' ? (url.protocol === 'https:' ? 443 : 80) : Number(url.port);
  return {
    kind: 'tcp',
    protocol: url.protocol,
    host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
    port,
    base: url.pathname.replace(/\/+$/, ''),
    url: spec,
  };
}

export interface HttpRequest {
  readonly method: 'GET' | 'PUT' | 'POST' | 'PATCH' | 'DELETE';
  /** Path and query, starting with `/`. */
  readonly path: string;
  readonly body?: unknown;
  readonly headers?: Readonly<Record<string, string>>;
  readonly signal?: AbortSignal;
  /** Abort when no response headers arrived in time (the body may stream for longer). */
  readonly timeoutMs?: number;
  /**
   * Once connected, wait this long for the response headers instead (counted from the connection):
   * for a request whose work grows with its size (a batch of units), while connecting keeps the
   * short `timeoutMs`, so a dead endpoint is still left soon.
   */
  readonly answerTimeoutMs?: number;
}

/** A response whose body has not been read yet. */
export interface HttpResponse {
  readonly status: number;
  readonly contentType: string;
  readonly body: Readable;
}

/**
 * Where a request failed. `connect`: no connection was made (refused, no such socket, unknown or
 * unreachable host, none within the timeout, TLS handshake failed), so no fleetd saw the request
 * and another endpoint may be tried. `exchange`: the connection was made, so the request may have
 * arrived and taken effect (a PUT): sending it again elsewhere could apply it twice.
 */
export type TransportStage = 'connect' | 'exchange';

/** The endpoint could not be reached or did not answer: the message names it. */
export class TransportError extends FleetError {
  readonly stage: TransportStage;
  /** Why, without the endpoint or advice (`connection refused`), for a list of endpoints tried. */
  readonly reason: string;
  /** The request was sent and no answer came in time (as opposed to a connection that broke). */
  readonly timedOut: boolean;

  constructor(
    message: string,
    options: { stage: TransportStage; reason: string; cause?: unknown; timedOut?: boolean },
  ) {
    super('unreachable', message, {
      ...(options.cause === undefined ? {} : { cause: options.cause }),
      recoverable: true,
    });
    this.stage = options.stage;
    this.reason = options.reason;
    this.timedOut = options.timedOut ?? false;
  }
}

export function sendRequest(
  endpoint: Endpoint,
  req: HttpRequest,
  options: TransportOptions = {},
): Promise<HttpResponse> {
  const payload = req.body === undefined ? undefined : Buffer.from(JSON.stringify(req.body));
  const headers: Record<string, string> = { accept: 'application/json, text/plain', ...req.headers };
  if (payload !== undefined) {
    headers['content-type'] = 'application/json';
    headers['content-length'] = String(payload.length);
  }
  if (options.token !== undefined) headers['authorization'] = `Bearer ${options.token}`;
  return new Promise((resolve, reject) => {
    const onResponse = (res: IncomingMessage): void => {
      clearTimeout(timer);
      resolve({ status: res.statusCode ?? 0, contentType: res.headers['content-type'] ?? '', body: res });
    };
    const common = {
      method: req.method,
      headers,
      ...(req.signal === undefined ? {} : { signal: req.signal }),
    };
    const r =
      endpoint.kind === 'unix'
        ? httpRequest({ ...common, socketPath: endpoint.socketPath, path: req.path }, onResponse)
        : endpoint.protocol === 'http:'
          ? httpRequest(
              { ...common, host: endpoint.host, port: endpoint.port, path: endpoint.base + req.path },
              onResponse,
            )
          : https().request(
              {
                ...common,
                host: endpoint.host,
                port: endpoint.port,
                path: endpoint.base + req.path,
                ...options.tls,
              },
              onResponse,
            );
    // Connected once the (TLS) connection is up: from then on the request may reach the fleetd.
    // A kept-alive socket is connected already.
    let connected = false;
    const arm = (ms: number): NodeJS.Timeout =>
      setTimeout(() => {
        r.destroy(
          connected
            ? new TransportError(`${endpoint.url} did not answer within ${ms} ms`, {
                stage: 'exchange',
                reason: `no answer within ${ms} ms`,
                timedOut: true,
              })
            : new TransportError(`cannot reach fleetd at ${endpoint.url}: no connection within ${ms} ms`, {
                stage: 'connect',
                reason: `no connection within ${ms} ms`,
              }),
        );
      }, ms);
    let timer = req.timeoutMs === undefined ? undefined : arm(req.timeoutMs);
    const onConnected = (): void => {
      connected = true;
      if (req.answerTimeoutMs === undefined) return;
      clearTimeout(timer);
      timer = arm(req.answerTimeoutMs);
    };
    r.on('socket', (socket) => {
      if (r.reusedSocket) onConnected();
      else
        socket.once(
          endpoint.kind === 'tcp' && endpoint.protocol === 'https:' ? 'secureConnect' : 'connect',
          onConnected,
        );
    });
    r.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (err instanceof TransportError || err.name === 'AbortError') return reject(err);
      const { reason, hint } = describe(err);
      reject(
        new TransportError(
          `cannot reach fleetd at ${endpoint.url}: ${reason}${hint === undefined ? '' : ` (${hint})`}`,
          { stage: connected ? 'exchange' : 'connect', reason, cause: err },
        ),
      );
    });
    r.end(payload);
  });
}

/** Reads a whole response body as text. */
export async function readText(res: HttpResponse): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of res.body) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Why a request failed, and what to do about it when that fits one endpoint. */
function describe(err: NodeJS.ErrnoException): { reason: string; hint?: string } {
  switch (err.code) {
    case 'ECONNREFUSED':
      return {
        reason: 'connection refused',
        hint: 'is fleetd running there? set --endpoint or FLEETTS_ENDPOINT',
      };
    case 'ENOENT':
      return {
        reason: 'no such socket',
        hint: 'is fleetd running on this host? set --endpoint or FLEETTS_ENDPOINT',
      };
    case 'EACCES':
      return { reason: 'permission denied on the socket (join the group that owns it, or use sudo)' };
    case 'ENOTFOUND':
      return { reason: 'unknown host' };
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return { reason: 'host unreachable' };
    case 'ECONNRESET':
      return { reason: 'connection reset (a TLS endpoint may need https:// and a client certificate)' };
    default:
      return { reason: err.message };
  }
}
