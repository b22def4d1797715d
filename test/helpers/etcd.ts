// Test harness: a real, throwaway etcd on loopback (random ports, temp data dir) for tests that
// need the real thing. One per test file (`useEtcd(test)`); each test takes its own key prefix.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestFn } from 'ava';
import { onFreePort, PortTaken, saysPortTaken } from './ports.js';

export interface RunningEtcd {
  /** `http://127.0.0.1:PORT`, for etcd3's `hosts`. */
  readonly endpoint: string;
  readonly dataDir: string;
  /** Stops etcd gracefully (SIGTERM) and removes its data dir. */
  stop(): Promise<void>;
  /** Kills etcd at once (SIGKILL), as a crash would, and removes its data dir. */
  kill(): Promise<void>;
  /** Freezes etcd (SIGSTOP): connections stay open and nothing answers, as in a long stall. */
  freeze(): void;
  /** Resumes a frozen etcd (SIGCONT). */
  thaw(): void;
  /**
   * Kills etcd (SIGKILL) and starts it again on the same data dir and ports, as a crashed member
   * restarted by its supervisor; resolves once it answers again.
   */
  restart(): Promise<void>;
}

/**
 * Fails (never skips) when the binary is missing: etcd is a declared test dependency. Its ports are
 * picked before etcd binds them: when another process took one meanwhile, it starts again on new ones.
 */
export function startEtcd(options: { binary?: string; startTimeoutMs?: number } = {}): Promise<RunningEtcd> {
  return onFreePort(2, ([clientPort, peerPort]) => startEtcdOn(clientPort ?? 0, peerPort ?? 0, options));
}

async function startEtcdOn(
  clientPort: number,
  peerPort: number,
  options: { binary?: string; startTimeoutMs?: number },
): Promise<RunningEtcd> {
  const binary = options.binary ?? process.env['FLEETTS_ETCD_BIN'] ?? 'etcd';
  const dataDir = await mkdtemp(join(tmpdir(), 'fleetts-etcd-'));
  const client = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  // A name of its own: the health check must not take another test's etcd on this port for ours.
  const name = `fleetts-test-${randomBytes(6).toString('hex')}`;
  const args = [
    '--name',
    name,
    '--data-dir',
    dataDir,
    '--listen-client-urls',
    client,
    '--advertise-client-urls',
    client,
    '--listen-peer-urls',
    peer,
    '--initial-advertise-peer-urls',
    peer,
    '--initial-cluster',
    `${name}=${peer}`,
    '--log-level',
    'error',
    '--logger',
    'zap',
  ];
  let proc = spawnEtcd(binary, args);
  const halt = async (signal: NodeJS.Signals): Promise<void> => {
    const { child, exited } = proc;
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGCONT'); // a frozen etcd would not act on SIGTERM
      child.kill(signal);
    }
    await exited;
  };
  const cleanup = async (signal: NodeJS.Signals): Promise<void> => {
    await halt(signal);
    await rm(dataDir, { recursive: true, force: true });
  };

  // Sized for a loaded 2-core machine: etcd's first fsyncs and election wait for the CPU too.
  const startTimeoutMs = options.startTimeoutMs ?? 30_000;
  const deadline = Date.now() + startTimeoutMs;
  for (;;) {
    const early = await Promise.race([proc.exited, delay(100).then(() => undefined)]);
    if (early !== undefined) {
      await rm(dataDir, { recursive: true, force: true });
      if (early.error !== undefined && (early.error as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new Error(
          `etcd is not installed: '${binary}' was not found on PATH. Install it (Debian: apt-get install etcd-server, ` +
            `or run scripts/ensure-deps.sh) or set FLEETTS_ETCD_BIN; registry tests need a real etcd.`,
        );
      }
      const why = `etcd exited during start-up (code ${String(early.code)}): ${early.error?.message ?? proc.stderr()}`;
      throw saysPortTaken(proc.stderr()) ? new PortTaken(why) : new Error(why);
    }
    if (await healthy(client, name)) break;
    if (Date.now() > deadline) {
      await cleanup('SIGKILL');
      throw new Error(`etcd did not become healthy at ${client} within the start timeout: ${proc.stderr()}`);
    }
  }
  return {
    endpoint: client,
    dataDir,
    stop: () => cleanup('SIGTERM'),
    kill: () => cleanup('SIGKILL'),
    freeze: () => void proc.child.kill('SIGSTOP'),
    thaw: () => void proc.child.kill('SIGCONT'),
    restart: async () => {
      await halt('SIGKILL');
      proc = spawnEtcd(binary, args);
      const until = Date.now() + startTimeoutMs;
      while (!(await healthy(client, name))) {
        if (proc.child.exitCode !== null || Date.now() > until)
          throw new Error(`etcd did not come back at ${client} after a restart: ${proc.stderr()}`);
        await delay(100);
      }
    },
  };
}

