// GET /v1/self/heartbeat: a byte every HEARTBEAT_MS for as long as the connection stays open. The
// fleetds that watch this one (daemon/peer-watch.ts) keep one such connection each and hear it
// beat; only when it is late do they fall back to a TCP connection to the API port per probe.
// A connection a probe, twice a second, to each of up to 6 peers, on both ends, was the largest
// part of an idle fleetd's CPU (docs/memory.md); a beat is one small write on a socket kept open.
import type { ServerResponse } from 'node:http';
import { setGridTimer, type Clock, type Timer } from '../lib/clock.js';
import type { RouteSpec } from './route.js';

/** How often the heartbeat beats; a watcher counts it late after twice this (peer-watch.ts). */
export const HEARTBEAT_MS = 500;

/**
 * The route, and `end` for the app's close: a watcher never ends its connection, and the HTTP
 * server's close waits for every open connection.
 */
export function heartbeatRoute(deps: { readonly clock: Clock; readonly everyMs?: number }): {
  route: RouteSpec;
  end(): void;
} {
  const everyMs = deps.everyMs ?? HEARTBEAT_MS;
  const listeners = new Set<ServerResponse>();
  let timer: Timer | undefined;
  // One timer beats for every listener, and runs only while there is one.
  const beat = (): void => {
    timer = undefined;
    for (const res of listeners) res.write('.');
    if (listeners.size > 0) timer = setGridTimer(deps.clock, everyMs, beat);
  };
  const route: RouteSpec = {
    method: 'GET',
    url: '/v1/self/heartbeat',
    operationId: 'selfHeartbeat',
    summary: `A byte every ${HEARTBEAT_MS} ms while the connection stays open: the fleetds that watch this one listen to it (docs/control-plane-faults.md#peer-confirmed-death)`,
    status: 200,
    produces: 'text/plain',
    errors: [],
    whileUnregistered: true,
    handle(request, reply) {
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        'content-type': 'text/plain; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        'x-accel-buffering': 'no',
      });
      res.write('.');
      listeners.add(res);
      request.raw.socket.setNoDelay(true);
      res.once('close', () => listeners.delete(res));
      timer ??= deps.clock.setTimer(everyMs, beat);
      return Promise.resolve();
    },
  };
  return {
    route,
    end() {
      timer?.cancel();
      timer = undefined;
      for (const res of listeners) res.end();
      listeners.clear();
    },
  };
}
