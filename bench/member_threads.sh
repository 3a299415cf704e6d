#!/usr/bin/env bash
# Where the members' CPU and context switches go, per kind of thread: runs
# ganglion-bench against a running cluster and, over a window in the middle
# of the run, counts each thread's context switches and CPU time with
# `perf stat --per-thread`. Threads of the same name are summed over the
# members and divided by the calls answered in the window.
#
#   bench/member_threads.sh PID[,PID...] -- ganglion-bench arguments...
#
# Example, one client's puts to the leader of a local cluster:
#   bench/member_threads.sh "$(pgrep -d, -f 'ganglion --name')" -- \
#     --endpoints=127.0.0.1:2379 --mode=put --clients=1 --connections=1
#
# Environment: GANGLION_BIN (folder with ganglion-bench; default build/bin),
# DURATION (seconds of load, default 10; the window is DURATION - 4 seconds,
# from second 2 on). Needs perf (Debian linux-perf).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${GANGLION_BIN:-$ROOT/build/bin}
DURATION=${DURATION:-10}
if [[ $# -lt 2 || $2 != "--" ]]; then
  echo "usage: $0 PID[,PID...] -- ganglion-bench arguments..." >&2
  exit 2
fi
PIDS=$1
shift 2
if ((DURATION < 6)); then
  echo "member_threads.sh: DURATION must be at least 6 seconds" >&2
  exit 2
fi
command -v perf >/dev/null || { echo "member_threads.sh: perf is not installed" >&2; exit 1; }

WORK=$(mktemp -d /tmp/member-threads.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
WINDOW=$((DURATION - 4))

"$BIN/ganglion-bench" "$@" --duration="$DURATION" --json="$WORK/bench.json" >"$WORK/bench.txt" 2>&1 &
BENCH=$!
sleep 2
perf stat --per-thread -e context-switches,task-clock -p "$PIDS" -o "$WORK/perf.txt" -- sleep "$WINDOW"
wait "$BENCH" || { echo "member_threads.sh: ganglion-bench failed:" >&2; tail -5 "$WORK/bench.txt" >&2; exit 1; }

python3 - "$WORK/bench.json" "$WORK/perf.txt" "$WINDOW" <<'EOF'
import collections
import json
import re
import sys

bench, perf, window = sys.argv[1], sys.argv[2], float(sys.argv[3])
calls = window * sum(c["per_second"] for c in json.load(open(bench))["report"]["calls"].values())
if calls <= 0:
    sys.exit("member_threads.sh: no calls were answered")
switches, cpu_ms = collections.Counter(), collections.Counter()
for line in open(perf):
    # "  raft-loop-27592    17163    context-switches  ..." (name-tid, value, event)
    m = re.match(r"\s*(.+)-\d+\s+([\d,.]+)\s+(context-switches|msec task-clock)", line)
    if not m:
        continue
    value = float(m.group(2).replace(",", ""))
    (switches if m.group(3) == "context-switches" else cpu_ms)[m.group(1)] += value
print(f"{calls / window:,.0f} calls/s; per call answered, summed over the members:")
print(f"{'thread':<18} {'switches':>9} {'CPU µs':>9}")
for name in sorted(set(switches) | set(cpu_ms), key=lambda n: -cpu_ms[n]):
    if switches[name] / calls < 0.005 and cpu_ms[name] * 1e3 / calls < 0.05:
        continue
    print(f"{name:<18} {switches[name] / calls:>9.2f} {cpu_ms[name] * 1e3 / calls:>9.1f}")
print(f"{'all':<18} {sum(switches.values()) / calls:>9.2f} {sum(cpu_ms.values()) * 1e3 / calls:>9.1f}")
EOF