interface EtcdProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; error?: Error }>;
  /** The last 4000 characters it wrote to stderr. */
  stderr(): string;
}

function spawnEtcd(binary: string, args: readonly string[]): EtcdProcess {
  const child = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  const exited = new Promise<{ code: number | null; error?: Error }>((resolve) => {
    child.once('error', (error) => resolve({ code: null, error }));
    child.once('exit', (code) => resolve({ code }));
  });
  return { child, exited, stderr: () => stderr };
}

/**
 * Starts one etcd for the whole test file and stops it after; `etcd()` returns it inside tests.
 * A start failure fails every test of the file with the reason.
 */
export function useEtcd<C>(test: TestFn<C>): () => RunningEtcd {
  let running: RunningEtcd | undefined;
  let failure: unknown;
  test.before(async () => {
    try {
      running = await startEtcd();
    } catch (error) {
      failure = error;
    }
  });
  test.after.always(async () => {
    await running?.stop();
  });
  return () => {
    if (running === undefined) throw failure instanceof Error ? failure : new Error('etcd did not start');
    return running;
  };
}

/** A fresh key prefix per test, so that tests sharing one etcd never see each other's keys. */
export function randomPrefix(): string {
  return `/fleetts-test/${randomBytes(6).toString('hex')}/`;
}

/** Grants a lease nobody renews (over etcd's JSON gateway); resolves with its id. */
export async function grantLease(endpoint: string, ttlSeconds: number): Promise<string> {
  const body = await gateway<{ ID?: string }>(endpoint, 'lease/grant', { TTL: ttlSeconds });
  if (body.ID === undefined) throw new Error(`etcd at ${endpoint} granted no lease`);
  return body.ID;
}

/** etcd's view of a lease, in seconds: `ttl` is -1 once it expired or was revoked. */
export async function leaseTimeToLive(
  endpoint: string,
  id: string,
): Promise<{ readonly ttl: number; readonly grantedTtl: number }> {
  const body = await gateway<{ TTL?: string; grantedTTL?: string }>(endpoint, 'lease/timetolive', { ID: id });
  return { ttl: Number(body.TTL ?? NaN), grantedTtl: Number(body.grantedTTL ?? NaN) };
}

async function gateway<T>(endpoint: string, path: string, request: unknown): Promise<T> {
  const res = await fetch(`${endpoint}/v3/${path}`, {
    method: 'POST',
    body: JSON.stringify(request),
    signal: AbortSignal.timeout(10_000),
  });
  if (!res.ok) throw new Error(`etcd ${path} at ${endpoint}: HTTP ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

/** Healthy, and the member answering is the one named `name` (ours, not whoever took the port). */
async function healthy(client: string, name: string): Promise<boolean> {
  try {
    const res = await fetch(`${client}/health`, { signal: AbortSignal.timeout(1000) });
    const body = (await res.json()) as { health?: unknown };
    if (!res.ok || body.health !== 'true') return false;
    const members = await fetch(`${client}/v3/cluster/member/list`, {
      method: 'POST',
      body: '{}',
      signal: AbortSignal.timeout(1000),
    });
    const list = (await members.json()) as { members?: { name?: unknown }[] };
    return members.ok && list.members?.some((m) => m.name === name) === true;
  } catch {
    return false;
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
