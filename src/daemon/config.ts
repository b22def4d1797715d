// fleetd's settings: one zod schema, filled from (lowest to highest precedence) defaults, an
// optional config file (fleet.conf style `key = value`), FLEETTS_* environment and command-line
// flags. A bad value is a one-line error naming the setting and where it came from.
import { resolve } from 'node:path';
import { z } from 'zod';
import { UsageError } from '../lib/errors.js';
import { apiTokenProblem } from '../api/api-token.js';
import { parseListenAddress } from '../api/listen-address.js';
import { MACHINE_ID_RULE, machineIdProblem } from '../lib/ids.js';
import { metadataKeyProblem } from '../lib/metadata-key.js';
import { UNIT_NAME_MAX } from '../unit/names.js';

/**
 * The longest state dir (absolute): a path may be 4095 bytes (PATH_MAX), and under the state dir
 * lie `units/<unit name>/<file>`, the name up to UNIT_NAME_MAX and the file (`status.json.<pid>.tmp`
 * and the like) well within 64 bytes. With this, every name the unit-name rule accepts fits.
 */
export const STATE_DIR_MAX = 4095 - '/units/'.length - UNIT_NAME_MAX - '/'.length - 64;

/** Default lease TTL: a dead host is noticed within about this time (see docs/registry.md). */
export const DEFAULT_LEASE_TTL_MS = 5_000;

const duration = z.coerce
  .number({ error: 'must be a number of milliseconds' })
  .int('must be a whole number of milliseconds')
  .positive('must be greater than 0');

const count = z.coerce
  .number({ error: 'must be a whole number' })
  .int('must be a whole number')
  .positive('must be greater than 0');

/** Storage limits of the API (what clients may store in etcd); see docs/security.md. */
export const DEFAULT_MAX_UNITS = 20_000;
export const DEFAULT_MAX_UNIT_FILE_BYTES = 64 * 1024 * 1024;

const metadataSchema = z.string().transform((s, ctx) => {
  const out: Record<string, string> = {};
  for (const part of s.split(',').map((p) => p.trim())) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const key = eq < 0 ? part : part.slice(0, eq).trim();
    const value = eq < 0 ? '' : part.slice(eq + 1).trim();
    if (eq <= 0 || value === '') {
      ctx.addIssue({ code: 'custom', message: `"${part}" is not key=value (example: region=eu,disk=ssd)` });
      return z.NEVER;
    }
    const problem = metadataKeyProblem(key);
    if (problem !== undefined) {
      ctx.addIssue({ code: 'custom', message: `"${part}": ${problem}` });
      return z.NEVER;
    }
    out[key] = value;
  }
  return out;
});

export const configSchema = z
  .object({
    etcdEndpoints: z
      .string()
      .transform((s) =>
        s
          .split(',')
          .map((e) => e.trim())
          .filter((e) => e !== ''),
      )
      .or(z.array(z.string()))
      .pipe(
        z
          .array(z.url({ protocol: /^https?$/, error: 'must be URLs like http://127.0.0.1:2379' }))
          .min(1, 'needs at least one etcd endpoint'),
      )
      .default(['http://127.0.0.1:2379']),
    etcdCaFile: z.string().min(1).optional(),
    etcdCertFile: z.string().min(1).optional(),
    etcdKeyFile: z.string().min(1).optional(),
    etcdUsername: z.string().min(1).optional(),
    etcdPassword: z.string().optional(),
    etcdKeyPrefix: z
      .string()
      .regex(/^\/[A-Za-z0-9_./-]*\/$/, 'must start and end with "/" (example: /fleetts/v1/)')
      .default('/fleetts/v1/'),
    machineId: z
      .string()
      .superRefine((id, ctx) => {
        const problem = machineIdProblem(id);
        if (problem !== undefined)
          ctx.addIssue({ code: 'custom', message: `must be ${MACHINE_ID_RULE}: ${problem}` });
      })
      .optional(),
    publicIp: z.union([z.ipv4(), z.ipv6()], { error: 'must be an IPv4 or IPv6 address' }).optional(),
    metadata: metadataSchema.prefault(''),
    leaseTtlMs: duration
      .min(2_000, 'must be at least 2000 (etcd grants leases in whole seconds)')
      .default(DEFAULT_LEASE_TTL_MS),
    stateDir: z
      .string()
      .min(1)
      .refine((dir) => Buffer.byteLength(resolve(dir)) <= STATE_DIR_MAX, {
        error: `must be at most ${STATE_DIR_MAX} bytes long as an absolute path, so that every unit's files fit in a path (4095 bytes)`,
      })
      .default('/var/lib/fleetts'),
    apiSocket: z.string().min(1).default('/run/fleetts/fleetd.sock'),
    apiListen: z
      .string()
      .transform((s, ctx) => {
        const parsed = parseListenAddress(s);
        if ('ok' in parsed) return parsed.ok;
        ctx.addIssue({ code: 'custom', message: parsed.problem });
        return z.NEVER;
      })
      .optional(),
    apiToken: z
      .string()
      .superRefine((token, ctx) => {
        const problem = apiTokenProblem(token);
        if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
      })
      .optional(),
    apiTokenFile: z.string().min(1).optional(),
    apiTlsCert: z.string().min(1).optional(),
    apiTlsKey: z.string().min(1).optional(),
    apiTlsClientCa: z.string().min(1).optional(),
    runtime: z
      .enum(['auto', 'process', 'docker'], { error: 'must be auto, process or docker' })
      .default('auto'),
    serviceRuntime: z
      .enum(['auto', 'process', 'systemd'], { error: 'must be auto, process or systemd' })
      .default('auto'),
    dockerHost: z.string().min(1).optional(),
    processSupervisor: z.enum(['host', 'per-unit'], { error: 'must be host or per-unit' }).default('host'),
    fencePolicy: z
      .enum(['per-unit', 'stop', 'keep-running'], { error: 'must be per-unit, stop or keep-running' })
      .default('per-unit'),
    fenceAfterMs: duration.optional(),
    maxUnits: count.default(DEFAULT_MAX_UNITS),
    maxUnitFileBytes: count.default(DEFAULT_MAX_UNIT_FILE_BYTES),
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.fenceAfterMs !== undefined && c.fenceAfterMs >= c.leaseTtlMs) {
      ctx.addIssue({
        code: 'custom',
        path: ['fenceAfterMs'],
        message: `must be shorter than lease-ttl-ms (${c.leaseTtlMs}) so units stop before the lease can expire`,
      });
    }
    if ((c.apiTlsCert === undefined) !== (c.apiTlsKey === undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: ['apiTlsCert'],
        message: 'api-tls-cert and api-tls-key go together',
      });
    }
  });

