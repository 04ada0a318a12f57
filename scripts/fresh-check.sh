#!/usr/bin/env bash
# Does the README's set-up work on a fresh Debian 12 machine? Builds a Debian 12 root filesystem
# from Debian's packages (mmdebstrap: git, ca-certificates, sudo, iproute2, procps, nothing else),
# runs it as a privileged podman container, clones this repository's HEAD commit inside, runs
# `sudo ./install.sh` then `CI=true npm test` as a new user would, and reports pass or fail, how
# long each took and how many test files and tests ran. Cleans up after itself; keeps the log.
#   sudo scripts/fresh-check.sh            (root: mmdebstrap and a privileged container need it)
# Environment: FRESH_LOG (log file; default /tmp/reservoir-fresh-check.<time>.log),
# FRESH_TMP (where the root filesystem is built; default /var/tmp).
# Only committed work is checked: the container clones HEAD, not the working tree.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
LOG=${FRESH_LOG:-/tmp/reservoir-fresh-check.$(date -u +%Y%m%dT%H%M%S).log}
SUITE=bookworm
# What the machine has before the README's commands: the packages the issue's user started from.
BASE_PACKAGES=git,ca-certificates,sudo,iproute2,procps

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { printf 'fresh-check: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run me as root: sudo scripts/fresh-check.sh"

missing=()
command -v podman >/dev/null || missing+=(podman)
command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
# runc, not podman's default crun: crun 1.8 (Debian 12) refuses hosts with hybrid cgroups.
[ -x /usr/sbin/runc ] || missing+=(runc)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]} (apt)"
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${missing[@]}" >/dev/null
fi

commit=$(git -C "$REPO" rev-parse HEAD)
[ -z "$(git -C "$REPO" status --porcelain --untracked-files=no)" ] ||
  echo "fresh-check: note: uncommitted changes are not checked; the container gets commit $commit" >&2

WORK=$(mktemp -d "${FRESH_TMP:-/var/tmp}/reservoir-fresh.XXXXXX")
NAME=reservoir-fresh-$(basename "$WORK" | cut -d. -f2 | tr 'A-Z' 'a-z')
cleanup() {
  podman rm -f "$NAME" >/dev/null 2>&1 || true
  # Never delete through a mount: the container's own mounts live in its namespace, but check.
  if findmnt -rn -o TARGET | grep -q "^$WORK"; then
    echo "fresh-check: something is still mounted under $WORK; left it in place" >&2
  else
    rm -rf --one-file-system "$WORK"
  fi
}
trap cleanup EXIT

# Everything from here on is also written to the log.
exec > >(tee -a "$LOG") 2>&1
echo "fresh-check: commit $commit, log $LOG"

say "Debian 12 root filesystem with mmdebstrap (only $BASE_PACKAGES)"
t0=$(date +%s)
mmdebstrap --quiet --variant=minbase --include="$BASE_PACKAGES" \
  --aptopt='Acquire::Languages "none"' "$SUITE" "$WORK/rootfs" \
  "deb http://deb.debian.org/debian $SUITE main" \
  "deb http://deb.debian.org/debian $SUITE-updates main" \
  "deb http://deb.debian.org/debian-security $SUITE-security main"
rootfs_s=$(($(date +%s) - t0))

git clone --quiet --bare "$REPO" "$WORK/src.git"

# The host's trusted CA certificates (package downloads verify as they do on the host) and the
# host's npm global config (what tells npm to use them), as a machine of this site has them.
mkdir -p "$WORK/host"
cp -a /usr/local/share/ca-certificates "$WORK/host/ca" 2>/dev/null || mkdir -p "$WORK/host/ca"
npmrc=$(npm config get globalconfig 2>/dev/null || true)
[ -n "$npmrc" ] && [ -f "$npmrc" ] && cp "$npmrc" "$WORK/host/npmrc"

cat > "$WORK/inside.sh" <<'EOF'
#!/bin/bash
# Runs in the container as root. The machine's own set-up first (the site's CA certificates,
# npm's global config), then a user's steps, each timed.
set -uo pipefail
cp -a /host/ca/. /usr/local/share/ca-certificates/ && update-ca-certificates >/dev/null
# A machine's /dev/shm runs programs (nosuid,nodev only); podman mounts it noexec.
mount -o remount,exec /dev/shm
[ -f /host/npmrc ] && cp /host/npmrc /etc/npmrc
step() { # name command...
  local name=$1 t0=$(date +%s) rc; shift
  echo "== $name: $*"
  "$@"; rc=$?
  echo "fresh-check: step $name exit $rc in $(($(date +%s) - t0)) s"
  return $rc
}
cd /root
step clone git clone --quiet /src.git reservoir || exit 1
cd reservoir && git checkout --quiet --detach "$COMMIT" || exit 1
step install sudo ./install.sh || exit 1
step test env CI=true npm test
EOF
chmod 0755 "$WORK/inside.sh"

say "podman: clone $commit, sudo ./install.sh, CI=true npm test (as root, in the container)"
# Privileged: the tests create network namespaces, bridges, tmpfs and loop mounts. Resource
# limits no higher than this shell's: podman's defaults are higher, and raising a limit needs
# CAP_SYS_RESOURCE, which a sandboxed host may not have (podman itself runs the runtime with at
# most 32768 processes). /dev/shm as large as a machine's, not podman's 64 MB.
nofile=$(ulimit -Hn); [ "$nofile" = unlimited ] && nofile=1048576
set +e
podman --runtime /usr/sbin/runc run --name "$NAME" --rm --privileged --systemd=false \
  --ulimit nofile="$nofile:$nofile" --ulimit nproc=16384:16384 --shm-size=4g \
  -v "$WORK/src.git:/src.git:ro" -v "$WORK/host:/host:ro" -v "$WORK/inside.sh:/inside.sh:ro" \
  -e COMMIT="$commit" -e LANG=C.UTF-8 \
  --rootfs "$WORK/rootfs" /inside.sh | tee "$WORK/run.log"
rc=${PIPESTATUS[0]}
set -e

figure() { sed -n "s/^fresh-check: step $1 exit [0-9]* in \([0-9]*\) s$/\1/p" "$WORK/run.log"; }
# Vitest's summary lines; its colours off in a non-tty run, stripped anyway.
summary() { sed 's/\x1b\[[0-9;]*m//g' "$WORK/run.log" | grep -E "^ *$1 " | tail -1 | sed 's/^ *//'; }
echo
echo "fresh-check: commit $commit on Debian 12 ($SUITE), base packages $BASE_PACKAGES"
echo "fresh-check: root filesystem ${rootfs_s} s, install.sh $(figure install || true) s, npm test $(figure test || true) s"
echo "fresh-check: $(summary 'Test Files')"
echo "fresh-check: $(summary Tests)"
if [ "$rc" -eq 0 ]; then echo "fresh-check: PASS"; else echo "fresh-check: FAIL (exit $rc; log $LOG)"; fi
exit "$rc"
