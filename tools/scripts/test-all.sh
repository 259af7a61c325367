#!/usr/bin/env bash
# The project's test command (README; .ci/run runs it): installs what the tests need, builds
# every package, type-checks, runs every test suite and prints one closing summary line.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
export TURBO_TELEMETRY_DISABLED=1
CRIU_ORACLE="$(bash tools/scripts/setup.sh | tail -n1)"
export CRIU_ORACLE CRIT_ORACLE="$(dirname "$CRIU_ORACLE")/crit"

pnpm exec turbo run build typecheck --output-logs=errors-only

results="$root/.test-results"
rm -rf "$results"; mkdir -p "$results"
export CRIU_TS_TEST_RESULTS="$results"
status=0
# Suites run one package at a time: they ptrace and dump real processes, and two cores
# are better spent inside one suite than on contention between them.
pnpm exec turbo run test --concurrency=1 --continue --output-logs=full || status=$?
node tools/scripts/test-summary.cjs "$results" || status=1
exit $status
