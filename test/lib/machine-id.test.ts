// One machine-id rule everywhere (issue 14, item 10): fleetd's --machine-id, /etc/machine-id (and
// the id kept in the state dir), fleetd itself and MachineID= in unit files accept the same ids,
// because each asks lib/ids.ts machineIdProblem.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { isMachineId, MACHINE_ID_RULE, machineIdProblem } from '../../src/lib/ids.js';
import { resolveConfig } from '../../src/daemon/config.js';
import { resolveMachineId } from '../../src/daemon/host-identity.js';
import { parseUnitSpec } from '../../src/unit/unit-spec.js';
import { runBin } from '../helpers/cli.js';

const GOOD = ['0123456789abcdef0123456789abcdef', 'host-a', 'e2e_web_1', 'X', 'a'.repeat(64), 'ABC-def_09'];
const BAD: readonly [string, string][] = [
  ['', 'it is empty'],
  ['a'.repeat(65), 'it is 65 characters long; the limit is 64'],
  ['a b', 'character " " is not allowed'],
  ['a/b', 'character "/" is not allowed'],
  ['../x', 'character "." is not allowed'],
  ['host.example', 'character "." is not allowed'],
  ['ünï', 'character "ü" is not allowed'],
];

function machineIdInUnit(id: string): string | undefined {
  try {
    const spec = parseUnitSpec(
      `[Service]\nExecStart=/bin/true\n\n[X-Fleet]\nMachineID=${id}\n`,
      'pin.service',
    );
    return spec.placement.machineId;
  } catch (err) {
    return `error: ${(err as Error).message}`;
  }
}

for (const id of GOOD) {
  test(`machine id ${JSON.stringify(id)} is accepted everywhere`, (t) => {
    t.is(machineIdProblem(id), undefined);
    t.true(isMachineId(id));
    t.is(resolveConfig([{ name: 'flags', values: { machineId: id } }]).machineId, id);
    t.is(machineIdInUnit(id), id);
  });
}

for (const [id, problem] of BAD) {
  test(`machine id ${JSON.stringify(id.length > 20 ? `${id.length} characters` : id)} is refused everywhere`, (t) => {
    t.is(machineIdProblem(id), problem);
    t.false(isMachineId(id));
    if (id !== '') {
      // An empty setting is "not set" for resolveConfig's sources; MachineID= empty resets the key.
      t.throws(() => resolveConfig([{ name: 'flags', values: { machineId: id } }]), {
        message: `invalid setting machine-id (from flags: ${JSON.stringify(id)}): must be ${MACHINE_ID_RULE}: ${problem}`,
      });
      t.regex(machineIdInUnit(id) ?? '', /^error: /);
    }
  });
}

test('an /etc/machine-id that breaks the rule is not used: an id is generated and kept', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'fleetts-machine-id-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const etc = join(dir, 'etc-machine-id');
  await writeFile(etc, 'not a machine id\n');
  const id = await resolveMachineId(undefined, dir, etc);
  t.regex(id, /^[0-9a-f]{32}$/);
  t.is((await readFile(join(dir, 'machine-id'), 'utf8')).trim(), id);
  await writeFile(etc, 'host-a\n');
  t.is(await resolveMachineId(undefined, join(dir, 'other'), etc), 'host-a');
});

test('real fleetd: --machine-id a/b is a usage error (exit 2, one line)', async (t) => {
  const r = await runBin('fleetd', ['--machine-id', 'a/b']);
  t.is(r.code, 2);
  t.is(
    r.stderr,
    `fleetd: invalid setting machine-id (from command line: "a/b"): must be ${MACHINE_ID_RULE}: character "/" is not allowed\n`,
  );
});
