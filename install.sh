#!/usr/bin/env bash
# reservoir installer, for a Debian machine, run as root:
#   sudo ./install.sh                 install or upgrade in place, then (re)start reservoird
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

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run me as root: sudo ./install.sh"

uninstall=false purge=false
for arg in "$@"; do
  case "$arg" in
    --uninstall) uninstall=true ;;
    --purge) purge=true ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
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

say "system packages (apt): containernetworking-plugins for the main plugins (bridge, macvlan, ...), a C compiler for the plugin's socket transport"
export DEBIAN_FRONTEND=noninteractive
need=()
for pkg in containernetworking-plugins iproute2 ca-certificates gcc libc6-dev; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need+=("$pkg")
done
command -v npm >/dev/null || need+=(npm)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

say "npm dependencies (Node.js 24 comes from the npm package node@24, bun from the npm package bun)"
cd "$HERE"
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
