#!/usr/bin/env bash
# build-alt-kernel.sh - a second ppc64le VM image cache that boots Debian 13 (trixie)'s
# powerpc64le kernel instead of Debian 12's 6.1, for cross-kernel checkpoint/restore tests
# (dump on one kernel, restore on the other: their vDSOs differ). The userland stays the Debian 12
# rootfs of ../shared/ppc64-vm (node 18, criu 3.17); only the kernel and its modules change.
#
#   tools/ppc64/build-alt-kernel.sh          (root; idempotent: ~1 s when everything is cached)
#
# Result, in ${PPC64_VM_ALT_CACHE:-/var/tmp/ppc64-vm-trixie}, bootable with
# PPC64_VM_CACHE=<that dir> ../shared/ppc64-vm/run.sh (or run-vm-tests.sh --kernel trixie):
#   vmlinux      trixie's uncompressed ELF vmlinux (qemu -M pseries -kernel loads it as is)
#   initrd.img   busybox + that kernel's virtio_pci/virtio_blk/ext4/9p/... modules (decompressed,
#                dependency order in /modules.order), /init = shared guest/initramfs-init
#   rootfs.img   the shared builder's rootfs/ (hard-linked, not copied) + /lib/modules/<trixie ver>
#   kernel.config  image.info  vdso/ (both kernels' vdso64.so, cut out of vmlinux) + vdso.txt
# It needs the Debian 12 cache (PPC64_VM_CACHE, default /var/tmp/ppc64-vm) for the rootfs and
# busybox, and runs the shared build-image.sh first when that is missing. Downloads: trixie's
# ppc64el package index (private apt state, the host's dpkg is untouched) and one kernel .deb.
#
# Env: PPC64_VM_ALT_CACHE, PPC64_VM_CACHE (the Debian 12 cache), PPC64_VM_ALT_SUITE (trixie),
#      PPC64_VM_ALT_FLAVOUR (powerpc64le-64k | powerpc64le, see below),
#      PPC64_VM_ALT_KERNEL_PKG (default: what linux-image-<flavour> depends on in that suite),
#      PPC64_VM_MIRROR (default: the host apt's Debian mirror), PPC64_VM_REFRESH=1 (re-read the
#      index: picks up a newer kernel), CRIU_TS_SHARED (default <repo>/../shared).
#
# Flavour: trixie's linux-image-powerpc64le meta-package is now the 4 KiB-page build; the 64 KiB one
# (bookworm's page size) is linux-image-powerpc64le-64k, the default here (PPC64_VM_ALT_FLAVOUR=
# powerpc64le for the 4k one, cache .../ppc64-vm-trixie-4k). The newest version the index names may
# not be on the mirror yet (6.12.117 answered 404 on 2026-11-27): the next one down is taken.
#
# Measured 2026-11-27 (vdso.txt in the cache lists it again, from the two vmlinux files):
#   kernel: linux-image-6.12.107+deb13-powerpc64le-64k 6.12.107-1 (uname -r 6.12.107+deb13-powerpc64le-64k)
#           vs Debian 12's linux-image-6.1.0-50-powerpc64le 6.1.176-1; both CONFIG_PPC_64K_PAGES=y
#   vDSO (vdso64.so, linked at 0): one 64 KiB page on both, under a 2-page (128 KiB) [vvar] on both.
#     6.1:  PT_LOAD memsz 0x1578, .text 0x450 + 0x8a8, 9 entry points
#     6.12: PT_LOAD memsz 0x1fd8, .text 0x490 + 0x112c, 10: __kernel_getrandom is new (0x778, 108 B),
#           and every other entry point moved by +0x40 (same sizes):
#       entry point               6.1     6.12
#       __kernel_sigtramp_rt64    0x454   0x494   (the signal return trampoline: return addresses
#       __kernel_gettimeofday     0x47c   0x4bc    on a dumped stack point into the old vDSO)
#       __kernel_clock_gettime    0x4d0   0x510
#       __kernel_clock_getres     0x524   0x564
#       __kernel_time             0x578   0x5b8
#       __kernel_get_syscall_map  0x5bc   0x5fc
#       __kernel_get_tbfreq       0x608   0x648
#       __kernel_sync_dicache     0x644   0x684
#       __kernel_getcpu           0x708   0x748
#   So a task dumped on one kernel and restored on the other has a [vdso] whose symbols sit at
#   other offsets than the running kernel's (and no getrandom on 6.1): it must be remapped/redirected.
# Timings on this 2-core host under load (2026-11-27): first build 72 s (incl. the 75 MiB .deb in
# 3 s and a 9.5 MB index), rebuild of the images ~15 s, cached run 0.5 s. Boot to the guest command:
# 24.5 s uptime / 62 s wall for 6.12 vs 20.7 s / 52 s for 6.1 in the same loaded minute (unloaded
# the 6.1 VM needs ~5 s / 7 s). Cache: vmlinux 46 MiB, initrd 2.2 MiB, rootfs.img 971 MiB sparse
# (354 MiB allocated), kernel-pkg/ + debs/ + apt/; 626 MiB of disk beyond the Debian 12 cache.
# On 6.12 the guest suite's counter (2 rounds), both Debian-criu interop tests and the shell
# pipeline passed (run-vm-tests.sh --kernel trixie --only 'counter|pipeline': 4 passed, 0 failed).
set -euo pipefail
{ # one compound command: bash parses all of it first, so editing this file mid-run is safe

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
shared="${CRIU_TS_SHARED:-$root/../shared}"
vm="$shared/ppc64-vm"
base="${PPC64_VM_CACHE:-/var/tmp/ppc64-vm}"
SUITE="${PPC64_VM_ALT_SUITE:-trixie}"
# trixie's plain powerpc64le flavour has 4 KiB pages; -64k keeps bookworm's 64 KiB pages, so the
# kernel (and its vDSO) is the only difference between the two VMs.
FLAVOUR="${PPC64_VM_ALT_FLAVOUR:-powerpc64le-64k}"
case "$FLAVOUR" in
  powerpc64le-64k) C="${PPC64_VM_ALT_CACHE:-/var/tmp/ppc64-vm-$SUITE}" ;;
  powerpc64le) C="${PPC64_VM_ALT_CACHE:-/var/tmp/ppc64-vm-$SUITE-4k}" ;;
  *) echo "build-alt-kernel.sh: PPC64_VM_ALT_FLAVOUR must be powerpc64le-64k or powerpc64le" >&2; exit 2 ;;
