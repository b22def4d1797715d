// parseUnitSpec as a whole: the section rules, [Unit], names and files, and every shipped unit file.

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { asUnitName } from '../../src/cluster/types.js';
import { UnitFileError } from '../../src/lib/errors.js';
import { unitHash } from '../../src/unit/hash.js';
import { parseUnitName } from '../../src/unit/names.js';
import { serializeUnitFile } from '../../src/unit/parse-unit-file.js';
import { parseUnitSpec, specForInstance } from '../../src/unit/unit-spec.js';

const errorOf = (text: string, name = 'a.unit', file?: string): UnitFileError => {
  try {
    parseUnitSpec(text, name, file === undefined ? {} : { file });
  } catch (error) {
    if (error instanceof UnitFileError) return error;
    throw error;
  }
  throw new Error('expected a UnitFileError');
};

const SERVICE = '[Service]\nExecStart=/bin/true\n';

test('a unit needs [Service] or [Container]', (t) => {
  t.is(
    errorOf('[Unit]\nDescription=x\n').message,
    'a.unit: no [Service] or [Container] section; a unit needs exactly one: [Service] to run a process (ExecStart=…), [Container] to run a Docker container (Image=…)',
  );
  t.is(errorOf('').line, undefined);
});

test('a unit cannot have both [Service] and [Container]', (t) => {
  t.is(
    errorOf('[Service]\nExecStart=/bin/true\n\n[Container]\nImage=a\n').message,
    'a.unit:4: [Container] cannot be combined with [Service] (line 1); a unit runs either a process ([Service]) or a container ([Container]), so split it into two units',
  );
  t.is(
    errorOf('[Container]\nImage=a\n[Service]\nExecStart=/bin/true\n').message,
    'a.unit:3: [Service] cannot be combined with [Container] (line 1); a unit runs either a process ([Service]) or a container ([Container]), so split it into two units',
  );
});

test('unknown sections are named, with the allowed ones', (t) => {
  t.is(
    errorOf(`${SERVICE}[Socket]\nListenStream=80\n`).message,
    'a.unit:3: unknown section [Socket]; allowed sections: [Unit], [Service], [Container], [X-Fleet], [X-Health], [Install] ([Install] is ignored)',
  );
  t.is(
    errorOf(`${SERVICE}[X-fleet]\nGlobal=true\n`).message,
    'a.unit:3: unknown section [X-fleet]; allowed sections: [Unit], [Service], [Container], [X-Fleet], [X-Health], [Install] ([Install] is ignored); did you mean [X-Fleet]?',
  );
});

test('[Install] is accepted and ignored', (t) => {
  const spec = parseUnitSpec(`${SERVICE}[Install]\nWantedBy=multi-user.target\n`, 'a.unit');
  t.is(spec.run.kind, 'service');
});

test('repeated [Service] sections are merged', (t) => {
  const spec = parseUnitSpec('[Service]\nExecStart=/bin/a\n[Unit]\n[Service]\nRestart=always\n', 'a.unit');
  t.like(spec.run, { kind: 'service', service: { restart: 'always' } });
});

test('the spec carries name, parsed name, text, hash and file', (t) => {
  const text = '[Unit]\nDescription=Web %i\n\n[Service]\nExecStart=/bin/true\n';
  const spec = parseUnitSpec(text, 'web@2.unit');
  t.is(spec.name, asUnitName('web@2.unit'));
  t.deepEqual(spec.parsedName, parseUnitName('web@2.unit'));
  t.is(spec.text, text);
  t.is(spec.hash, unitHash(text));
  t.is(serializeUnitFile(spec.file), text);
  t.deepEqual(parseUnitSpec(text, parseUnitName('web@2.unit')), spec);
});

test('errors name the unit by default, or the given file', (t) => {
  const text = '[Service]\nExecStart=/bin/true\nRestart=maybe\n';
  t.regex(errorOf(text, 'web@3.unit').message, /^web@3\.unit:3: Restart=maybe: /);
  const withFile = errorOf(text, 'web@3.unit', 'units/web@.unit');
  t.regex(withFile.message, /^units\/web@\.unit:3: Restart=maybe: /);
  t.is(withFile.file, 'units/web@.unit');
  t.is(withFile.line, 3);
});

test('syntax errors come from the parser with file and line', (t) => {
  t.regex(errorOf('[Service]\nnot an assignment\n').message, /^a\.unit:2: /);
});

test('a bad unit name is an error', (t) => {
  t.throws(() => parseUnitSpec(SERVICE, 'web'), {
    instanceOf: UnitFileError,
    message: /invalid unit name "web"/,
  });
});

test('[Unit]: description, documentation and dependencies, with specifiers expanded', (t) => {
  const text = [
    '[Unit]',
    'Description=Announce web@%i.unit',
    'Documentation=https://example.com/a "man:fleetts(1)"',
    'BindsTo=web@%i.unit',
    'After=web@%i.unit network-online.target',
    'After=docker.service web@%i.unit',
    'Before=lb.unit',
    'Requires=docker.service',
    'Wants=network-online.target',
    'Wants=',
    'Wants=x.unit',
    'ConditionPathExists=/etc/fleetts',
    'StartLimitBurst=2',
    '[Service]',
    'ExecStart=/bin/true',
  ].join('\n');
  const { info } = parseUnitSpec(text, 'web-discovery@4.unit');
  t.deepEqual(info, {
    description: 'Announce web@%i.unit',
    documentation: ['https://example.com/a', 'man:fleetts(1)'],
    bindsTo: ['web@4.unit'],
    after: ['web@4.unit', 'network-online.target', 'docker.service'],
    before: ['lb.unit'],
    requires: ['docker.service'],
    wants: ['x.unit'],
    ignored: [{ key: 'ConditionPathExists', value: '/etc/fleetts', line: 12 }],
  });
});

