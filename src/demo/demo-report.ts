// How the demo shows its results to a person: headings, aligned tables, the failover timeline in
// seconds since the power-off. Pure: text in, text out.
import type { TimedEvent, TimelineEvent } from './failover-timeline.js';
import type { ClientCounts } from './steady-client.js';
import type { FailoverResult } from './web-farm-demo.js';

export function heading(n: number | string, title: string): string {
  const text = `${n}. ${title}`;
  return `\n${text}\n${'─'.repeat(Math.min(100, text.length))}`;
}

/** Columns padded to their widest cell, two spaces apart; the first row is the header. */
export function table(rows: readonly (readonly string[])[], indent = '  '): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows
    .map(
      (r) =>
        indent +
        r
          .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
          .join('  ')
          .trimEnd(),
    )
    .join('\n');
}

export function indent(text: string, prefix = '  '): string {
  return text
    .trimEnd()
    .split('\n')
    .map((l) => prefix + l)
    .join('\n');
}

export function seconds(ms: number): string {
  return Number.isFinite(ms) ? `${(ms / 1000).toFixed(2)} s` : '—';
}

/** One line per event; `hostOf` names the host of an address. */
export function describeEvent(e: TimelineEvent, hostOf: (address: string) => string): string {
  switch (e.kind) {
    case 'power-off':
      return `${e.host} powered off (plug pulled: ${e.units.length === 0 ? 'no units' : e.units.join(', ')})`;
    case 'power-on':
      return `${e.host} powered on`;
    case 'machine-dead':
      return `${e.host} declared dead: its lease expired in etcd`;
    case 'machine-joined':
      return `${e.host} registered again`;
    case 'placed':
      return `${e.unit} placed on ${e.host}${e.from === undefined ? '' : ` (was on ${e.from})`}`;
    case 'active':
      return `${e.unit} active on ${e.host}`;
    case 'announced':
      return `${serviceWord(e.service)} ${e.instance} announced at ${e.address} (${hostOf(e.address)})`;
    case 'withdrawn':
      return `${serviceWord(e.service)} ${e.instance} withdrawn (${e.address}): its announcer's key is gone`;
    case 'upstream-written': {
      const change = [...e.added.map((a) => `+${a}`), ...e.removed.map((a) => `-${a}`)].join(' ');
      return `upstream of ${e.host}'s balancer rewritten and checked (nginx -t): ${change || 'same servers'} → ${e.servers.length} backend(s)`;
    }
    case 'nginx-reloaded':
      return `nginx on ${e.host} reloaded`;
    case 'nginx-started':
      return `nginx on ${e.host} started (with the upstream as written)`;
    case 'address-up':
      return `floating address ${e.address} up on ${e.host} (ip addr add, gratuitous ARP)`;
    case 'address-down':
      return `floating address ${e.address} gone from ${e.host}`;
    case 'note':
      return e.text;
  }
}

function serviceWord(service: string): string {
  return service === 'web' ? 'backend' : service === 'lb' ? 'balancer' : `${service} instance`;
}

export function formatTimeline(
  events: readonly TimedEvent[],
  t0: number,
  hostOf: (address: string) => string,
): string {
  // Stable sort: events seen by one pass keep their order; a pass's wake time may precede others'.
  return [...events]
    .sort((a, b) => a.at - b.at)
    .map(
      (e) => `  ${('+' + ((e.at - t0) / 1000).toFixed(2)).padStart(7)} s  ${describeEvent(e.event, hostOf)}`,
    )
    .join('\n');
}

export function formatCounts(c: ClientCounts): string {
  const lines = [
    `  requests: ${c.sent + c.noLb}   answered: ${c.answered}   failed: ${c.failed}` +
      (c.noLb > 0 ? `   not sent (no balancer announced): ${c.noLb}` : ''),
  ];
  if (c.backends.size > 0) {
    lines.push(
      table([
        ['ANSWERED BY', 'REQUESTS'],
        ...[...c.backends].sort(([a], [b]) => (a < b ? -1 : 1)).map(([b, n]) => [b, String(n)]),
      ]),
    );
  }
  for (const [reason, n] of c.reasons) lines.push(`  failed: ${n} × ${reason}`);
  return lines.join('\n');
}

