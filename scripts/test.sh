#!/usr/bin/env bash
# The one test command (README Quick start, .ci/run): installs what the tests need, then runs the
# typecheck, lint, format check, build and every ava test, and ends with one line
# `N passed, N failed, N skipped` (the four checks count as one test each). Skips count as failures.
set -uo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s ==\n' "$*"; }

# Node dependencies: install from the lock file when missing or out of date.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "npm ci"
  npm ci --no-audit --no-fund || { echo "0 passed, 1 failed"; exit 1; }
fi

# Debian packages the real-component tests need (etcd, …): idempotent, skipped when present.
log "system packages"
bash scripts/ensure-deps.sh || { echo "0 passed, 1 failed"; exit 1; }

passed=0
failed=0
failed_names=()
check() {
  local name=$1
  shift
  log "$name"
  if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); failed_names+=("$name"); fi
}

check "typecheck" npx tsc -p tsconfig.json --noEmit
check "lint" npx eslint --max-warnings 0 .
check "format" npx prettier --check --log-level warn .
check "build" npx tsc -p tsconfig.build.json

log "ava"
tap=$(mktemp)
npx ava --tap "$@" 2>&1 | tee "$tap"
ava_pass=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$tap" | tail -1)
ava_fail=$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$tap" | tail -1)
ava_skip=$(sed -n 's/^# skip \([0-9]*\)$/\1/p' "$tap" | tail -1)
ava_todo=$(sed -n 's/^# todo \([0-9]*\)$/\1/p' "$tap" | tail -1)
rm -f "$tap"
ava_pass=${ava_pass:-0}
ava_fail=${ava_fail:-0}
skipped=$(( ${ava_skip:-0} + ${ava_todo:-0} ))
if [ "$ava_pass" -eq 0 ] && [ "$ava_fail" -eq 0 ]; then
  echo "ava ran no test (or its output could not be read): counted as a failure"
  ava_fail=1
fi
passed=$((passed + ava_pass))
failed=$((failed + ava_fail))

[ ${#failed_names[@]} -eq 0 ] || echo "failed checks: ${failed_names[*]}"
[ "$skipped" -eq 0 ] || echo "skipped tests count as failures of the setup"
echo "${passed} passed, ${failed} failed, ${skipped} skipped"
[ "$failed" -eq 0 ] && [ "$skipped" -eq 0 ]
