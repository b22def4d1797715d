// The effectful primitives of `fleetts dev`: running a command, starting a detached process,
// knowing a process by pid AND start time (a recycled pid is not ours), killing a namespace's
// processes at once, and finding the mounts and cgroups they leave behind.
import { execFile, spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { readdir, readFile, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Clock } from '../lib/clock.js';
import { DevError } from './dev-error.js';

export interface CommandResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command; throws a DevError naming it unless `allowFail`. */
export function runCommand(
  argv: readonly string[],
  options: { allowFail?: boolean; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<CommandResult> {
  const [cmd, ...args] = argv;
  if (cmd === undefined) throw new Error('runCommand: empty argv');
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      args,
      { env: options.env ?? process.env, timeout: options.timeoutMs ?? 30_000, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        const errno = err as (NodeJS.ErrnoException & { code?: unknown }) | null;
        if (errno !== null && errno.code === 'ENOENT')
          return reject(
            new DevError(
              'dev_step_failed',
              `${cmd} is not installed (needed by fleetts dev); run scripts/ensure-deps.sh`,
            ),
          );
        const code = errno === null ? 0 : typeof errno.code === 'number' ? errno.code : 1;
        const result = { code, stdout: String(stdout), stderr: String(stderr) };
        if (code !== 0 && options.allowFail !== true)
          return reject(
            new DevError(
              'dev_step_failed',
              `\`${argv.join(' ')}\` failed: ${result.stderr.trim() || `exit ${code}`}`,
            ),
          );
        resolve(result);
      },
    );
  });
}

/** The start time field of /proc/<pid>/stat, or undefined when no such process. */
export async function processStartTime(pid: number): Promise<string | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'latin1');
    // Field 22; the command name (field 2) may hold spaces and parentheses, so count from its end.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const state = rest[0];
    if (state === 'Z' || state === 'X') return undefined;
    return rest[19];
  } catch {
    return undefined;
  }
}

export interface ProcessIdentity {
  readonly pid: number;
  readonly startTime: string;
}

export async function isRunning(p: ProcessIdentity): Promise<boolean> {
  return (await processStartTime(p.pid)) === p.startTime;
}

/**
 * Starts `argv` in its own session (it outlives the CLI), output appended to `logFile`.
 * Resolves once the process exists; a command that cannot start is reported with its log's path.
 */
export async function spawnDetached(
  argv: readonly string[],
  options: { logFile: string; env?: NodeJS.ProcessEnv; cwd?: string },
): Promise<ProcessIdentity> {
  const [cmd, ...args] = argv;
  if (cmd === undefined) throw new Error('spawnDetached: empty argv');
  const fd = openSync(options.logFile, 'a');
  try {
    const child = spawn(cmd, args, {
      detached: true,
      stdio: ['ignore', fd, fd],
      env: options.env ?? process.env,
      ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    });
    const pid = await new Promise<number>((resolve, reject) => {
      child.once('error', (err) =>
        reject(new DevError('dev_step_failed', `cannot start ${cmd}: ${err.message}`, { cause: err })),
      );
      child.once('spawn', () => resolve(child.pid ?? 0));
    });
    child.unref();
    const startTime = await processStartTime(pid);
    if (startTime === undefined)
      throw new DevError('dev_step_failed', `${cmd} exited at once; see ${options.logFile}`);
    return { pid, startTime };
  } finally {
    closeSync(fd);
  }
}

/** Pids whose network namespace is `/var/run/netns/<name>` (empty when it does not exist). */
export async function netnsPids(name: string): Promise<number[]> {
  const r = await runCommand(['ip', 'netns', 'pids', name], { allowFail: true });
  if (r.code !== 0) return [];
  return r.stdout
    .split(/\s+/)
    .filter((s) => /^\d+$/.test(s))
    .map(Number);
}

/** `roots` and every live descendant of them (children a process forked into another namespace too). */
export async function withDescendants(roots: readonly number[]): Promise<number[]> {
  const parentOf = new Map<number, number>();
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, 'latin1');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parentOf.set(Number(entry), ppid);
    } catch {
      // gone meanwhile
    }
  }
  const all = new Set(roots);
  let grew = true;
  while (grew) {
    grew = false;
    for (const [pid, ppid] of parentOf)
      if (!all.has(pid) && all.has(ppid)) {
        all.add(pid);
        grew = true;
      }
  }
  return [...all].sort((a, b) => a - b);
}

