// The announcer's health checks: an HTTP GET (2xx/3xx passes) or a TCP connect, each with a short
// deadline on the injected Clock, one fresh connection per check (a pooled connection would hide
// a backend that stopped accepting new ones). The deadline counts only the time this process could
// have seen the answer (checkDeadline): a checker starved of CPU must not call a healthy backend down.
import { request as httpRequest } from 'node:http';
import { https } from '../lib/lazy-https.js';
import { connect } from 'node:net';
import type { Clock, Timer } from '../lib/clock.js';
import { UsageError } from '../lib/errors.js';
import type { CheckOutcome } from './check-state.js';

export type CheckTarget =
  | { readonly kind: 'http'; readonly url: string }
  | { readonly kind: 'tcp'; readonly host: string; readonly port: number };

/** `http://…`, `https://…` or `tcp://host:port`; throws UsageError naming the accepted forms. */
export function parseCheckTarget(text: string, flag = '--check'): CheckTarget {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`${flag} '${text}' is not a URL: give http://HOST:PORT/PATH or tcp://HOST:PORT`);
  }
  if (url.protocol === 'http:' || url.protocol === 'https:') return { kind: 'http', url: url.href };
  if (url.protocol === 'tcp:') {
    const port = Number(url.port);
    if (url.hostname === '' || !(port > 0))
      throw new UsageError(`${flag} '${text}' needs a host and a port: tcp://HOST:PORT`);
    return { kind: 'tcp', host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port };
  }
  throw new UsageError(`${flag} '${text}': only http://, https:// and tcp:// checks exist`);
}

export function describeCheckTarget(target: CheckTarget): string {
  return target.kind === 'http' ? target.url : `tcp://${target.host}:${target.port}`;
}

/** Runs one check; never throws (every problem is a `fail` with its reason). */
export function checkHealth(
  target: CheckTarget,
  options: { clock: Clock; timeoutMs: number },
): Promise<CheckOutcome> {
  return target.kind === 'http' ? checkHttp(target.url, options) : checkTcp(target, options);
}

function checkHttp(
  url: string,
  { clock, timeoutMs }: { clock: Clock; timeoutMs: number },
): Promise<CheckOutcome> {
  return new Promise((resolve) => {
    const controller = new AbortController();
    let settled = false;
    const finish = (outcome: CheckOutcome): void => {
      if (settled) return;
      settled = true;
      timer.cancel();
      controller.abort();
      resolve(outcome);
    };
    const timer = checkDeadline(clock, timeoutMs, () =>
      finish({ kind: 'fail', reason: `no answer within ${timeoutMs} ms` }),
    );
    const request = url.startsWith('https:') ? https().request : httpRequest;
    const req = request(url, { method: 'GET', agent: false, signal: controller.signal }, (res) => {
      const status = res.statusCode ?? 0;
      res.resume();
      if (status >= 200 && status < 400) finish({ kind: 'pass', detail: `HTTP ${status}` });
      else finish({ kind: 'fail', reason: `HTTP ${status}` });
    });
    req.on('error', (err: NodeJS.ErrnoException) =>
      finish({ kind: 'fail', reason: err.code ?? err.message }),
    );
    req.end();
  });
}

function checkTcp(
  target: { host: string; port: number },
  { clock, timeoutMs }: { clock: Clock; timeoutMs: number },
): Promise<CheckOutcome> {
  return new Promise((resolve) => {
    let settled = false;
    const socket = connect({ host: target.host, port: target.port });
    const finish = (outcome: CheckOutcome): void => {
      if (settled) return;
      settled = true;
      timer.cancel();
      socket.destroy();
      resolve(outcome);
    };
    const timer = checkDeadline(clock, timeoutMs, () =>
      finish({ kind: 'fail', reason: `no connection within ${timeoutMs} ms` }),
    );
    socket.once('connect', () => finish({ kind: 'pass', detail: 'connected' }));
    socket.once('error', (err: NodeJS.ErrnoException) =>
      finish({ kind: 'fail', reason: err.code ?? err.message }),
    );
  });
}

/** A check ends as failed after this many times its timeout, however starved its process was. */
export const CHECK_STALL_LIMIT = 10;

/**
 * Calls `onExpire` once this process has been able to run for `timeoutMs` since the call (or after
 * CHECK_STALL_LIMIT × `timeoutMs` in all). Time the process spent descheduled (a starved host, a
 * long GC pause) does not count: the backend's answer may have arrived meanwhile, and after such a
 * stall libuv runs due timers before the I/O that came in, so a plain timer would fail a check that
 * was answered at once. A short tick notices the stalls: a tick that comes later than asked counts
 * the excess as stalled. (A restarted backend whose sidekick failed every check so, on a loaded
 * machine, stayed unannounced for a minute after it served again.)
 */
export function checkDeadline(clock: Clock, timeoutMs: number, onExpire: () => void): Timer {
  const tickMs = Math.min(100, Math.max(10, timeoutMs / 10));
  const start = clock.monotonic();
  let last = start;
  let asked = 0;
  let stalled = 0;
  let timer: Timer;
  const tick = (): void => {
    const now = clock.monotonic();
    const late = now - last - asked;
    if (late > tickMs) stalled += late;
    last = now;
    const ran = now - start - stalled;
    if (ran >= timeoutMs || now - start >= CHECK_STALL_LIMIT * timeoutMs) return onExpire();
    asked = Math.min(tickMs, timeoutMs - ran);
    timer = clock.setTimer(asked, tick);
  };
  asked = Math.min(tickMs, timeoutMs);
  timer = clock.setTimer(asked, tick);
  return { cancel: () => timer.cancel() };
}
