// The host supervisor's Perl helper against the real Perl: FIFOs made, errors named, shims forked
// (their main process's exit status, output, environment and errors), a helper that died replaced
// at the next request while the shims it forked run on.
import test from 'ava';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readProcStat } from '../../src/runtime/proc.js';
import { ShimLauncher, type ShimLaunch } from '../../src/runtime/shim-launcher.js';

async function scratch(
  t: { teardown: (f: () => Promise<void>) => void },
  launcher: ShimLauncher,
): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'fleetts-shim-'));
  t.teardown(async () => {
    launcher.close();
    await rm(dir, { recursive: true, force: true });
  });
  return dir;
}

async function until(what: string, f: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A unit directory with its FIFO, and the launch of `argv` in it. */
async function unit(
  launcher: ShimLauncher,
  dir: string,
  name: string,
  argv: string[],
  more: Partial<ShimLaunch> = {},
): Promise<ShimLaunch> {
  const fifo = join(dir, `${name}.fifo`);
  await launcher.make(fifo);
  return {
    name,
    exit: join(dir, `${name}.exit`),
    fifo,
    cgroupProcs: '',
    cwd: dir,
    path: argv[0]!,
    argv,
    env: {},
    ...more,
  };
}

test('makes FIFOs with mode 0600 through one helper; names the errno of a failure', async (t) => {
  const launcher = new ShimLauncher();
  const dir = await scratch(t, launcher);
  const paths = Array.from({ length: 20 }, (_, i) => join(dir, `u${i}.fifo`));
  await Promise.all(paths.map((p) => launcher.make(p)));
  for (const p of paths) {
    const s = await stat(p);
    t.true(s.isFIFO(), p);
    t.is(s.mode & 0o777 & ~0o600, 0, `${p}: mode ${(s.mode & 0o777).toString(8)}`);
  }
  await t.throwsAsync(launcher.make(paths[0]!), { code: 'EEXIST', message: /mkfifo .*u0\.fifo: EEXIST/ });
  await t.throwsAsync(launcher.make(join(dir, 'missing', 'x.fifo')), { code: 'ENOENT' });
  await t.throwsAsync(launcher.make(join(dir, 'a\0b')), { message: /NUL/ });
  // A path with a newline is a path like another (requests are length-prefixed).
  await launcher.make(join(dir, 'a\nb'));
  t.true((await stat(join(dir, 'a\nb'))).isFIFO());
  // The requests after a failure are still answered, each with its own answer.
  const [ok, bad] = await Promise.allSettled([
    launcher.make(join(dir, 'late.fifo')),
    launcher.make(paths[1]!),
  ]);
  t.is(ok.status, 'fulfilled');
  t.is(bad.status, 'rejected');
});

test('forks a shim that runs the main process with its argv, environment and directory, and records how it ended', async (t) => {
  const launcher = new ShimLauncher();
  const dir = await scratch(t, launcher);
  const spec = await unit(
    launcher,
    dir,
    'a@1.service',
    ['/bin/sh', '-c', 'echo "$FOO|$#|$1|$(pwd)"; /usr/bin/env; exit 3', 'sh', 'two words\nand a line'],
    {
      env: { FOO: 'bär=1' },
    },
  );
  const shims: number[] = [];
  const ends: number[] = [];
  const report = await launcher.launch(spec, (pid) => {
    shims.push(pid);
    launcher.onEnd(pid, (status) => ends.push(status ?? -1));
  });
  t.is(report.kind, 'running');
  if (report.kind !== 'running') return;
  t.deepEqual(shims, [report.shim]);
  await until('the shim to end', () => ends.length > 0);
  t.deepEqual(ends, [0], 'the shim ended well, reaped by the helper');
  t.is(readFileSync(spec.exit, 'utf8'), `${report.main} exited 3\n`);
  // Nobody read the FIFO: the shim drained it next to main.exit.
  t.is(
    readFileSync(`${spec.exit}.out`, 'utf8'),
    `bär=1|1|two words\nand a line|${dir}\nFOO=bär=1\nPWD=${dir}\n`,
  );
});

test('the shim is named for its unit, in its own session, a child of the helper; it ignores a stop signal, the main process does not', async (t) => {
  const launcher = new ShimLauncher();
  const dir = await scratch(t, launcher);
  const spec = await unit(launcher, dir, 's@2.service', ['/bin/sleep', '1000']);
  const report = await launcher.launch(spec, () => undefined);
  if (report.kind !== 'running') return t.fail(JSON.stringify(report));
  const ended = new Promise<number | undefined>((resolve) => launcher.onEnd(report.shim, resolve));
  t.regex(readFileSync(`/proc/${report.shim}/cmdline`, 'latin1'), /^fleetts-shim s@2\.service/);
  const st = readProcStat(report.shim)!;
  t.is(st.ppid, launcher.helperPid ?? -1);
  t.is(readProcStat(report.main)?.ppid, report.shim);
  const sid = (pid: number): string =>
    readFileSync(`/proc/${pid}/stat`, 'latin1').split(') ')[1]!.split(' ')[3]!;
  t.is(sid(report.shim), String(report.shim), 'setsid: its own session');
  process.kill(report.shim, 'SIGTERM');
  await new Promise((r) => setTimeout(r, 100));
  t.truthy(readProcStat(report.shim), 'the shim ignores SIGTERM');
  process.kill(report.main, 'SIGTERM');
  t.is(await ended, 0);
  t.is(readFileSync(spec.exit, 'utf8'), `${report.main} killed 15\n`);
});

test('an exec, chdir or setuid that fails is reported with its errno; a shim that dies before it answers shows as ended', async (t) => {
  const launcher = new ShimLauncher();
  const dir = await scratch(t, launcher);
  const missing = await launcher.launch(
    await unit(launcher, dir, 'm.service', ['/no/such/binary']),
    () => undefined,
  );
  t.like(missing, { kind: 'error', errno: 2 });
  const noDir = await launcher.launch(
    await unit(launcher, dir, 'd.service', ['/bin/true'], { cwd: join(dir, 'nowhere') }),
    () => undefined,
  );
  t.like(noDir, { kind: 'error', errno: 2 });
  const notExec = await launcher.launch(await unit(launcher, dir, 'x.service', [dir]), () => undefined);
  t.like(notExec, { kind: 'error', errno: 13 });
  // The cgroup join fails (not a cgroup.procs file in a directory that exists): the shim dies,
  // its reason in the FIFO.
  const died = await launcher.launch(
    await unit(launcher, dir, 'c.service', ['/bin/true'], {
      cgroupProcs: join(dir, 'nowhere', 'cgroup.procs'),
    }),
    () => undefined,
  );
  t.is(died.kind, 'ended');
  const nul = await launcher.launch(
    await unit(launcher, dir, 'n.service', ['/bin/echo', 'a\0b']),
    () => undefined,
  );
  t.is(nul.kind, 'failed');
  t.regex(nul.kind === 'failed' ? nul.why : '', /NUL/);
});

test('50 launches at once: each answered with its own pids', async (t) => {
  const launcher = new ShimLauncher();
  const dir = await scratch(t, launcher);
  const specs = await Promise.all(
    Array.from({ length: 50 }, (_, i) =>
      unit(launcher, dir, `b@${i}.service`, ['/bin/sh', '-c', `exit ${i}`]),
    ),
  );
  // Each launch hears its shim's pid once, whichever of the helper's and the shim's answers comes first.
  const heard = specs.map(() => [] as number[]);
  const reports = await Promise.all(specs.map((s, i) => launcher.launch(s, (pid) => heard[i]!.push(pid))));
  const mains = new Set<number>();
  for (const [i, r] of reports.entries()) {
    if (r.kind !== 'running') return t.fail(JSON.stringify(r));
    t.deepEqual(heard[i], [r.shim]);
    t.true(r.shim > 0);
    mains.add(r.main);
  }
  t.is(mains.size, 50);
  await until('every main.exit', () => specs.every((s) => existsSync(s.exit)));
  specs.forEach((s, i) => {
    const r = reports[i] as Extract<(typeof reports)[number], { kind: 'running' }>;
    t.is(readFileSync(s.exit, 'utf8'), `${r.main} exited ${i}\n`);
  });
});

test('a helper that died is replaced at the next request; its shims run on; one that cannot run fails the request', async (t) => {
  const launcher = new ShimLauncher();
  const dir = await scratch(t, launcher);
  const spec = await unit(launcher, dir, 'k.service', ['/bin/sleep', '1000']);
  const report = await launcher.launch(spec, () => undefined);
  if (report.kind !== 'running') return t.fail(JSON.stringify(report));
  const first = launcher.helperPid;
  t.truthy(first);
  await launcher.make(join(dir, 'a2.fifo'));
  t.is(launcher.helperPid, first, 'one helper for every request');
  const gone = new Promise<number | undefined>((resolve) => launcher.onEnd(report.shim, resolve));
  process.kill(first!, 'SIGKILL');
  t.is(await gone, undefined, 'its end can no longer be heard from the helper');
  await until('the helper to be forgotten', () => launcher.helperPid !== first);
  t.truthy(readProcStat(report.shim), 'the shim runs on');
  t.truthy(readProcStat(report.main), 'and its main process');
  await launcher.make(join(dir, 'b.fifo'));
  t.true((await stat(join(dir, 'b.fifo'))).isFIFO());
  t.not(launcher.helperPid, first);
  process.kill(report.main, 'SIGKILL');
  await until('main.exit', () => existsSync(spec.exit));
  t.is(readFileSync(spec.exit, 'utf8'), `${report.main} killed 9\n`);

  // Closed with nothing waiting, then asked again: the new helper's answer is not mixed up with
  // the old one's end.
  const before = launcher.helperPid;
  launcher.close();
  await launcher.make(join(dir, 'd.fifo'));
  t.not(launcher.helperPid, before);

  const none = new ShimLauncher('/nonexistent/perl');
  await t.throwsAsync(none.make(join(dir, 'c.fifo')), { message: /could not run|ended/ });
  t.like(await none.launch(await unit(launcher, dir, 'z.service', ['/bin/true']), () => undefined), {
    kind: 'failed',
  });
});

test("the shim's answer may come before the helper's `shim` line: the shim is known from either, its end heard once", async (t) => {
  // A stand-in helper that answers in that order (the real one does when the forked shim runs
  // before the helper writes its line, as happens under load).
  const dir = await mkdtemp(join(tmpdir(), 'fleetts-shim-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const fake = join(dir, 'perl');
  writeFileSync(
    fake,
    "#!/bin/sh\nprintf '1 pid 555 4242\\n'\nsleep 0.3\nprintf '1 shim 4242\\n'\nsleep 0.3\nprintf 'end 4242 256\\n'\nexec cat >/dev/null\n",
    { mode: 0o755 },
  );
  const launcher = new ShimLauncher(fake);
  t.teardown(() => launcher.close());
  const heard: number[] = [];
  const report = await launcher.launch(
    {
      name: 'f.service',
      exit: join(dir, 'x'),
      fifo: join(dir, 'f'),
      cgroupProcs: '',
      cwd: dir,
      path: '/bin/true',
      argv: ['/bin/true'],
      env: {},
    },
    (pid) => heard.push(pid),
  );
  t.deepEqual(report, { kind: 'running', shim: 4242, main: 555 });
  // Asked before the helper's own line came: the end is still heard from the helper.
  const end = await new Promise<number | undefined>((resolve) => launcher.onEnd(4242, resolve));
  t.is(end, 256);
  t.deepEqual(heard, [4242]);
});

test('a shim whose SIGCHLD the helper never handles is still reaped and its end heard', async (t) => {
  // Perl runs a handler between ops, not in a system call: a SIGCHLD that came just before the
  // helper blocked went unhandled until its next request (a CI run hung on that zombie). This wrapper
  // runs the real helper with its handler replaced by the default disposition, the worst case of
  // that gap: every end must then be found by the helper's own loop.
  const dir = await mkdtemp(join(tmpdir(), 'fleetts-shim-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const wrapper = join(dir, 'perl');
  writeFileSync(
    wrapper,
    [
      '#!/usr/bin/perl',
      'my ($e, $script) = @ARGV;',
      '$script =~ s/^\\$SIG\\{CHLD\\} = .*$/\\$SIG{CHLD} = \'DEFAULT\';/m or die "no SIGCHLD handler in the helper\\n";',
      "exec '/usr/bin/perl', $e, $script;",
      '',
    ].join('\n'),
    { mode: 0o755 },
  );
  const launcher = new ShimLauncher(wrapper);
  t.teardown(() => launcher.close());
  const ends: number[] = [];
  for (const i of [1, 2, 3]) {
    const spec = await unit(launcher, dir, `q@${i}.service`, ['/bin/sh', '-c', `exit ${i}`]);
    const report = await launcher.launch(spec, (pid) => launcher.onEnd(pid, (s) => ends.push(s ?? -1)));
    t.is(report.kind, 'running', JSON.stringify(report));
    // No request follows until this end is heard: only the loop's own reaping can find it.
    await until(`the end of shim ${i}`, () => ends.length === i, 5_000);
    t.is(readFileSync(spec.exit, 'utf8').split(' ').slice(1).join(' '), `exited ${i}\n`);
  }
  t.deepEqual(ends, [0, 0, 0], 'each shim ended well, reaped by the helper');
});
