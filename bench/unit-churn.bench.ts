// Destroy and replace cost per unit with 20 and with 5,000 units in the registry (issue 14: "deletes
// and replaces cost the same at 5,000 units as at 20"): `npm run bench -- unit-churn`. A real etcd
// and the real registry; each figure is the median over 20 single deletes (or replaces) done one
// after the other, then the time until the unit-file sweep has removed every unreferenced file.
import { writeSection, fmt, median, until } from './lib.js';
import { asUnitName } from '../src/cluster/types.js';
import { systemClock } from '../src/lib/clock.js';
import { createEtcdRegistry } from '../src/registry/etcd-registry.js';
import type { Registry, UnitRecord } from '../src/registry/registry.js';
import { unitHash } from '../src/unit/hash.js';
import { startEtcd } from '../test/helpers/etcd.js';

const OPS = 20;
const etcd = await startEtcd();
const rows: string[] = [];
try {
  for (const size of [20, 5_000]) {
    const registry = createEtcdRegistry({ endpoints: [etcd.endpoint], prefix: `/churn-${size}/` });
    try {
      // Every unit its own file, so that each delete leaves one file to sweep.
      const units = Array.from({ length: size + 2 * OPS }, (_, i) => {
        const text = `[Service]\nExecStart=/bin/sleep ${1000 + i}\n`;
        return {
          unit: { name: asUnitName(`u@${i}.unit`), hash: unitHash(text), target: 'launched' as const },
          text,
        };
      });
      const records = await registry.createUnits(units);
      const deletes = await timeEach(records.slice(0, OPS), (r) => registry.deleteUnit(r.name));
      const replaces = await timeEach(records.slice(OPS, 2 * OPS), (r) => {
        const text = `[Service]\nExecStart=/bin/sleep ${r.name.length}00\n# v2 ${r.name}\n`;
        return registry.replaceUnit(r, { name: r.name, hash: unitHash(text), target: r.target }, text);
      });
      const sweepStart = systemClock.monotonic();
      await until('the sweep', () => sweptAll(registry, records, OPS), 60_000, 100);
      const sweepMs = systemClock.monotonic() - sweepStart;
      rows.push(
        `| ${fmt(size)} | ${fmt(median(deletes), 1)} ms | ${fmt(median(replaces), 1)} ms | ${fmt(sweepMs)} ms (one sweep, 2 s after the first operation) |`,
      );
    } finally {
      await registry.close();
    }
  }
  writeSection(
    'unit-churn',
    [
      '### Destroy and replace with 20 and with 5,000 units (issue 14)',
      '',
      'Real etcd, the real registry. Median of 20 single operations one after the other; a delete or replace',
      'no longer sweeps unit files itself (a sweep reads every unit): one sweep follows a burst.',
      '',
      '| units in the registry | one delete | one replace (one transaction) | unreferenced files gone, from the last operation |',
      '|---|---|---|---|',
      ...rows,
    ].join('\n'),
  );
  process.stdout.write(`${rows.join('\n')}\n`);
} finally {
  await etcd.stop();
}

async function timeEach<T>(
  items: readonly UnitRecord[],
  op: (r: UnitRecord) => Promise<T>,
): Promise<number[]> {
  const times: number[] = [];
  for (const r of items) {
    const start = systemClock.monotonic();
    await op(r);
    times.push(systemClock.monotonic() - start);
  }
  return times;
}

/** True once the files of the deleted and the replaced units' old versions are gone. */
async function sweptAll(
  registry: Registry,
  records: readonly UnitRecord[],
  ops: number,
): Promise<true | undefined> {
  for (const r of records.slice(0, 2 * ops))
    if ((await registry.getUnitFile(r.hash)) !== undefined) return undefined;
  return true;
}
