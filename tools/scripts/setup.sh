#!/usr/bin/env bash
# Installs everything the project needs on a fresh Debian 12 machine (root, Node 20, npm):
# pnpm at the pinned version, Debian packages, the workspace's npm packages, the oracle CRIU.
# Idempotent and quiet when all is already there. Prints the oracle's criu path last.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
log() { printf '[setup] %s\n' "$*" >&2; }

want_pnpm=$(node -p "require('./package.json').packageManager.split('@')[1]")
if [ "$(pnpm --version 2>/dev/null || true)" != "$want_pnpm" ]; then
  log "installing pnpm@$want_pnpm"
  npm i -g "pnpm@$want_pnpm" >&2
fi

# Debian packages: the host C compiler for test programs and parasite blobs, python3 for crit,
# time (/usr/bin/time) for the benchmark's peak RSS; runc, busybox-static (the containers' one
# program), iptables (CRIU locks a container's network with it) and iproute2 (`ip netns`) for the
# runc checkpoint/restore tests.
pkgs=(gcc make python3 time libc6-dev linux-libc-dev-ppc64el-cross gcc-powerpc64le-linux-gnu runc busybox-static iptables iproute2)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2
fi

log "pnpm install"
pnpm install --frozen-lockfile >&2

shared="${CRIU_TS_SHARED:-$root/../shared}"
if [ -f "$shared/oracle/install-criu.sh" ]; then
  bash "$shared/oracle/install-criu.sh"
else
  log "no oracle installer at $shared/oracle (set CRIU_TS_SHARED)"; exit 1
fi
