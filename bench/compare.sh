#!/usr/bin/env bash
# Side by side: a 3-member etcd 3.4 cluster (Debian's etcd-server) and a
# 3-member ganglion cluster on this machine, same flags, same kind of data
# folder, both running for the whole comparison. Every workload runs against
# etcd, then ganglion, and the rounds repeat (A B A B ...); the table shows
# the median of the rounds and the ratio ganglion/etcd. Then each cluster is
# loaded with LOAD_KEYS keys and its members' RSS and disk are compared.
#
#   bench/compare.sh [ROUNDS=3] [DURATION=10] [LOAD_KEYS=1000000] [WORKLOADS="..."]
#
# Environment: GANGLION_BIN (folder with ganglion and ganglion-bench; default
# build/bin), ETCD (default /usr/bin/etcd), ROUNDS, DURATION (seconds per
# run), LOAD_KEYS (0 skips the load phase), WORKLOADS (names from the list
# below). Writes bench/results/compare-<time>.md and the raw JSON next to it.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${GANGLION_BIN:-$ROOT/build/bin}
ETCD=${ETCD:-/usr/bin/etcd}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
LOAD_KEYS=${LOAD_KEYS:-1000000}
WORKLOADS=${WORKLOADS:-"put-1 put-50 put-500 range-l-500 range-s-500 txn-100 watch-10k"}
STAMP=$(date -u +%Y%m%d-%H%M%S)
OUT=$ROOT/bench/results/compare-$STAMP
WORK=$(mktemp -d /tmp/ganglion-compare.XXXXXX)
mkdir -p "$OUT"

for f in "$BIN/ganglion" "$BIN/ganglion-bench" "$ETCD" /usr/bin/etcdctl; do
  [[ -x $f ]] || { echo "compare.sh: missing $f (build with scripts/build.sh release)" >&2; exit 1; }
done

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# start_cluster NAME BINARY BASE_PORT: members m1..m3 on BASE+0/+10/+20
# (client), +1/+11/+21 (peer); sets CLUSTER_EP to the client endpoints. (Not
# run in a subshell: it records the member pids.) The ports are below Linux's
# ephemeral range (32768-60999): a port in it can be taken at any moment as
# the local end of some outgoing connection (the first cluster's own peers),
# and the member that wanted to listen there fails to start.
declare -A MEMBER_PIDS
start_cluster() {
  local name=$1 binary=$2 base=$3 initial="" endpoints=""
  for i in 1 2 3; do
    local peer=$((base + (i - 1) * 10 + 1))
    initial+="${initial:+,}m$i=http://127.0.0.1:$peer"
  done
  for i in 1 2 3; do
    local client=$((base + (i - 1) * 10)) peer=$((base + (i - 1) * 10 + 1))
    local metrics=$((base + (i - 1) * 10 + 2))
    mkdir -p "$WORK/$name"
    "$binary" --name "m$i" --data-dir "$WORK/$name/m$i" \
      --listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client" \
      --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
      --listen-metrics-urls "http://127.0.0.1:$metrics" \
      --initial-cluster "$initial" --initial-cluster-state new --initial-cluster-token "compare-$name" \
      >"$WORK/$name/m$i.log" 2>&1 &
    PIDS+=($!)
    MEMBER_PIDS[$name.$i]=$!
    endpoints+="${endpoints:+,}127.0.0.1:$client"
  done
  for _ in $(seq 100); do
    if ETCDCTL_API=3 etcdctl --endpoints="$endpoints" --command-timeout=2s endpoint health >/dev/null 2>&1; then
      CLUSTER_EP=$endpoints
      return 0
    fi
    sleep 0.3
  done
  echo "compare.sh: $name did not become healthy; logs in $WORK/$name" >&2
  tail -n 5 "$WORK/$name"/m*.log >&2
  return 1
}

# member_kib NAME FIELD: the sum over the three members of /proc/<pid>/status FIELD.
member_kib() {
  local total=0
  for i in 1 2 3; do
    local v
    v=$(awk -v f="$2:" '$1 == f {print $2}' "/proc/${MEMBER_PIDS[$1.$i]}/status")
    total=$((total + v))
  done
  echo "$total"
}

# member_cpu_ticks NAME: user + system clock ticks the three members have
# used so far (/proc/<pid>/stat fields 14 and 15).
member_cpu_ticks() {
  local name=$1 total=0
  for i in 1 2 3; do
    local stat fields
    stat=$(<"/proc/${MEMBER_PIDS[$name.$i]}/stat")
    read -r -a fields <<<"${stat##*) }"  # from field 3 on: the name may hold spaces
    total=$((total + fields[11] + fields[12]))
  done
  echo "$total"
}

