// Micro-benchmark of the pure scheduler: `node --import=tsx bench/scheduler.bench.ts`.
// Prints placements per second for a fresh pass (nothing assigned yet) and the time of a settled
// pass (everything assigned: the engine's common case), on synthetic clusters.

import { asMachineId, asUnitHash, asUnitName, NO_PLACEMENT, type Machine } from '../src/cluster/types.js';
import type { ClusterView, SchedulableUnit } from '../src/cluster/view.js';
import { applyPlanToAssignments } from '../src/scheduler/plan.js';
import { schedule } from '../src/scheduler/schedule.js';
import { writeSection } from './lib.js';

function machines(n: number): Machine[] {
  return Array.from({ length: n }, (_, i) => ({
    id: asMachineId(`m${String(i).padStart(4, '0')}`),
    ip: `10.0.${i >> 8}.${i & 255}`,
    metadata: { zone: `z${i % 3}`, disk: i % 2 === 0 ? 'ssd' : 'hdd' },
    version: 'bench',
    startedAt: '2024-01-01T00:00:00Z',
  }));
}

/**
 * `services` services of `instances` instances each (`svcK@I.unit`): one service in two spreads its
 * instances (Conflicts=svcK@*.unit), one in five wants zone z0 or z1 and an ssd, one in ten has a
 * sidekick per instance (MachineOf), and a few conflict with another service by exact name.
 */
function units(services: number, instances: number): SchedulableUnit[] {
  const out: SchedulableUnit[] = [];
  for (let k = 0; k < services; k++) {
    for (let i = 0; i < instances; i++) {
      const name = `svc${k}@${i}.unit`;
      out.push({
        name: asUnitName(name),
        hash: asUnitHash(`h${k}`),
        target: 'launched',
        placement: {
          ...NO_PLACEMENT,
          conflicts: [
            ...(k % 2 === 0 ? [`svc${k}@*.unit`] : []),
            ...(k % 7 === 3 ? [`svc${k + 1}@${i}.unit`] : []),
          ],
          machineMetadata: k % 5 === 1 ? { zone: ['z0', 'z1'], disk: ['ssd'] } : {},
        },
      });
      if (k % 10 === 0) {
        out.push({
          name: asUnitName(`side${k}@${i}.unit`),
          hash: asUnitHash(`s${k}`),
          target: 'launched',
          placement: { ...NO_PLACEMENT, machineOf: [name] },
        });
      }
    }
  }
  return out;
}

const rows: string[] = [];

function bench(title: string, view: ClusterView): void {
  schedule(view); // warm-up (JIT)
  const t0 = performance.now();
  const plan = schedule(view);
  const fresh = performance.now() - t0;
  const settled: ClusterView = { ...view, assignments: applyPlanToAssignments(view.assignments, plan) };
  schedule(settled);
  const t1 = performance.now();
  const again = schedule(settled);
  const steady = performance.now() - t1;
  const placed = plan.summary.assign;
  rows.push(
    `| ${title} | ${placed.toLocaleString('en-US')} / ${plan.summary.unschedulable} | ${fresh.toFixed(0)} ms | ` +
      `${Math.round((placed / fresh) * 1000).toLocaleString('en-US')} | ${steady.toFixed(0)} ms |`,
  );
  console.log(
    `${title}: ${placed} placed, ${plan.summary.unschedulable} unschedulable in ${fresh.toFixed(0)} ms ` +
      `→ ${Math.round((placed / fresh) * 1000).toLocaleString('en-US')} placements/s; ` +
      `settled pass ${steady.toFixed(0)} ms (${again.summary.unchanged} kept, ${again.summary.assign} assigned)`,
  );
}

bench('10,000 units (+sidekicks) over 100 machines', {
  machines: machines(100),
  units: units(100, 100),
  assignments: [],
});
bench('1,000 units (+sidekicks) over 1,000 machines', {
  machines: machines(1000),
  units: units(50, 20),
  assignments: [],
});

writeSection(
  'scheduler',
  [
    '### Pure scheduler (issue 3)',
    '',
    'One `schedule(view)` call on synthetic clusters (half the services spread with Conflicts, a fifth',
    'constrained by metadata, a tenth with MachineOf sidekicks), after a warm-up pass. A settled pass is',
    "the engine's common case: everything already placed, nothing to change.",
    '',
    '| cluster | placed / unschedulable | first pass | placements/s | settled pass |',
    '|---|---|---|---|---|',
    ...rows,
  ].join('\n'),
);
