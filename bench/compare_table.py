#!/usr/bin/env python3
"""Reads the JSON that bench/compare.sh wrote and prints the comparison table:
per workload and figure (with the members' CPU and context switches per
call), etcd's and ganglion's median over the rounds and the ratio
ganglion/etcd, then peak RSS and the loaded data set."""
import json
import os
import statistics
import sys


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def figures(doc, cpu=None):
    """The figures of one run: (name, value, unit, higher_is_better). `cpu` is
    the members' CPU during the run, if compare.sh measured it."""
    out = []
    if doc is None:
        return out
    if doc.get("mode") == "watch":
        d = doc["delivery"]
        out.append(("delivery p50", d["latency"]["p50_us"] / 1e3, "ms", False))
        out.append(("delivery p99", d["latency"]["p99_us"] / 1e3, "ms", False))
        out.append(("delivered %", 100.0 * d["delivered"] / max(1, d["expected"]), "%", True))
        return out
    for kind, c in sorted(doc["report"]["calls"].items()):
        if kind.endswith("-conflict"):
            continue
        out.append((kind + " throughput", c["per_second"], "/s", True))
        out.append((kind + " p50", c["latency"]["p50_us"] / 1e3, "ms", False))
        out.append((kind + " p99", c["latency"]["p99_us"] / 1e3, "ms", False))
        if c["failed"]:
            out.append((kind + " failed", c["failed"], "", False))
    # Per call answered, conflicts included: they cost the members as much.
    # Not for watch runs, whose CPU includes creating the watchers.
    calls = sum(c["ok"] for c in doc["report"]["calls"].values())
    if cpu is not None and calls > 0:
        out.append(("member CPU per call", cpu["member_cpu_seconds"] * 1e6 / calls, "µs", False))
        if "member_context_switches" in cpu:
            out.append(("member context switches per call",
                        cpu["member_context_switches"] / calls, "", False))
    return out


def main():
    out_dir, rounds = sys.argv[1], int(sys.argv[2])
    files = os.listdir(out_dir)
    workloads = []
    for f in sorted(files):
        parts = f[:-5].split("-") if f.endswith(".json") else []
        if len(parts) >= 3 and parts[0] in ("etcd", "ganglion") and parts[-1].isdigit():
            w = "-".join(parts[1:-1])
            if w not in workloads:
                workloads.append(w)
    print("| workload | figure | etcd 3.4 | ganglion | ganglion/etcd |")
    print("|---|---|---|---|---|")
    for w in workloads:
        values = {}  # (figure) -> {system: [values]}
        units = {}
        for sys_name in ("etcd", "ganglion"):
            for r in range(1, rounds + 1):
                run = os.path.join(out_dir, f"{sys_name}-{w}-{r}")
                for name, v, unit, _ in figures(load(run + ".json"), load(run + ".cpu.json")):
                    values.setdefault(name, {}).setdefault(sys_name, []).append(v)
                    units[name] = unit
        for name, by_sys in values.items():
            e = statistics.median(by_sys["etcd"]) if by_sys.get("etcd") else None
            g = statistics.median(by_sys["ganglion"]) if by_sys.get("ganglion") else None
            ratio = f"{g / e:.2f}x" if e and g is not None else "-"
            fmt = lambda x: "-" if x is None else f"{x:,.1f} {units[name]}".strip()
            print(f"| {w} | {name} | {fmt(e)} | {fmt(g)} | {ratio} |")
    peak = {s: load(os.path.join(out_dir, f"{s}-peak.json")) for s in ("etcd", "ganglion")}
    if all(peak.values()):
        e, g = peak["etcd"]["vmhwm_kib"], peak["ganglion"]["vmhwm_kib"]
        print(f"| all | peak RSS, 3 members | {e / 1024:,.0f} MiB | {g / 1024:,.0f} MiB | {g / e:.2f}x |")
    loaded = {s: load(os.path.join(out_dir, f"{s}-loaded.json")) for s in ("etcd", "ganglion")}
    if all(loaded.values()):
        for key, label, scale, unit in (("rss_kib", "RSS, 3 members", 1024, "MiB"),
                                         ("disk_bytes", "disk, 3 members", 1 << 20, "MiB")):
            e, g = loaded["etcd"][key], loaded["ganglion"][key]
            print(f"| loaded | {label} | {e / scale:,.0f} {unit} | {g / scale:,.0f} {unit} | {g / e:.2f}x |")
    print(f"\nMedians of {rounds} rounds; ratios are ganglion/etcd (for throughput higher is "
          "better, for latency, RSS and disk lower is better).")


if __name__ == "__main__":
    main()
