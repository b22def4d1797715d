// Pure rendering of an nginx upstream from the live instances of a service (what `fleetts upstream`
// writes): the default block, or a user template with {{placeholders}}. No I/O: the nginx sink
// (nginx-sink.ts) validates, swaps and reloads what this returns.
import type { ServiceInstance } from '../registry/registry.js';
import { DiscoveryError } from './discovery-error.js';

/** One live backend, as it goes into the upstream (values checked safe for an nginx config). */
export interface Backend {
  readonly instance: string;
  readonly address: string;
  readonly machine: string;
  readonly unit: string;
}

export interface SkippedInstance {
  readonly instance: string;
  readonly reason: string;
}

/**
 * Per-server parameters of the default template. Three failed attempts (each followed by the next
 * server: proxy_next_upstream) leave a server out for 5 s (nginx's passive health check), so that a
 * dead host stops costing a connect timeout per request within its first failures, long before its
 * lease expires and its key is withdrawn; one stray error does not shift a server's load onto the
 * others. See docs/web-farm-load.md.
 */
export const DEFAULT_SERVER_PARAMS = 'max_fails=3 fail_timeout=5s';
/** Idle keepalive connections per nginx worker (used with proxy_http_version 1.1). */
export const DEFAULT_KEEPALIVE = 16;
/**
 * How long nginx keeps an idle upstream connection: shorter than the backends' own keep-alive
 * timeout (Apache's default is 5 s, Node's too), so that nginx closes an idle connection before
 * the backend does. Otherwise the backend's close races nginx's next request on that connection.
 */
export const DEFAULT_KEEPALIVE_TIMEOUT_MS = 4_000;

export interface UpstreamRenderOptions {
  /** The nginx upstream name (`proxy_pass http://<name>`); see `upstreamName`. */
  readonly name: string;
  readonly service: string;
  readonly serverParams?: string;
  /** 0 leaves the `keepalive` directives out. */
  readonly keepalive?: number;
  /** nginx's `keepalive_timeout` in the upstream, whole ms ≥ 1 (rendered in s when whole). */
  readonly keepaliveTimeoutMs?: number;
  /**
   * The nginx `listen` address of the local server that answers 503 with a clear page: the only
   * server when no backend is live (nginx refuses an empty upstream).
   */
  readonly fallbackListen?: string;
  /** A user template (parseUpstreamTemplate); the default block when absent. */
  readonly template?: UpstreamTemplate;
}

export function defaultFallbackListen(name: string): string {
  return `unix:/run/fleetts-upstream-${name}.sock`;
}

/** The service name made a safe nginx upstream name (`web`, `api.v2`; other characters become `_`). */
export function upstreamName(service: string): string {
  return service.replace(/[^A-Za-z0-9_.-]/g, '_');
}

const NAME_RE = /^[A-Za-z0-9_.-]+$/;
const HOSTNAME_RE =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$/;
const IPV6_RE = /^\[[0-9A-Fa-f:.]+\]$/;
/** Words allowed in comments and per-instance placeholders: nothing that could end a directive. */
const SAFE_WORD_RE = /^[A-Za-z0-9@._:-]*$/;
const SERVER_PARAMS_RE = /^[A-Za-z0-9_=. -]*$/;
const LISTEN_RE = /^(?:unix:\/[A-Za-z0-9_./-]+|[A-Za-z0-9.[\]:-]+:\d{1,5})$/;

/** `host:port` with a hostname, IPv4 or [IPv6] host and a port 1–65535; else why not. */
export function checkBackendAddress(address: string): string | undefined {
  const colon = address.lastIndexOf(':');
  if (colon <= 0) return `address '${address}' is not host:port`;
  const host = address.slice(0, colon);
  const port = address.slice(colon + 1);
  if (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535)
    return `address '${address}' has no valid port (1-65535)`;
  if (!HOSTNAME_RE.test(host) && !IPV6_RE.test(host)) return `address '${address}' has an invalid host`;
  return undefined;
}

/**
 * The instances that can go into an nginx config, sorted by instance name; an address already
 * taken by an earlier instance, or a value that could break out of a directive, is skipped (an
 * etcd value must never inject nginx configuration).
 */
