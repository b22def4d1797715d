#!/usr/bin/env bash
# `npm run demo`: the web farm on a local 3-host cluster, with two failovers measured (docs/demo.md).
# Installs what is missing (Debian packages, npm packages), builds, and runs dist/demo/main.js as
# root. Arguments go to the demo: npm run demo -- --keep
# A step that fails ends with one line saying what failed and what to do (its output above it).
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
  echo "fleetts demo: $*" >&2
  exit 1
}

if [ "$(id -u)" -ne 0 ]; then
  fail "needs root (network namespaces, a bridge, veth links, mounts): run sudo npm run demo"
fi
bash scripts/ensure-deps.sh etcd system web mysql ftp ||
  fail "the Debian packages the demo needs could not be installed (the failed step is above; the whole log is ${FLEETTS_INSTALL_LOG:-/var/log/fleetts-install.log}); fix apt (sources, network, a held or broken package) and run the demo again"
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "fleetts demo: installing npm packages (npm ci)" >&2
  npm ci --no-audit --no-fund --loglevel=error >&2 ||
    fail "npm ci failed (above): check the network or the npm registry settings, and run the demo again"
fi
if [ ! -f dist/demo/main.js ] || [ -n "$(find src -newer dist/demo/main.js -name '*.ts' -print -quit)" ]; then
  echo "fleetts demo: building (tsc)" >&2
  npm run --silent build >&2 ||
    fail "the build failed (the compiler's errors are above): the checkout does not compile; fix it or check out a release"
fi
exec node dist/demo/main.js "$@"
