#!/usr/bin/env bash
# A local three-member Ganglion cluster on loopback, for trying things by hand.
#   scripts/cluster.sh up          build if needed, start, wait until healthy
#   scripts/cluster.sh down        SIGTERM, then SIGKILL after a grace period
#   scripts/cluster.sh status      pids + `etcdctl endpoint status/health`
#   scripts/cluster.sh logs [name] tail of one member's log (or all)
# Members m1 m2 m3: client 2379/22379/32379, peer 2380/22380/32380,
# metrics 2381/22381/32381, Kubernetes-shaped API 6443/26443/36443 (ganglion
# only; `up` writes <data>/kubeconfig with one context per member), and two
# node agents node-1/node-2 (ganglion only; logs served on 10250/10251; `down`
# also stops the containers they ran). Data, logs (<data>/<name>.log) and pid files
# (<data>/<name>.pid) live under ./data or $GANGLION_DATA.
# GANGLION_BIN overrides the server binary; the flags are etcd 3.4's, so
# GANGLION_BIN=/usr/bin/etcd runs the same cluster with real etcd.
# `up` and `down` are idempotent: `up` starts only members that are not
# running, `down` with nothing running does nothing.
set -euo pipefail

invoked_from=$(pwd)
repo=$(cd "$(dirname "$0")/.." && pwd)

