// The systemd runtime against real systemd 252: the runtime contract (contract.ts) runs inside a
// container whose PID 1 is systemd (fixtures/systemd-contract.ts, by ava in the container), and
// each contract test here passes when it passed there. The titles come from the contract itself,
// so a test missing from the container's run fails here too.

import test, { type TestFn } from 'ava';
import { createInterface } from 'node:readline';
import { runtimeContract, type RuntimeHarness } from './contract.js';
import { systemdRuntimeTests, type SystemdHarness } from './systemd-only.js';
import { REPO_ROOT, startSystemdContainer, type SystemdContainer } from '../helpers/systemd-container.js';

interface Outcome {
  readonly ok: boolean;
  readonly detail: string;
}

// The titles, as the contract and the systemd-only tests register them.
const titles: string[] = [];
const recorder = ((title: string) => void titles.push(title)) as unknown as TestFn;
runtimeContract(recorder, {} as RuntimeHarness);
systemdRuntimeTests(recorder, {} as SystemdHarness);

let container: SystemdContainer | undefined;
const outcomes = new Map<string, Outcome>();
const waiting = new Map<string, (o: Outcome) => void>();
let ended: ((why: string) => void) | undefined;
const runEnded = new Promise<string>((resolve) => (ended = resolve));

function settle(title: string, o: Outcome): void {
  outcomes.set(title, o);
  waiting.get(title)?.(o);
}

test.before(async () => {
  container = await startSystemdContainer(`fleetts-systemd-test-${process.pid}`);
  const child = container.spawn(
    [
      'node',
      'node_modules/ava/entrypoints/cli.mjs',
      '--config',
      'test/runtime/fixtures/ava-systemd.config.mjs',
      '--tap',
    ],
    { cwd: REPO_ROOT },
  );
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  // TAP: `ok N - title` or `not ok N - title`, a failure followed by its YAML block up to `  ...`.
  let current: { title: string; ok: boolean; lines: string[] } | undefined;
  const flush = (): void => {
    if (current !== undefined) settle(current.title, { ok: current.ok, detail: current.lines.join('\n') });
    current = undefined;
  };
  const rl = createInterface({ input: child.stdout });
  rl.on('line', (line) => {
    const m = /^(not ok|ok) \d+ - (.*?)(?: # (?:SKIP|TODO).*)?$/.exec(line);
    if (m !== null) {
      flush();
      current = { title: m[2] ?? '', ok: m[1] === 'ok', lines: [] };
      if (current.ok) flush();
      return;
    }
    if (current !== undefined) {
      if (line === '  ...') flush();
      else current.lines.push(line);
    }
  });
  child.once('close', (code) => {
    flush();
    ended?.(
      `the contract run in the container ended (exit ${code}) without it; stderr: ${stderr.slice(-2000)}`,
    );
  });
});

test.after.always(() => container?.remove());

for (const title of titles) {
  test(title, async (t) => {
    t.timeout(10 * 60_000);
    const o =
      outcomes.get(title) ??
      (await Promise.race([
        new Promise<Outcome>((resolve) => waiting.set(title, resolve)),
        runEnded.then((why) => ({ ok: false, detail: why })),
      ]));
    t.true(o.ok, o.detail);
  });
}
