// Runs `fleetts announce|upstream` as a real child process (from source) and follows its JSON log.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ROOT } from '../helpers/cli.js';
import { WaitAborted, waitFor } from '../helpers/wait.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/fleetts.ts', import.meta.url));

export interface LogLine {
  readonly event?: string;
  readonly time: number;
  readonly msg?: string;
  readonly [key: string]: unknown;
}

export interface CliProcess {
  readonly child: ChildProcess;
  readonly logs: LogLine[];
  /** Non-JSON stderr (usage errors, crashes). */
  text(): string;
  running(): boolean;
  events(event: string): LogLine[];
  /** Waits for the `n`th log line with this event (1-based). */
  waitForEvent(event: string, options?: { n?: number; timeoutMs?: number }): Promise<LogLine>;
  /** Sends the signal and waits for the exit; resolves with the exit code or signal. */
  stop(signal?: NodeJS.Signals): Promise<number | NodeJS.Signals | null>;
}

export function spawnCli(args: readonly string[], env: NodeJS.ProcessEnv = {}): CliProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: LogLine[] = [];
  let text = '';
  let partial = '';
  child.stderr?.on('data', (d: Buffer) => {
    partial += d.toString();
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      try {
        logs.push(JSON.parse(line) as LogLine);
      } catch {
        text += line + '\n';
      }
    }
  });
  child.stdout?.on('data', (d: Buffer) => (text += d.toString()));
  const exited = new Promise<number | NodeJS.Signals | null>((resolve) =>
    child.once('exit', (code, signal) => resolve(code ?? signal)),
  );
  const running = (): boolean => child.exitCode === null && child.signalCode === null;
  const events = (event: string): LogLine[] => logs.filter((l) => l.event === event);
  return {
    child,
    logs,
    text: () => text,
    running,
    events,
    waitForEvent(event, options = {}) {
      const n = options.n ?? 1;
      return waitFor(
        `${n}× ${event} from fleetts ${args[0] ?? ''}`,
        () => {
          const found = events(event)[n - 1];
          if (found === undefined && !running())
            throw new WaitAborted(
              `fleetts ${args[0] ?? ''} exited before ${event}: ${text}${JSON.stringify(logs.slice(-5))}`,
            );
          return found;
        },
        { timeoutMs: options.timeoutMs, intervalMs: 5 },
      );
    },
    async stop(signal = 'SIGTERM') {
      if (running()) child.kill(signal);
      return exited;
    },
  };
}
