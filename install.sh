#!/usr/bin/env bash
# reservoir installer, for a Debian machine, run as root:
#   sudo ./install.sh                 install or upgrade in place, then (re)start reservoird;
#                                     also installs what `npm test` needs (scripts/test-packages.txt)
#   sudo ./install.sh --no-test-deps  ... without the test prerequisites
#   sudo ./install.sh --uninstall     remove binaries and the service; keep leases in STATE_DIR
#   sudo ./install.sh --uninstall --purge   ... and delete STATE_DIR too
# Overrides (environment): CNI_BIN_DIR (/opt/cni/bin), BIN_DIR (/usr/local/bin),
# LIB_DIR (/usr/local/lib/reservoir), STATE_DIR (/var/lib/reservoir), CNI_CONF_DIR (/etc/cni/net.d).
set -euo pipefail

CNI_BIN_DIR=${CNI_BIN_DIR:-/opt/cni/bin}
BIN_DIR=${BIN_DIR:-/usr/local/bin}
LIB_DIR=${LIB_DIR:-/usr/local/lib/reservoir}
STATE_DIR=${STATE_DIR:-/var/lib/reservoir}
CNI_CONF_DIR=${CNI_CONF_DIR:-/etc/cni/net.d}
RUN_DIR=/run/reservoir
SOCKET=$RUN_DIR/reservoir.sock
LOG_DIR=/var/log/reservoir
UNIT=/etc/systemd/system/reservoird.service
SUPERVISOR_PIDFILE=$RUN_DIR/supervisor.pid
HERE=$(cd "$(dirname "$0")" && pwd)
# Debian packages that install itself needs: the main CNI plugins (bridge, macvlan, ...); a C
# compiler for the plugin's socket transport (native/unix-call.c); make, g++ and python3 for
# node-gyp, which npm runs for better-sqlite3 (a no-op where its prebuilt addon loads). The
# packages the tests need are listed in scripts/test-packages.txt, the one place for them.
INSTALL_PACKAGES=(containernetworking-plugins iproute2 ca-certificates gcc libc6-dev make g++ python3)
TEST_PACKAGE_LIST=$HERE/scripts/test-packages.txt
# The Node.js and npm that install the project's npm dependencies (see "npm dependencies" below).
TOOLCHAIN_DIR=$HERE/.toolchain

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run me as root: sudo ./install.sh"

uninstall=false purge=false test_deps=true
for arg in "$@"; do
  case "$arg" in
    --no-test-deps) test_deps=false ;;
    --uninstall) uninstall=true ;;
    --purge) purge=true ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) die "unknown option $arg (see --help)" ;;
  esac
done
$purge && ! $uninstall && die "--purge goes with --uninstall"

has_systemd() { [ -d /run/systemd/system ] && [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ]; }

stop_daemon() {
  if has_systemd && systemctl list-unit-files reservoird.service >/dev/null 2>&1; then
    systemctl stop reservoird.service 2>/dev/null || true
  fi
  if [ -f "$SUPERVISOR_PIDFILE" ]; then
    local pid; pid=$(cat "$SUPERVISOR_PIDFILE")
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$SUPERVISOR_PIDFILE"
  fi
  # A daemon whose supervisor died (or was killed by hand) is stopped too: two daemons must
  # never share the store.
  local strays; strays=$(pgrep -f "^$LIB_DIR/reservoird( |\$)" || true)
  if [ -n "$strays" ]; then
    kill -TERM $strays 2>/dev/null || true
    for _ in $(seq 50); do pgrep -f "^$LIB_DIR/reservoird( |\$)" >/dev/null || break; sleep 0.1; done
    pkill -KILL -f "^$LIB_DIR/reservoird( |\$)" 2>/dev/null || true
  fi
}

if $uninstall; then
  say "stopping reservoird"
  stop_daemon
  if has_systemd && [ -f "$UNIT" ]; then systemctl disable reservoird.service 2>/dev/null || true; rm -f "$UNIT"; systemctl daemon-reload; fi
  say "removing binaries"
  rm -f "$CNI_BIN_DIR/reservoir" "$CNI_BIN_DIR/reservoir_call.node" "$BIN_DIR/reservoird" "$BIN_DIR/reservoirctl"
  rm -rf "$LIB_DIR" "$RUN_DIR"
  if $purge; then say "purging $STATE_DIR and $LOG_DIR"; rm -rf "$STATE_DIR" "$LOG_DIR"; else echo "kept leases in $STATE_DIR (use --uninstall --purge to delete them)"; fi
  exit 0
fi

packages=("${INSTALL_PACKAGES[@]}")
command -v npm >/dev/null || packages+=(npm)
if $test_deps; then
  mapfile -t test_packages < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' "$TEST_PACKAGE_LIST")
  packages+=("${test_packages[@]}")
  say "system packages (apt): ${INSTALL_PACKAGES[*]} for install; ${test_packages[*]} for npm test (skip these with --no-test-deps)"
