// GET /v1/self/heartbeat (api/heartbeat-route.ts) over a real TCP listener, listened to by the
// real peer client with a signed peer request: what the peer watch of each fleetd keeps open to
// the fleetds it watches (daemon/peer-watch.ts; the watch's rules are tested on a fake clock).
import test from 'ava';
import { randomBytes } from 'node:crypto';
import { buildApp } from '../../src/api/build-app.js';
import { createPeerClient, listenHeartbeat } from '../../src/api/peer-client.js';
import { asMachineId } from '../../src/cluster/types.js';
import { systemClock } from '../../src/lib/clock.js';
import { silentLogger } from '../../src/lib/logger.js';
import { MemoryEtcd, MemoryRegistry } from '../../src/registry/memory-registry.js';
import { FakeLocalUnits } from './fixture.js';
import { waitFor } from '../helpers/wait.js';

const A = asMachineId('aaaa');

async function serve(token: string) {
  const registry = new MemoryRegistry({ store: new MemoryEtcd({ clock: systemClock }), prefix: '/hb/' });
  const app = buildApp({
    registry,
    machineId: A,
    local: new FakeLocalUnits(),
    peers: { get: () => Promise.reject(new Error('no peers here')) },
    registered: () => true,
    clock: systemClock,
    log: silentLogger,
    auth: { kind: 'token', token },
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as { port: number };
  return { app, registry, peer: { id: A, apiAddress: `http://127.0.0.1:${port}` } };
}

test('a peer hears the heartbeat at once and then every 500 ms, and the server closes it when it closes', async (t) => {
  const token = randomBytes(24).toString('hex');
  const { app, registry, peer } = await serve(token);
  t.teardown(() => registry.close());
  const client = createPeerClient({ token, self: 'bbbb' });
  const beats: number[] = [];
  const listening = listenHeartbeat(client, peer, () => beats.push(Date.now()), new AbortController().signal);
  await waitFor('the first beat', () => beats.length >= 1, 5_000);
  await waitFor('three beats', () => beats.length >= 3, 10_000);
  // Closing the server ends the listener's connection (it never ends by itself).
  await app.close();
  await listening;
  t.pass();
});

test('a listener that aborts closes its connection; one without the cluster token is refused', async (t) => {
  const token = randomBytes(24).toString('hex');
  const { app, registry, peer } = await serve(token);
  t.teardown(async () => {
    await app.close();
    await registry.close();
  });
  const abort = new AbortController();
  let beats = 0;
  const listening = listenHeartbeat(
    createPeerClient({ token, self: 'bbbb' }),
    peer,
    () => beats++,
    abort.signal,
  );
  await waitFor('a beat', () => beats > 0, 5_000);
  abort.abort();
  await listening;
  await waitFor('the server forgets it', async () => (await connections(app)) === 0, 5_000);

  const stranger = createPeerClient({ token: randomBytes(24).toString('hex'), self: 'cccc' });
  const refused = await listenHeartbeat(stranger, peer, () => beats++, new AbortController().signal).catch(
    (e: unknown) => e,
  );
  t.regex(String(refused), /answered 401/);
});

function connections(app: { server: { getConnections(cb: (err: Error | null, n: number) => void): void } }) {
  return new Promise<number>((resolve, reject) =>
    app.server.getConnections((err, n) => (err === null ? resolve(n) : reject(err))),
  );
}
