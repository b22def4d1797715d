// A host with systemd as PID 1 for the systemd runtime's tests, on a machine whose own PID 1 is not
// systemd: a container of fleetts/systemd:latest (images/systemd) run the way systemd 252 needs it
// (host cgroup namespace, /sys/fs/cgroup read-write, tmpfs /run), with this checkout, its
// node_modules and this Node bind-mounted read-only at the same paths. Fails, never skips.

import { execFile, execFileSync, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { ensureDockerImages } from './docker.js';
import { waitFor } from './wait.js';

const run = promisify(execFile);
export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** What systemd as PID 1 in a container needs (docs/systemd-runtime.md). */
export const SYSTEMD_CONTAINER_FLAGS = [
  '--cgroupns=host',
  '-v',
  '/sys/fs/cgroup:/sys/fs/cgroup:rw',
  '--tmpfs',
  '/run',
  '--tmpfs',
  '/run/lock',
  '--cap-add',
  'ALL',
  '--cap-drop',
  'SYS_RESOURCE',
  '--security-opt',
  'seccomp=unconfined',
  '--security-opt',
  'apparmor=unconfined',
  '--security-opt',
  'systempaths=unconfined',
];

export interface SystemdContainer {
  readonly name: string;
  /** Runs a command inside; resolves with its output (rejects with its stderr on failure). */
  exec(args: readonly string[], options?: { cwd?: string; timeoutMs?: number }): Promise<string>;
  /** A long-running command inside, its output streamed. */
  spawn(args: readonly string[], options?: { cwd?: string }): ChildProcessWithoutNullStreams;
  remove(): void;
}

/** Starts the container and waits until its systemd has booted (running or degraded). */
export async function startSystemdContainer(
  name: string,
  extra: readonly string[] = [],
): Promise<SystemdContainer> {
  await ensureDockerImages(['systemd']);
  const mounts = new Set([REPO_ROOT, realpathSync(join(REPO_ROOT, 'node_modules'))]);
  const args = ['run', '-d', '--name', name, ...SYSTEMD_CONTAINER_FLAGS];
  for (const m of mounts) args.push('-v', `${m}:${m}:ro`);
  args.push('-v', `${process.execPath}:/usr/bin/node:ro`, ...extra, 'fleetts/systemd:latest');
  execFileSync('docker', ['rm', '-f', name], { stdio: 'ignore' });
  await run('docker', args);
  const c: SystemdContainer = {
    name,
    async exec(cmd, options = {}) {
      const { stdout } = await run(
        'docker',
        ['exec', ...(options.cwd === undefined ? [] : ['-w', options.cwd]), name, ...cmd],
        { maxBuffer: 64 * 1024 * 1024, timeout: options.timeoutMs ?? 60_000 },
      );
      return stdout;
    },
    spawn(cmd, options = {}) {
      return spawn('docker', [
        'exec',
        ...(options.cwd === undefined ? [] : ['-w', options.cwd]),
        name,
        ...cmd,
      ]);
    },
    remove() {
      execFileSync('docker', ['rm', '-f', name], { stdio: 'ignore' });
    },
  };
  try {
    await waitFor(
      `systemd to boot in container ${name}`,
      async () => {
        const state = await c
          .exec(['systemctl', 'is-system-running'])
          .catch((err: { stdout?: string }) => err.stdout ?? '');
        return state.trim() === 'running' || state.trim() === 'degraded' ? state.trim() : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 250 },
    );
  } catch (err) {
    const logs = await run('docker', ['logs', '--tail', '20', name]).catch(() => ({
      stdout: '',
      stderr: '',
    }));
    c.remove();
    throw new Error(`${(err as Error).message}; container log: ${logs.stdout}${logs.stderr}`);
  }
  return c;
}