export function selectBackends(instances: readonly ServiceInstance[]): {
  backends: Backend[];
  skipped: SkippedInstance[];
} {
  const backends: Backend[] = [];
  const skipped: SkippedInstance[] = [];
  const seen = new Map<string, string>();
  const sorted = [...instances].sort((a, b) =>
    a.instance < b.instance ? -1 : a.instance > b.instance ? 1 : 0,
  );
  for (const i of sorted) {
    const bad = checkBackendAddress(i.address);
    if (bad !== undefined) {
      skipped.push({ instance: i.instance, reason: bad });
      continue;
    }
    const fields = { instance: i.instance, machine: i.machine ?? '', unit: i.unit ?? '' };
    const unsafe = Object.entries(fields).find(([, v]) => !SAFE_WORD_RE.test(v));
    if (unsafe !== undefined) {
      skipped.push({
        instance: i.instance,
        reason: `${unsafe[0]} '${unsafe[1]}' has characters not allowed in an nginx config`,
      });
      continue;
    }
    const first = seen.get(i.address);
    if (first !== undefined) {
      skipped.push({ instance: i.instance, reason: `address ${i.address} is already announced by ${first}` });
      continue;
    }
    seen.set(i.address, i.instance);
    backends.push({ address: i.address, ...fields });
  }
  return { backends, skipped };
}

export function renderUpstream(
  instances: readonly ServiceInstance[],
  options: UpstreamRenderOptions,
): string {
  const { backends } = selectBackends(instances);
  checkRenderOptions(options);
  if (options.template !== undefined) return renderTemplate(options.template, backends, options);
  return renderDefault(backends, options);
}

function checkRenderOptions(options: UpstreamRenderOptions): void {
  if (!NAME_RE.test(options.name))
    throw new DiscoveryError(
      'template_invalid',
      `upstream name '${options.name}' may only hold letters, digits, '_', '.' and '-'`,
    );
  if (options.serverParams !== undefined && !SERVER_PARAMS_RE.test(options.serverParams))
    throw new DiscoveryError(
      'template_invalid',
      `server parameters '${options.serverParams}' may only hold words like max_fails=1 fail_timeout=5s`,
    );
  if (options.fallbackListen !== undefined && !LISTEN_RE.test(options.fallbackListen))
    throw new DiscoveryError(
      'template_invalid',
      `fallback listen address '${options.fallbackListen}' must be unix:/path or host:port`,
    );
  const k = options.keepalive;
  if (k !== undefined && (!Number.isInteger(k) || k < 0))
    throw new DiscoveryError('template_invalid', `keepalive must be a whole number ≥ 0, not ${k}`);
  const kt = options.keepaliveTimeoutMs;
  if (kt !== undefined && (!Number.isInteger(kt) || kt < 1))
    throw new DiscoveryError(
      'template_invalid',
      `keepalive timeout must be a whole number of ms ≥ 1, not ${kt}`,
    );
}

