#!/usr/bin/env node
// Launcher: the compiled code lives in dist/ (built by `npm ci` or `npm run build`).
// A closed pipe (`fleetts list-units | head`) ends the command quietly, as it does for Unix tools.
import { statSync } from 'node:fs';

process.stdout.on('error', (err) => process.exit(err.code === 'EPIPE' ? 0 : 1));
const compiled = new URL('../dist/cli/main.js', import.meta.url);
// The same code bundled into one module (scripts/bundle-cli.mjs) starts in about half the time;
// it is used only when it was built after the compiled code it bundles (a `tsc` run alone leaves it
// stale).
const bundled = new URL('../dist/cli-bundle/main.js', import.meta.url);
const mtime = (url) => statSync(url, { throwIfNoEntry: false })?.mtimeMs;
const bundledAt = mtime(bundled);
const entry = bundledAt !== undefined && bundledAt >= (mtime(compiled) ?? 0) ? bundled : compiled;
let main;
try {
  main = await import(entry.href);
} catch (err) {
  if (err.code !== 'ERR_MODULE_NOT_FOUND' || !String(err.message).includes('dist/cli/main.js')) throw err;
  process.stderr.write(
    'fleetts: not built yet: run `npm ci` (or `npm run build`) in the fleetts folder first\n',
  );
  process.exit(1);
}
process.exitCode = await main.run(process.argv.slice(2));
