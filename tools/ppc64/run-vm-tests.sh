#!/usr/bin/env bash
# Runs the ppc64le suite (guest-suite.cjs: injection, parasite, dump + restore of real programs)
# in the ppc64le VM, booted once.
#
#   tools/ppc64/run-vm-tests.sh [--no-build | --build-only] [--only REGEX] [--kernel bookworm|trixie|trixie-4k]
#
# --kernel picks the guest kernel; the userland is always the Debian 12 rootfs. bookworm (default):
# Debian 12's 6.1 (the image of ../shared/ppc64-vm, cache PPC64_VM_CACHE). trixie: Debian 13's 6.12,
# 64 KiB pages like bookworm (tools/ppc64/build-alt-kernel.sh, cache PPC64_VM_ALT_CACHE, default
# /var/tmp/ppc64-vm-trixie); trixie-4k: Debian 13's default powerpc64le flavour, 4 KiB pages
# (/var/tmp/ppc64-vm-trixie-4k). The image of the chosen kernel is built when missing (first time:
# about 1-2 min and one ~75 MB kernel .deb), before the VM lock is taken.
#
# On the host: builds @criu/core, @criu/cli and @criu/arch-ppc64 (turbo: their dist/ and the cross-built
# parasite, restore helper) unless --no-build, and cross-builds the C fixtures into tools/ppc64/build/
# and the test programs into tools/testprogs/build/<triple>/. Then boots
# the VM (../shared/ppc64-vm/run.sh) with the repo shared in at the same path, where node 18 runs
# the suite on the built dist/*.cjs. Exits with the suite's status (run.sh: 124 timeout, 125 VM
# died). Env: CRIU_TS_SHARED (default <repo>/../shared), PPC64_CC (default
# powerpc64le-linux-gnu-gcc), PPC64_VM_TIMEOUT (seconds, default 900), PPC64_VM_MEM (guest RAM,
# default 4G), (run.sh reads PPC64_VM_CPU etc. itself).
{
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
shared="${CRIU_TS_SHARED:-$root/../shared}"
vm="$shared/ppc64-vm"
out="$here/build"
cc="${PPC64_CC:-powerpc64le-linux-gnu-gcc}"
log() { printf '[ppc64-vm-tests] %s\n' "$*" >&2; }

build=1
build_only=0
only=''
kernel=bookworm
while [ $# -gt 0 ]; do
  case "$1" in
    --no-build) build=0 ;;
    --build-only) build_only=1 ;;
    --only) only="${2:?--only needs a regular expression}"; shift ;;
    --kernel) kernel="${2:?--kernel needs bookworm, trixie or trixie-4k}"; shift ;;
    *) echo "usage: $0 [--no-build | --build-only] [--only REGEX] [--kernel bookworm|trixie|trixie-4k]  (--only: run just the guest tests whose name matches)" >&2; exit 2 ;;
  esac
  shift
done
case "$kernel" in
  bookworm) ;;
  trixie) alt_flavour=powerpc64le-64k; alt_cache="${PPC64_VM_ALT_CACHE:-/var/tmp/ppc64-vm-trixie}" ;;
  trixie-4k) alt_flavour=powerpc64le; alt_cache="${PPC64_VM_ALT_CACHE:-/var/tmp/ppc64-vm-trixie-4k}" ;;
  *) echo "$0: --kernel must be bookworm, trixie or trixie-4k (got '$kernel')" >&2; exit 2 ;;
esac

# The alternative kernel's image (idempotent, ~1 s when cached; it has its own build lock, so it
# runs before the VM lock and does not keep other runners waiting while it downloads and builds).
if [ "$kernel" != bookworm ]; then
  log "kernel $kernel: VM image in $alt_cache (build-alt-kernel.sh)"
  CRIU_TS_SHARED="$shared" PPC64_VM_ALT_FLAVOUR="$alt_flavour" PPC64_VM_ALT_CACHE="$alt_cache" \
    bash "$here/build-alt-kernel.sh" || { log "building the $kernel VM image failed"; exit 1; }
fi

# One runner at a time on this machine (the VM is CPU-heavy, and a build replaces the dist/ that a
# running guest reads): run-vm-cpu-tests.sh takes the same lock, and tells us when it holds it.
if [ -z "${CRIU_TS_VM_LOCKED:-}" ]; then
  exec 9>"${PPC64_VM_LOCK:-/tmp/criu-ts-ppc64-vm.lock}"
  flock 9
