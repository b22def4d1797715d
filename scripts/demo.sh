#!/usr/bin/env bash
# `npm run demo`: the web farm on a local 3-host cluster, with two failovers measured (docs/demo.md).
# Installs what is missing (Debian packages, npm packages), builds, and runs dist/demo/main.js as
# root. Arguments go to the demo: npm run demo -- --keep
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "fleetts demo: needs root (network namespaces, a bridge, mounts): sudo npm run demo" >&2
  exit 1
fi
bash scripts/ensure-deps.sh etcd system web mysql ftp
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "fleetts demo: installing npm packages (npm ci)" >&2
  npm ci --no-audit --no-fund --loglevel=error >&2
fi
if [ ! -f dist/demo/main.js ] || [ -n "$(find src -newer dist/demo/main.js -name '*.ts' -print -quit)" ]; then
  echo "fleetts demo: building (tsc)" >&2
  npx tsc -p tsconfig.build.json >&2
fi
exec node dist/demo/main.js "$@"
