#!/usr/bin/env bash
# Builds the C test programs into tools/testprogs/build/ (host compiler) or
# tools/testprogs/build/<target triple>/ (a cross compiler), or $OUT_DIR when set.
#   CC       compiler (default: cc); e.g. CC=powerpc64le-linux-gnu-gcc -> build/powerpc64le-linux-gnu/
#   CFLAGS   extra compiler flags
#   OUT_DIR  output directory
# Idempotent and fast: a program is recompiled only when its sources, the compiler or the
# flags changed. Safe to run concurrently (test workers): a lock serialises builds and each
# binary is renamed into place atomically. Prints nothing on success unless something was built.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cc="${CC:-cc}"
if [ -n "${OUT_DIR:-}" ]; then
  out="$OUT_DIR"
elif [ "$cc" = cc ] || [ "$("$cc" -dumpmachine)" = "$(cc -dumpmachine 2>/dev/null || true)" ]; then
  out="$here/build"
else
  out="$here/build/$("$cc" -dumpmachine)"
fi
flags="-O2 -g -Wall -Wextra -Werror -pthread ${CFLAGS:-}"
mkdir -p "$out"

exec 9>"$out/.lock"
flock 9

# A change of compiler or flags invalidates every binary.
stamp="$out/.config"
config="$cc $flags"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$config" ]; then
  rm -f "$out"/*.bin.tmp
  for src in "$here"/*.c; do rm -f "$out/$(basename "$src" .c)"; done
  printf '%s' "$config" >"$stamp"
fi

for src in "$here"/*.c; do
  name="$(basename "$src" .c)"
  bin="$out/$name"
  fresh=1
  for dep in "$src" "$here"/*.h "$0"; do
    [ -x "$bin" ] && [ "$bin" -nt "$dep" ] || { fresh=0; break; }
  done
  [ "$fresh" = 1 ] && continue
  # A program may ask for more flags in a first line `// build-flags: ...` (e.g. -static).
  extra="$(sed -n '1s|^// build-flags: ||p' "$src")"
  # shellcheck disable=SC2086  # flags are a word list on purpose
  "$cc" $flags $extra -o "$bin.bin.tmp" "$src"
  mv -f "$bin.bin.tmp" "$bin"
  echo "built $bin" >&2
done