fi
[ -x "$vm/run.sh" ] || { log "no VM runner at $vm/run.sh (set CRIU_TS_SHARED)"; exit 1; }
command -v "$cc" >/dev/null || { log "$cc not found (Debian package gcc-powerpc64le-linux-gnu)"; exit 1; }

if [ "$build" = 1 ]; then
  log "building @criu/core, @criu/cli and @criu/arch-ppc64 (turbo)"
  # CC must stay the host compiler here: arch-x86_64's parasite is built in the same run.
  (cd "$root" && env -u CC pnpm exec turbo run build --filter=@criu/core --filter=@criu/cli --filter=@criu/arch-ppc64 --output-logs=errors-only) >&2
  # turbo's build inputs/outputs do not cover parasite/ and build/: rebuild the blob itself.
  bash "$root/arch/ppc64/parasite/build.sh" >&2
fi
for f in packages/core/dist/index.cjs packages/cli/dist/index.cjs packages/sys/dist/index.cjs packages/images/dist/index.cjs arch/ppc64/dist/index.cjs arch/ppc64/build/parasite.elf arch/ppc64/build/restore-helper; do
  [ -f "$root/$f" ] || { log "$f is missing: build first (drop --no-build)"; exit 1; }
done

log "cross-building fixtures with $cc"
mkdir -p "$out"
"$cc" -O1 -Wall -o "$out/victim" "$root/packages/core/test/fixtures/victim.c"
"$cc" -O1 -Wall -o "$out/pty-run" "$root/packages/core/test/fixtures/pty-run.c"
"$cc" -O1 -Wall -o "$out/shell-job" "$root/packages/core/test/fixtures/shell-job.c"
"$cc" -O1 -Wall -o "$out/fifo-reader" "$here/fixtures/fifo-reader.c"
"$cc" -O1 -Wall -o "$out/regs-reader" "$here/fixtures/regs-reader.c"
"$cc" -O1 -Wall -Wextra -Werror -o "$out/vecregs" "$here/fixtures/vecregs.c" "$here/fixtures/vecregs-asm.S"
# novec never touches the FP/vector units: no libc, no FP or vector code generation.
"$cc" -O2 -Wall -Wextra -Werror -static -nostdlib -ffreestanding -fno-builtin -fno-stack-protector -fno-pie -no-pie \
      -mno-altivec -mno-vsx -msoft-float -o "$out/novec" "$here/fixtures/novec.c"
# scalarvsx: the same program with one scalar VSX instruction (in asm; the C stays soft-float).
"$cc" -O2 -Wall -Wextra -Werror -static -nostdlib -ffreestanding -fno-builtin -fno-stack-protector -fno-pie -no-pie \
      -mno-altivec -mno-vsx -msoft-float -DSCALAR_VSX -o "$out/scalarvsx" "$here/fixtures/novec.c"
log "cross-building the test programs (tools/testprogs)"
CC="$cc" bash "$root/tools/testprogs/build.sh" >&2
testprogs="$root/tools/testprogs/build/$("$cc" -dumpmachine)"

cache="${PPC64_VM_CACHE:-/var/tmp/ppc64-vm}"
if [ "$kernel" = bookworm ] && { [ ! -f "$cache/rootfs.img" ] || [ ! -f "$cache/vmlinux" ]; }; then
  log "VM image missing in $cache: building it (build-image.sh)"
  bash "$vm/build-image.sh" >&2
fi

[ "$build_only" = 1 ] && exit 0

# 4 GiB: the 1 GiB iterative-dump test keeps its images in the guest's tmpfs /tmp.
args=(-t "${PPC64_VM_TIMEOUT:-900}" -m "${PPC64_VM_MEM:-4G}")
if [ "$kernel" != bookworm ]; then export PPC64_VM_CACHE="$alt_cache"; fi
log "booting the VM (kernel $kernel: $(sed -n 's/^kernel_pkg=//p' "${PPC64_VM_CACHE:-$cache}/image.info" 2>/dev/null)): node guest-suite.cjs"
exec "$vm/run.sh" "${args[@]}" "$root" node "$here/guest-suite.cjs" "$out" "$testprogs" ${only:+"$only"}
}