test('[Unit] with nothing in it', (t) => {
  const { info } = parseUnitSpec(SERVICE, 'a.unit');
  t.deepEqual(info, {
    documentation: [],
    bindsTo: [],
    after: [],
    before: [],
    requires: [],
    wants: [],
    ignored: [],
  });
});

test('a host specifier in a dependency is an error', (t) => {
  t.regex(
    errorOf('[Unit]\nAfter=%H.unit\n' + SERVICE).message,
    /^a\.unit:2: After=%H\.unit: %H \(the host name\) is only known/,
  );
});

test('specForInstance reads a template for one instance', (t) => {
  const text =
    '[Unit]\nBindsTo=web@%i.unit\n[Service]\nExecStart=/bin/true\n[X-Fleet]\nMachineOf=web@%i.unit\n';
  const spec = specForInstance(text, 'side@9.unit');
  t.is(spec.name, asUnitName('side@9.unit'));
  t.deepEqual(spec.info.bindsTo, ['web@9.unit']);
  t.deepEqual(spec.placement.machineOf, ['web@9.unit']);
  t.throws(() => specForInstance(text, 'side@.unit'), {
    instanceOf: UnitFileError,
    message: '"side@.unit" is not an instance name; give one with an instance, as in side@1.unit',
  });
});

// Every unit file shipped in units/ and examples/ must be accepted, as a template and as an instance.
const root = fileURLToPath(new URL('../../', import.meta.url));
const unitFiles = (dir: string): string[] =>
  readdirSync(join(root, dir)).flatMap((entry) => {
    const path = join(dir, entry);
    if (statSync(join(root, path)).isDirectory()) return unitFiles(path);
    return /\.(unit|service)$/.test(entry) ? [path] : [];
  });
const shipped = [...unitFiles('units'), ...unitFiles('examples')];

test('the shipped unit files are there', (t) => {
  for (const expected of [
    'units/web@.unit',
    'units/web-discovery@.unit',
    'units/lb.unit',
    'units/lb-upstream.unit',
    'units/lb-discovery.unit',
    'examples/process/web@.unit',
    'examples/process/web-discovery@.unit',
    'examples/process/lb.unit',
  ]) {
    t.true(shipped.includes(expected), expected);
  }
});

for (const path of shipped) {
  test(`${path} passes parseUnitSpec`, (t) => {
    const text = readFileSync(join(root, path), 'utf8');
    const name = parseUnitName(basename(path));
    const spec = parseUnitSpec(text, name, { file: path });
    t.is(spec.text, text);
    if (name.kind === 'template') {
      const instance = specForInstance(text, `${name.prefix}@1.${name.type}`);
      t.is(instance.run.kind, spec.run.kind);
    }
  });
}

test('the web farm units say what the farm needs', (t) => {
  const read = (path: string): string => readFileSync(join(root, path), 'utf8');
  const web = specForInstance(read('units/web@.unit'), 'web@1.unit');
  t.deepEqual(web.placement.conflicts, ['web@*.unit']);
  t.like(web.run, {
    kind: 'container',
    container: { image: 'fleetts/apache:latest', network: { kind: 'host' } },
  });
  const sidekick = specForInstance(read('units/web-discovery@.unit'), 'web-discovery@1.unit');
  t.deepEqual(sidekick.placement.machineOf, ['web@1.unit']);
  t.deepEqual(sidekick.info.bindsTo, ['web@1.unit']);
  t.deepEqual(sidekick.info.after, ['web@1.unit']);
  const lb = parseUnitSpec(read('units/lb.unit'), 'lb.unit');
  t.like(lb.run, {
    kind: 'container',
    container: { image: 'fleetts/nginx:latest', network: { kind: 'host' } },
  });
  for (const path of ['units/lb-upstream.unit', 'units/lb-discovery.unit']) {
    const spec = parseUnitSpec(read(path), basename(path));
    t.deepEqual(spec.placement.machineOf, ['lb.unit'], path);
    t.deepEqual(spec.info.bindsTo, ['lb.unit'], path);
  }
  const processWeb = specForInstance(read('examples/process/web@.unit'), 'web@1.unit');
  t.like(processWeb.run, { kind: 'service', service: { type: 'simple' } });
  // One port per instance (808%i) instead of Conflicts=: on 3 hosts, a dead host's instance can
  // then move to a host that already runs another one.
  t.deepEqual(processWeb.placement.conflicts, []);
  // The process farm's balancer runs on every host, each with its sidekicks beside it (BindsTo=, on
  // the same host): the floating address moves between running balancers.
  t.true(parseUnitSpec(read('examples/process/lb.unit'), 'lb.unit').placement.global);
  for (const path of [
    'examples/process/lb-upstream.unit',
    'examples/process/lb-discovery.unit',
    'examples/process/lb-address.unit',
  ]) {
    const spec = parseUnitSpec(read(path), basename(path));
    t.true(spec.placement.global, path);
    t.deepEqual(spec.placement.machineOf, [], path);
    t.deepEqual(spec.info.bindsTo, ['lb.unit'], path);
  }
});
