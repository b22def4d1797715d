// node:https, and TLS with it, loaded at the first https URL: most requests go over http or a unix
// socket, and loading TLS cost a CLI command about 9 ms of its start.
import type * as Https from 'node:https';
import { createRequire } from 'node:module';

let loaded: typeof Https | undefined;

export function https(): typeof Https {
  return (loaded ??= createRequire(import.meta.url)('node:https') as typeof Https);
}
