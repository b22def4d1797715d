// fleetd's side of the host supervisor (host-supervisor-main.ts): finds the one that runs for the
// state dir (its socket answers), spawns it detached when there is none, and sends it commands.

import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { createConnection } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Clock } from '../lib/clock.js';
import {
  hostPaths,
  SOCKET_PATH_MAX,
  type HostPaths,
  type HostReply,
  type HostRequest,
} from './host-supervisor-protocol.js';
import { identify, isAlive } from './proc.js';
import type { ProcessIdentity } from './supervisor-protocol.js';

export interface HostSupervisorClientDeps {
  readonly stateDir: string;
  readonly cgroupRoot: string;
  readonly tracking: 'auto' | 'proc-scan';
  readonly clock: Clock;
  readonly command?: { readonly command: string; readonly args: readonly string[] };
  /** How long a new host supervisor may take to answer; default 15 s. */
  readonly startTimeoutMs?: number;
  readonly log: (event: string, fields: Record<string, unknown>) => void;
}

export class HostSupervisorClient {
  readonly #d: HostSupervisorClientDeps;
  readonly #paths: HostPaths;
  readonly #command: { readonly command: string; readonly args: readonly string[] };
  #ensuring: Promise<ProcessIdentity> | undefined;
  #known: ProcessIdentity | undefined;

  constructor(deps: HostSupervisorClientDeps) {
    this.#d = deps;
    this.#paths = hostPaths(deps.stateDir);
    this.#command = deps.command ?? defaultHostSupervisorCommand();
  }

  /** Why this state dir cannot have a host supervisor (undefined: it can). */
  static unusable(stateDir: string): string | undefined {
    const socket = hostPaths(stateDir).socket;
    if (Buffer.byteLength(socket) > SOCKET_PATH_MAX)
      return `its socket ${socket} is longer than the ${SOCKET_PATH_MAX} bytes a unix socket path may have`;
    return undefined;
  }

  /** The host supervisor last seen answering, if it still lives (no I/O beyond /proc). */
  alive(): ProcessIdentity | undefined {
    return this.#known !== undefined && isAlive(this.#known) ? this.#known : undefined;
  }

  /** The running host supervisor, spawned first if there is none. Concurrent calls share one spawn. */
  ensure(): Promise<ProcessIdentity> {
    this.#ensuring ??= this.#ensure().finally(() => {
      this.#ensuring = undefined;
    });
    return this.#ensuring;
  }

  /** Sends one command, spawning the host supervisor first if none answers. */
  async request(req: HostRequest): Promise<ProcessIdentity> {
    for (let attempt = 0; ; attempt++) {
      const reply = await this.#send(req).catch((err: unknown) => err as Error);
      if (!(reply instanceof Error)) {
        if (!reply.ok) throw new Error(`the host supervisor refused ${req.op}: ${reply.error}`);
        this.#known = reply.supervisor;
        return reply.supervisor;
      }
      if (attempt >= 2) throw new Error(`the host supervisor does not answer (${reply.message})`);
      await this.ensure();
    }
  }

  async #ensure(): Promise<ProcessIdentity> {
    const answer = await this.#send({ op: 'hello' }).catch(() => undefined);
    if (answer?.ok === true) return (this.#known = answer.supervisor);
    const log = openSync(this.#paths.log, 'a', 0o640);
    let pid: number;
    try {
      const child = spawn(
        this.#command.command,
        [...this.#command.args, this.#d.stateDir, this.#d.cgroupRoot, this.#d.tracking],
        {
          detached: true,
          stdio: ['ignore', log, log],
          cwd: '/',
          env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin' },
        },
      );
      pid = await new Promise<number>((ok, fail) => {
        child.once('spawn', () => ok(child.pid ?? -1));
        child.once('error', fail);
      });
      child.unref();
    } finally {
      closeSync(log);
    }
    const spawned = identify(pid);
    this.#d.log('runtime.host_supervisor_spawned', { pid });
    // A loaded host (a failover's burst) may take long to start Node: wait while it lives, up to
    // the timeout after it is gone (it may have found another one holding the lock: ask that one).
    const timeoutMs = this.#d.startTimeoutMs ?? 15_000;
    let deadline = this.#d.clock.monotonic() + timeoutMs;
    const hardDeadline = this.#d.clock.monotonic() + 8 * timeoutMs;
    for (;;) {
      const r = await this.#send({ op: 'hello' }).catch(() => undefined);
      if (r?.ok === true) return (this.#known = r.supervisor);
      const now = this.#d.clock.monotonic();
      const alive = spawned !== undefined && isAlive(spawned);
      if (alive && now < hardDeadline) deadline = Math.max(deadline, now + 1000);
      if (now > deadline) {
        throw new Error(
          `the host supervisor (pid ${pid}${alive ? '' : ', exited'}) did not answer within ${Math.round((now - deadline + timeoutMs) / 1000)} s; see ${this.#paths.log}`,
        );
      }
      await this.#d.clock.sleep(alive ? 20 : 100);
    }
  }

  #send(req: HostRequest): Promise<HostReply> {
    return new Promise((resolve, reject) => {
      const conn = createConnection(this.#paths.socket);
      let buf = '';
      conn.setEncoding('utf8');
      conn.once('connect', () => conn.write(JSON.stringify(req) + '\n'));
      conn.on('data', (d: string) => (buf += d));
      conn.once('error', reject);
      conn.once('close', () => {
        const line = buf.split('\n')[0] ?? '';
        try {
          resolve(JSON.parse(line) as HostReply);
        } catch {
          reject(new Error(`no answer to ${req.op}`));
        }
      });
    });
  }
}

/** This Node running host-supervisor-main beside this file: compiled .js, or .ts through tsx (tests). */
export function defaultHostSupervisorCommand(): { command: string; args: string[] } {
  const here = fileURLToPath(import.meta.url);
  const flags = ['--max-semi-space-size=1', '--max-old-space-size=128'];
  if (here.endsWith('.ts')) {
    const tsx = import.meta.resolve('tsx');
    return {
      command: process.execPath,
      args: [...flags, '--import', tsx, join(dirname(here), 'host-supervisor-main.ts')],
    };
  }
  return { command: process.execPath, args: [...flags, join(dirname(here), 'host-supervisor-main.js')] };
}
