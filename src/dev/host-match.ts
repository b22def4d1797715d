// Which host a command means: its name (`host2`), its machine id, or an unambiguous prefix of the
// id, as fleetctl matched machines. Pure; the error lists the hosts to choose from. Used by
// `fleetts dev` (its hosts) and `fleetts drain` (the cluster's machines, named by `hostname=`).
import { DevError } from './dev-error.js';

export interface NamedHost {
  readonly name: string;
  readonly machineId: string;
}

/** `noun`: what the hosts are called in messages (`dev host`, `machine`). */
export function matchHost<H extends NamedHost>(hosts: readonly H[], query: string, noun = 'dev host'): H {
  const q = query.trim();
  const known = (): string => hosts.map((h) => `${h.name} (${h.machineId})`).join(', ');
  if (q === '') throw new DevError('dev_unknown_host', `no host given; the hosts are: ${known()}`);
  const exact = hosts.find((h) => h.name === q) ?? hosts.find((h) => h.machineId === q);
  if (exact !== undefined) return exact;
  const byPrefix = hosts.filter((h) => h.machineId.startsWith(q));
  const [only] = byPrefix;
  if (byPrefix.length === 1 && only !== undefined) return only;
  if (byPrefix.length > 1)
    throw new DevError(
      'dev_ambiguous_host',
      `"${q}" matches the machine ids of ${byPrefix.map((h) => h.name).join(', ')}; give more characters of the id or the host name`,
    );
  throw new DevError('dev_unknown_host', `no ${noun} "${q}"; the hosts are: ${known()}`);
}
