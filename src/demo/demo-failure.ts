// How `npm run demo` reports a failure (the one top-level catch of src/demo/main.ts): one line
// saying what happened, why, and what to do, plus what became of the cluster; evidence (log tails,
// a command's output) indented below it. Only an error nobody foresaw is reported as a bug, with
// its stack. Pure: an error and the state of the cluster in, text out.
import { FleetError, UsageError } from '../lib/errors.js';

/** What the demo did with the cluster after the failure. */
export type Aftermath =
  /** The failure came before anything was made. */
  | { readonly kind: 'nothing-made' }
  /** `up` failed; what it had made was removed again. */
  | { readonly kind: 'removed' }
  /** Removing it failed too (its message), or the failure came while tearing down. */
  | { readonly kind: 'not-removed'; readonly flag: string; readonly why?: string }
  /** The cluster was up: it is left for a look. */
  | { readonly kind: 'left-up'; readonly flag: string };

export interface Failure {
  /** The line (without the `fleetts demo: ` prefix). */
  readonly line: string;
  /** Evidence shown indented below the line (log tails, a command's stderr); at most MAX_DETAIL. */
  readonly detail: readonly string[];
  readonly exitCode: number;
  /** Nobody foresaw this error: the line says it is a bug, the detail is its stack. */
  readonly bug: boolean;
}

export const MAX_DETAIL = 12;

/** etcd 3.4's last words when a port of its is taken: `listen tcp 10.213.0.1:2380: bind: address already in use`. */
const ETCD_PORT_TAKEN = /listen tcp (\S+?):(\d+): bind: address already in use/;

export function describeFailure(err: unknown, after: Aftermath): Failure {
  if (err instanceof UsageError || (err instanceof FleetError && err.code === 'demo_usage'))
    return {
      line: `${err.message} (see npm run demo -- --help)`,
      detail: [],
      exitCode: 2,
      bug: false,
    };
  if (err instanceof FleetError) {
    const port = ETCD_PORT_TAKEN.exec(err.message);
    if (port !== null)
      return {
        line: withAftermath(
          `etcd cannot listen on ${port[1]}:${port[2]}: another program has that port ` +
            `(\`ss -ltnp 'sport = :${port[2]}'\` shows which); stop it and run the demo again`,
          after,
        ),
        detail: [],
        exitCode: 1,
        bug: false,
      };
    const [first = '', ...rest] = err.message.trimEnd().split('\n');
    const detail = cap(rest);
    // `… failed (exit 1):` followed by its output: the line points at the evidence below it.
    const headline = detail.length > 0 && first.endsWith(':') ? `${first.slice(0, -1)} (below)` : first;
    return { line: withAftermath(headline, after), detail, exitCode: 1, bug: false };
  }
  if (isSystemError(err))
    // EACCES, ENOSPC, EROFS …: this machine's doing, and Node's message names the call and the path.
    return {
      line: withAftermath(`${err.message} (a problem of this machine, not of the demo)`, after),
      detail: [],
      exitCode: 1,
      bug: false,
    };
  const message = err instanceof Error ? err.message : String(err);
  const stack = err instanceof Error ? (err.stack ?? '').split('\n').slice(1) : [];
  return {
    line: withAftermath(`unexpected error (a bug in the demo; please report it): ${message}`, after),
    detail: stack.map((l) => l.trim()).filter((l) => l !== ''),
    exitCode: 1,
    bug: true,
  };
}

/** The printed form: the line, then the detail indented. */
export function formatFailure(f: Failure): string {
  return [`fleetts demo: ${f.line}`, ...f.detail.map((l) => `    ${l}`)].join('\n');
}

function withAftermath(line: string, after: Aftermath): string {
  const base = line.replace(/[\s:;.]+$/, '');
  switch (after.kind) {
    case 'nothing-made':
      return base;
    case 'removed':
      return `${base} (what the demo had made is removed again)`;
    case 'not-removed':
      return (
        `${base}; the dev cluster is not removed${after.why === undefined ? '' : ` (${after.why})`}: ` +
        `\`sudo fleetts dev down${after.flag}\` removes it`
      );
    case 'left-up':
      return (
        `${base}; the cluster is left up to look at (fleetts list-units, fleetts journal UNIT): ` +
        `\`sudo fleetts dev down${after.flag}\` removes it`
      );
  }
}

function cap(lines: readonly string[]): string[] {
  const kept = lines.filter((l) => l.trim() !== '');
  return kept.length <= MAX_DETAIL
    ? kept
    : [...kept.slice(0, MAX_DETAIL - 1), `… (${kept.length - MAX_DETAIL + 1} more lines)`];
}

function isSystemError(err: unknown): err is NodeJS.ErrnoException {
  return (
    err instanceof Error &&
    typeof (err as NodeJS.ErrnoException).code === 'string' &&
    typeof (err as NodeJS.ErrnoException).syscall === 'string'
  );
}
