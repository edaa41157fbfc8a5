#!/usr/bin/env bash
# Three omnigraph-cloud nodes on one machine, sharing one file:// root
# (deploy/local/README.md).
#
#   deploy/local/cluster.sh start     build if needed, start node-1..3, wait until ready
#   deploy/local/cluster.sh status    each node's readiness and its view of the members
#   deploy/local/cluster.sh stop      SIGTERM each node this script started, wait for exit
#
# State (data, logs, PID files, the cluster secret) lives in OMNIGRAPH_CLUSTER_DIR, by
# default ./omnigraph-cluster. OMNIGRAPH_NODE_BIN names a built binary to use instead of
# building one.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
state="${OMNIGRAPH_CLUSTER_DIR:-$PWD/omnigraph-cluster}"
nodes=(1 2 3)

binary() {
  if [ -n "${OMNIGRAPH_NODE_BIN:-}" ]; then
    echo "$OMNIGRAPH_NODE_BIN"
    return
  fi
  # shellcheck source=/dev/null  # scripts/env.sh of this repository
  source "$repo/scripts/env.sh" >&2
  cargo build --locked --manifest-path "$repo/Cargo.toml" -p omnigraph-cloud >&2
  echo "$CARGO_TARGET_DIR/debug/omnigraph-cloud"
}

running() {
  local pid_file="$state/node-$1.pid"
  [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null
}

ready() {
  curl -fsS "http://127.0.0.1:808$1/readyz" >/dev/null 2>&1
}

start() {
  local bin
  bin="$(binary)"
  mkdir -p "$state"
  if [ ! -s "$state/cluster-secret" ]; then
    (umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$state/cluster-secret")
  fi
  for i in "${nodes[@]}"; do
    if running "$i"; then
      echo "node-$i already running (pid $(cat "$state/node-$i.pid"))"
      continue
    fi
    (cd "$state" && exec "$bin" serve --config "$here/node-$i.toml" >>"node-$i.log" 2>&1) &
    echo $! >"$state/node-$i.pid"
    echo "node-$i started (pid $!), http://127.0.0.1:808$i, log $state/node-$i.log"
  done
  for i in "${nodes[@]}"; do
    for _ in $(seq 1 300); do
      ready "$i" && break
      if ! running "$i"; then
        echo "node-$i exited; the end of its log:" >&2
        tail -n 20 "$state/node-$i.log" >&2
        exit 1
      fi
      sleep 0.1
    done
    ready "$i" || { echo "node-$i is not ready after 30 s" >&2; exit 1; }
  done
  echo "ready: http://127.0.0.1:8081, :8082 and :8083 serve the same graphs"
}

status() {
  for i in "${nodes[@]}"; do
    if running "$i"; then
      printf 'node-%s pid %s: ' "$i" "$(cat "$state/node-$i.pid")"
      curl -sS "http://127.0.0.1:808$i/readyz" || true
      echo
    else
      echo "node-$i: not running"
    fi
  done
}

stop() {
  for i in "${nodes[@]}"; do
    if running "$i"; then
      kill -TERM "$(cat "$state/node-$i.pid")"
    fi
  done
  for i in "${nodes[@]}"; do
    for _ in $(seq 1 400); do
      running "$i" || break
      sleep 0.1
    done
    if running "$i"; then
      echo "node-$i did not stop within 40 s" >&2
      exit 1
    fi
    rm -f "$state/node-$i.pid"
    echo "node-$i stopped"
  done
}

case "${1:-}" in
  start) start ;;
  status) status ;;
  stop) stop ;;
  *)
    echo "usage: $0 start|status|stop" >&2
    exit 2
    ;;
esac
