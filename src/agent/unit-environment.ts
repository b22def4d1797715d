// What a unit sees of the host it runs on: the specifiers %n %N %p %i %H %m %b and the FLEETTS_*
// environment. The agent builds both once per unit start; runtime configs are made from them.
import type { Machine, UnitName } from '../cluster/types.js';
import type { ParsedUnitName } from '../unit/names.js';
import { specifierContextForUnit, type SpecifierContext } from '../unit/specifiers.js';

/** The host facts the agent gives every unit. */
export interface HostFacts {
  readonly machine: Pick<Machine, 'id' | 'ip' | 'metadata'>;
  /** %H */
  readonly hostname: string;
  /** %b: /proc/sys/kernel/random/boot_id without dashes (systemd's form). */
  readonly bootId: string;
  /** Cluster-wide variables (etcd endpoints and key prefix for sidekicks, the API endpoint). */
  readonly environment?: Readonly<Record<string, string>>;
}

/** Every specifier, unit-derived and host-derived. */
export function unitSpecifiers(name: ParsedUnitName, host: HostFacts): SpecifierContext {
  return { ...specifierContextForUnit(name), H: host.hostname, m: host.machine.id, b: host.bootId };
}

/** `region` → `FLEETTS_METADATA_REGION`; `disk-type.v2` → `FLEETTS_METADATA_DISK_TYPE_V2`. */
export function metadataVariable(key: string): string {
  return 'FLEETTS_METADATA_' + key.toUpperCase().replace(/[^A-Z0-9]/g, '_');
}

/** The base environment of every unit; its own Environment=/EnvironmentFile= override it. */
export function unitBaseEnvironment(unit: UnitName, host: HostFacts): Record<string, string> {
  const env: Record<string, string> = {
    ...host.environment,
    FLEETTS_MACHINE_ID: host.machine.id,
    FLEETTS_MACHINE_IP: host.machine.ip,
    FLEETTS_UNIT: unit,
  };
  for (const key of Object.keys(host.machine.metadata).sort()) {
    env[metadataVariable(key)] = host.machine.metadata[key] ?? '';
  }
  return env;
}
