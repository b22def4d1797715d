// The CLI as users run it: bin/fleetts.js loads the bundle built by `npm run build`
// (scripts/bundle-cli.mjs), whose modules find the package's files (package.json, examples/) from
// its own place. Needs `npm run build` first, as every test that runs bin/.
import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(ROOT, 'bin', 'fleetts.js');

test('bin/fleetts.js runs the bundle, which finds package.json and the examples from its place', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'fleetts-bundle-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const bundle = join(ROOT, 'dist', 'cli-bundle', 'main.js');
  const compiled = join(ROOT, 'dist', 'cli', 'main.js');
  t.true(
    (await stat(bundle)).mtimeMs >= (await stat(compiled)).mtimeMs,
    'dist/cli-bundle is older than dist/cli: run `npm run build` (tsc alone leaves the bundle stale)',
  );
  // A resolve hook prints every module the command loads from the package.
  const hook = join(dir, 'hook.mjs');
  await writeFile(
    hook,
    `export async function resolve(s, c, next) { const r = await next(s, c);
       if (r.url.startsWith('file:') && !r.url.includes('/node_modules/')) process.stderr.write('LOADED ' + r.url + '\\n');
       return r; }`,
  );
  const register = join(dir, 'register.mjs');
  await writeFile(
    register,
    `import { register } from 'node:module'; register(${JSON.stringify(`file://${hook}`)});`,
  );

  const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  const version = await run(process.execPath, ['--import', register, BIN, '--version']);
  t.is(version.stdout.trim(), pkg.version);
  const loaded = version.stderr.split('\n').filter((l) => l.startsWith('LOADED '));
  t.true(
    loaded.some((l) => l.endsWith('/dist/cli-bundle/main.js')),
    `the bundle was not loaded:\n${loaded.join('\n')}`,
  );
  t.false(
    loaded.some((l) => l.includes('/dist/cli/')),
    `modules of dist/cli were loaded beside the bundle:\n${loaded.join('\n')}`,
  );

  // A command loads its own group of commands, not the others (src/cli/main.ts COMMAND_GROUPS).
  const list = await run(process.execPath, [
    '--import',
    register,
    BIN,
    'list-units',
    '--endpoint',
    'http://127.0.0.1:1',
  ]).catch((err: { stderr: string; code: number }) => err);
  t.regex(list.stderr, /cannot reach fleetd at http:\/\/127\.0\.0\.1:1/);
  const chunks = list.stderr
    .split('\n')
    .filter((l) => l.startsWith('LOADED ') && l.includes('/dist/cli-bundle/'))
    .map((l) => l.slice(l.lastIndexOf('/') + 1));
  t.true(
    chunks.some((c) => c.startsWith('list-commands-')),
    `list-units did not load its group:\n${chunks.join('\n')}`,
  );
  for (const other of ['galera-', 'ftp-', 'cloud-config-', 'dev-', 'target-commands-', 'upstream-'])
    t.false(
      chunks.some((c) => c.startsWith(other)),
      `list-units loaded ${other}*:\n${chunks.join('\n')}`,
    );

  // farm-files reads examples/process/*.unit from the package root (new URL('../../', import.meta.url)).
  const out = join(dir, 'farm');
  await run(process.execPath, [BIN, 'farm-files', '--out', out]);
  const units = await readdir(join(out, 'units'));
  t.true(units.includes('web@.unit'), units.join(' '));
  t.regex(await readFile(join(out, 'units', 'web@.unit'), 'utf8'), /\[X-Fleet\]/);
});
