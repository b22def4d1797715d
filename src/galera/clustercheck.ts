// Galera's classic "clustercheck" as a tiny HTTP server: 200 while the local node's
// wsrep_local_state_comment is Synced, 503 otherwise, so that the standard `fleetts announce
// --check http://IP:9200/` sidekick announces exactly the members that can serve.
import { createServer, type Server } from 'node:http';
import type { Clock } from '../lib/clock.js';

/** The last probe of the local node. */
export type NodeState =
  | { readonly kind: 'state'; readonly comment: string; readonly at: number }
  | { readonly kind: 'down'; readonly reason: string; readonly at: number };

/** 200 only for a fresh `Synced` (a probe older than `maxAgeMs` means the prober is stuck). */
export function clustercheckAnswer(
  state: NodeState | undefined,
  now: number,
  maxAgeMs: number,
): { status: 200 | 503; body: string } {
  if (state === undefined) return { status: 503, body: 'Galera node not checked yet.\n' };
  if (now - state.at > maxAgeMs)
    return { status: 503, body: `Galera node state unknown for ${Math.round((now - state.at) / 1000)} s.\n` };
  if (state.kind === 'down') return { status: 503, body: `Galera node is down: ${state.reason}\n` };
  if (state.comment === 'Synced') return { status: 200, body: 'Galera cluster node is synced.\n' };
  return { status: 503, body: `Galera cluster node is not synced (${state.comment}).\n` };
}

export async function serveClustercheck(options: {
  readonly host: string;
  readonly port: number;
  readonly clock: Clock;
  readonly state: () => NodeState | undefined;
  readonly maxAgeMs: number;
}): Promise<Server> {
  const server = createServer((req, res) => {
    const answer = clustercheckAnswer(options.state(), options.clock.monotonic(), options.maxAgeMs);
    res.writeHead(answer.status, { 'content-type': 'text/plain', connection: 'close' });
    res.end(req.method === 'HEAD' ? undefined : answer.body);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}
