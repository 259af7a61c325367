#!/usr/bin/env bash
# Cross-builds the ppc64le parasite as a small position-independent ELF (build/parasite.elf):
# ELFv2, static-pie, no FP/vector code. @criu/core loads its PT_LOAD segments, applies its
# R_PPC64_RELATIVE relocations for the address it is injected at, and enters it at parasite_head.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
core_parasite="$here/../../../packages/core/parasite"
out="$here/../build"
mkdir -p "$out"
CC="${PPC64_CC:-powerpc64le-linux-gnu-gcc}"
if ! command -v "$CC" >/dev/null 2>&1; then
  echo "parasite/build.sh: $CC not found (Debian package gcc-powerpc64le-linux-gnu; tools/scripts/setup.sh installs it)" >&2
  exit 1
fi
cflags=(-O2 -fpie -ffreestanding -fno-builtin -nostdlib -fno-stack-protector -fno-asynchronous-unwind-tables
        -fno-unwind-tables -fvisibility=hidden -mabi=elfv2 -mlittle-endian -msoft-float -mno-altivec -mno-vsx
        -Wall -Werror -I"$here" -I"$core_parasite")
"$CC" "${cflags[@]}" -c "$here/head.S" -o "$out/head.o"
"$CC" "${cflags[@]}" -c "$core_parasite/parasite.c" -o "$out/parasite.o"
"$CC" -nostdlib -static-pie -Wl,--no-dynamic-linker -Wl,-z,noexecstack -Wl,--build-id=none \
      -Wl,-z,max-page-size=4096 -Wl,-e,parasite_head -o "$out/parasite.elf" "$out/head.o" "$out/parasite.o"
# Only RELATIVE relocations (or none) are loadable by @criu/core's elf-blob.
bad=$(powerpc64le-linux-gnu-readelf -rW "$out/parasite.elf" | awk '/^[0-9a-f]+ +[0-9a-f]+ +R_PPC64_/ && $3 != "R_PPC64_RELATIVE" { print $3 }' | sort -u)
if [ -n "$bad" ]; then
  echo "parasite/build.sh: unsupported relocations in parasite.elf: $bad" >&2
  exit 1
fi

# The restore helper (packages/core/restorer/restore-helper.c): a static ELFv2 program without
# libc, built with the same flags (no FP/vector code: it never touches the FP/VMX/VSX units, so
# the task it clone3()s starts with them unused).
core_restorer="$here/../../../packages/core/restorer"
"$CC" "${cflags[@]}" -c "$here/restore-helper-start.S" -o "$out/restore-helper-start.o"
"$CC" "${cflags[@]}" -c "$core_restorer/restore-helper.c" -o "$out/restore-helper.o"
"$CC" -nostdlib -static -no-pie -Wl,-z,noexecstack -Wl,--build-id=none -Wl,-e,_start \
      -o "$out/restore-helper" "$out/restore-helper-start.o" "$out/restore-helper.o"
