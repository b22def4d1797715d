// A command loads only the group of commands that defines it (src/cli/main.ts COMMAND_GROUPS): the
// table must name every command, each with the group that really registers it.
import test from 'ava';
import { BufferOutput } from '../../src/cli/output.js';
import { COMMAND_GROUPS, buildProgram, commandWord, type CliContext } from '../../src/cli/main.js';
import { systemClock } from '../../src/lib/clock.js';

function context(): CliContext {
  return {
    output: new BufferOutput(),
    exitCode: 0,
    client: () => Promise.reject(new Error('no API client here')),
    clock: systemClock,
    cwd: process.cwd(),
    signal: undefined,
    pollMs: 500,
  };
}

const namesOf = (commands: readonly { name(): string; aliases(): string[] }[]): string[] =>
  commands.flatMap((c) => [c.name(), ...c.aliases()]);

test('every command and alias of the full program is in COMMAND_GROUPS, and nothing else is', async (t) => {
  const all = namesOf((await buildProgram(context())).commands).filter((n) => n !== 'version');
  t.deepEqual([...all].sort(), Object.keys(COMMAND_GROUPS).sort());
  t.deepEqual(namesOf((await buildProgram(context(), 'version')).commands), ['version']);
});

test("building the program for one command registers that command's group only", async (t) => {
  const full = namesOf((await buildProgram(context())).commands).length;
  for (const [name, group] of Object.entries(COMMAND_GROUPS)) {
    const names = namesOf((await buildProgram(context(), name)).commands);
    t.true(names.includes(name), `${name} (group ${group}) is not registered by its group`);
    t.true(names.length < full, `${name}: the whole program was built`);
    // The group's other commands are the ones the table gives that group.
    const group_ = Object.entries(COMMAND_GROUPS)
      .filter(([, g]) => g === group)
      .map(([n]) => n);
    t.deepEqual(names.filter((n) => n !== 'version').sort(), group_.sort(), name);
  }
});

test('the command word skips global options and their values; anything unsure loads every group', (t) => {
  t.is(commandWord(['list-units']), 'list-units');
  t.is(commandWord(['--endpoint', 'http://h:4003', '--debug', 'start', 'a.unit']), 'start');
  t.is(commandWord(['--endpoint=http://h:4003', 'status', 'x']), 'status');
  t.is(commandWord(['--request-timeout', '5', 'list-machines']), 'list-machines');
  // The value of an option is not the command, even when it is a command's name.
  t.is(commandWord(['--token', 'start', 'stop', 'a.unit']), 'stop');
  t.is(commandWord([]), undefined);
  t.is(commandWord(['--help']), undefined);
  t.is(commandWord(['--version']), 'version', 'the program answers it without any group');
  t.is(commandWord(['--debug', 'version']), 'version');
  t.is(commandWord(['help', 'start']), undefined);
  t.is(commandWord(['--bogus', 'start']), undefined, 'an unknown option: commander says what is wrong');
  t.is(commandWord(['nosuch']), undefined, 'an unknown command: its suggestion needs every command');
});
