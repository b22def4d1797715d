// The engine's placement cache: instances of one template share one parse unless the text or the
// name can make their placements differ (issue 3: a 10,000-unit burst within the memory budget).
import test from 'ava';
import { asUnitHash, asUnitName, type TargetState } from '../../src/cluster/types.js';
import type { SchedulableUnit } from '../../src/cluster/view.js';
import { placementOf, PlacementCache } from '../../src/engine/cluster-view.js';
import { unitHash } from '../../src/unit/hash.js';

const unit = (name: string, text: string, target: TargetState = 'launched') => ({
  name: asUnitName(name),
  hash: unitHash(text),
  target,
});
/** The reason a unit is unschedulable, or 'schedulable'. */
const why = (r: SchedulableUnit | string): string => (typeof r === 'string' ? r : 'schedulable');
const TEXT =
  '[Service]\nExecStart=/bin/true\n\n[X-Fleet]\nMachineMetadata=role=worker\nConflicts=web@*.unit\n';

test('instances of a text without specifiers share one placement, equal to their own parse', (t) => {
  const cache = new PlacementCache();
  const a = cache.schedulable(unit('web@1.unit', TEXT), TEXT);
  const b = cache.schedulable(unit('web@2.unit', TEXT), undefined);
  if (typeof a === 'string' || typeof b === 'string') return t.fail(`unschedulable: ${why(a)} ${why(b)}`);
  t.is(a.placement, b.placement, 'one Placement object for both');
  const own = placementOf(asUnitName('web@2.unit'), TEXT);
  t.deepEqual(own.ok ? own.placement : own.reason, b.placement);
  t.is(cache.schedulable(unit('web@1.unit', TEXT), undefined), a, 'reused across passes');
  const loaded = cache.schedulable(unit('web@1.unit', TEXT, 'loaded'), undefined);
  t.not(loaded, a, 'a new target gives a new view of the unit');
  t.is(typeof loaded === 'string' ? loaded : loaded.target, 'loaded');
});

test('a name that breaks a rule about itself is parsed on its own and reported', (t) => {
  const text = '[Service]\nExecStart=/bin/true\n\n[X-Fleet]\nMachineOf=db@1.unit\nReplaces=old@*.unit\n';
  const cache = new PlacementCache();
  const ok = cache.schedulable(unit('web@1.unit', text), text);
  t.not(typeof ok, 'string');
  const self = cache.schedulable(unit('db@1.unit', text), undefined);
  t.regex(why(self), /names the unit itself \(db@1\.unit\)/);
  const replaced = cache.schedulable(unit('old@3.unit', text), undefined);
  t.regex(why(replaced), /matches the unit itself \(old@3\.unit\)/);
});

test('a text with specifiers is parsed per name', (t) => {
  const text = '[Service]\nExecStart=/bin/true\n\n[X-Fleet]\nMachineOf=db@%i.unit\n';
  const cache = new PlacementCache();
  const a = cache.schedulable(unit('web@1.unit', text), text);
  const b = cache.schedulable(unit('web@2.unit', text), undefined);
  if (typeof a === 'string' || typeof b === 'string') return t.fail(`unschedulable: ${why(a)} ${why(b)}`);
  t.deepEqual([a.placement.machineOf, b.placement.machineOf], [['db@1.unit'], ['db@2.unit']]);
});

test('a missing text is reported and not cached; an invalid one is reported per unit', (t) => {
  const cache = new PlacementCache();
  const missing = unit('a.unit', TEXT);
  t.regex(why(cache.schedulable(missing, undefined)), /missing from the registry/);
  t.not(typeof cache.schedulable(missing, TEXT), 'string', 'the text arriving later is used');
  const bad = '[Service]\nExecStart=/bin/true\n\n[X-Fleet]\nNoSuchKey=1\n';
  t.regex(why(cache.schedulable(unit('b.unit', bad), bad)), /its unit file is invalid: .*NoSuchKey/);
  t.regex(why(cache.schedulable(unit('c.unit', bad), undefined)), /c\.unit.*NoSuchKey/);
});

test('prune keeps only live (name, hash) pairs and the texts they use', (t) => {
  const cache = new PlacementCache();
  const a = unit('a.unit', TEXT);
  cache.schedulable(a, TEXT);
  cache.schedulable(unit('b.unit', TEXT), undefined);
  t.is(cache.size, 2);
  cache.prune(new Map([[a.name, a]]));
  t.is(cache.size, 1);
  t.deepEqual([...cache.knownHashes()], [a.hash]);
  cache.prune(new Map([[a.name, { hash: asUnitHash('ff00ff00') }]]));
  t.is(cache.size, 0);
  t.deepEqual([...cache.knownHashes()], []);
});
