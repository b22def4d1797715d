// The TCP API's token, read from a file by the real fleetd binary against a real etcd: an empty or
// short token file is refused at start (exit 2, one line, nothing listening), never taken to mean
// "no authentication"; a good one guards every route.
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { ROOT, runBin } from '../helpers/cli.js';
import { randomPrefix, useEtcd } from '../helpers/etcd.js';
import { freePort } from '../helpers/ports.js';
import { waitFor } from '../helpers/wait.js';

const etcd = useEtcd(test);

function fleetdArgs(dir: string, port: number, tokenFile: string): string[] {
  return [
    '--etcd-endpoints',
    etcd().endpoint,
    '--etcd-key-prefix',
    randomPrefix(),
    '--machine-id',
    'a'.repeat(32),
    '--public-ip',
    '127.0.0.1',
    '--state-dir',
    dir,
    '--api-socket',
    join(dir, 'fleetd.sock'),
    '--api-listen',
    `0.0.0.0:${port}`,
    '--api-token-file',
    tokenFile,
    '--runtime',
    'process',
    '--log-level',
    'warn',
  ];
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

for (const [title, content, length] of [
  ['an empty token file', '', 0],
  ['a token file of one line break', '\n', 0],
  ['a 1-character token file', 'x\n', 1],
  ['a 15-character token file', 'abcdefghijklmno', 15],
] as const) {
  test(`fleetd refuses to start with ${title}`, async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'fleetd-token-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    const tokenFile = join(dir, 'token');
    await writeFile(tokenFile, content);
    const port = await freePort();
    const r = await runBin('fleetd', fleetdArgs(dir, port, tokenFile), { timeoutMs: 60_000 });
    t.is(r.code, 2, r.stderr);
    t.is(
      r.stderr,
      `fleetd: api-token-file ${tokenFile}: the API token must be at least 16 characters, got ${length} (generate one with: openssl rand -hex 24)\n`,
    );
    t.false(await listening(port), 'nothing may listen on the API port');
  });
}

test('fleetd with a good token file answers 401 without the token and 200 with it', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'fleetd-token-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const tokenFile = join(dir, 'token');
  const token = '0123456789abcdef0123456789abcdef';
  await writeFile(tokenFile, `${token}\n`);
  const port = await freePort();
  const child = spawn(process.execPath, [`${ROOT}bin/fleetd.js`, ...fleetdArgs(dir, port, tokenFile)], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  t.teardown(async () => {
    child.kill('SIGTERM');
    await exited;
  });
  const url = `http://127.0.0.1:${port}`;
  await waitFor('fleetd to listen', () => listening(port), 60_000);
  const bare = await fetch(`${url}/v1/health`);
  t.is(bare.status, 401);
  const put = await fetch(`${url}/v1/units`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ units: [{ name: 'x.service', text: '[Service]\nExecStart=/bin/true\n' }] }),
  });
  t.is(put.status, 401);
  const ok = await fetch(`${url}/v1/health`, { headers: { authorization: `Bearer ${token}` } });
  t.is(ok.status, 200);
});
