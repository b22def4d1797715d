import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { run } from '../../src/cli/main.js';
import { BufferOutput } from '../../src/cli/output.js';
import { runBin } from '../helpers/cli.js';

const BAD =
  '[Unit]\nDescription=x\n\n[Service]\nExecStart=/bin/true\n\n[X-Fleet]\nMachineOf=db.unit\nGlobal=true\n';

async function tempUnit(name: string, text: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'fleetts-verify-'));
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

test('verify accepts every shipped unit file', async (t) => {
  const out = new BufferOutput();
  const code = await run(['verify', 'units/web@.unit', 'units/web-discovery@.unit', 'units/lb.unit'], out);
  t.is(code, 0, out.stderr);
  t.is(out.stdout, 'units/web@.unit: ok\nunits/web-discovery@.unit: ok\nunits/lb.unit: ok\n');
});

test('verify reports file:line and exits 1 for an invalid combination', async (t) => {
  const path = await tempUnit('web@.unit', BAD);
  const out = new BufferOutput();
  t.is(await run(['verify', path], out), 1);
  t.is(out.stderr, `${path}:9: Global=true cannot be combined with MachineOf=\n`);
});

test('verify names a missing file and a bad unit name', async (t) => {
  const out = new BufferOutput();
  t.is(await run(['verify', '/nonexistent/web@.unit'], out), 1);
  t.is(out.stderr, '/nonexistent/web@.unit: no such file\n');
  const path = await tempUnit('bad name.unit', '[Service]\nExecStart=/bin/true\n');
  const out2 = new BufferOutput();
  t.is(await run(['verify', path], out2), 1);
  t.regex(out2.stderr, /invalid unit name "bad name\.unit": character " " is not allowed/);
});

test('usage errors exit 2 with a message, never a stack trace', async (t) => {
  const out = new BufferOutput();
  t.is(await run(['frobnicate'], out), 2);
  t.regex(out.stderr, /unknown command 'frobnicate'/);
  t.false(out.stderr.includes('    at '));
  const out2 = new BufferOutput();
  t.is(await run(['verify'], out2), 2);
  t.regex(out2.stderr, /missing required argument 'file'/);
});

test('real binaries: fleetts --help, fleetd --help, and verify of a bad file', async (t) => {
  const help = await runBin('fleetts', ['--help']);
  t.is(help.code, 0);
  t.regex(help.stdout, /Usage: fleetts/);
  t.regex(help.stdout, /verify <file\.\.\.>/);
  const dhelp = await runBin('fleetd', ['--help']);
  t.is(dhelp.code, 0);
  t.regex(dhelp.stdout, /--etcd-endpoints <value>/);
  const path = await tempUnit('web@.unit', BAD);
  const bad = await runBin('fleetts', ['verify', path]);
  t.is(bad.code, 1);
  t.is(bad.stderr, `${path}:9: Global=true cannot be combined with MachineOf=\n`);
});

test('real fleetd: a bad setting is a one-line error with exit code 2', async (t) => {
  const r = await runBin('fleetd', ['--lease-ttl-ms', 'soon']);
  t.is(r.code, 2);
  t.is(
    r.stderr,
    'fleetd: invalid setting lease-ttl-ms (from command line: "soon"): must be a number of milliseconds\n',
  );
});