/** An nginx time: `4s`, or `1500ms` when not whole seconds. */
function nginxTime(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

function serverLine(b: Backend, params: string): string {
  return `server ${b.address}${params === '' ? '' : ' ' + params};`;
}

function renderDefault(backends: readonly Backend[], options: UpstreamRenderOptions): string {
  const { name, service } = options;
  const params = options.serverParams ?? DEFAULT_SERVER_PARAMS;
  const keepalive = options.keepalive ?? DEFAULT_KEEPALIVE;
  const keepaliveTimeout = options.keepaliveTimeoutMs ?? DEFAULT_KEEPALIVE_TIMEOUT_MS;
  const fallback = options.fallbackListen ?? defaultFallbackListen(name);
  const n = backends.length;
  const servers =
    n === 0
      ? ['    # No live instance: every request gets the 503 page below.', `    server ${fallback};`]
      : [
          ...backends.map((b) => {
            const where = [b.instance, b.unit, b.machine].filter((w) => w !== '').join(' ');
            return `    ${serverLine(b, params)}  # ${where}`;
          }),
          // nginx never resets its failure counts while every server is marked down: without these
          // a burst of errors (overload, a slow shared disk) would refuse every request for
          // fail_timeout. As backups they are tried only when every server above is marked down or
          // has failed this request.
          '    # The same servers, never marked down: tried only when every server above is failing.',
          ...backends.map((b) => `    server ${b.address} max_fails=0 backup;`),
        ];
  const lines = [
    `# Rendered by \`fleetts upstream\` from the live instances of service ${upstreamName(service)} (${n}).`,
    '# Do not edit: it is replaced on every change.',
    `upstream ${name} {`,
    ...servers,
    ...(keepalive > 0
      ? [`    keepalive ${keepalive};`, `    keepalive_timeout ${nginxTime(keepaliveTimeout)};`]
      : []),
    '}',
    '',
    `# Answers for ${name} when no instance is live: 503 with a page that says why.`,
    'server {',
    `    listen ${fallback};`,
    '    access_log off;',
    '    default_type text/html;',
    '    add_header Retry-After 2 always;',
    `    return 503 '${unavailablePage(name)}';`,
    '}',
    '',
  ];
  return lines.join('\n');
}

/** The 503 page: no `'`, `$` or `\` (it is an nginx string literal). */
export function unavailablePage(name: string): string {
  return (
    '<!doctype html><html><head><title>503 Service Unavailable</title></head><body>' +
    '<h1>503 Service Unavailable</h1>' +
    `<p>No instance of the service <b>${name}</b> is up right now. Try again in a few seconds.</p>` +
    '<p><small>fleetts upstream</small></p></body></html>\n'
  );
}

// ——— user templates ———

/** Placeholders with one value per file. */
const GLOBAL_PLACEHOLDERS = ['name', 'service', 'count'] as const;
/** Placeholders that make their line repeat once per live backend. */
const INSTANCE_PLACEHOLDERS = ['address', 'instance', 'machine', 'unit'] as const;
const SERVERS = 'servers';

type TemplateLine =
  | { readonly kind: 'text'; readonly text: string }
  | { readonly kind: 'servers'; readonly indent: string }
  | { readonly kind: 'each'; readonly text: string };

/** A parsed user template; see `parseUpstreamTemplate`. */
export interface UpstreamTemplate {
  readonly lines: readonly TemplateLine[];
}

export const TEMPLATE_HELP = `A template is the text of the file with placeholders:
  {{name}}      the upstream name (--name, default: the service)
  {{service}}   the service name
  {{count}}     how many live instances there are
  {{servers}}   alone on its line: one "server ADDRESS PARAMS;" line per live instance
  {{address}} {{instance}} {{machine}} {{unit}}
                a line holding any of these is repeated once per live instance
nginx rejects an upstream without servers: give your upstream a "server ... backup;" of its own
(the default template adds a local server answering 503) or, with no instance, nginx -t fails and
the previous file is kept.`;

const PLACEHOLDER_RE = /\{\{\s*([A-Za-z_]+)\s*\}\}/g;

/** Throws DiscoveryError `template_invalid` naming the line of an unknown or misplaced placeholder. */
export function parseUpstreamTemplate(text: string, file = 'template'): UpstreamTemplate {
  const lines: TemplateLine[] = [];
  text.split('\n').forEach((line, i) => {
    const names = [...line.matchAll(PLACEHOLDER_RE)].map((m) => m[1] ?? '');
    const known = [...GLOBAL_PLACEHOLDERS, ...INSTANCE_PLACEHOLDERS, SERVERS] as readonly string[];
    const unknown = names.find((n) => !known.includes(n));
    if (unknown !== undefined)
      throw new DiscoveryError(
        'template_invalid',
        `${file}:${i + 1}: unknown placeholder {{${unknown}}}; known: ${known.map((k) => `{{${k}}}`).join(' ')}`,
      );
    if (names.includes(SERVERS)) {
      const m = /^(\s*)\{\{\s*servers\s*\}\}\s*$/.exec(line);
      if (m === null)
        throw new DiscoveryError(
          'template_invalid',
          `${file}:${i + 1}: {{servers}} must be alone on its line`,
        );
      lines.push({ kind: 'servers', indent: m[1] ?? '' });
    } else if (names.some((n) => (INSTANCE_PLACEHOLDERS as readonly string[]).includes(n))) {
      lines.push({ kind: 'each', text: line });
    } else {
      lines.push({ kind: 'text', text: line });
    }
  });
  return { lines };
}

function renderTemplate(
  template: UpstreamTemplate,
  backends: readonly Backend[],
  options: UpstreamRenderOptions,
): string {
  const params = options.serverParams ?? DEFAULT_SERVER_PARAMS;
  const globals: Record<string, string> = {
    name: options.name,
    service: upstreamName(options.service),
    count: String(backends.length),
  };
  const fill = (text: string, values: Record<string, string>): string =>
    text.replace(PLACEHOLDER_RE, (_m, key: string) => values[key] ?? '');
  const out: string[] = [];
  for (const line of template.lines) {
    switch (line.kind) {
      case 'text':
        out.push(fill(line.text, globals));
        break;
      case 'servers':
        for (const b of backends) out.push(line.indent + serverLine(b, params));
        break;
      case 'each':
        for (const b of backends) out.push(fill(line.text, { ...globals, ...b }));
        break;
    }
  }
  return out.join('\n');
}
