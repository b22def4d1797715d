// ApacheBench (ab, Debian's apache2-utils) as the load generator of the web-load benchmark and its
// e2e test: runs it for a fixed time at a fixed concurrency and parses its summary. ab opens a new
// connection per request (no -k), as most clients of a public site do.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';

export interface AbOptions {
  readonly url: string;
  readonly concurrency: number;
  readonly seconds: number;
  /** ab's own per-request timeout (-s), in seconds: a request not answered by then ends the run. */
  readonly timeoutS?: number;
  /** Writes one line per request (-g: start time, connect, processing and total ms) to this file. */
  readonly perRequestFile?: string;
}

export interface AbResult {
  /** The command line, for the report. */
  readonly command: string;
  /** ab's exit code: not 0 when it gave up (a request timed out, or it could not connect at all). */
  readonly exitCode: number;
  readonly complete: number;
  /** Connect, receive and exception failures (ab's "Failed requests"; lengths may vary: -l). */
  readonly failed: number;
  readonly failedDetail: string;
  readonly non2xx: number;
  readonly requestsPerSecond: number;
  readonly medianMs: number;
  readonly p99Ms: number;
  readonly longestMs: number;
  /** ab's output when it could not be parsed or ab failed, for the failure message. */
  readonly output: string;
}

export function abArgs(o: AbOptions): string[] {
  return [
    // -l: the farm's page names the backend, so lengths differ; -r: count receive errors, go on.
    '-l',
    '-r',
    '-s',
    String(o.timeoutS ?? 30),
    '-c',
    String(o.concurrency),
    '-t',
    String(o.seconds),
    // -t alone stops at 50,000 requests; ab allocates a record per request up front, so not more
    // than 20,000 a second.
    '-n',
    String(o.seconds * 20_000),
    ...(o.perRequestFile === undefined ? [] : ['-g', o.perRequestFile]),
    o.url,
  ];
}

export function runAb(o: AbOptions): Promise<AbResult> {
  const args = abArgs(o);
  return new Promise((resolve) => {
    execFile(
      'ab',
      args,
      { timeout: (o.seconds + (o.timeoutS ?? 30) + 30) * 1000, maxBuffer: 4 << 20 },
      (err, stdout, stderr) => {
        const exitCode = err === null ? 0 : typeof err.code === 'number' ? err.code : 1;
        resolve(parseAb(`ab ${args.join(' ')}`, exitCode, `${String(stdout)}\n${String(stderr)}`));
      },
    );
  });
}

/** ab's summary as numbers; NaN for a figure ab did not print (it stopped early). */
export function parseAb(command: string, exitCode: number, output: string): AbResult {
  const num = (re: RegExp): number => {
    const m = re.exec(output);
    return m?.[1] === undefined ? NaN : Number(m[1]);
  };
  return {
    command,
    exitCode,
    complete: num(/^Complete requests:\s+(\d+)/m),
    failed: num(/^Failed requests:\s+(\d+)/m),
    failedDetail: /^\s+\((Connect: .*)\)$/m.exec(output)?.[1] ?? '',
    // Printed only when some were.
    non2xx: /^Complete requests:/m.test(output) ? num(/^Non-2xx responses:\s+(\d+)/m) || 0 : NaN,
    requestsPerSecond: num(/^Requests per second:\s+([\d.]+)/m),
    medianMs: num(/^\s+50%\s+(\d+)/m),
    p99Ms: num(/^\s+99%\s+(\d+)/m),
    longestMs: num(/^\s+100%\s+(\d+)/m),
    output: exitCode === 0 && /^Complete requests:/m.test(output) ? '' : output.slice(-4000),
  };
}

/** One request of ab's -g file: when it started (epoch ms) and its total time (ms). */
export interface AbRequest {
  readonly startMs: number;
  readonly totalMs: number;
}

/** Reads ab's -g file (tab-separated: starttime, seconds, ctime, dtime, ttime, wait). */
export async function readAbRequests(file: string): Promise<AbRequest[]> {
  const text = await readFile(file, 'utf8');
  const out: AbRequest[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.split('\t');
    const seconds = Number(f[1]);
    const total = Number(f[4]);
    if (Number.isFinite(seconds) && Number.isFinite(total))
      out.push({ startMs: seconds * 1000, totalMs: total });
  }
  return out;
}