data=${GANGLION_DATA:-$repo/data}
case "$data" in /*) ;; *) data="$invoked_from/$data" ;; esac
etcdctl_bin=${ETCDCTL:-/usr/bin/etcdctl}
names=(m1 m2 m3)
client_ports=(2379 22379 32379)
peer_ports=(2380 22380 32380)
metrics_ports=(2381 22381 32381)
api_ports=(6443 26443 36443)
token=ganglion-local
# Deadlines, in seconds.
healthy_deadline_s=${GANGLION_UP_TIMEOUT:-60}
stop_grace_s=10

endpoints() {
  local e=() i
  for i in "${!names[@]}"; do e+=("127.0.0.1:${client_ports[$i]}"); done
  (IFS=,; echo "${e[*]}")
}

initial_cluster() {
  local c=() i
  for i in "${!names[@]}"; do c+=("${names[$i]}=http://127.0.0.1:${peer_ports[$i]}"); done
  (IFS=,; echo "${c[*]}")
}

ctl() { ETCDCTL_API=3 "$etcdctl_bin" "$@"; }

# The pid of member $1 if it is running, else nothing. A pid file can outlive
# its process and the pid be reused, so the command line must name the member.
member_pid() {
  local pidfile="$data/$1.pid" pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 0
  if tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "--name $1 "; then echo "$pid"; fi
}

port_in_use() {
  if command -v ss >/dev/null 2>&1; then
    [ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
  fi
}

resolve_binary() {
  if [ -n "${GANGLION_BIN:-}" ]; then
    bin=$GANGLION_BIN
  else
    bin=$repo/build/bin/ganglion
    # ninja is incremental: this is quick when nothing changed.
    "$repo/scripts/install-deps.sh"
    if ! "$repo/scripts/build.sh" release ganglion; then
      echo "cluster: could not build the ganglion binary." >&2
      echo "cluster: to try the same cluster with etcd: GANGLION_BIN=/usr/bin/etcd $0 up" >&2
      exit 1
    fi
  fi
  if [ ! -x "$bin" ]; then
    echo "cluster: server binary $bin is missing or not executable" >&2
    exit 1
  fi
}

start_member() {
  local i=$1 name=${names[$i]}
  local client="http://127.0.0.1:${client_ports[$i]}" peer="http://127.0.0.1:${peer_ports[$i]}"
  echo "==== cluster.sh: starting $name ($bin) at $(date -u +%FT%TZ)" >>"$data/$name.log"
  local api_flags=()
  if serves_api; then api_flags=(--listen-api-urls "http://127.0.0.1:${api_ports[$i]}"); fi
  # setsid: the member outlives this shell and the terminal; its own session
  # also keeps a Ctrl-C in the terminal from reaching it.
  setsid "$bin" \
    --name "$name" \
    --data-dir "$data/$name" \
    --listen-client-urls "$client" --advertise-client-urls "$client" \
    --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
    --listen-metrics-urls "http://127.0.0.1:${metrics_ports[$i]}" \
    --initial-cluster "$(initial_cluster)" \
    --initial-cluster-state new \
    --initial-cluster-token "$token" \
    --heartbeat-interval 100 --election-timeout 1000 \
    --log-level info \
    "${api_flags[@]}" \
    </dev/null >>"$data/$name.log" 2>&1 &
  echo $! >"$data/$name.pid"
}

# Real etcd has no orchestrator API; only ganglion gets the flag.
serves_api() { [ "$(basename "${bin:-${GANGLION_BIN:-ganglion}}")" != etcd ]; }

# A kubeconfig with one context per member (m1 current): kubectl against any member.
write_kubeconfig() {
  local f="$data/kubeconfig" i
  {
    echo "apiVersion: v1"
    echo "kind: Config"
    echo "clusters:"
    for i in "${!names[@]}"; do
      echo "- name: ${names[$i]}"
      echo "  cluster: {server: \"http://127.0.0.1:${api_ports[$i]}\"}"
    done
    echo "contexts:"
    for i in "${!names[@]}"; do
      echo "- name: ${names[$i]}"
      echo "  context: {cluster: ${names[$i]}, user: local, namespace: default}"
    done
    echo "users:"
    echo "- name: local"
    echo "  user: {}"
    echo "current-context: ${names[0]}"
  } >"$f"
}

# Beside the members: two node agents (ganglion-agent), node-1 and node-2,
# serving container logs on 10250/10251, with their pods' state, volumes and
# logs under <data>/agent-<node>/ and their own log in <data>/<node>.log.
# Only with ganglion (they need the orchestrator API's object layout).
agent_names=(node-1 node-2)
agent_ports=(10250 10251)

agent_pid() {
  local pidfile="$data/$1.pid" pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 0
  if tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "--name $1 "; then echo "$pid"; fi
}

start_extras() {
  serves_api || return 0
  local agent_bin=${GANGLION_AGENT_BIN:-$repo/build/bin/ganglion-agent} i name
  if [ -z "${GANGLION_AGENT_BIN:-}" ] && ! "$repo/scripts/build.sh" release ganglion-agent >/dev/null; then
    echo "cluster: could not build ganglion-agent; no node agents started" >&2
    return 0
  fi
  for i in "${!agent_names[@]}"; do
    name=${agent_names[$i]}
    [ -n "$(agent_pid "$name")" ] && continue
    echo "==== cluster.sh: starting agent $name at $(date -u +%FT%TZ)" >>"$data/$name.log"
    setsid "$agent_bin" --name "$name" --endpoints "$(endpoints)" \
      --root-dir "$data/agent-$name" --listen "127.0.0.1:${agent_ports[$i]}" \
      </dev/null >>"$data/$name.log" 2>&1 &
    echo $! >"$data/$name.pid"
  done
  echo "cluster: node agents ${agent_names[*]} started (logs: $data/node-*.log)"
}

# Stops the agents, then the containers they ran (an agent's own stop leaves
# them running for its next start to adopt; the cluster going away takes them).
stop_extras() {
  local name pid
  for name in "${agent_names[@]}"; do
    pid=$(agent_pid "$name")
    [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null || true
  done
  local deadline=$((SECONDS + stop_grace_s))
  for name in "${agent_names[@]}"; do
    while [ -n "$(agent_pid "$name")" ] && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
    pid=$(agent_pid "$name")
    [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
    rm -f "$data/$name.pid"
  done
  # Each container's supervisor leads its process group and names its log
  # file under <data>/agent-<node>/ on its command line.
  local p
  for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    if tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -q -- "--shim $data/agent-"; then
      kill -KILL -- "-$pid" 2>/dev/null || true
    fi
  done
}

cmd_up() {
  mkdir -p "$data"
  local to_start=() i name p
  for i in "${!names[@]}"; do
    name=${names[$i]}
    if [ -n "$(member_pid "$name")" ]; then continue; fi
    for p in "${client_ports[$i]}" "${peer_ports[$i]}" "${metrics_ports[$i]}" "${api_ports[$i]}"; do
      if port_in_use "$p"; then
        echo "cluster: port $p (for $name) is already in use by another process." >&2
        echo "cluster: is a system etcd running? (systemctl stop etcd) or: ss -ltnp 'sport = :$p'" >&2
        exit 1
      fi
    done
    to_start+=("$i")
  done
  if [ ${#to_start[@]} -eq 0 ]; then
    echo "cluster: already running (pids $(for n in "${names[@]}"; do member_pid "$n"; done | xargs))"
  else
    resolve_binary
    for i in "${to_start[@]}"; do start_member "$i"; done
  fi

  local deadline=$((SECONDS + healthy_deadline_s)) healthy
  while true; do
    healthy=0
    for i in "${!names[@]}"; do
      if ctl --endpoints="127.0.0.1:${client_ports[$i]}" --dial-timeout=1s \
        --command-timeout=2s endpoint health >/dev/null 2>&1; then
        healthy=$((healthy + 1))
      elif [ -z "$(member_pid "${names[$i]}")" ]; then
        echo "cluster: ${names[$i]} exited; last lines of $data/${names[$i]}.log:" >&2
        tail -n 30 "$data/${names[$i]}.log" >&2
        exit 1
      fi
    done
    [ "$healthy" -eq ${#names[@]} ] && break
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "cluster: not healthy after ${healthy_deadline_s}s ($healthy of ${#names[@]} members)." >&2
      for name in "${names[@]}"; do
        echo "---- last lines of $data/$name.log" >&2
        tail -n 20 "$data/$name.log" >&2
      done
      echo "cluster: members left running for inspection; stop them with: $0 down" >&2
      exit 1
    fi
    sleep 0.5
  done
  start_extras
  local kube_hint=""
  if [ -z "${GANGLION_BIN:-}" ] || serves_api; then
    write_kubeconfig
    kube_hint="  export KUBECONFIG=$data/kubeconfig
  kubectl get namespaces; kubectl apply -f <manifest>; kubectl get pods -w
  (contexts m1 m2 m3: kubectl --context m2 ... talks to the second member)
"
  fi

  cat <<EOF
cluster: healthy. Members m1 m2 m3, data and logs in $data
  endpoints: $(endpoints)
Try:
  export ETCDCTL_API=3 ETCDCTL_ENDPOINTS=$(endpoints)
  etcdctl put foo bar && etcdctl get foo -w json
  etcdctl member list -w table
  etcdctl endpoint status -w table
  etcdctl watch foo            # then put foo from another shell
$kube_hint  $0 status | logs m1 | down
EOF
  if [ -n "$kube_hint" ]; then echo "export KUBECONFIG=$data/kubeconfig"; fi
}

cmd_down() {
  stop_extras
  local name pid pids=() stopped=0
  for name in "${names[@]}"; do
    pid=$(member_pid "$name")
    if [ -n "$pid" ]; then
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$name:$pid")
    fi
  done
  local deadline=$((SECONDS + stop_grace_s)) entry
  for entry in "${pids[@]}"; do
    name=${entry%%:*}
    pid=${entry#*:}
    while [ -n "$(member_pid "$name")" ] && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
    if [ -n "$(member_pid "$name")" ]; then
      echo "cluster: $name (pid $pid) ignored SIGTERM for ${stop_grace_s}s; SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
    stopped=$((stopped + 1))
  done
  for name in "${names[@]}"; do rm -f "$data/$name.pid"; done
  if [ "$stopped" -eq 0 ]; then echo "cluster: nothing running"; else echo "cluster: stopped $stopped member(s)"; fi
}

cmd_status() {
  local name pid running=0
  for name in "${names[@]}"; do
    pid=$(member_pid "$name")
    if [ -n "$pid" ]; then
      echo "$name: running, pid $pid"
      running=$((running + 1))
    else
      echo "$name: not running"
    fi
  done
  [ "$running" -eq 0 ] && return 0
  ctl --endpoints="$(endpoints)" --dial-timeout=1s --command-timeout=3s endpoint status -w table || true
  ctl --endpoints="$(endpoints)" --dial-timeout=1s --command-timeout=3s endpoint health 2>&1 || true
}

cmd_logs() {
  local lines=${LOG_LINES:-50} name
  if [ $# -gt 0 ]; then
    tail -n "$lines" "$data/$1.log"
  else
    for name in "${names[@]}"; do
      echo "==> $data/$name.log <=="
      tail -n "$lines" "$data/$name.log" 2>/dev/null || echo "(no log)"
    done
  fi
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  logs) shift; cmd_logs "$@" ;;
  *) echo "usage: scripts/cluster.sh up|down|status|logs [name]" >&2; exit 2 ;;
esac
