// serveApi: the unix socket (mode 0660, a stale socket replaced, a live one refused) and the TCP
// listener's rule: no authentication is allowed on loopback only; bearer tokens and TLS client
// certificates (made with openssl).
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { FakeClock } from '../../src/lib/clock.js';
import { silentLogger } from '../../src/lib/logger.js';
import { MemoryEtcd, MemoryRegistry } from '../../src/registry/memory-registry.js';
import { NO_LOCAL_UNITS } from '../../src/api/local-units.js';
import { createPeerClient } from '../../src/api/peer-client.js';
import { serveApi } from '../../src/api/serve-api.js';
import { parseEndpoint, readText, sendRequest } from '../../src/api/http-transport.js';
import { run } from '../../src/cli/main.js';
import { BufferOutput } from '../../src/cli/output.js';

const exec = promisify(execFile);

const dirs: string[] = [];
test.after.always(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

function deps() {
  const clock = new FakeClock();
  return {
    registry: new MemoryRegistry({ store: new MemoryEtcd({ clock }), prefix: '/serve/' }),
    machineId: 'm1',
    local: NO_LOCAL_UNITS,
    peers: createPeerClient(),
    registered: () => true,
    clock,
    log: silentLogger,
  };
}

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'fleetts-serve-'));
  dirs.push(dir);
  return dir;
}

test('unix socket: mode 0660, answers, replaces a stale socket file, refuses a live one', async (t) => {
  const dir = await tempDir();
  const path = join(dir, 'run', 'fleetd.sock');
  const server = await serveApi(deps(), { socketPath: path });
  t.teardown(() => server.close());
  t.is((await stat(path)).mode & 0o777, 0o660);
  const res = await sendRequest(parseEndpoint(`unix://${path}`), { method: 'GET', path: '/v1/health' });
  t.is(res.status, 200);
  t.like(JSON.parse(await readText(res)), { machine: 'm1', registered: true });

  const error = await t.throwsAsync(serveApi(deps(), { socketPath: path }));
  t.is(error.message, `${path} is in use by another running fleetd; stop it or use another --api-socket`);

  const stale = join(dir, 'stale.sock');
  await writeFile(stale, '');
  const again = await serveApi(deps(), { socketPath: stale });
  t.teardown(() => again.close());
  t.is(again.socketPath, stale);
});

test('TCP: refused on a non-loopback address without a token or client certificates', async (t) => {
  const error = await t.throwsAsync(serveApi(deps(), { tcp: { host: '0.0.0.0', port: 0 } }));
  t.is(
    error.message,
    'refusing to serve the API on 0.0.0.0 without authentication: set an API token or TLS client certificates (a CA), or listen on 127.0.0.1',
  );
  const open = await serveApi(deps(), { tcp: { host: '127.0.0.1', port: 0 } });
  t.teardown(() => open.close());
  t.regex(open.tcpAddress ?? '', /^http:\/\/127\.0\.0\.1:\d+$/);

  const guarded = await serveApi(deps(), { tcp: { host: '0.0.0.0', port: 0, token: 't0k-t0k-t0k-t0k-t0k' } });
  t.teardown(() => guarded.close());
  const port = /:(\d+)$/.exec(guarded.tcpAddress ?? '')?.[1] ?? '';
  const endpoint = parseEndpoint(`http://127.0.0.1:${port}`);
  t.is((await sendRequest(endpoint, { method: 'GET', path: '/v1/machines' })).status, 401);
  const ok = await sendRequest(
    endpoint,
    { method: 'GET', path: '/v1/machines' },
    { token: 't0k-t0k-t0k-t0k-t0k' },
  );
  t.is(ok.status, 200);
  t.deepEqual(JSON.parse(await readText(ok)), { machines: [] });
});

/** A CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl. */
async function makeCerts(
  dir: string,
): Promise<Record<'ca' | 'serverKey' | 'serverCert' | 'clientKey' | 'clientCert', string>> {
  const sh = (args: string[]) => exec('openssl', args, { cwd: dir });
  await sh([
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
    '-days',
    '1',
    '-subj',
    '/CN=test-ca',
  ]);
  for (const who of ['server', 'client']) {
    await sh([
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      `${who}.key`,
      '-out',
      `${who}.csr`,
      '-subj',
      `/CN=${who}`,
    ]);
    await writeFile(
      join(dir, `${who}.ext`),
      who === 'server' ? 'subjectAltName=IP:127.0.0.1\n' : 'extendedKeyUsage=clientAuth\n',
    );
    await sh([
      'x509',
      '-req',
      '-in',
      `${who}.csr`,
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      `${who}.pem`,
      '-days',
      '1',
      '-extfile',
      `${who}.ext`,
    ]);
  }
  const read = (f: string) => readFile(join(dir, f), 'utf8');
  return {
    ca: await read('ca.pem'),
    serverKey: await read('server.key'),
    serverCert: await read('server.pem'),
    clientKey: await read('client.key'),
    clientCert: await read('client.pem'),
  };
}

test('TCP with TLS client certificates: a client without one is refused, one with it gets in (also via fleetts)', async (t) => {
  const dir = await tempDir();
  const certs = await makeCerts(dir);
  const server = await serveApi(deps(), {
    tcp: { host: '0.0.0.0', port: 0, tls: { key: certs.serverKey, cert: certs.serverCert, ca: certs.ca } },
  });
  t.teardown(() => server.close());
  const port = /:(\d+)$/.exec(server.tcpAddress ?? '')?.[1] ?? '';
  t.regex(server.tcpAddress ?? '', /^https:/);
  const endpoint = parseEndpoint(`https://127.0.0.1:${port}`);
  const refused = await t.throwsAsync(
    sendRequest(endpoint, { method: 'GET', path: '/v1/health' }, { tls: { ca: certs.ca } }),
  );
  t.regex(refused.message, /^cannot reach fleetd at https:\/\/127\.0\.0\.1:\d+: /);
  const ok = await sendRequest(
    endpoint,
    { method: 'GET', path: '/v1/health' },
    { tls: { ca: certs.ca, cert: certs.clientCert, key: certs.clientKey } },
  );
  t.is(ok.status, 200);
  await readText(ok);

  const out = new BufferOutput();
  const code = await run(
    [
      '--endpoint',
      `https://127.0.0.1:${port}`,
      '--ca-file',
      join(dir, 'ca.pem'),
      '--cert-file',
      join(dir, 'client.pem'),
      '--key-file',
      join(dir, 'client.key'),
      'list-machines',
    ],
    out,
  );
  t.is(code, 0, out.stderr);
  t.is(out.stdout, 'MACHINE  IP  METADATA\n');
});