/** SIGKILLs every pid at once (no process gets to react to another's death), then waits them out. */
export async function killAll(pids: readonly number[], clock: Clock, timeoutMs = 10_000): Promise<void> {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  const deadline = clock.monotonic() + timeoutMs;
  for (;;) {
    const left = [];
    for (const pid of pids) if ((await processStartTime(pid)) !== undefined) left.push(pid);
    if (left.length === 0) return;
    if (clock.monotonic() > deadline)
      throw new DevError(
        'dev_step_failed',
        `processes ${left.join(', ')} survived SIGKILL for ${timeoutMs} ms`,
      );
    await clock.sleep(50);
  }
}

/** /proc/mounts escapes spaces and the like as octal (`\040`). */
function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export async function mountTargets(): Promise<string[]> {
  const text = await readFile('/proc/mounts', 'utf8');
  return text
    .split('\n')
    .map((l) => l.split(' ')[1])
    .filter((t): t is string => t !== undefined && t !== '')
    .map(unescapeMount);
}

/** Mount points at or below `dir`, deepest first (the order to unmount them). */
export async function mountsUnder(dir: string): Promise<string[]> {
  const base = dir.replace(/\/+$/, '');
  const found = (await mountTargets()).filter((t) => t === base || t.startsWith(base + '/'));
  return [...new Set(found)].sort((a, b) => b.length - a.length);
}

/** Every mount at or below `dir`, lazily (a dead dockerd's overlay mounts may still be busy). */
export async function unmountUnder(dir: string): Promise<void> {
  for (const target of await mountsUnder(dir))
    await runCommand(['umount', '-l', target], { allowFail: true });
}

/**
 * The cgroup directories (below a `fleetts` level, where the process runtime puts units) that
 * `pids` are in: after a power-off they are empty and are removed, as a reboot would clear them.
 */
export async function fleettsCgroups(pids: readonly number[]): Promise<string[]> {
  const hierarchies = await cgroupHierarchies();
  const dirs = new Set<string>();
  for (const pid of pids) {
    let text: string;
    try {
      text = await readFile(`/proc/${pid}/cgroup`, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) {
      const m = /^\d+:([^:]*):(.*)$/.exec(line);
      if (m === null || !(m[2] ?? '').includes('/fleetts/')) continue;
      const ctrls = (m[1] ?? '').split(',').sort().join(',');
      const h = hierarchies.find((x) => x.controllers === ctrls);
      if (h !== undefined) dirs.add(join(h.dir, m[2] ?? ''));
    }
  }
  return [...dirs];
}

/** The cgroup hierarchies mounted here: their controllers (v1; '' for v2) and mount points. */
export async function cgroupHierarchies(): Promise<{ controllers: string; dir: string }[]> {
  const mounts = await readFile('/proc/mounts', 'utf8');
  const hierarchies: { controllers: string; dir: string }[] = [];
  for (const line of mounts.split('\n')) {
    const [, target, type, opts] = line.split(' ');
    if (target === undefined || opts === undefined) continue;
    if (type === 'cgroup2') hierarchies.push({ controllers: '', dir: unescapeMount(target) });
    if (type === 'cgroup') {
      const named = opts.split(',').find((o) => o.startsWith('name='));
      const ctrls = opts
        .split(',')
        .filter((o) => !['rw', 'ro', 'nosuid', 'nodev', 'noexec', 'relatime'].includes(o));
      hierarchies.push({ controllers: named ?? ctrls.sort().join(','), dir: unescapeMount(target) });
    }
  }
  return hierarchies;
}

/**
 * Removes the cgroup trees `.../fleetts/<runtime>/…` holding `dirs`, depth first; a cgroup that
 * still has processes cannot be removed and stays (rmdir fails on it).
 */
export async function removeCgroupTrees(dirs: readonly string[]): Promise<void> {
  const roots = new Set<string>();
  for (const dir of dirs) {
    const m = /^(.*\/fleetts\/[^/]+)/.exec(dir);
    if (m?.[1] !== undefined) roots.add(m[1]);
  }
  const removeTree = async (dir: string): Promise<void> => {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) if (e.isDirectory()) await removeTree(join(dir, e.name));
    await rmdir(dir).catch(() => undefined);
  };
  for (const root of roots) await removeTree(root);
}
