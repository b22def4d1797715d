// The Node/V8 flags fleetd runs with: bin/fleetd.js names them in its `#!/usr/bin/env -S node …`
// line (real hosts run it through that line), and `fleetts dev` puts them on each host's command
// line (it runs `node bin/fleetd.js`). test/daemon/node-flags.test.ts keeps the two the same.
//
// fleetd is a small, mostly idle daemon: it gains nothing from V8's optimizing compilers and pays
// for them in memory. Measured on a 3-host dev cluster, 100 `sleep` units (33 per host), RSS of a
// fleetd that is not the engine leader after 2 minutes idle (docs/memory.md): 91.5 MB without
// flags; 85.0 MB with --optimize-for-size (smaller young generation, heap grown more slowly);
// 74.9 MB adding --no-opt (no TurboFan code, half the code space); 71.8 MB adding --no-sparkplug
// (baseline code). --v8-pool-size=1: one V8 worker thread instead of one per core (concurrent
// marking and compilation), a few MB of thread arenas less. The interpreter alone is fast enough
// here: a pure scheduling pass of 300 units on 30 machines took 152–165 ms of CPU with these
// flags against 249–257 ms without (nothing is hot long enough to repay its compilation); 3,000
// units, 1.9 s against 1.2–1.4 s.
//
// Not --jitless (nor --lite-mode, which implies it): it takes WebAssembly away, and with it
// Node's fetch (undici's HTTP parser), which a later change could call without noticing. It
// would save about 3 MB more.
export const FLEETD_NODE_FLAGS: readonly string[] = [
  '--optimize-for-size',
  '--no-opt',
  '--no-sparkplug',
  '--v8-pool-size=1',
];
