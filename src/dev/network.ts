// The dev cluster's network, each step idempotent: a bridge in the root namespace (etcd listens on
// its address), one namespace per host joined to it by a veth pair, and the FORWARD rule Docker's
// DROP policy would otherwise need. Partition/heal take the host's veth down and up (the cable).
import { runCommand } from './system.js';
import type { ClusterPlan, HostPlan } from './plan.js';

/** The IPv4 networks (CIDR) in `ip -4 route` output lines; `default` is not a clash. */
export function routedNetworks(routeOutput: string): string[] {
  const out: string[] = [];
  for (const line of routeOutput.split('\n')) {
    const first = line.trim().split(/\s+/)[0];
    if (first === undefined || first === '' || first === 'default') continue;
    const [cidrAddr, len] = (first.includes('/') ? first : `${first}/32`).split('/');
    if (cidrAddr !== undefined && /^\d+\.\d+\.\d+\.\d+$/.test(cidrAddr))
      out.push(`${cidrAddr}/${len ?? '32'}`);
  }
  return out;
}

function toInt(ip: string): number {
  return ip.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
}

function overlaps(a: string, b: string): boolean {
  const [aIp = '0.0.0.0', aLen = '32'] = a.split('/');
  const [bIp = '0.0.0.0', bLen = '32'] = b.split('/');
  const len = Math.min(Number(aLen), Number(bLen));
  const mask = len === 0 ? 0 : Math.pow(2, 32) - Math.pow(2, 32 - len);
  const net = (ip: string): number => Math.floor(toInt(ip) / Math.pow(2, 32 - len)) * Math.pow(2, 32 - len);
  return mask === 0 || net(aIp) === net(bIp);
}

/**
 * The first free 10.213.X.0/24, trying `preferred` first and then the following ones (wrapping);
 * `undefined` when all 256 clash with a route.
 */
export function chooseSubnetIndex(taken: readonly string[], preferred: number): number | undefined {
  for (let i = 0; i < 256; i++) {
    const index = (preferred + i) % 256;
    if (!taken.some((t) => overlaps(t, `10.213.${index}.0/24`))) return index;
  }
  return undefined;
}

export async function currentRoutes(): Promise<string[]> {
  const r = await runCommand(['ip', '-4', 'route', 'show', 'table', 'all'], { allowFail: true });
  return routedNetworks(r.stdout);
}

export async function linkExists(name: string): Promise<boolean> {
  return (await runCommand(['ip', 'link', 'show', 'dev', name], { allowFail: true })).code === 0;
}

export async function netnsExists(name: string): Promise<boolean> {
  const r = await runCommand(['ip', 'netns', 'list'], { allowFail: true });
  return r.stdout.split('\n').some((l) => l.split(/\s+/)[0] === name);
}

export async function ensureBridge(plan: ClusterPlan): Promise<void> {
  const { name, ip } = plan.bridge;
  if (!(await linkExists(name))) await runCommand(['ip', 'link', 'add', name, 'type', 'bridge']);
  await runCommand(['ip', 'addr', 'replace', `${ip}/${plan.prefixLength}`, 'dev', name]);
  await runCommand(['ip', 'link', 'set', name, 'up']);
}

export async function ensureNetns(name: string): Promise<void> {
  if (!(await netnsExists(name))) await runCommand(['ip', 'netns', 'add', name]);
}

/** The host's veth pair (its `eth0` in the namespace), address, and both ends up. */
export async function ensureHostLink(plan: ClusterPlan, host: HostPlan): Promise<void> {
  if (!(await linkExists(host.veth)))
    await runCommand([
      'ip',
      'link',
      'add',
      host.veth,
      'type',
      'veth',
      'peer',
      'name',
      'eth0',
      'netns',
      host.netns,
    ]);
  await runCommand(['ip', 'link', 'set', host.veth, 'master', plan.bridge.name]);
  await runCommand(['ip', 'link', 'set', host.veth, 'up']);
  const inNs = (...args: string[]): string[] => ['ip', '-n', host.netns, ...args];
  await runCommand(inNs('link', 'set', 'lo', 'up'));
  await runCommand(inNs('addr', 'replace', `${host.ip}/${plan.prefixLength}`, 'dev', 'eth0'));
  await runCommand(inNs('link', 'set', 'eth0', 'up'));
}

/**
 * What a power cut does to the host's network configuration: addresses added at run time (a
 * floating address) are gone; its own address stays, as its boot would set it again.
 */
export async function dropRuntimeAddresses(plan: ClusterPlan, host: HostPlan): Promise<void> {
  const listed = await runCommand(['ip', '-n', host.netns, '-o', '-4', 'addr', 'show', 'dev', 'eth0'], {
    allowFail: true,
  });
  for (const m of listed.stdout.matchAll(/\binet (\d+\.\d+\.\d+\.\d+\/\d+)/g)) {
    const cidr = m[1] ?? '';
    if (cidr === `${host.ip}/${plan.prefixLength}`) continue;
    await runCommand(['ip', '-n', host.netns, 'addr', 'del', cidr, 'dev', 'eth0'], { allowFail: true });
  }
}

/** Pulls (`false`) or plugs back (`true`) the host's cable: its veth end on the bridge. */
export async function setHostLink(host: HostPlan, up: boolean): Promise<void> {
  await runCommand(['ip', 'link', 'set', host.veth, up ? 'up' : 'down']);
}

export async function deleteLink(name: string): Promise<void> {
  if (await linkExists(name)) await runCommand(['ip', 'link', 'del', name]);
}

export async function deleteNetns(name: string): Promise<void> {
  if (await netnsExists(name)) await runCommand(['ip', 'netns', 'del', name]);
}

/** The FORWARD rule letting bridged traffic through: needed when Docker set the policy to DROP. */
export function forwardRule(plan: ClusterPlan): string[] {
  return ['FORWARD', '-i', plan.bridge.name, '-o', plan.bridge.name, '-j', 'ACCEPT'];
}

/** True when FORWARD would drop bridged traffic (Docker's DROP policy, or its chains present). */
export async function forwardNeedsRule(): Promise<boolean> {
  const r = await runCommand(['iptables', '-w', '-S', 'FORWARD'], { allowFail: true }).catch(() => undefined);
  if (r === undefined || r.code !== 0) return false;
  return /^-P FORWARD (DROP|REJECT)/m.test(r.stdout) || /-j DOCKER/.test(r.stdout);
}

export async function iptablesRuleExists(rule: readonly string[]): Promise<boolean> {
  const r = await runCommand(['iptables', '-w', '-C', ...rule], { allowFail: true }).catch(() => undefined);
  return r !== undefined && r.code === 0;
}

export async function ensureIptablesRule(rule: readonly string[]): Promise<void> {
  const [chain, ...spec] = rule;
  if (chain === undefined) return;
  if (!(await iptablesRuleExists(rule))) await runCommand(['iptables', '-w', '-I', chain, '1', ...spec]);
}

export async function deleteIptablesRule(rule: readonly string[]): Promise<void> {
  // Delete every copy (an interrupted `up` may have inserted it twice).
  while (await iptablesRuleExists(rule)) await runCommand(['iptables', '-w', '-D', ...rule]);
}
