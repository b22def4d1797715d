// Who this host is: its machine id (setting, else /etc/machine-id, else one generated once and kept
// in the state dir, as fleet did) and its public IP (setting, else the default-route interface's).
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { isMachineId } from '../lib/ids.js';

export async function resolveMachineId(
  configured: string | undefined,
  stateDir: string,
  etcMachineId = '/etc/machine-id',
): Promise<string> {
  if (configured !== undefined) return configured;
  const fromEtc = await readTrimmed(etcMachineId);
  if (fromEtc !== undefined && isMachineId(fromEtc)) return fromEtc;
  const kept = join(stateDir, 'machine-id');
  const fromState = await readTrimmed(kept);
  if (fromState !== undefined && isMachineId(fromState)) return fromState;
  const id = randomBytes(16).toString('hex');
  await mkdir(stateDir, { recursive: true });
  await writeFile(kept, id + '\n', { mode: 0o644 });
  return id;
}

async function readTrimmed(path: string): Promise<string | undefined> {
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch {
    return undefined;
  }
}

/** The IPv4 address of the interface holding the default route; else the first non-loopback one. */
export async function resolvePublicIp(configured: string | undefined): Promise<string> {
  if (configured !== undefined) return configured;
  const ifaces = networkInterfaces();
  const defaultIface = await defaultRouteInterface();
  const candidates = defaultIface === undefined ? [] : (ifaces[defaultIface] ?? []);
  const pick = (list: typeof candidates): string | undefined =>
    list.find((a) => a.family === 'IPv4' && !a.internal)?.address;
  return pick(candidates) ?? pick(Object.values(ifaces).flatMap((l) => l ?? [])) ?? '127.0.0.1';
}

async function defaultRouteInterface(): Promise<string | undefined> {
  const table = await readTrimmed('/proc/net/route');
  if (table === undefined) return undefined;
  for (const line of table.split('\n').slice(1)) {
    const [iface, destination, , , , , , mask] = line.trim().split(/\s+/);
    if (destination === '00000000' && mask === '00000000') return iface;
  }
  return undefined;
}
