// The bootstrap-or-join decision of a Galera member (pure): made under the cluster's etcd lock from
// the members that run now (lease-bound keys of live `fleetts galera member` processes) and the
// instances announced as Synced under services/<service>/. galera-member.ts supplies both. Its
// "bootstrap" means "nobody runs": choose-bootstrap.ts then says whether this member is the one.

/** A member seen in etcd: the unit instance and the host address of its MariaDB. */
export interface SeenMember {
  readonly instance: string;
  /** `ip` or `ip:port` (the port is MariaDB's, not Galera's: only the host is used). */
  readonly address: string;
}

export interface StartInput {
  /** This member's instance name (its unit) and host address. */
  readonly self: { readonly instance: string; readonly host: string };
  /** Members whose wrapper runs now (mariadbd started or starting), from galera/<cluster>/members/. */
  readonly running: readonly SeenMember[];
  /** Synced members announced by their sidekicks under services/<service>/. */
  readonly announced: readonly SeenMember[];
}

export type StartDecision =
  | { readonly kind: 'bootstrap'; readonly reason: string }
  | { readonly kind: 'join'; readonly peers: readonly string[]; readonly reason: string };

/**
 * Bootstrap only when no other member runs or is announced; otherwise join every peer host seen
 * (gcomm:// tries them in turn, so a stale address among live ones costs nothing). A record of this
 * very instance is an earlier life of it (a unit runs on one host at a time): never a peer.
 */
export function decideStart(input: StartInput): StartDecision {
  const peers = new Set<string>();
  const seen: string[] = [];
  for (const [source, list] of [
    ['running', input.running],
    ['announced', input.announced],
  ] as const) {
    for (const m of list) {
      const host = hostOf(m.address);
      if (m.instance === input.self.instance || host === input.self.host || host === '') continue;
      if (!peers.has(host)) seen.push(`${m.instance} at ${host} (${source})`);
      peers.add(host);
    }
  }
  if (peers.size === 0)
    return {
      kind: 'bootstrap',
      reason:
        input.running.length + input.announced.length === 0
          ? 'no member runs or is announced'
          : 'only earlier records of this member itself',
    };
  const sorted = [...peers].sort(compareHosts);
  return { kind: 'join', peers: sorted, reason: `${seen.length} live peer(s): ${seen.join(', ')}` };
}

/** The host of `ip`, `ip:port`, `[v6]:port` or `v6` (a bare IPv6 address has several colons). */
export function hostOf(address: string): string {
  const a = address.trim();
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(a);
  if (bracketed !== null) return bracketed[1] ?? '';
  const colons = a.split(':').length - 1;
  if (colons === 1) return a.slice(0, a.indexOf(':'));
  return a;
}

/** `gcomm://` for a bootstrap, else `gcomm://h1,h2,…` (IPv6 hosts in brackets). */
export function clusterAddress(decision: StartDecision): string {
  if (decision.kind === 'bootstrap') return 'gcomm://';
  return 'gcomm://' + decision.peers.map((h) => (h.includes(':') ? `[${h}]` : h)).join(',');
}

function compareHosts(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