esac
ARCH=ppc64el

log() { printf '[build-alt-kernel %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root (the rootfs is root-owned and has device nodes)"
[ "$(realpath -m "$C")" != "$(realpath -m "$base")" ] || die "PPC64_VM_ALT_CACHE must differ from PPC64_VM_CACHE ($base)"
[ -f "$vm/build-image.sh" ] && [ -f "$vm/guest/initramfs-init" ] || die "no shared VM builder at $vm (set CRIU_TS_SHARED)"

mkdir -p "$C"
exec 8>"$C/.build.lock"
flock -n 8 || { log "another build-alt-kernel.sh holds $C/.build.lock; waiting"; flock 8; }
T0=$SECONDS

# ---------------------------------------------------------------- 1. the Debian 12 cache
if [ ! -e "$base/rootfs/.debootstrap-done" ] || [ ! -s "$base/.stamp-image" ] || ! ls "$base"/debs/busybox-static_*.deb >/dev/null 2>&1; then
  log "Debian 12 VM cache $base incomplete: running the shared build-image.sh"
  PPC64_VM_CACHE="$base" bash "$vm/build-image.sh" || die "shared build-image.sh failed"
fi
BASE_STAMP="$(cat "$base/.stamp-image")"
# (After the Debian 12 cache: on a fresh machine the shared builder installs these host packages.)
for t in file dpkg-deb depmod modprobe mkfs.ext4 cpio xz readelf apt-get; do
  command -v "$t" >/dev/null || die "$t not found (the shared build-image.sh installs the host packages)"
done

# ---------------------------------------------------------------- 2. private apt index
if [ -z "${PPC64_VM_MIRROR:-}" ]; then
  PPC64_VM_MIRROR=$(grep -hsE '^URIs:.*/debian/?$' /etc/apt/sources.list.d/*.sources | awk '{print $2; exit}')
  [ -z "$PPC64_VM_MIRROR" ] && PPC64_VM_MIRROR=$(grep -hsE '^deb .*/debian/? ' /etc/apt/sources.list | awk '{print $2; exit}')
  PPC64_VM_MIRROR="${PPC64_VM_MIRROR:-http://deb.debian.org/debian}"
fi
MIRROR="${PPC64_VM_MIRROR%/}"
A="$C/apt"
mkdir -p "$A/state/lists/partial" "$A/cache/archives/partial" "$A/etc/apt.conf.d" "$A/etc/preferences.d" "$C/debs"
touch "$A/state/status"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
# The kernel moves on in point releases (main) and in -security; -updates carries nothing of it.
cat > "$A/etc/sources.list.new" <<EOF
deb [arch=$ARCH signed-by=$KEYRING] $MIRROR $SUITE main
deb [arch=$ARCH signed-by=$KEYRING] ${MIRROR%/debian}/debian-security $SUITE-security main
EOF
cmp -s "$A/etc/sources.list.new" "$A/etc/sources.list" || { mv "$A/etc/sources.list.new" "$A/etc/sources.list"; rm -f "$C/.stamp-apt-update"; }
rm -f "$A/etc/sources.list.new"
APTO=(-o "Dir::Etc=$A/etc" -o "Dir::Etc::SourceList=$A/etc/sources.list" -o "Dir::Etc::SourceParts=/nonexistent"
      -o "Dir::Etc::Parts=/nonexistent" -o "Dir::State=$A/state" -o "Dir::State::status=$A/state/status"
      -o "Dir::Cache=$A/cache" -o "APT::Architecture=$ARCH" -o "APT::Architectures::=$ARCH"
      -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root" -o "Acquire::Languages=none")
[ "${PPC64_VM_REFRESH:-0}" = 1 ] && rm -f "$C/.stamp-apt-update"
if [ ! -e "$C/.stamp-apt-update" ]; then
  log "apt-get update: $SUITE $ARCH index from $MIRROR (private apt state in $A)"
  apt-get "${APTO[@]}" update >&2 || log "warning: apt-get update reported errors (continuing if $SUITE main is readable)"
  apt-cache "${APTO[@]}" show linux-image-powerpc64le >/dev/null 2>&1 \
    || die "no $SUITE $ARCH package index from $MIRROR (is the mirror reachable? does the keyring know $SUITE's key?)"
  touch "$C/.stamp-apt-update"
fi
KPKG=""
# A kernel already downloaded is kept until PPC64_VM_REFRESH=1 (cached runs read no index).
if [ "${PPC64_VM_REFRESH:-0}" != 1 ] && [ -z "${PPC64_VM_ALT_KERNEL_PKG:-}" ]; then
  have="$(ls "$C"/debs/linux-image-*-"$FLAVOUR"_*_$ARCH.deb 2>/dev/null | head -n1)"
  [ -n "$have" ] && KPKG="$(dpkg-deb -f "$have" Package)"
fi
# Candidates: the flavour's meta-package dependency first, then every other version of that flavour
# in the index, newest first (the index can name a kernel the mirror's pool does not hold yet).
if [ -n "$KPKG" ]; then
  candidates="$KPKG"
elif [ -n "${PPC64_VM_ALT_KERNEL_PKG:-}" ]; then
  candidates="$PPC64_VM_ALT_KERNEL_PKG"
else
  candidates="$( { apt-cache "${APTO[@]}" depends "linux-image-$FLAVOUR" | awk '/Depends: linux-image-/{print $2; exit}'
                   apt-cache "${APTO[@]}" search --names-only "^linux-image-[0-9].*-$FLAVOUR\$" | awk '{print $1}' | sort -rV
                 } | awk '!seen[$0]++')"
fi
[ -n "$candidates" ] || die "no linux-image-*-$FLAVOUR package in $SUITE's index"
for cand in $candidates; do
  [ -n "$KPKG" ] && break
  if ls "$C/debs/${cand}"_*.deb >/dev/null 2>&1; then KPKG="$cand"; break; fi
  log "downloading $cand ($ARCH $(apt-cache "${APTO[@]}" show "$cand" | awk '/^Version:/{print $2; exit}'), $(( $(apt-cache "${APTO[@]}" show "$cand" | awk '/^Size:/{print $2; exit}') / 1048576 )) MiB)"
  if (cd "$C/debs" && apt-get "${APTO[@]}" download "$cand" >&2); then
    KPKG="$cand"
    find "$C/debs" -name 'linux-image-*.deb' ! -name "${KPKG}_*" -delete   # keep one kernel .deb
    break
  fi
  log "download of $cand failed (not on the mirror yet?); trying the next version in the index"
done
[ -n "$KPKG" ] || die "could not download any of: $(echo $candidates)"
KVER="${KPKG#linux-image-}"
[ "$KVER" != "$KPKG" ] || die "unexpected kernel package name: $KPKG"
KDEB="$(ls "$C/debs/${KPKG}"_*.deb | head -n1)"
KDEBVER="$(dpkg-deb -f "$KDEB" Version)"
log "kernel: $KPKG $KDEBVER"

# ---------------------------------------------------------------- 3. kernel
K="$C/kernel-pkg"
if [ ! -e "$C/.stamp-kernel-$KVER-$KDEBVER" ]; then
  log "extracting $(basename "$KDEB")"
  rm -rf "$K"; mkdir -p "$K"
  dpkg-deb -x "$KDEB" "$K"
  # trixie is merged-/usr (modules in usr/lib/modules); depmod/modprobe -d want <dir>/lib/modules
  [ -e "$K/lib" ] || ln -s usr/lib "$K/lib"
  [ -d "$K/lib/modules/$KVER" ] || die "$KPKG has no lib/modules/$KVER"
  [ -f "$K/boot/vmlinux-$KVER" ] || die "$KPKG has no boot/vmlinux-$KVER (is it a powerpc64le kernel?)"
  file -L "$K/boot/vmlinux-$KVER" | grep -q 'ELF 64-bit LSB executable, 64-bit PowerPC' \
    || die "boot/vmlinux-$KVER is not an uncompressed ppc64le ELF: $(file -bL "$K/boot/vmlinux-$KVER")"
  depmod -b "$K" "$KVER"
  cp "$K/boot/vmlinux-$KVER" "$C/vmlinux.tmp" && mv "$C/vmlinux.tmp" "$C/vmlinux"
  cp "$K/boot/config-$KVER" "$C/kernel.config"
  rm -f "$C"/.stamp-kernel-* "$C/.stamp-initrd" "$C/.stamp-image" "$C/.stamp-vdso"
  touch "$C/.stamp-kernel-$KVER-$KDEBVER"
fi
KMOD="$K/lib/modules/$KVER"
grep -q '^CONFIG_PPC_64K_PAGES=y' "$C/kernel.config" || log "warning: $KVER is not built with 64 KiB pages"

# ---------------------------------------------------------------- 4. vDSO of both kernels
# The vDSO image sits in vmlinux between the symbols vdso64_start and vdso64_end (Debian's vmlinux
# keeps its symbol table; its System.map is a stub); cut it out through vmlinux's program headers
# (virtual address -> file offset).
vdso_of() {  # vdso_of <vmlinux> <out.so>
  local start end off syms
  syms=$(readelf -sW "$1" | awk '$8=="vdso64_start" || $8=="vdso64_end" {print $8, $2}')
  start=$(awk '$1=="vdso64_start"{print $2}' <<<"$syms"); end=$(awk '$1=="vdso64_end"{print $2}' <<<"$syms")
  [ -n "$start" ] && [ -n "$end" ] || { log "warning: no vdso64_start/end symbols in $1"; return 1; }
  local a=$((16#$start)) o v f x
  off=
  while read -r x o v x f x; do
    if (( a >= v && a < v + f )); then off=$(( a - v + o )); break; fi
  done < <(readelf -lW "$1" | awk '$1=="LOAD"')
  [ -n "$off" ] || { log "warning: vdso64_start not inside a LOAD segment of $1"; return 1; }
  tail -c +$((off + 1)) "$1" | head -c $((16#$end - 16#$start)) > "$2"
  [ "$(head -c 4 "$2" | od -An -tx1 | tr -d ' ')" = 7f454c46 ] || { log "warning: $2 is not an ELF image"; return 1; }
}
vdso_report() {  # vdso_report <name> <vdso.so>
  local f="$2"
  echo "== $1: image $(stat -c %s "$f") bytes (vdso64_end - vdso64_start), $(readelf -lW "$f" | awk '$1=="LOAD"{printf "PT_LOAD memsz %s", $6}')"
  readelf -SW "$f" | sed 's/^ *\[ *[0-9]*\] *//' | awk '$1 ~ /^\./ && $3 !~ /^0+$/ {printf "   section %-14s addr 0x%s size 0x%s\n", $1, $3, $5}'
  readelf --dyn-syms -W "$f" | awk '$4=="FUNC" && $7!="UND" {printf "   %-28s 0x%s size %d %s\n", $8, $2, $3, $5}' | sort
}
BKVER="$(sed -n 's/^kernel_pkg=linux-image-//p' "$base/image.info")"
if [ "$(cat "$C/.stamp-vdso" 2>/dev/null)" != "$KVER $BKVER" ]; then
  mkdir -p "$C/vdso"; rm -f "$C"/vdso/*
  ok=1
  vdso_of "$C/vmlinux" "$C/vdso/vdso64-$KVER.so" || ok=0
  if [ -n "$BKVER" ]; then vdso_of "$base/vmlinux" "$C/vdso/vdso64-$BKVER.so" || ok=0; fi
  { for so in "$C"/vdso/*.so; do n="${so##*/vdso64-}"; vdso_report "${n%.so}" "$so"; done; } > "$C/vdso.txt" 2>/dev/null || ok=0
  if [ "$ok" = 1 ]; then echo "$KVER $BKVER" > "$C/.stamp-vdso"; log "vDSO images and symbols: $C/vdso.txt"; else log "warning: vDSO comparison incomplete (see $C/vdso.txt)"; fi
fi

# ---------------------------------------------------------------- 5. rootfs image
# rootfs/ = a hard-linked copy of the Debian 12 rootfs (no file data is copied; nothing here writes
# into a shared inode: the new modules are new files) + /lib/modules/$KVER, also hard-linked from
# kernel-pkg/. The module subset is the shared builder's: fs, net (incl. *_diag), virtio, block...
# Inputs: the Debian 12 rootfs (its builder's stamp), the kernel, and this step's own code.
INPUT_HASH=$( (echo "$BASE_STAMP $KVER $KDEBVER"; sed -n '/-- 5\. rootfs image/,/-- 6\. initramfs/p' "$0" | grep -v '^ *#') | sha256sum | cut -c1-16)
if [ "$(cat "$C/.stamp-image" 2>/dev/null)" != "$INPUT_HASH" ] || [ ! -f "$C/rootfs.img" ]; then
  R="$C/rootfs"
  log "rootfs: hard-linking $base/rootfs + /lib/modules/$KVER"
  rm -rf "$R" "$R.tmp"
  cp -al "$base/rootfs" "$R.tmp"
  M="$R.tmp/usr/lib/modules/$KVER"; mkdir -p "$M/kernel/drivers" "$M/kernel/fs" "$M/kernel/drivers/net"
  cp -al "$KMOD"/modules.builtin* "$KMOD"/modules.order "$M/"
  for d in arch block crypto lib mm net; do [ -d "$KMOD/kernel/$d" ] && cp -al "$KMOD/kernel/$d" "$M/kernel/"; done
  for d in 9p ext4 jbd2 overlayfs fuse netfs fscache autofs nls squashfs; do
    [ -d "$KMOD/kernel/fs/$d" ] && cp -al "$KMOD/kernel/fs/$d" "$M/kernel/fs/"
  done
  cp -al "$KMOD"/kernel/fs/*.ko* "$M/kernel/fs/"
  for d in virtio block char; do [ -d "$KMOD/kernel/drivers/$d" ] && cp -al "$KMOD/kernel/drivers/$d" "$M/kernel/drivers/"; done
  cp -al "$KMOD"/kernel/drivers/net/*.ko* "$M/kernel/drivers/net/"
  depmod -b "$R.tmp" "$KVER"
  mv "$R.tmp" "$R"
  kb=$(du -sk "$R" | cut -f1); size_mb=$(( kb * 12 / 10 / 1024 + 512 ))
  log "rootfs: ext4 image (${size_mb} MiB, $(( kb / 1024 )) MiB used; modules of $KVER: $(du -sh "$R/usr/lib/modules/$KVER" | cut -f1))"
  rm -f "$C/rootfs.img.tmp"
  # no journal: run.sh opens it with snapshot=on, so it is never written
  mkfs.ext4 -q -F -L ppc64root -O ^has_journal -E root_owner=0:0 -d "$R" "$C/rootfs.img.tmp" "${size_mb}M" \
    || die "mkfs.ext4 -d $R failed"
  mv "$C/rootfs.img.tmp" "$C/rootfs.img"
  echo "$INPUT_HASH" > "$C/.stamp-image"
fi

# ---------------------------------------------------------------- 6. initramfs
IHASH=$( (cat "$vm/guest/initramfs-init"; sed -n '/-- 6\. initramfs/,/-- 7\. summary/p' "$0" | grep -v '^ *#'; echo "$KVER $KDEBVER") | sha256sum | cut -c1-16)
if [ "$(cat "$C/.stamp-initrd" 2>/dev/null)" != "$IHASH" ] || [ ! -f "$C/initrd.img" ]; then
  log "initramfs: busybox + $KVER modules"
  I="$C/initramfs.tmp"; rm -rf "$I"; mkdir -p "$I/bin" "$I/lib/modules"
  dpkg-deb --fsys-tarfile "$(ls "$base"/debs/busybox-static_*.deb | head -n1)" | tar -xO ./bin/busybox > "$I/bin/busybox"
  chmod 755 "$I/bin/busybox"
  install -m 755 "$vm/guest/initramfs-init" "$I/init"
  : > "$I/modules.order"
  # Stage 1's modules in dependency order. Built-in ones print "builtin"; absent optional ones
  # are skipped, but the root disk, ext4 and the 9p shares must be there one way or the other.
  for m in virtio_pci virtio_blk crc32c_generic ext4 9pnet_virtio 9p virtio_rng virtio_console; do
    if ! deps=$(modprobe -d "$K" -S "$KVER" --show-depends "$m" 2>/dev/null); then
      case "$m" in virtio_pci|virtio_blk|ext4|9pnet_virtio|9p) die "$KVER has no module (nor built-in) $m";; esac
      log "initramfs: $KVER has no $m (skipped)"; continue
    fi
    printf '%s\n' "$deps" | awk '$1=="insmod"{print $2}'
  done | sed "s#^$K/lib/modules/##; s#^/lib/modules/##" | awk '!seen[$0]++' > "$I/modules.list"
  # busybox insmod takes plain .ko files: decompress what Debian ships as .ko.xz / .ko.zst
  while read -r rel; do
    src="$KMOD/${rel#"$KVER"/}"; dst="$I/lib/modules/${rel%.xz}"; dst="${dst%.zst}"
    mkdir -p "$(dirname "$dst")"
    case "$src" in *.xz) xz -dc "$src" > "$dst";; *.zst) zstd -qdc "$src" > "$dst";; *) cp "$src" "$dst";; esac
    echo "${dst#"$I"/lib/modules/}" >> "$I/modules.order"
  done < "$I/modules.list"
  rm "$I/modules.list"
  [ -s "$I/modules.order" ] || die "no stage-1 modules found for $KVER"
  log "initramfs modules: $(sed 's#.*/##' "$I/modules.order" | tr '\n' ' ')"
  (cd "$I" && find . | cpio -o -H newc --quiet | gzip -1) > "$C/initrd.img.tmp"
  mv "$C/initrd.img.tmp" "$C/initrd.img"; rm -rf "$I"
  echo "$IHASH" > "$C/.stamp-initrd"
fi

# ---------------------------------------------------------------- 7. summary
SUM="$(cat "$C/.stamp-image" "$C/.stamp-initrd" 2>/dev/null | tr '\n' ' ')"
if [ "$(cat "$C/.stamp-summary" 2>/dev/null)" != "$SUM" ] || [ ! -s "$C/image.info" ]; then
{
  echo "kernel_pkg=$KPKG"
  echo "kernel_version=$KDEBVER"
  echo "suite=$SUITE mirror=$MIRROR"
  echo "base_cache=$base (rootfs stamp $BASE_STAMP)"
  echo "rootfs_img=$(du -h --apparent-size "$C/rootfs.img" | cut -f1) (allocated $(du -h "$C/rootfs.img" | cut -f1))"
  echo "initrd=$(du -h "$C/initrd.img" | cut -f1)"
  echo "vmlinux=$(du -h "$C/vmlinux" | cut -f1)"
  echo "cache_disk=$(du -sh "$base" "$C" | awk 'NR==2{print $1}') of its own (rootfs/ is hard links into $base/rootfs)"
  grep -E '^(CONFIG_PPC_64K_PAGES|CONFIG_PPC_4K_PAGES|CONFIG_MEM_SOFT_DIRTY|CONFIG_CHECKPOINT_RESTORE|CONFIG_VSX|CONFIG_ALTIVEC|CONFIG_USERFAULTFD|CONFIG_KCMP|CONFIG_TIME_NS)=|PPC_TRANSACTIONAL_MEM' "$C/kernel.config" || true
} > "$C/image.info"
echo "$SUM" > "$C/.stamp-summary"
fi
log "done in $(( SECONDS - T0 ))s; cache: $C ($KPKG $KDEBVER)"
exit 0
}
