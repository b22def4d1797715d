// Fakes for UpstreamSync and ReloadRecorder tests without etcd (test/discovery/upstream.test.ts
// runs them on a real one): a service whose instance sets a test pushes, as the registry's watch
// would deliver them, and a logger whose lines a test reads.
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { Logger } from '../../src/lib/logger.js';
import type { ServiceInstance, ServiceReader, WatchedSet } from '../../src/registry/registry.js';

const T = '2026-12-06T12:00:00.000Z';

export class PushedService implements ServiceReader {
  #onChange: ((set: WatchedSet<ServiceInstance>) => void) | undefined;
  #revision = 1;
  listServiceInstances(): Promise<WatchedSet<ServiceInstance>> {
    return Promise.reject(new Error('not used'));
  }
  watchServiceInstances(
    _service: string,
    onChange: (set: WatchedSet<ServiceInstance>) => void,
  ): Promise<{ close(): void }> {
    this.#onChange = onChange;
    this.push(0);
    return Promise.resolve({ close: () => undefined });
  }
  push(n: number): void {
    const items = Array.from({ length: n }, (_, i) => ({
      service: 'web',
      instance: `i${i}`,
      address: `10.0.0.${i + 1}:80`,
      since: T,
    }));
    this.#onChange?.({ revision: ++this.#revision, items, problems: [] });
  }
}

/** A pino logger at info whose lines (parsed) a test reads. */
export function capturingLogger(): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  return { log: pino({ level: 'info' }, stream), lines };
}
