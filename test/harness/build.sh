#!/bin/sh
# Build the cnirun e2e harness (libcni-based mini runtime) into test/harness/bin/cnirun.
# Idempotent: skips the build when the binary is newer than cnirun.go and this script.
# Requires Debian packages: golang-go golang-github-appc-cni-dev
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
SRC="$HERE/cnirun.go"
OUT="$HERE/bin/cnirun"
GOPATH_DIR=/usr/share/gocode
LIBCNI="$GOPATH_DIR/src/github.com/containernetworking/cni/libcni"

missing=""
if ! command -v go >/dev/null 2>&1; then
  missing="go toolchain (go not in PATH)"
fi
if [ ! -d "$LIBCNI" ]; then
  missing="${missing:+$missing; }libcni source ($LIBCNI)"
fi
if [ -n "$missing" ]; then
  echo "build.sh: missing $missing" >&2
  echo "build.sh: install with: apt-get install golang-go golang-github-appc-cni-dev" >&2
  exit 1
fi

if [ "${FORCE:-0}" != 1 ] && [ -x "$OUT" ] && [ "$OUT" -nt "$SRC" ] && [ "$OUT" -nt "$0" ]; then
  echo "build.sh: $OUT is up to date"
  exit 0
fi

mkdir -p "$HERE/bin"
# GOCACHE must be writable; HOME may be unset/read-only in CI.
: "${GOCACHE:=${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/go-build}"
export GOCACHE
cd "$HERE"
GO111MODULE=off GOPATH="$GOPATH_DIR" GOFLAGS= CGO_ENABLED=0 \
  go build -o "$OUT.tmp.$$" ./cnirun.go
# atomic rename: concurrent builds (parallel test workers) never see a partial binary
mv -f "$OUT.tmp.$$" "$OUT"
echo "build.sh: built $OUT"