# member_context_switches NAME: context switches (voluntary and not) of every
# thread of the three members so far (/proc/<pid>/task/*/status). A thread
# that exits takes its count with it; the members' threads live as long as
# the member.
member_context_switches() {
  local name=$1
  cat /proc/"${MEMBER_PIDS[$name.1]}"/task/*/status /proc/"${MEMBER_PIDS[$name.2]}"/task/*/status \
    /proc/"${MEMBER_PIDS[$name.3]}"/task/*/status 2>/dev/null |
    awk '$1 == "voluntary_ctxt_switches:" || $1 == "nonvoluntary_ctxt_switches:" { t += $2 }
         END { printf "%d\n", t }'
}

workload_args() {
  case $1 in
    put-1) echo "--mode=put --clients=1 --connections=1" ;;
    put-50) echo "--mode=put --clients=50 --connections=50" ;;
    put-500) echo "--mode=put --clients=500 --connections=100" ;;
    range-l-500) echo "--mode=range --consistency=l --clients=500 --connections=100 --keyspace=10000" ;;
    range-s-500) echo "--mode=range --consistency=s --clients=500 --connections=100 --keyspace=10000" ;;
    txn-100) echo "--mode=txn --clients=100 --connections=100 --keyspace=10000" ;;
    watch-10k) echo "--mode=watch --streams=1000 --watchers=10 --watch-keys=1000 --rate=1000 --connections=1000" ;;
    *) echo "compare.sh: unknown workload $1" >&2; return 1 ;;
  esac
}

echo "starting etcd and ganglion clusters in $WORK" >&2
start_cluster etcd "$ETCD" 21000
ETCD_EP=$CLUSTER_EP
start_cluster ganglion "$BIN/ganglion" 22000
GANGLION_EP=$CLUSTER_EP

# The same member leads in both clusters, so a one-connection client (put-1)
# talks to the leader in both, as etcd's benchmark guide measures it.
for sys in etcd ganglion; do
  ep=ETCD_EP; [[ $sys == ganglion ]] && ep=GANGLION_EP
  first=${!ep%%,*}
  id=$(ETCDCTL_API=3 etcdctl --endpoints="$first" endpoint status -w json |
    python3 -c 'import json,sys; print(format(json.load(sys.stdin)[0]["Status"]["header"]["member_id"], "x"))')
  ETCDCTL_API=3 etcdctl --endpoints="${!ep}" move-leader "$id" >/dev/null 2>&1 || true
done

# The range workloads read keys that exist.
for sys in etcd ganglion; do
  ep=ETCD_EP; [[ $sys == ganglion ]] && ep=GANGLION_EP
  "$BIN/ganglion-bench" --endpoints="${!ep}" --mode=load --keyspace=10000 --clients=100 >/dev/null 2>&1
done

for round in $(seq "$ROUNDS"); do
  for w in $WORKLOADS; do
    for sys in etcd ganglion; do
      ep=ETCD_EP; [[ $sys == ganglion ]] && ep=GANGLION_EP
      echo "round $round: $w on $sys" >&2
      ticks_before=$(member_cpu_ticks "$sys")
      switches_before=$(member_context_switches "$sys")
      # shellcheck disable=SC2046
      "$BIN/ganglion-bench" --endpoints="${!ep}" $(workload_args "$w") --duration="$DURATION" \
        --json="$OUT/$sys-$w-$round.json" >"$OUT/$sys-$w-$round.txt" 2>&1 || {
        echo "compare.sh: $w on $sys failed:" >&2
        tail -5 "$OUT/$sys-$w-$round.txt" >&2
      }
      # The CPU the members spent on the run, and how often their threads
      # were switched out (the load generator's are not in it).
      awk -v d=$(($(member_cpu_ticks "$sys") - ticks_before)) -v hz="$(getconf CLK_TCK)" \
        -v cs=$(($(member_context_switches "$sys") - switches_before)) \
        'BEGIN { printf "{\"member_cpu_seconds\": %.3f, \"member_context_switches\": %d}\n", d / hz, cs }' \
        >"$OUT/$sys-$w-$round.cpu.json"
    done
  done
done

for sys in etcd ganglion; do
  echo "{\"vmhwm_kib\": $(member_kib "$sys" VmHWM)}" >"$OUT/$sys-peak.json"
done

if [[ $LOAD_KEYS -gt 0 ]]; then
  for sys in etcd ganglion; do
    ep=ETCD_EP; [[ $sys == ganglion ]] && ep=GANGLION_EP
    echo "loading $LOAD_KEYS keys into $sys" >&2
    "$BIN/ganglion-bench" --endpoints="${!ep}" --mode=load --keyspace="$LOAD_KEYS" --key-size=8 \
      --value-size=256 --clients=100 --json="$OUT/$sys-load.json" >"$OUT/$sys-load.txt" 2>&1
    sleep 5  # let background compaction settle a little
    echo "{\"rss_kib\": $(member_kib "$sys" VmRSS), \"disk_bytes\": $(du -sb "$WORK/$sys" | cut -f1)}" \
      >"$OUT/$sys-loaded.json"
  done
fi

python3 "$ROOT/bench/compare_table.py" "$OUT" "$ROUNDS" | tee "$OUT.md"
echo "table: $OUT.md; raw results: $OUT/" >&2