else
  say "system packages (apt): ${INSTALL_PACKAGES[*]} (test prerequisites skipped: --no-test-deps)"
fi
export DEBIAN_FRONTEND=noninteractive
need=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null | grep -qx installed || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  apt_get() { apt-get -o DPkg::Lock::Timeout=600 "$@"; }
  apt_get update -qq
  apt_get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # A test package that starts a service the tests do not use (etcd-server: an etcd on
  # localhost:2379) has it stopped and disabled when this run installed it (one list, in
  # scripts/test-prereqs.mjs QUIET_SERVICES); node came with npm above.
  ! $test_deps || node "$HERE/scripts/test-prereqs.mjs" --quiet-services "${need[@]}" | sed 's/^npm test: /install.sh: /'
fi

cd "$HERE"
# The npm dependencies are installed by the Node.js the project runs on (the npm package node@24,
# pinned in package-lock.json) and an npm of its age (package.json "packageManager"), not by the
# system's: Debian 12's npm 9.2 on Node 18 skips optional dependencies that need a newer Node,
# such as vitest's native rolldown binding. The system npm only bootstraps those two into
# $TOOLCHAIN_DIR (again only when a pinned version changes); they read the system npm's global
# config (registry, proxy, CA file) as the system npm does.
node_version=$(node -p 'require("./package-lock.json").packages["node_modules/node"].version')
npm_version=$(node -p 'require("./package.json").packageManager.replace(/^npm@/, "")')
npm_globalconfig=$(npm config get globalconfig)
bootstrap() { # dir package version
  local dir=$TOOLCHAIN_DIR/$1
  [ "$(cat "$dir/.installed" 2>/dev/null)" = "$2@$3" ] && return 0
  rm -rf "$dir" && mkdir -p "$dir"
  printf '{"private":true,"dependencies":{"%s":"%s"}}\n' "$2" "$3" > "$dir/package.json"
  npm install --prefix "$dir" --no-audit --no-fund --no-package-lock --loglevel=error >/dev/null
  echo "$2@$3" > "$dir/.installed"
}
say "Node.js $node_version and npm $npm_version to install the npm dependencies with (in $TOOLCHAIN_DIR)"
bootstrap node node "$node_version"
bootstrap npm npm "$npm_version"
export PATH="$TOOLCHAIN_DIR/npm/node_modules/.bin:$TOOLCHAIN_DIR/node/node_modules/.bin:$PATH"
export npm_config_globalconfig=$npm_globalconfig
[ "$(node -v)" = "v$node_version" ] || die "bootstrapped node is $(node -v), not v$node_version"
[ "$(npm -v)" = "$npm_version" ] || die "bootstrapped npm is $(npm -v), not $npm_version"
# node-gyp builds against the headers node@24 ships (include/node): nothing else is downloaded.
npm_config_nodedir=$(node -p 'require("path").dirname(require.resolve(`node-${process.platform}-${process.arch}/package.json`, { paths: [process.argv[1]] }))' "$TOOLCHAIN_DIR/node/node_modules/node")
export npm_config_nodedir

say "npm dependencies (npm ci; Node.js 24 comes from the npm package node@24, bun from the npm package bun)"
npm ci --no-audit --no-fund --loglevel=error

say "build and package the executables: the plugin with bun (bun build --compile), reservoird and reservoirctl on Node 24"
npm run --silent package
PLUGIN_RUNTIME="bun $(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' node_modules/bun/package.json | head -n 1)"

say "installing into $LIB_DIR, $BIN_DIR and $CNI_BIN_DIR"
stop_daemon
install -d -m 0755 "$LIB_DIR" "$CNI_BIN_DIR" "$BIN_DIR" "$CNI_CONF_DIR"
install -d -m 0750 "$STATE_DIR"
install -d -m 0750 "$LOG_DIR"
# Copy then rename: replacing a running executable in place fails (ETXTBSY) or corrupts it.
put() { install -m "$3" "$1" "$2.new.$$" && mv -f "$2.new.$$" "$2"; }
# reservoird and reservoirctl are one executable that acts on the name it is started as.
put build/bin/reservoird "$LIB_DIR/reservoird" 0755
ln -f "$LIB_DIR/reservoird" "$LIB_DIR/reservoirctl.new.$$" && mv -f "$LIB_DIR/reservoirctl.new.$$" "$LIB_DIR/reservoirctl"
put build/bin/better_sqlite3.node "$LIB_DIR/better_sqlite3.node" 0644
# The Kubernetes client, loaded by reservoird from beside itself only with --kubeconfig or in a pod.
put build/bin/kube-client.cjs "$LIB_DIR/kube-client.cjs" 0644
# The etcd client, loaded by reservoird from beside itself only with --etcd-endpoints.
put build/bin/etcd-client.cjs "$LIB_DIR/etcd-client.cjs" 0644
# The plugin loads its socket transport from beside itself: the addon goes in first.
put build/bin/reservoir_call.node "$CNI_BIN_DIR/reservoir_call.node" 0644
put build/bin/reservoir "$CNI_BIN_DIR/reservoir" 0755
ln -sfn "$LIB_DIR/reservoird" "$BIN_DIR/reservoird"
ln -sfn "$LIB_DIR/reservoirctl" "$BIN_DIR/reservoirctl"

