#!/usr/bin/env bash
# `pnpm bench`: builds the packages, then benchmarks criu-ts (library API and CLI) against the
# oracle CRIU on 64 MiB, 1 GiB and 4 GiB of touched memory and writes docs/benchmarks.md and
# docs/benchmarks.svg (see tools/bench/bench.mjs). Needs root and tools/scripts/setup.sh done.
#   BENCH_SIZES=64,1024   sizes in MiB      BENCH_REPS=2   repetitions
#   BENCH_DIR=...         images directory  BENCH_NO_DOC=1 leave docs/ alone
#   BENCH_NO_VM=1         skip the ppc64le VM half (tools/bench/vm-bench.sh; BENCH_VM_SIZES, BENCH_VM_REPS)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
if [ "$(id -u)" != 0 ]; then
  echo "bench: run as root (ptrace, CRIU)" >&2
  exit 1
fi
echo "[bench] building" >&2
pnpm exec turbo run build --output-logs=errors-only >&2
# The ppc64le VM half first: bench.mjs puts its results-ppc64.json into docs/benchmarks.md.
if [ -z "${BENCH_NO_VM:-}" ]; then
  bash tools/bench/vm-bench.sh >&2
fi
exec node tools/bench/bench.mjs "$@"
