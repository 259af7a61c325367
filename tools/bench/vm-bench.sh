#!/usr/bin/env bash
# The ppc64le half of `pnpm bench`: boots the ppc64le VM once and runs tools/bench/vm/guest-bench.cjs
# there (criu-ts library calls vs the guest's Debian criu on benchmem). Writes
# tools/bench/results-ppc64.json, which bench.mjs turns into a section of docs/benchmarks.md.
#   BENCH_VM_SIZES=64,256   sizes in MiB     BENCH_VM_REPS=3   repetitions
# Needs the built packages (bench.sh builds them) and the VM image (run-vm-tests.sh builds it).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
shared="${CRIU_TS_SHARED:-$root/../shared}"
cc="${PPC64_CC:-powerpc64le-linux-gnu-gcc}"
out="$here/build/ppc64le"
log() { printf '[vm-bench] %s\n' "$*" >&2; }

command -v "$cc" >/dev/null || { log "$cc not found (Debian package gcc-powerpc64le-linux-gnu)"; exit 1; }
mkdir -p "$out"
"$cc" -O2 -Wall -Wextra -Werror -o "$out/benchmem" "$here/benchmem.c"
# The ppc64 parasite and restore helper (turbo does not track their build outputs).
bash "$root/arch/ppc64/parasite/build.sh" >&2
# The VM image: run-vm-tests.sh builds it when missing (and nothing else with --build-only --no-build
# beyond the fixtures).
CRIU_TS_SHARED="$shared" bash "$root/tools/ppc64/run-vm-tests.sh" --no-build --build-only >&2

# One VM user at a time on this machine (the lock of run-vm-tests.sh).
exec 9>"${PPC64_VM_LOCK:-/tmp/criu-ts-ppc64-vm.lock}"
flock 9
result="$here/results-ppc64.json"
rm -f "$result.tmp"
log "booting the VM: guest-bench.cjs sizes ${BENCH_VM_SIZES:-64,256} MiB x ${BENCH_VM_REPS:-3}"
"$shared/ppc64-vm/run.sh" -m "${BENCH_VM_MEM:-3G}" -t "${BENCH_VM_TIMEOUT:-2400}" "$root" \
  node "$here/vm/guest-bench.cjs" "$out/benchmem" "$result.tmp" "${BENCH_VM_SIZES:-64,256}" "${BENCH_VM_REPS:-3}"
mv "$result.tmp" "$result"
touch "$result" # the guest clock is not the host's: the report dates the run by this file
log "wrote $result"
