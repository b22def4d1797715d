// One real fleetd (the built binary, dist/) on a real etcd, serving its API on a loopback TCP port
// with a token: for tests of what the API answers end to end.
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './cli.js';
import { randomPrefix } from './etcd.js';
import { freePort } from './ports.js';
import { waitFor } from './wait.js';

export const TEST_TOKEN = '0123456789abcdef0123456789abcdef';

export interface TcpFleetd {
  /** http://127.0.0.1:PORT */
  readonly url: string;
  readonly socket: string;
  readonly dir: string;
  readonly pid: number;
  /** A request with the token (and a JSON body when given). */
  request(method: string, path: string, body?: unknown): Promise<Response>;
  stop(): Promise<void>;
}

/** Starts fleetd and waits until it lists itself among the machines. */
export async function startTcpFleetd(options: {
  etcdEndpoint: string;
  machineId: string;
  args?: readonly string[];
  /** Run bin/fleetd.js itself, through its #! line, as an installed fleetd runs (default: `node bin/fleetd.js`). */
  viaShebang?: boolean;
}): Promise<TcpFleetd> {
  const dir = await mkdtemp(join(tmpdir(), 'fleetd-tcp-'));
  const tokenFile = join(dir, 'token');
  await writeFile(tokenFile, `${TEST_TOKEN}\n`);
  const port = await freePort();
  const socket = join(dir, 'fleetd.sock');
  const bin = `${ROOT}bin/fleetd.js`;
  const child = spawn(
    options.viaShebang === true ? bin : process.execPath,
    [
      ...(options.viaShebang === true ? [] : [bin]),
      ...['--etcd-endpoints', options.etcdEndpoint, '--etcd-key-prefix', randomPrefix()],
      ...['--machine-id', options.machineId, '--public-ip', '127.0.0.1', '--state-dir', dir],
      ...['--api-socket', socket, '--api-listen', `127.0.0.1:${port}`],
      ...['--api-token-file', tokenFile, '--runtime', 'process', '--log-level', 'warn'],
      ...(options.args ?? []),
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const url = `http://127.0.0.1:${port}`;
  const request = (method: string, path: string, body?: unknown): Promise<Response> =>
    fetch(`${url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${TEST_TOKEN}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  const stop = async (): Promise<void> => {
    child.kill('SIGTERM');
    await exited;
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await waitFor('fleetd to register', async () => {
      const res = await request('GET', '/v1/machines').catch(() => undefined);
      return res?.status === 200 && ((await res.json()) as { machines: unknown[] }).machines.length === 1;
    });
  } catch (err) {
    await stop();
    throw err;
  }
  return { url, socket, dir, pid: child.pid ?? 0, request, stop };
}

/** The `{error: {code, message}}` of an API answer; throws if the body has another shape. */
export async function errorOf(res: Response): Promise<{ code: string; message: string }> {
  const body = (await res.json()) as { error?: { code: string; message: string } };
  if (body.error === undefined) throw new Error(`not the API's error shape: ${JSON.stringify(body)}`);
  return body.error;
}
