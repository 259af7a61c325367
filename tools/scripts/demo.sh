#!/usr/bin/env bash
# The demo behind `npm start`: installs and builds what is needed, then checkpoints a running
# counter with `criu dump`, brings it back with `criu restore -d` (both our CLI) and shows that
# it carries on from where it was. Exits non-zero as soon as a step fails.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"

bold=$'\e[1m' green=$'\e[32m' red=$'\e[31m' dim=$'\e[2m' off=$'\e[0m'
if [ ! -t 1 ]; then bold='' green='' red='' dim='' off=''; fi

work="$(mktemp -d /tmp/criu-ts-demo.XXXXXX)"
images="$work/images"
out="$work/counter.out"
pid=''

step() { printf '\n%s==> %s%s\n' "$bold" "$*" "$off"; }
ok() { printf '    %s%s%s\n' "$green" "$*" "$off"; }
say() { printf '    %s\n' "$*"; }
fail() {
  printf '\n%sDEMO FAILED: %s%s\n' "$red" "$*" "$off" >&2
  printf '    files of this run: %s\n' "$work" >&2
  exit 1
}
# Runs a command quietly; on failure shows the end of its output.
quiet() {
  local what="$1" log="$work/$2.log"
  shift 2
  if ! "$@" >"$log" 2>&1; then
    tail -n 25 "$log" | sed 's/^/    | /' >&2
    fail "$what (full output: $log)"
  fi
}
alive() { [ -d "/proc/$1" ] && ! grep -q ') Z ' "/proc/$1/stat" 2>/dev/null; }
# Waits up to $2 tenths of a second for the condition in $1.
wait_until() {
  local i
  for ((i = 0; i < $2; i++)); do
    if eval "$1"; then return 0; fi
    sleep 0.1
  done
  return 1
}
numbers() { grep -E '^[0-9]+$' "$out" || true; }
criu() { node "$root/packages/cli/bin/criu.cjs" "$@"; }
# Runs criu with its step progress (stderr) kept in a file; shows a one-line summary, or on
# failure what criu printed and the errors of its log.
criu_step() {
  local what="$1" log="$2" err="$work/$1.stderr"
  shift 2
  if ! criu "$@" 2>"$err"; then
    grep -v '^criu: .* step [0-9]*/[0-9]*: ' "$err" | sed 's/^/    | /' >&2
    grep ') Error' "$log" 2>/dev/null | tail -n 5 | sed 's/^/    | log: /' >&2
    fail "criu $what failed (log: $log)"
  fi
  say "$(grep -c ' step ' "$err") steps done ($(tail -n 1 "$err" | sed 's/^criu: //')), log in $log"
}

cleanup() {
  # Only the counter this demo started, by its PID.
  if [ -n "$pid" ] && alive "$pid" && grep -q counter "/proc/$pid/comm" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
}
trap cleanup EXIT

[ "$(id -u)" = 0 ] || fail "run as root: checkpointing another process needs ptrace rights"

# CRIU_TS_DEMO_NO_SETUP=1 (the CLI test that runs this demo): `npm test` has already set up
# and built everything, so only the (idempotent) test program build is left.
if [ "${CRIU_TS_DEMO_NO_SETUP:-}" = 1 ]; then
  step "Building the test programs (setup and build skipped: CRIU_TS_DEMO_NO_SETUP=1)"
else
  step "Setting up (pnpm, Debian packages, node modules, the reference CRIU) and building"
  quiet "setup (tools/scripts/setup.sh)" setup bash tools/scripts/setup.sh
  quiet "build (turbo run build)" build env TURBO_TELEMETRY_DISABLED=1 pnpm exec turbo run build
fi
quiet "building the test programs" testprogs bash tools/testprogs/build.sh
ok "ready ($(node --version), criu-ts $(criu --version | sed -n 's/^criu-ts: \([^ ]*\).*/\1/p'))"

step "Starting a counter: a C program that prints 1, 2, 3, ... every 100 ms"
# Detached in its own session, output to a file, holding no descriptor of ours beyond stdio.
pid="$(bash -c 'for f in /proc/$$/fd/*; do f=${f##*/}; [ "$f" -gt 2 ] && eval "exec $f>&-" 2>/dev/null; done
  setsid "$1" </dev/null >"$2" 2>&1 & echo $!' _ "$root/tools/testprogs/build/counter" "$out")"
wait_until 'grep -q "^READY counter" "$out"' 100 || fail "the counter did not start (see $out)"
sleep 1
say "pid $pid, output in $out; it counts:"
numbers | tail -n 4 | sed 's/^/      /'

step "criu dump -t $pid -D $images -o dump.log -v4"
criu_step dump "$images/dump.log" dump -t "$pid" -D "$images" -o dump.log -v4
frozen="$(grep -o 'frozen [0-9.]* ms' "$images/dump.log" | tail -n 1 || true)"
[ -z "$frozen" ] || say "the counter was ${frozen#frozen } frozen"
before="$(numbers | tail -n 1)"
lines_at_dump="$(wc -l <"$out")"
say "images: $(cd "$images" && ls | grep -v '\.log$' | tr '\n' ' ')"
# The dumped task is killed; init reaps it a moment later.
wait_until '! [ -d /proc/$pid ]' 100 || fail "pid $pid is still there after the dump"
ok "pid $pid is gone; its last count was $before"
sleep 1
[ "$(numbers | tail -n 1)" = "$before" ] || fail "the output changed while the counter was dumped"
say "one second later the output still ends at $before: nothing is running"

step "criu restore -d -D $images -o restore.log -v4 --pidfile restore.pid"
criu_step restore "$images/restore.log" restore -d -D "$images" -o restore.log -v4 --pidfile restore.pid
restored="$(cat "$images/restore.pid" 2>/dev/null || true)"
[ "$restored" = "$pid" ] || fail "restore.pid says '$restored', expected $pid"
alive "$pid" || fail "pid $pid is not running after the restore"
wait_until '[ "$(tail -n +$((lines_at_dump + 1)) "$out" | grep -cE "^[0-9]+$")" -ge 3 ]' 100 \
  || fail "the restored counter prints nothing (see $out)"
first_after="$(tail -n +$((lines_at_dump + 1)) "$out" | grep -m1 -E '^[0-9]+$')"
ok "pid $pid is back and counting: last count before the dump $before, first after the restore $first_after"
[ "$first_after" = "$((before + 1))" ] || fail "expected the count to go on with $((before + 1)), got $first_after"
sleep 1
numbers | tail -n 3 | sed 's/^/      /'

step "Stopping it with SIGTERM: it checks its memory and prints its verdict"
kill -TERM "$pid"
wait_until 'grep -qE "^(PASS|FAIL) counter" "$out"' 100 || fail "no verdict from the counter (see $out)"
verdict="$(grep -E '^(PASS|FAIL) counter' "$out")"
[[ "$verdict" == PASS* ]] || fail "$verdict"
ok "$verdict"
printf '\n%sDemo complete:%s a process was checkpointed to disk and restored by criu-ts. Files: %s\n' "$bold" "$off" "$work"
