// The load generator of the balancer power-off run (bench/web-load.bench.ts), in its own process:
// CONNECTIONS loops, each sending one GET at a time on a new connection (as ab without -k), with a
// timeout per request, and going on after a failure. Neither ab (it gives up at the first request
// that times out) nor autocannon 9 (with a new connection per request it sends nothing, or counts
// resets of its own and latencies of seconds) measures a power cut of the balancer's host.
// Writes one line per request to OUT (TSV: wall ms when it ended, HTTP status or the failure, ms it
// took) and a summary as JSON on stdout. The requests are the demo client's (`get`).
//
// usage: node --import=tsx bench/load-client.ts URL CONNECTIONS SECONDS TIMEOUT_S OUT
import { createWriteStream } from 'node:fs';
import { get } from '../src/demo/steady-client.js';
import { systemClock } from '../src/lib/clock.js';
import { percentile } from './lib.js';

const [url = '', connections = '200', seconds = '60', timeoutS = '10', out = ''] = process.argv.slice(2);
if (url === '' || out === '') {
  process.stderr.write('usage: load-client.ts URL CONNECTIONS SECONDS TIMEOUT_S OUT\n');
  process.exit(2);
}
const file = createWriteStream(out);
file.write('endMs\toutcome\tms\n');
const until = systemClock.monotonic() + Number(seconds) * 1000;
const answeredMs: number[] = [];
let failed = 0;
let timeouts = 0;
let non2xx = 0;

async function loop(): Promise<void> {
  while (systemClock.monotonic() < until) {
    const started = systemClock.monotonic();
    const o = await get(url, Number(timeoutS) * 1000);
    const ms = Math.round(systemClock.monotonic() - started);
    if (o.kind === 'answered') answeredMs.push(ms);
    else {
      failed++;
      if (o.reason.startsWith('HTTP ')) non2xx++;
      if (o.reason.startsWith('no answer')) timeouts++;
    }
    file.write(
      `${systemClock.now()}\t${o.kind === 'answered' ? '200' : o.reason.replace(/\s+/g, '_')}\t${ms}\n`,
    );
  }
}

const t0 = systemClock.monotonic();
await Promise.all(Array.from({ length: Number(connections) }, () => loop()));
const elapsedS = (systemClock.monotonic() - t0) / 1000;
file.end(() => {
  process.stdout.write(
    JSON.stringify({
      requests: answeredMs.length,
      errors: failed - non2xx,
      timeouts,
      non2xx,
      rps: answeredMs.length / elapsedS,
      latency: {
        p50: percentile(answeredMs, 50),
        p99: percentile(answeredMs, 99),
        max: answeredMs.reduce((m, x) => Math.max(m, x), 0),
      },
    }) + '\n',
  );
});