DAEMON_ARGS=(--socket "$SOCKET" --state-dir "$STATE_DIR" --cni-conf-dir "$CNI_CONF_DIR")
if has_systemd; then
  say "starting reservoird under systemd"
  cat > "$UNIT" <<EOF
[Unit]
Description=reservoir IPAM daemon (leases for the reservoir CNI plugin)
After=local-fs.target
Before=kubelet.service containerd.service

[Service]
ExecStart=$LIB_DIR/reservoird ${DAEMON_ARGS[*]}
Restart=always
RestartSec=1
RuntimeDirectory=reservoir
RuntimeDirectoryMode=0750
RuntimeDirectoryPreserve=yes
StateDirectory=reservoir
StateDirectoryMode=0750

[Install]
WantedBy=multi-user.target
EOF
  systemctl daemon-reload
  systemctl enable reservoird.service >/dev/null 2>&1
  systemctl restart reservoird.service
  running="systemd unit reservoird.service (systemctl status reservoird; journalctl -u reservoird)"
else
  say "starting reservoird under its own supervisor (systemd is not PID 1 here)"
  install -d -m 0750 "$RUN_DIR"
  cat > "$LIB_DIR/reservoird-supervise" <<EOF
#!/bin/sh
# Keeps reservoird running where systemd does not: restarts it within a second of any exit.
LOG=$LOG_DIR/reservoird.log
child=
trap 'kill -TERM "\$child" 2>/dev/null; wait "\$child"; exit 0' TERM INT
while :; do
  "$LIB_DIR/reservoird" ${DAEMON_ARGS[*]} >>"\$LOG" 2>&1 &
  child=\$!
  wait "\$child"
  echo "\$(date -Is) reservoird exited (status \$?); restarting in 1s" >>"\$LOG"
  sleep 1
done
EOF
  chmod 0755 "$LIB_DIR/reservoird-supervise"
  setsid "$LIB_DIR/reservoird-supervise" </dev/null >>"$LOG_DIR/reservoird.log" 2>&1 &
  echo $! > "$SUPERVISOR_PIDFILE"
  running="supervisor pid $(cat "$SUPERVISOR_PIDFILE") ($SUPERVISOR_PIDFILE), log $LOG_DIR/reservoird.log"
fi

say "waiting for reservoird to answer on $SOCKET"
for _ in $(seq 100); do
  if "$BIN_DIR/reservoirctl" --socket "$SOCKET" health >/dev/null 2>&1; then ready=true; break; fi
  sleep 0.1
done
if [ "${ready:-false}" != true ]; then
  [ -f "$LOG_DIR/reservoird.log" ] && tail -n 20 "$LOG_DIR/reservoird.log" >&2
  die "reservoird did not answer within 10 s; see the log above (or journalctl -u reservoird)"
fi

cat <<EOF

reservoir is installed and running.
  plugin     $CNI_BIN_DIR/reservoir   (runtime: $PLUGIN_RUNTIME, compiled in; transport reservoir_call.node beside it)
  daemon     $BIN_DIR/reservoird -> $running
  CLI        $BIN_DIR/reservoirctl
  leases     $STATE_DIR/reservoir.db      socket $SOCKET

$("$BIN_DIR/reservoirctl" --socket "$SOCKET" health)

Try it: save this as $CNI_CONF_DIR/10-demo.conf (reservoird learns it at once) ...
{
  "cniVersion": "1.0.0", "name": "demo", "type": "bridge", "bridge": "demo0", "isGateway": true,
  "ipam": {
    "type": "reservoir",
    "ranges": [[{ "subnet": "10.250.0.0/24" }]],
    "reserved": [{ "entry": "10.250.0.200-10.250.0.209", "group": "db" }]
  }
}
... then look at the reservations, attach a namespace that asks for group "db", and look again:
  reservoirctl reserved list demo
  ip netns add demo1
  CNI_COMMAND=ADD CNI_CONTAINERID=demo1 CNI_NETNS=/var/run/netns/demo1 CNI_IFNAME=eth0 \\
    CNI_ARGS="IgnoreUnknown=1;RESERVOIR_GROUP=db" CNI_PATH=$CNI_BIN_DIR:/usr/lib/cni \\
    /usr/lib/cni/bridge < $CNI_CONF_DIR/10-demo.conf
  reservoirctl leases demo
(with cnitool: CNI_PATH=$CNI_BIN_DIR:/usr/lib/cni cnitool add demo /var/run/netns/demo1)
EOF
