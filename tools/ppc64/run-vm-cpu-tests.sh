#!/usr/bin/env bash
# The CPU-model matrix (guest-cpu.cjs): cpuinfo.img, `criu cpuinfo`, --cpu-cap and the restore
# check across POWER8, POWER9 and POWER10 guests, and a node 18 program checkpointed in the VM.
# Four boots, one at a time, in this order (the images each boot leaves for the next live in
# tools/ppc64/build/cpu-matrix/, in the shared repo: the guest's /tmp is gone at power-off):
#
#   POWER8-first  cpuinfo; dumps `counter` (POWER8 images)
#   POWER9        cpuinfo; restores the POWER8 images (they run on and PASS); dumps `counter`
#                 (POWER9 images); node 18 dump + restore
#   POWER8-again  the POWER9 images are refused, naming the HWCAP2 bits POWER8 lacks
#   POWER10       cpuinfo; restores the POWER9 images; node 18 dump + restore
#
#   tools/ppc64/run-vm-cpu-tests.sh [--no-build] [--only PHASE]
#
# Prints each boot's guest output under a "=== boot <CPU> <phase>" line; exits 0 when every boot's
# tests passed, 1 otherwise. Builds as run-vm-tests.sh does (--build-only) unless --no-build.
{
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
shared="${CRIU_TS_SHARED:-$root/../shared}"
vm="$shared/ppc64-vm"
persist="$here/build/cpu-matrix"
log() { printf '[ppc64-vm-cpu-tests] %s\n' "$*" >&2; }

build=1
only=''
while [ $# -gt 0 ]; do
  case "$1" in
    --no-build) build=0 ;;
    --only) only="${2:?--only needs a phase}"; shift ;;
    *) echo "usage: $0 [--no-build] [--only POWER8-first|POWER9|POWER8-again|POWER10]" >&2; exit 2 ;;
  esac
  shift
done

# One runner at a time (see run-vm-tests.sh).
exec 9>"${PPC64_VM_LOCK:-/tmp/criu-ts-ppc64-vm.lock}"
flock 9
export CRIU_TS_VM_LOCKED=1

if [ "$build" = 1 ]; then
  bash "$here/run-vm-tests.sh" --build-only || exit 1
fi
testprogs="$root/tools/testprogs/build/$("${PPC64_CC:-powerpc64le-linux-gnu-gcc}" -dumpmachine)"
[ -f "$root/packages/cli/dist/index.cjs" ] && [ -x "$testprogs/counter" ] || { log "not built: drop --no-build"; exit 1; }

# A full run starts from nothing; --only PHASE reuses what the earlier phases left.
[ -z "$only" ] && rm -rf "$persist"
mkdir -p "$persist"

status=0
for boot in POWER8:POWER8-first POWER9:POWER9 POWER8:POWER8-again POWER10:POWER10; do
  cpu="${boot%%:*}" phase="${boot#*:}"
  [ -n "$only" ] && [ "$only" != "$phase" ] && continue
  echo "=== boot $cpu $phase"
  "$vm/run.sh" -c "$cpu" -t "${PPC64_VM_TIMEOUT:-600}" "$root" node "$here/guest-cpu.cjs" "$phase" "$persist" "$testprogs"
  rc=$?
  echo "=== end $cpu $phase: exit $rc"
  [ "$rc" = 0 ] || status=1
done
exit "$status"
}
