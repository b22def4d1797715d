#!/usr/bin/env bash
# The one test command (README Quick start, .ci/run): installs what the tests need, then runs the
# typecheck, lint, format check, build and every ava test, and ends with one line
# `N passed, N failed, N skipped` (the four checks count as one test each). Skips count as failures.
set -uo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s ==\n' "$*"; }

# Everything any test needs is installed and started here, before the first test runs, so that no
# test depends on what another one happened to install: npm packages, Debian packages, a running
# dockerd and the locally built images (there is no registry to pull them from).
setup_failed() { echo "test setup failed: $*"; echo "0 passed, 1 failed"; exit 1; }
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "npm ci"
  npm ci --no-audit --no-fund --loglevel=error || setup_failed "npm ci"
fi
log "system packages, dockerd, images"
bash scripts/ensure-deps.sh || setup_failed "Debian packages (scripts/ensure-deps.sh)"
bash scripts/ensure-docker.sh || setup_failed "dockerd (scripts/ensure-docker.sh)"
bash scripts/build-images.sh || setup_failed "images (scripts/build-images.sh)"

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
check "build" npm run --silent build

log "ava"
# ava's default reporter, counted from its per-test lines. (Its TAP reporter dies with a js-yaml
# YAMLException when a failing test's error holds a value YAML cannot dump, and then hides which
# test failed.) Tests that never finished (a failed hook, a crashed or timed-out worker) count as failures.
# A run that hangs (a test waiting on something that never comes, past ava's own timeout) is
# interrupted after FLEETTS_AVA_LIMIT_S (45 min; the whole suite takes about 18): ava then names
# the tests still pending, and they count as failures, instead of CI's own limit ending the run
# without a summary line.
out=$(mktemp)
limit=${FLEETTS_AVA_LIMIT_S:-2700}
NO_COLOR=1 timeout -s INT -k 60s "$limit" npx ava "$@" 2>&1 | tee "$out"
ava_rc=${PIPESTATUS[0]}
if [ "$ava_rc" -eq 124 ] || [ "$ava_rc" -eq 137 ]; then
  echo "ava did not finish within ${limit} s and was interrupted: its pending tests count as failures"
fi
read -r ava_pass ava_fail skipped < <(sed 's/\x1b\[[0-9;]*m//g' "$out" | awk '
  /^  ✔ / { pass++ }
  /^  ✘ \[(fail|unexpected pass)\]:/ { fail++ }
  /^  - \[(skip|todo)\] / { skip++ }
  /^  ✘ [0-9]+ tests? remaining in / { fail += $2 }
  /^  [0-9]+ (uncaught exceptions?|unhandled rejections?)$/ { fail += $1 }
  /^  [0-9]+ tests? remained pending after a timeout$/ { fail += $1; pending = 1 }
  /Timed out while running tests/ { timedout = 1 }
  /Exiting due to SIGINT/ { interrupted = 1 }
  /^  [0-9]+ tests? were pending in / { pending_in += $1 }
  /exited (due to|with a non-zero exit code)|Internal error/ { fail++ }
  END { if (timedout && !pending) fail++; if (interrupted) fail += pending_in > 0 ? pending_in : 1
        print pass + 0, fail + 0, skip + 0 }')
rm -f "$out"
if [ "$ava_rc" -ne 0 ] && [ "$ava_fail" -eq 0 ]; then
  echo "ava exited with status $ava_rc without naming a failed test: counted as a failure"
  ava_fail=1
fi
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
