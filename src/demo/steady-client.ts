// A client of the web farm as a user would run it: it sends GETs at a steady rate to the load
// balancer's floating address (docs/floating-address.md), or to the address it finds through service
// discovery (services/lb, so it follows the balancer when it moves), each on a fresh connection,
// without retries, recording every outcome for the demo's counts.
import { request } from 'node:http';
import type { Clock, Timer } from '../lib/clock.js';
import type { ServiceInstance, ServiceReader, Subscription } from '../registry/registry.js';

export type RequestOutcome =
  /** A 2xx answer; `backend` from the X-Backend header (the web instance and its address). */
  | { readonly kind: 'answered'; readonly backend: string; readonly lb: string }
  /** Refused, reset, timed out or a non-2xx status: a failed GET. */
  | { readonly kind: 'failed'; readonly reason: string; readonly lb: string }
  /** No load balancer was announced: the client had nowhere to send the request. */
  | { readonly kind: 'no-lb' };

export interface RequestRecord {
  /** Wall-clock ms when the request was sent. */
  readonly at: number;
  /** How long it took (ms). */
  readonly ms: number;
  readonly outcome: RequestOutcome;
}

export interface ClientCounts {
  readonly sent: number;
  readonly answered: number;
  readonly failed: number;
  readonly noLb: number;
  /** X-Backend → answers. */
  readonly backends: ReadonlyMap<string, number>;
  /** Failure reason → count. */
  readonly reasons: ReadonlyMap<string, number>;
}

export interface SteadyClientDeps {
  readonly registry: ServiceReader;
  readonly clock: Clock;
  /** Requests per second (default 20). */
  readonly rate?: number;
  /** A request that takes longer fails (default 3 s). */
  readonly timeoutMs?: number;
  readonly service?: string;
  readonly path?: string;
  /** A fixed address (the balancer's floating address, `IP:PORT`) instead of services/<service>. */
  readonly address?: string;
}

export class SteadyClient {
  readonly #d: SteadyClientDeps;
  readonly #records: RequestRecord[] = [];
  #lb: string | undefined;
  #sub: Subscription | undefined;
  #timer: Timer | undefined;
  #inFlight = new Set<Promise<void>>();
  #running = false;

  constructor(deps: SteadyClientDeps) {
    this.#d = deps;
  }

  /** The load balancer's address the client currently uses. */
  get lb(): string | undefined {
    return this.#lb;
  }

  /** Starts watching services/lb and sending; resolves once the first address is known (or not). */
  async start(): Promise<void> {
    if (this.#d.address !== undefined) this.#lb = this.#d.address;
    else
      this.#sub = await this.#d.registry.watchServiceInstances(this.#d.service ?? 'lb', (set) => {
        this.#lb = pickAddress(set.items);
      });
    this.#running = true;
    const period = 1000 / (this.#d.rate ?? 20);
    const first = this.#d.clock.monotonic();
    let n = 0;
    // Fixed-rate schedule (not "after the previous answer"): a slow answer does not lower the rate.
    const tick = (): void => {
      if (!this.#running) return;
      this.#send();
      n++;
      this.#timer = this.#d.clock.setTimer(Math.max(0, first + n * period - this.#d.clock.monotonic()), tick);
    };
    tick();
  }

  /** Stops sending, waits for the requests in flight and closes the watch. */
  async stop(): Promise<void> {
    this.#running = false;
    this.#timer?.cancel();
    await Promise.all([...this.#inFlight]);
    this.#sub?.close();
    this.#sub = undefined;
  }

  /** Every request so far (or since `fromMs`, wall clock). */
  records(fromMs = -Infinity, toMs = Infinity): RequestRecord[] {
    return this.#records.filter((r) => r.at >= fromMs && r.at < toMs);
  }

  counts(fromMs = -Infinity, toMs = Infinity): ClientCounts {
    return countRecords(this.records(fromMs, toMs));
  }

  #send(): void {
    const at = this.#d.clock.now();
    const started = this.#d.clock.monotonic();
    const lb = this.#lb;
    if (lb === undefined) {
      this.#records.push({ at, ms: 0, outcome: { kind: 'no-lb' } });
      return;
    }
    const p = get(`http://${lb}${this.#d.path ?? '/'}`, this.#d.timeoutMs ?? 3000).then((outcome) => {
      this.#records.push({
        at,
        ms: this.#d.clock.monotonic() - started,
        outcome:
          outcome.kind === 'answered'
            ? { kind: 'answered', backend: outcome.backend, lb }
            : { kind: 'failed', reason: outcome.reason, lb },
      });
    });
    this.#inFlight.add(p);
    void p.finally(() => this.#inFlight.delete(p));
  }
}

/** Pure: the counts of some records. */
export function countRecords(records: readonly RequestRecord[]): ClientCounts {
  const backends = new Map<string, number>();
  const reasons = new Map<string, number>();
  let answered = 0;
  let failed = 0;
  let noLb = 0;
  for (const r of records) {
    const o = r.outcome;
    if (o.kind === 'answered') {
      answered++;
      backends.set(o.backend, (backends.get(o.backend) ?? 0) + 1);
    } else if (o.kind === 'failed') {
      failed++;
      reasons.set(o.reason, (reasons.get(o.reason) ?? 0) + 1);
    } else noLb++;
  }
  return { sent: answered + failed, answered, failed, noLb, backends, reasons };
}

/** The first announced instance by name: every client picks the same one. */
function pickAddress(items: readonly ServiceInstance[]): string | undefined {
  const sorted = [...items].sort((a, b) => (a.instance < b.instance ? -1 : a.instance > b.instance ? 1 : 0));
  return sorted[0]?.address;
}

export type GetOutcome = { kind: 'answered'; backend: string } | { kind: 'failed'; reason: string };

/** One GET on a fresh connection (agent: false): every request really connects. Never rejects. */
export function get(url: string, timeoutMs: number): Promise<GetOutcome> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (o: GetOutcome): void => {
      if (done) return;
      done = true;
      resolve(o);
    };
    const req = request(url, { agent: false, timeout: timeoutMs }, (res) => {
      res.resume();
      res.on('end', () => {
        const status = res.statusCode ?? 0;
        const backend = res.headers['x-backend'];
        if (status >= 200 && status < 300)
          finish({ kind: 'answered', backend: typeof backend === 'string' ? backend : '(unnamed)' });
        else finish({ kind: 'failed', reason: `HTTP ${status}` });
      });
      res.on('error', (err) => finish({ kind: 'failed', reason: errorReason(err) }));
    });
    req.on('timeout', () => {
      finish({ kind: 'failed', reason: `no answer within ${timeoutMs} ms` });
      req.destroy();
    });
    req.on('error', (err) => finish({ kind: 'failed', reason: errorReason(err) }));
    req.end();
  });
}

function errorReason(err: Error): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ECONNREFUSED') return 'connection refused';
  if (code === 'ECONNRESET') return 'connection reset';
  if (code === 'EHOSTUNREACH') return 'host unreachable';
  return code ?? err.message;
}
