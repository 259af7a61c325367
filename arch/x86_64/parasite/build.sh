#!/usr/bin/env bash
# Builds the x86_64 parasite as a small position-independent ELF (build/parasite.elf).
# @criu/core loads its PT_LOAD segments, applies its R_X86_64_RELATIVE relocations for the
# address it is injected at, and enters it at parasite_head.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
core_parasite="$here/../../../packages/core/parasite"
out="$here/../build"
mkdir -p "$out"
CC="${CC:-cc}"
cflags=(-O2 -fpie -ffreestanding -fno-builtin -nostdlib -fno-stack-protector -fno-asynchronous-unwind-tables
        -fno-unwind-tables -fvisibility=hidden -fcf-protection=none -mgeneral-regs-only -Wall -Werror
        -I"$here" -I"$core_parasite")
"$CC" "${cflags[@]}" -c "$here/head.S" -o "$out/head.o"
"$CC" "${cflags[@]}" -c "$core_parasite/parasite.c" -o "$out/parasite.o"
"$CC" -nostdlib -static-pie -Wl,--no-dynamic-linker -Wl,-z,noexecstack -Wl,--build-id=none \
      -Wl,-z,max-page-size=4096 -Wl,-e,parasite_head -o "$out/parasite.elf" "$out/head.o" "$out/parasite.o"

# The restore helper (see packages/core/restorer/restore-helper.c).
core_restorer="$here/../../../packages/core/restorer"
"$CC" "${cflags[@]}" -c "$here/restore-helper-start.S" -o "$out/restore-helper-start.o"
"$CC" "${cflags[@]}" -c "$core_restorer/restore-helper.c" -o "$out/restore-helper.o"
"$CC" -nostdlib -static -Wl,-z,noexecstack -Wl,--build-id=none -Wl,-e,_start \
      -o "$out/restore-helper" "$out/restore-helper-start.o" "$out/restore-helper.o"
