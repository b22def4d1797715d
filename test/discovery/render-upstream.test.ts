// renderUpstream and its helpers (pure): what `fleetts upstream` writes for a set of instances.
import test from 'ava';
import { asMachineId, asUnitName } from '../../src/lib/ids.js';
import type { ServiceInstance } from '../../src/registry/registry.js';
import {
  checkBackendAddress,
  parseUpstreamTemplate,
  renderUpstream,
  selectBackends,
  upstreamName,
} from '../../src/discovery/render-upstream.js';

const since = '2026-01-01T00:00:00.000Z';
const inst = (instance: string, address: string, extra: Partial<ServiceInstance> = {}): ServiceInstance => ({
  service: 'web',
  instance,
  address,
  since,
  ...extra,
});

test('default template: one server line per instance, sorted by instance, then the same servers as never-failing backups', (t) => {
  const text = renderUpstream(
    [
      inst('web@2.unit', '10.0.0.2:8080'),
      inst('web@1.unit', '10.0.0.1:8080', { machine: asMachineId('m1'), unit: asUnitName('web@1.unit') }),
    ],
    { name: 'web', service: 'web', fallbackListen: 'unix:/tmp/x.sock' },
  );
  t.is(
    text,
    [
      '# Rendered by `fleetts upstream` from the live instances of service web (2).',
      '# Do not edit: it is replaced on every change.',
      'upstream web {',
      '    server 10.0.0.1:8080 max_fails=3 fail_timeout=5s;  # web@1.unit web@1.unit m1',
      '    server 10.0.0.2:8080 max_fails=3 fail_timeout=5s;  # web@2.unit',
      '    # The same servers, never marked down: tried only when every server above is failing.',
      '    server 10.0.0.1:8080 max_fails=0 backup;',
      '    server 10.0.0.2:8080 max_fails=0 backup;',
      '    keepalive 16;',
      '    keepalive_timeout 4s;',
      '}',
      '',
      '# Answers for web when no instance is live: 503 with a page that says why.',
      'server {',
      '    listen unix:/tmp/x.sock;',
      '    access_log off;',
      '    default_type text/html;',
      '    add_header Retry-After 2 always;',
      `    return 503 '<!doctype html><html><head><title>503 Service Unavailable</title></head><body><h1>503 Service Unavailable</h1><p>No instance of the service <b>web</b> is up right now. Try again in a few seconds.</p><p><small>fleetts upstream</small></p></body></html>\n';`,
      '}',
      '',
    ].join('\n'),
  );
});

test('default template: the 503 server is never a backup beside live instances (failures retry the instances)', (t) => {
  const text = renderUpstream([inst('web@1.unit', '10.0.0.1:8080')], {
    name: 'web',
    service: 'web',
    fallbackListen: '127.0.0.1:9999',
  });
  t.notRegex(text, /server 127\.0\.0\.1:9999/);
  t.regex(text, /listen 127\.0\.0\.1:9999;/, 'it still listens, for when no instance is live');
  t.regex(text, /server 10\.0\.0\.1:8080 max_fails=0 backup;/);
});

test('default template: keepalive_timeout follows the option, whole seconds or ms', (t) => {
  const one = [inst('web@1.unit', '10.0.0.1:8080')];
  t.regex(
    renderUpstream(one, { name: 'web', service: 'web', keepalive: 8, keepaliveTimeoutMs: 30_000 }),
    /\n {4}keepalive 8;\n {4}keepalive_timeout 30s;\n\}/,
  );
  t.regex(
    renderUpstream(one, { name: 'web', service: 'web', keepaliveTimeoutMs: 1_500 }),
    /keepalive_timeout 1500ms;/,
  );
  t.notRegex(renderUpstream(one, { name: 'web', service: 'web', keepalive: 0 }), /keepalive/);
});

test('default template: own server parameters go on the primary lines only', (t) => {
  const text = renderUpstream([inst('web@1.unit', '10.0.0.1:8080')], {
    name: 'web',
    service: 'web',
    serverParams: 'max_fails=1 fail_timeout=10s weight=2',
  });
  t.regex(text, /server 10\.0\.0\.1:8080 max_fails=1 fail_timeout=10s weight=2;/);
  t.regex(text, /server 10\.0\.0\.1:8080 max_fails=0 backup;/);
});

