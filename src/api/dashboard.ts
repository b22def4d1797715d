// The dashboard's files (ui/ in the package: plain HTML, CSS and JS, no framework, no CDN), served
// by every fleetd at /ui (docs/dashboard.md). They hold no cluster data, so they are served without
// the token, as a login page would be: every request the page makes for data goes through the
// API's usual rules (the unix socket, or the bearer token on TCP, which the page asks for).
import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';

/** Path → file of ui/, and its content type. */
const FILES: Readonly<Record<string, { file: string; type: string }>> = {
  '/ui': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/ui/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/ui/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/ui/style.css': { file: 'style.css', type: 'text/css; charset=utf-8' },
};

/** ui/ at the package's root: two levels up from src/api/ and from dist/api/ alike. */
const UI_DIR = new URL('../../ui/', import.meta.url);

/**
 * The page loads nothing but its own files and talks to nothing but this fleetd; it may not be
 * framed (the token field), and sends no referrer.
 */
const HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
};

/** Whether `method path` is one of the dashboard's files (served without the token). */
export function isDashboardFile(method: string, url: string): boolean {
  return (method === 'GET' || method === 'HEAD') && Object.hasOwn(FILES, url.split('?')[0] ?? '');
}

/** Adds GET /ui and its files; read once, when the app is built. */
export function dashboardRoutes(app: FastifyInstance): void {
  for (const [path, { file, type }] of Object.entries(FILES)) {
    const body = readFileSync(new URL(file, UI_DIR), 'utf8');
    app.get(path, (_request, reply) => reply.headers({ ...HEADERS, 'content-type': type }).send(body));
  }
}
