// Shared helpers of the benchmarks (`npm run bench`): percentiles, machine facts, and writing one
// section of BENCHMARKS.md per benchmark (bench/results/<name>.md, assembled by bench/run.ts).
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { waitFor } from '../test/helpers/wait.js';

export const BENCH_DIR = fileURLToPath(new URL('./', import.meta.url));
export const ROOT = fileURLToPath(new URL('../', import.meta.url));

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx]!;
}

export const median = (values: readonly number[]): number => percentile(values, 50);

export function machineFacts(): string {
  const cpu = cpus()[0]?.model ?? 'unknown cpu';
  let etcd = 'etcd not found';
  try {
    etcd = execFileSync('etcd', ['--version'], { encoding: 'utf8' }).split('\n')[0] ?? etcd;
  } catch {
    /* reported as not found */
  }
  return `${cpus().length} × ${cpu}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${etcd}`;
}

/** Peak and current resident memory of a process, in MB, from /proc. */
export function processMemoryMb(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string): number =>
    Number(/(\d+) kB/.exec(status.split('\n').find((l) => l.startsWith(field)) ?? '')?.[1] ?? NaN);
  return { rss: kb('VmRSS:') / 1024, peak: kb('VmHWM:') / 1024 };
}

/** CPU time (user + system) of a process in ms, from /proc/<pid>/stat. */
export function processCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks * 1000) / 100; // USER_HZ is 100 on Linux
}

export function writeSection(name: string, markdown: string): void {
  mkdirSync(`${BENCH_DIR}results`, { recursive: true });
  const stamp = new Date().toISOString().slice(0, 16).replace('T', ' ');
  writeFileSync(
    `${BENCH_DIR}results/${name}.md`,
    `${markdown.trim()}\n\n_Measured ${stamp} UTC on ${machineFacts()}._\n`,
  );
}

export const fmt = (n: number, digits = 0): string =>
  Number.isFinite(n)
    ? n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
    : 'n/a';

/** The tests' one wait (test/helpers/wait.ts), with the benchmarks' argument order. */
export function until<T>(
  what: string,
  probe: () => T | undefined | Promise<T | undefined>,
  timeoutMs: number,
  pollMs = 20,
): Promise<T> {
  return waitFor(what, probe, { timeoutMs, intervalMs: pollMs });
}