export type DaemonConfig = z.infer<typeof configSchema>;
export type ConfigInput = Partial<Record<keyof DaemonConfig, unknown>>;

/** Setting name ↔ flag/env/file spelling: `etcdEndpoints` ↔ `--etcd-endpoints`, FLEETTS_ETCD_ENDPOINTS, etcd_endpoints. */
export const SETTINGS = Object.keys(configSchema.shape) as (keyof DaemonConfig)[];

/** The self-fencing deadline: 70 % of the lease TTL unless set (3.5 s for the default 5 s). */
export function fenceAfterMsOf(config: DaemonConfig): number {
  return config.fenceAfterMs ?? Math.round(config.leaseTtlMs * 0.7);
}
export const kebab = (key: string): string => key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
export const envName = (key: string): string => 'FLEETTS_' + kebab(key).replace(/-/g, '_').toUpperCase();

/** Parses a fleet.conf-style file: `key = value` lines (key in kebab or snake case), `#` comments. */
export function parseConfigFile(text: string, file: string): ConfigInput {
  const out: Record<string, unknown> = {};
  const byName = new Map(SETTINGS.map((s) => [kebab(s), s]));
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) return;
    const eq = line.indexOf('=');
    if (eq <= 0) throw new UsageError(`${file}:${i + 1}: expected "setting = value", got "${line}"`);
    const name = line.slice(0, eq).trim().replace(/_/g, '-');
    const key = byName.get(name);
    if (key === undefined)
      throw new UsageError(
        `${file}:${i + 1}: unknown setting "${name}"; known settings: ${[...byName.keys()].join(', ')}`,
      );
    out[key] = unquote(line.slice(eq + 1).trim());
  });
  return out;
}

function unquote(v: string): string {
  return v.length >= 2 && (v[0] === '"' || v[0] === "'") && v.at(-1) === v[0] ? v.slice(1, -1) : v;
}

/** Reads FLEETTS_* variables for the known settings. */
export function configFromEnv(env: NodeJS.ProcessEnv): ConfigInput {
  const out: Record<string, unknown> = {};
  for (const key of SETTINGS) {
    const v = env[envName(key)];
    if (v !== undefined && v !== '') out[key] = v;
  }
  return out;
}

export interface ConfigSource {
  readonly name: string;
  readonly values: ConfigInput;
}

/** Settings whose values never appear in an error message. */
const SECRET_SETTINGS = new Set<string>(['apiToken', 'etcdPassword']);

/** Merges sources (later wins) and validates; errors name the setting and the source that set it. */
export function resolveConfig(sources: readonly ConfigSource[]): DaemonConfig {
  const merged: Record<string, unknown> = {};
  const origin = new Map<string, string>();
  for (const src of sources) {
    for (const [k, v] of Object.entries(src.values)) {
      if (v === undefined) continue;
      merged[k] = v;
      origin.set(k, src.name);
    }
  }
  const result = configSchema.safeParse(merged);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const key = String(issue?.path[0] ?? '');
  if (issue?.code === 'unrecognized_keys')
    throw new UsageError(`unknown setting(s): ${issue.keys.join(', ')}`);
  const from = origin.get(key) ?? 'default';
  const shown = SECRET_SETTINGS.has(key) ? 'value hidden' : JSON.stringify(merged[key]);
  throw new UsageError(
    `invalid setting ${kebab(key)} (from ${from}: ${shown}): ${issue?.message ?? 'invalid'}`,
  );
}