/** The headline figures of one failover. */
export function formatMilestones(r: FailoverResult): string {
  const rows: string[][] = [['STEP', 'AFTER POWER-OFF']];
  rows.push([`${r.host}'s processes killed, its addresses dropped`, seconds(r.offMs)]);
  if (r.addressUpMs !== undefined)
    rows.push([`floating address up on ${r.addressTo ?? 'another host'}`, seconds(r.addressUpMs)]);
  rows.push([`${r.host} declared dead`, seconds(r.deadMs)]);
  for (const m of r.moved.filter((u) => u.announcedMs !== undefined)) {
    rows.push([`${m.unit} placed on ${m.to}`, seconds(m.placedMs)]);
    rows.push([`${m.unit} active on ${m.to}`, seconds(m.activeMs)]);
    rows.push([`${m.unit} announced`, seconds(m.announcedMs ?? NaN)]);
  }
  if (Number.isFinite(r.deadOutMs))
    rows.push([`${r.host}'s backend out of the upstream`, seconds(r.deadOutMs)]);
  rows.push(["every balancer's upstream updated (replacement in)", seconds(r.upstreamMs)]);
  rows.push(["every balancer's nginx reloaded", seconds(r.reloadedMs)]);
  return table(rows);
}

/** Median and 95th percentile (nearest rank) of finite values. */
export function percentiles(values: readonly number[]): { median: number; p95: number; n: number } {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  const rank = (p: number): number =>
    v[Math.min(v.length - 1, Math.max(0, Math.ceil(p * v.length) - 1))] ?? NaN;
  return { median: rank(0.5), p95: rank(0.95), n: v.length };
}

/** Where `fleetts dashboard` serves the dashboard of the dev cluster's sockets (its default --listen). */
export const DASHBOARD_URL = 'http://127.0.0.1:8080/ui';

/** What to try on a kept cluster (--keep): each line a command that works as printed. */
export function keepHints(o: {
  readonly lb: string | undefined;
  /** `--state-dir DIR` for the dev commands, or ''. */
  readonly flag: string;
  readonly wrapper: 'installed' | 'up to date' | 'kept yours';
  readonly wrapperPath: string;
  /** The farm's unit files on shared storage (where `rollout` reads web@.unit), when known. */
  readonly unitsDir?: string;
  /** Each host's fleetd on TCP (`IP:PORT`), and the file holding the cluster's API token. */
  readonly dashboard?: { readonly apis: readonly string[]; readonly tokenFile: string };
}): string {
  const cli =
    o.wrapper === 'kept yours'
      ? `\`fleetts\` is yours (${o.wrapperPath}); this checkout's is \`node bin/fleetts.js\``
      : `\`fleetts\` is ${o.wrapperPath}, this checkout's CLI`;
  const dashboard =
    o.dashboard === undefined
      ? []
      : [
          `  The live dashboard: ${o.dashboard.apis.map((a) => `http://${a}/ui`).join(' or ')}`,
          `  (any host's fleetd serves it; the page asks once for the token: sudo cat ${o.dashboard.tokenFile})`,
        ];
  return [
    ...dashboard,
    `  As root (the hosts' sockets are root's; ${cli}):`,
    table([
      [`eval "$(fleetts dev env${o.flag})"`, "point this shell's fleetts at the cluster"],
      [
        'fleetts dashboard',
        `the dashboard through the sockets, at ${DASHBOARD_URL} while it runs (with the token it prints; docs/dashboard.md)`,
      ],
      ['fleetts list-units', 'where everything runs'],
      ['fleetts list-machines', 'the hosts'],
      [`curl -s http://${o.lb ?? 'BALANCER'}/`, 'a page through the balancer (its floating address)'],
      ['fleetts journal lb-upstream', "the upstream watcher's log"],
      ['fleetts restart web@1 web@2 web@3', 'restart the backends one at a time: the farm keeps serving'],
      [
        `cd ${o.unitsDir ?? 'UNITS'}; fleetts rollout web@.unit`,
        'after changing WEB_RELEASE in web@.unit: a new page, instance by instance (--dry-run first, --rollback to undo)',
      ],
      [
        'fleetts drain host3',
        "move host3's units to the other hosts one at a time: the farm keeps serving (fleetts undrain host3 takes placements again)",
      ],
      [`fleetts dev power-off host2${o.flag}`, `pull a plug (fleetts dev power-on host2${o.flag} boots it)`],
      [`fleetts dev down${o.flag}`, 'remove everything'],
    ]),
  ].join('\n');
}
