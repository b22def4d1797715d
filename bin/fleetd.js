#!/usr/bin/env -S node --optimize-for-size --no-opt --no-sparkplug --v8-pool-size=1
// The flags: src/daemon/node-flags.ts (fleetd is a mostly idle daemon; they save about 20 MB of RSS).
// Launcher: the compiled code lives in dist/ (built by `npm ci` or `npm run build`).
// A closed pipe (`fleetts list-units | head`) ends the command quietly, as it does for Unix tools.
process.stdout.on('error', (err) => process.exit(err.code === 'EPIPE' ? 0 : 1));
const entry = new URL('../dist/daemon/main.js', import.meta.url);
let main;
try {
  main = await import(entry.href);
} catch (err) {
  if (err.code !== 'ERR_MODULE_NOT_FOUND' || !String(err.message).includes('dist/daemon/main.js')) throw err;
  process.stderr.write(
    'fleetd: not built yet: run `npm ci` (or `npm run build`) in the fleetts folder first\n',
  );
  process.exit(1);
}
// A daemon exits when run() returns (stopped, or failed to start), whatever handles remain open.
process.exit(await main.run(process.argv.slice(2)));
