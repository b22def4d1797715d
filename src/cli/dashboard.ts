// `fleetts dashboard`: the dashboard every fleetd serves at /ui (docs/dashboard.md), in a browser on
// this machine. A fleetd on TCP serves it itself: this prints its address. A unix socket (every
// host's, the dev cluster's) is out of a browser's reach: this forwards a loopback port to it, as
// `ssh -L` would, for reading only (GET), with a token of its own that it prints and the
// page asks for once: another local user, or another web page in the browser, gets nothing from the
// port without it.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Command } from 'commander';
import { isDashboardFile } from '../api/dashboard.js';
import { isLoopbackAddress } from '../api/listen-address.js';
import { DASHBOARD_URL } from '../demo/demo-report.js';
import { FleetError, UsageError } from '../lib/errors.js';
import { chooseEndpoints, type GlobalOptions } from './global-options.js';
import type { CliContext } from './main.js';

/** The demo prints the address this gives (DASHBOARD_URL). */
const DEFAULT_LISTEN = new URL(DASHBOARD_URL).host;

export function registerDashboard(program: Command, ctx: CliContext): void {
  program
    .command('dashboard')
    .description(
      "the cluster's live dashboard in a browser: prints its address (serving it from a unix socket)",
    )
    .option(
      '--listen <host:port>',
      'with a unix-socket endpoint: the loopback address to serve it on',
      DEFAULT_LISTEN,
    )
    .addHelpText(
      'after',
      `
Every fleetd serves the dashboard at /ui. With a TCP endpoint this prints that address (the page
asks for the API token). With a unix socket (a host's own, the dev cluster's) it serves the page
on a loopback port until Ctrl-C, passing its reads to the first endpoint that answers, and prints
a token the page asks for once (it stays in that browser tab). A remote host's socket: forward
it to a local one first (ssh -N -L /tmp/fleetd.sock:/run/fleetts/fleetd.sock HOST), then
fleetts dashboard --endpoint unix:///tmp/fleetd.sock.

Examples:
  fleetts dashboard                         the dev cluster (after \`fleetts dev up\`)
  fleetts dashboard --listen 127.0.0.1:9000`,
    )
    .action(async (o: { listen: string }, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions>();
      const endpoints = chooseEndpoints(globals.endpoint, command.parent?.getOptionValueSource('endpoint'));
      const first = endpoints[0];
      if (first?.kind === 'tcp') {
        ctx.output.out(
          `dashboard: ${first.url.replace(/\/+$/, '')}/ui (served by that fleetd; the page asks for its API token)`,
        );
        return;
      }
      const sockets = endpoints.flatMap((e) => (e.kind === 'unix' ? [e.socketPath] : []));
      const { host, port } = parseListen(o.listen);
      await serveDashboard(ctx, sockets, host, port);
    });
}

function parseListen(spec: string): { host: string; port: number } {
  const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(spec);
  const host = m?.[1]?.replace(/^\[(.*)\]$/, '$1');
  const port = Number(m?.[2]);
  if (host === undefined || !Number.isInteger(port) || port > 65_535)
    throw new UsageError(`--listen ${JSON.stringify(spec)} is not host:port; e.g. ${DEFAULT_LISTEN}`);
  if (!isLoopbackAddress(host))
    throw new UsageError(
      `--listen ${spec}: the dashboard port is served on loopback only (127.0.0.1 or ::1); to reach it from another machine use ssh -L`,
    );
  return { host, port };
}

async function serveDashboard(ctx: CliContext, sockets: readonly string[], host: string, port: number) {
  const token = randomBytes(18).toString('base64url');
  const digest = (s: string) => createHash('sha256').update(s).digest();
  const tokenDigest = digest(token);
  let current = 0;

  const refuse = (res: ServerResponse, status: number, code: string, message: string): void => {
    res
      .writeHead(status, { 'content-type': 'application/json' })
      .end(JSON.stringify({ error: { code, message } }));
  };
  /** Sends the request to sockets[current], then to the next ones while none accepts a connection. */
  const forward = (req: IncomingMessage, res: ServerResponse, tried: number): void => {
    const at = (current + tried) % sockets.length;
    const headers = { ...req.headers };
    delete headers.authorization;
    const up = request({ socketPath: sockets[at], method: req.method, path: req.url, headers }, (answer) => {
      current = at;
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
      // A fleetd that dies mid-answer (the event stream of a host powered off) must end the
      // browser's connection too, or the page would wait for its silence timeout to reconnect.
      answer.on('close', () => {
        if (!answer.complete) res.destroy();
      });
    });
    res.on('close', () => up.destroy());
    up.on('error', (err: NodeJS.ErrnoException) => {
      if (res.headersSent) return void res.destroy();
      const noConnection = err.code === 'ECONNREFUSED' || err.code === 'ENOENT';
      if (noConnection && tried + 1 < sockets.length) return forward(req, res, tried + 1);
      refuse(res, 502, 'unreachable', `no fleetd answered on ${sockets.join(', ')}: ${err.message}`);
    });
    up.end();
  };

  const server = createServer((req, res) => {
    const method = req.method ?? '';
    if (method !== 'GET' && method !== 'HEAD')
      return refuse(
        res,
        405,
        'method_not_allowed',
        'the dashboard port only reads (GET); use fleetts for changes',
      );
    if (!isDashboardFile(method, req.url ?? '')) {
      const header = req.headers.authorization ?? '';
      const given = header.startsWith('Bearer ') ? header.slice('Bearer '.length) : '';
      if (!timingSafeEqual(digest(given), tokenDigest))
        return refuse(res, 401, 'unauthorized', 'give the token `fleetts dashboard` printed');
    }
    forward(req, res, 0);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        err.code === 'EADDRINUSE'
          ? new UsageError(`--listen ${host}:${port} is in use by another process; pick another port`)
          : new FleetError('failed', `cannot listen on ${host}:${port}: ${err.message}`),
      ),
    );
    server.listen(port, host, resolve);
  });
  const bound = server.address() as AddressInfo;
  const shown = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address;
  ctx.output.out(`dashboard: http://${shown}:${bound.port}/ui`);
  ctx.output.out(`token:     ${token}   (the page asks for it once; it stays in that browser tab)`);
  ctx.output.out(
    `reading from ${sockets.map((s) => `unix://${s}`).join(', ')} (the first that answers); Ctrl-C to stop`,
  );
  await new Promise<void>((resolve) => {
    if (ctx.signal?.aborted === true) return resolve();
    ctx.signal?.addEventListener('abort', () => resolve(), { once: true });
  });
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}