test('default template, no instance: the 503 server is the only (primary) server, so nginx still loads', (t) => {
  const text = renderUpstream([], {
    name: 'web',
    service: 'web',
    fallbackListen: '127.0.0.1:9999',
    keepalive: 0,
  });
  t.regex(text, /upstream web \{\n {4}# No live instance[^\n]*\n {4}server 127\.0\.0\.1:9999;\n\}/);
  t.notRegex(text, /backup|keepalive/);
  t.regex(text, /listen 127\.0\.0\.1:9999;/);
  t.regex(text, /return 503 '[^'$\\]*No instance of the service <b>web<\/b>/);
});

test('default fallback socket is named after the upstream', (t) => {
  t.regex(
    renderUpstream([], { name: 'api.v2', service: 'api.v2' }),
    /server unix:\/run\/fleetts-upstream-api\.v2\.sock;/,
  );
});

const addressRows: readonly [string, string | undefined][] = [
  ['10.0.0.1:80', undefined],
  ['web-1.example.com:8080', undefined],
  ['[fd00::1]:443', undefined],
  ['10.0.0.1', "address '10.0.0.1' is not host:port"],
  ['10.0.0.1:0', "address '10.0.0.1:0' has no valid port (1-65535)"],
  ['10.0.0.1:70000', "address '10.0.0.1:70000' has no valid port (1-65535)"],
  ['x;}server{:80', "address 'x;}server{:80' has an invalid host"],
  ['a b:80', "address 'a b:80' has an invalid host"],
];
for (const [address, reason] of addressRows) {
  test(`checkBackendAddress ${JSON.stringify(address)}`, (t) => {
    t.is(checkBackendAddress(address), reason);
  });
}

test('selectBackends skips bad addresses, unsafe names and duplicate addresses, with reasons', (t) => {
  const { backends, skipped } = selectBackends([
    inst('c', '10.0.0.1:80'),
    inst('a', '10.0.0.1:80'),
    inst('b', '1.2.3.4:80; } server { listen 80'),
    inst("d'", '10.0.0.4:80'),
    inst('e', '10.0.0.5:80', { unit: asUnitName('x{y}.unit') }),
  ]);
  t.deepEqual(
    backends.map((b) => b.instance),
    ['a'],
  );
  t.deepEqual(skipped, [
    { instance: 'b', reason: "address '1.2.3.4:80; } server { listen 80' has no valid port (1-65535)" },
    { instance: 'c', reason: 'address 10.0.0.1:80 is already announced by a' },
    { instance: "d'", reason: "instance 'd'' has characters not allowed in an nginx config" },
    { instance: 'e', reason: "unit 'x{y}.unit' has characters not allowed in an nginx config" },
  ]);
});

test('an instance that would inject configuration never reaches the file', (t) => {
  const text = renderUpstream([inst('evil', '1.2.3.4:80; } server { listen 80')], {
    name: 'web',
    service: 'web',
  });
  t.notRegex(text, /1\.2\.3\.4/);
});

test('upstreamName makes any service name a safe nginx name', (t) => {
  t.is(upstreamName('web'), 'web');
  t.is(upstreamName('my:svc@x'), 'my_svc_x');
});

test('user template: globals, {{servers}} at its indentation, per-instance lines repeated', (t) => {
  const template = parseUpstreamTemplate(
    [
      '# {{service}}: {{count}} live',
      'upstream {{name}} {',
      '    {{servers}}',
      '    server 127.0.0.1:1 backup;',
      '}',
      'map $host $x { default 1; } # {{instance}} on {{machine}} at {{address}}',
      '',
    ].join('\n'),
  );
  const text = renderUpstream(
    [inst('w2', '10.0.0.2:80'), inst('w1', '10.0.0.1:80', { machine: asMachineId('m1') })],
    { name: 'back', service: 'web', serverParams: 'weight=2' },
  );
  t.regex(text, /upstream back/, 'no template: default');
  const rendered = renderUpstream(
    [inst('w2', '10.0.0.2:80'), inst('w1', '10.0.0.1:80', { machine: asMachineId('m1') })],
    { name: 'back', service: 'web', serverParams: 'weight=2', template },
  );
  t.is(
    rendered,
    [
      '# web: 2 live',
      'upstream back {',
      '    server 10.0.0.1:80 weight=2;',
      '    server 10.0.0.2:80 weight=2;',
      '    server 127.0.0.1:1 backup;',
      '}',
      'map $host $x { default 1; } # w1 on m1 at 10.0.0.1:80',
      'map $host $x { default 1; } # w2 on  at 10.0.0.2:80',
      '',
    ].join('\n'),
  );
});

const templateErrors: readonly [string, string][] = [
  [
    'upstream {{nmae}} {}',
    'tpl:1: unknown placeholder {{nmae}}; known: {{name}} {{service}} {{count}} {{address}} {{instance}} {{machine}} {{unit}} {{servers}}',
  ],
  ['upstream x {\n  {{servers}} # all\n}', 'tpl:2: {{servers}} must be alone on its line'],
  ['{{servers}} {{address}}', 'tpl:1: {{servers}} must be alone on its line'],
];
for (const [text, message] of templateErrors) {
  test(`template error: ${JSON.stringify(text)}`, (t) => {
    const err = t.throws(() => parseUpstreamTemplate(text, 'tpl'));
    t.is(err?.message, message);
    t.is((err as { code?: string } | undefined)?.code, 'template_invalid');
  });
}

const optionErrors: readonly [string, Parameters<typeof renderUpstream>[1], string][] = [
  [
    'name',
    { name: 'we b', service: 'web' },
    "upstream name 'we b' may only hold letters, digits, '_', '.' and '-'",
  ],
  [
    'params',
    { name: 'web', service: 'web', serverParams: 'max_fails=1;' },
    "server parameters 'max_fails=1;' may only hold words like max_fails=1 fail_timeout=5s",
  ],
  [
    'listen',
    { name: 'web', service: 'web', fallbackListen: '/tmp/x.sock' },
    "fallback listen address '/tmp/x.sock' must be unix:/path or host:port",
  ],
  [
    'keepalive',
    { name: 'web', service: 'web', keepalive: -1 },
    'keepalive must be a whole number ≥ 0, not -1',
  ],
  [
    'keepalive timeout',
    { name: 'web', service: 'web', keepaliveTimeoutMs: 0 },
    'keepalive timeout must be a whole number of ms ≥ 1, not 0',
  ],
];
for (const [what, options, message] of optionErrors) {
  test(`render option error: ${what}`, (t) => {
    t.is(t.throws(() => renderUpstream([], options))?.message, message);
  });
}
