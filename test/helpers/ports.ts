// A TCP port nobody listens on right now (the kernel's pick on 127.0.0.1), for servers a test
// starts: etcd, nginx/Apache, vsftpd, mariadbd. Between the pick and the server's bind another
// process (a test file running beside, an outgoing connection's source port) may take it: servers
// started through `onFreePort` pick again when that happens.
import { createServer, type Server } from 'node:net';
import { WaitAborted } from './wait.js';

export async function freePort(host = '127.0.0.1'): Promise<number> {
  const [port] = await freePorts(1, host);
  if (port === undefined) throw new Error('no port assigned');
  return port;
}

/** `count` distinct free ports (all held open until each is picked, so none is picked twice). */
export async function freePorts(count: number, host = '127.0.0.1'): Promise<number[]> {
  const servers: Server[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < count; i++) {
      const server = createServer();
      servers.push(server);
      server.unref();
      ports.push(
        await new Promise<number>((resolve, reject) => {
          server.once('error', reject);
          server.listen(0, host, () => {
            const address = server.address();
            const port = typeof address === 'object' && address !== null ? address.port : 0;
            if (port > 0) resolve(port);
            else reject(new Error('no port assigned'));
          });
        }),
      );
    }
    return ports;
  } finally {
    await Promise.all(
      servers.map(
        (s) => new Promise<void>((resolve) => (s.listening ? s.close(() => resolve()) : resolve())),
      ),
    );
  }
}

/** True when a server's error output says its port was taken ("address already in use"). */
export function saysPortTaken(output: string): boolean {
  return /address already in use/i.test(output);
}

/**
 * Thrown by a `start` given to `onFreePort` when the server could not bind its port (a WaitAborted:
 * waiting for that server to answer is pointless).
 */
export class PortTaken extends WaitAborted {}

/**
 * Runs `start` on `count` fresh ports; when it throws PortTaken (the race above), again on new ones.
 * Any other error, or the last attempt's, is thrown.
 */
export async function onFreePort<T>(
  count: number,
  start: (ports: number[]) => Promise<T>,
  attempts = 5,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const ports = await freePorts(count);
    try {
      return await start(ports);
    } catch (err) {
      if (!(err instanceof PortTaken) || attempt >= attempts) throw err;
    }
  }
}
