#!/usr/bin/env bash
# `npm run bench [-- NAME…]`: installs what the benchmarks need, builds, runs them, writes BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then npm ci --no-audit --no-fund --loglevel=error; fi
bash scripts/ensure-deps.sh
npm run --silent build
node --import=tsx bench/run.ts "$@"
