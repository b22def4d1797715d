// Runs the real `fleetts`/`fleetd` binaries (the compiled dist/, as a user would) and collects output.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface RunResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * At most this many CLI/daemon processes that runBin starts run at once in one test worker: a
 * file whose tests each spawn a few node processes (refusal tables, the cloud-config examples)
 * would otherwise start 20 at once, a burst of CPU that stalls every other file's leases and
 * timers on a 2-core machine. `concurrent: true` bypasses it (a test of concurrency itself).
 */
const MAX_CHILDREN = 3;
let running = 0;
const waiting: (() => void)[] = [];

async function slot(): Promise<() => void> {
  if (running >= MAX_CHILDREN) await new Promise<void>((resolve) => waiting.push(resolve));
  running++;
  return () => {
    running--;
    waiting.shift()?.();
  };
}

export async function runBin(
  bin: 'fleetts' | 'fleetd',
  args: readonly string[],
  options: {
    env?: NodeJS.ProcessEnv;
    timeoutMs?: number;
    cwd?: string;
    /** Written to the child's stdin, which is then closed (default: no stdin). */
    stdin?: string;
    /** Not counted against MAX_CHILDREN. */
    concurrent?: boolean;
  } = {},
): Promise<RunResult> {
  const release = options.concurrent === true ? () => undefined : await slot();
  try {
    return await new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [`${ROOT}bin/${bin}.js`, ...args], {
        cwd: options.cwd ?? ROOT,
        env: { ...process.env, ...options.env },
        stdio: [options.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
      child.on('error', reject);
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        resolve({ code, signal, stdout, stderr });
      });
      if (options.stdin !== undefined) child.stdin?.end(options.stdin);
    });
  } finally {
    release();
  }
}
