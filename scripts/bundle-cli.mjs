#!/usr/bin/env node
// Bundles the compiled CLI (dist/cli/main.js and what it imports) into dist/cli-bundle/, after tsc.
// A command used to load about 250 modules (our ~150 ES modules, zod's 95 files, commander, pino),
// and resolving, reading and compiling them one by one was most of its start (docs/memory.md#cli).
// bin/fleetts.js loads the bundle when it is at least as new as dist/cli/main.js, else dist/cli.
//
// The bundle sits two folders deep like every dist/<part>/ file, so the `new URL('../../…',
// import.meta.url)` of the bundled modules (package.json, ui/, the repository root) still point at
// the package's root. Packages that find their own files through __dirname (etcd3 loads its
// rpc.proto that way) or that only some commands load stay outside, imported from node_modules.
import { build } from 'esbuild';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../', import.meta.url));
const outdir = `${root}dist/cli-bundle`;
rmSync(outdir, { recursive: true, force: true });
await build({
  entryPoints: [`${root}dist/cli/main.js`],
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  logLevel: 'warning',
  external: [
    'etcd3',
    '@grpc/*',
    'protobufjs',
    'dockerode',
    'fastify',
    '@fastify/*',
    'prom-client',
    'cockatiel',
  ],
  // zod's namespace export (`z`) carries every locale's messages (about 360 KB of its 755); the CLI
  // speaks English, which zod's schemas import on their own (classic/schemas.js). Its `locales`
  // namespace is left with English alone: about a third less code to compile at every command.
  plugins: [
    {
      name: 'zod-english-only',
      setup(b) {
        b.onResolve({ filter: /^\.\.\/locales\/index\.js$/ }, (args) =>
          /[\\/]node_modules[\\/]zod[\\/]/.test(args.importer)
            ? { path: 'zod-locales-en', namespace: 'zod-english-only' }
            : undefined,
        );
        b.onLoad({ filter: /.*/, namespace: 'zod-english-only' }, () => ({
          contents: "export { default as en } from 'zod/v4/locales/en.js';",
          resolveDir: root,
        }));
      },
    },
  ],
  // Bundled CommonJS code (commander) may call require for Node's own modules.
  banner: {
    js: "import { createRequire as __fleettsRequire } from 'node:module'; const require = __fleettsRequire(import.meta.url);",
  },
});
