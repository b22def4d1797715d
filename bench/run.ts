// `npm run bench`: runs every bench/*.bench.ts (or those named on the command line) one after the
// other in its own process, then assembles BENCHMARKS.md from the sections in bench/results/.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { BENCH_DIR, machineFacts, ROOT } from './lib.js';

const only = process.argv.slice(2);
const benches = readdirSync(BENCH_DIR)
  .filter((f) => f.endsWith('.bench.ts'))
  .filter((f) => only.length === 0 || only.some((o) => f.startsWith(o)))
  .sort();

let failed = 0;
for (const file of benches) {
  process.stderr.write(`\n== ${file} ==\n`);
  const r = spawnSync(process.execPath, ['--import=tsx', `${BENCH_DIR}${file}`], {
    stdio: 'inherit',
    cwd: ROOT,
  });
  if (r.status !== 0) {
    failed++;
    process.stderr.write(`${file} failed (exit ${r.status ?? r.signal})\n`);
  }
}

const sections = readdirSync(`${BENCH_DIR}results`)
  .filter((f) => f.endsWith('.md'))
  .sort()
  .map((f) => readFileSync(`${BENCH_DIR}results/${f}`, 'utf8').trim());
writeFileSync(
  `${ROOT}BENCHMARKS.md`,
  [
    '# Benchmarks',
    '',
    'Measured by `npm run bench` (all) or `npm run bench -- NAME` (e.g. `control-plane`), on this',
    `project's development machine: ${machineFacts()}. The machine is shared and noisy: figures vary`,
    'by 10–30 % between runs; each section says when it was measured. Targets come from the issues.',
    '',
    ...sections.flatMap((s) => [s, '']),
  ].join('\n'),
);
process.stderr.write(`\nBENCHMARKS.md written (${sections.length} sections)\n`);
process.exitCode = failed === 0 ? 0 : 1;
