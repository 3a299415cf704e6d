// Watch fan-out against a local 3-member cluster of ganglion and, with the
// same harness, of etcd 3.4: N streams x M watchers (watcher m of every
// stream watches key bench/<(s*M + m) mod keys>), open-loop writers putting
// the keys round-robin at a fixed total rate with the send time in the value. Reports delivery
// latency (put sent -> event read by the client) p50/p99, events delivered, and the connected
// member's RSS growth per watcher. Runs each binary `--runs` times and prints medians and the
// ganglion/etcd ratio.
//
//   watch_bench [--streams=10] [--watchers=100] [--rate=300] [--seconds=10]
//               [--runs=3] [--keys=M] [--writers=8] [--client_threads=2]
//               [--connections=streams] [--only=ganglion|etcd]
//               [--ganglion=<path>] [--etcd=/usr/bin/etcd]
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "bench/load/watch_load.h"
#include "tests/support/process_cluster.h"

namespace {

struct Args {
  int streams = 10;
  int watchers = 100;
  int rate = 300;
  int seconds = 10;
  int runs = 3;
  int keys = 0;            // 0: as many keys as watchers per stream
  int writers = 8;         // open-loop put threads sharing --rate
  int client_threads = 2;  // completion-queue threads driving every stream
  int connections = 0;     // 0: one gRPC connection per stream
  std::string only;        // "ganglion" or "etcd": measure only that one
  std::string ganglion = GANGLION_BINARY;
  std::string etcd = "/usr/bin/etcd";
};

struct Result {
  double p50_us = 0, p99_us = 0;
  uint64_t delivered = 0, expected = 0;
  double rss_per_watcher_bytes = 0;
  double puts_per_second = 0;
  uint64_t put_errors = 0;
  double put_p50_us = 0, put_p99_us = 0;  // the put's own latency, for comparison
};

int64_t RssBytes(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string word;
  while (in >> word) {
    if (word == "VmRSS:") {
      int64_t kb = 0;
      in >> kb;
      return kb * 1024;
    }
  }
  return 0;
}

absl::StatusOr<Result> RunOnce(const std::string& binary, const Args& a) {
  ganglion::tests::ClusterOptions o;
  o.binary = binary;
  o.members = 3;
  ganglion::tests::ProcessCluster cluster(o);
  if (auto s = cluster.Start(); !s.ok()) return s;
  // Watchers on member 0, writes to the leader (as a client would).
  auto leader = cluster.LeaderIndex();
  if (!leader.ok()) return leader.status();
  const pid_t pid = cluster.member(0).pid;
  const int64_t rss_before = RssBytes(pid);
  int64_t rss_watching = rss_before;

  ganglion::bench::WatchLoadOptions w;
  w.watch_endpoints = {cluster.client_endpoint(0)};
  w.put_endpoints = {cluster.client_endpoint(*leader)};
  w.streams = a.streams;
  w.watchers_per_stream = a.watchers;
  w.keys = a.keys;
  w.connections = a.connections;
  w.client_threads = a.client_threads;
  w.rate = a.rate;
  w.writers = a.writers;
  w.duration = std::chrono::seconds(a.seconds);
  w.on_watching = [&] { rss_watching = RssBytes(pid); };
  auto load = ganglion::bench::RunWatchLoad(w);
  if (!load.ok()) return load.status();

  Result r;
  r.delivered = load->delivered;
  r.expected = load->expected;
  const ganglion::bench::OpStats& puts = load->puts.by_kind["put"];
  r.puts_per_second = static_cast<double>(puts.ok) / load->puts.elapsed_seconds;
  r.put_errors = puts.failed();
  r.rss_per_watcher_bytes =
      static_cast<double>(rss_watching - rss_before) / (a.streams * a.watchers);
  r.p50_us = load->delivery.Percentile(0.5) / 1e3;
  r.p99_us = load->delivery.Percentile(0.99) / 1e3;
  r.put_p50_us = puts.latency.Percentile(0.5) / 1e3;
  r.put_p99_us = puts.latency.Percentile(0.99) / 1e3;
  return r;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; i++) {
    std::string arg = argv[i];
    auto value = [&](const char* name) -> const char* {
      std::string prefix = std::string("--") + name + "=";
      return arg.rfind(prefix, 0) == 0 ? argv[i] + prefix.size() : nullptr;
    };
    if (const char* v = value("streams"))
      a.streams = std::atoi(v);
    else if (const char* v = value("watchers"))
      a.watchers = std::atoi(v);
    else if (const char* v = value("rate"))
      a.rate = std::atoi(v);
    else if (const char* v = value("seconds"))
      a.seconds = std::atoi(v);
    else if (const char* v = value("runs"))
      a.runs = std::atoi(v);
    else if (const char* v = value("keys"))
      a.keys = std::atoi(v);
    else if (const char* v = value("writers"))
      a.writers = std::atoi(v);
    else if (const char* v = value("client_threads"))
      a.client_threads = std::atoi(v);
    else if (const char* v = value("only"))
      a.only = v;
    else if (const char* v = value("connections"))
      a.connections = std::atoi(v);
    else if (const char* v = value("ganglion"))
      a.ganglion = v;
    else if (const char* v = value("etcd"))
      a.etcd = v;
    else {
      std::fprintf(stderr, "unknown flag %s\n", argv[i]);
      return 2;
    }
  }
  if (a.keys <= 0) a.keys = a.watchers;
  if (a.connections <= 0 || a.connections > a.streams) a.connections = a.streams;
  if (a.streams < 1 || a.watchers < 1 || a.rate < 1 || a.seconds < 1 || a.runs < 1 ||
      a.writers < 1 || a.client_threads < 1) {
    std::fprintf(stderr, "every count must be at least 1\n");
    return 2;
  }
  std::printf(
      "streams=%d watchers/stream=%d keys=%d (%.1f watchers per key) rate=%d puts/s "
      "seconds=%d runs=%d writers=%d client_threads=%d connections=%d\n",
      a.streams, a.watchers, a.keys, static_cast<double>(a.streams) * a.watchers / a.keys, a.rate,
      a.seconds, a.runs, a.writers, a.client_threads, a.connections);
  struct Summary {
    double p50 = 0, p99 = 0, rss = 0;
    uint64_t delivered = 0, expected = 0;
  };
  std::vector<Summary> summaries;
  for (const std::string& binary : {a.etcd, a.ganglion}) {
    if (!a.only.empty() && binary != (a.only == "etcd" ? a.etcd : a.ganglion)) {
      summaries.push_back({});
      continue;
    }
    std::vector<double> p50, p99, rss;
    uint64_t delivered = 0, expected = 0;
    for (int run = 0; run < a.runs; run++) {
      auto r = RunOnce(binary, a);
      if (!r.ok()) {
        std::fprintf(stderr, "%s: %s\n", binary.c_str(), r.status().ToString().c_str());
        return 1;
      }
      std::printf(
          "  %-40s run %d: p50 %.0f us  p99 %.0f us  delivered %lu/%lu  rss/watcher %.0f B  "
          "puts %.0f/s (%lu failed, put p50 %.0f us p99 %.0f us)\n",
          binary.c_str(), run, r->p50_us, r->p99_us, r->delivered, r->expected,
          r->rss_per_watcher_bytes, r->puts_per_second, r->put_errors, r->put_p50_us,
          r->put_p99_us);
      p50.push_back(r->p50_us);
      p99.push_back(r->p99_us);
      rss.push_back(r->rss_per_watcher_bytes);
      delivered += r->delivered;
      expected += r->expected;
    }
    summaries.push_back({Median(p50), Median(p99), Median(rss), delivered, expected});
    std::printf("%-40s median: p50 %.0f us  p99 %.0f us  rss/watcher %.0f B  delivered %lu/%lu\n",
                binary.c_str(), summaries.back().p50, summaries.back().p99, summaries.back().rss,
                summaries.back().delivered, summaries.back().expected);
  }
  const Summary& e = summaries[0];
  const Summary& g = summaries[1];
  if (!a.only.empty()) return 0;
  std::printf("ganglion/etcd: p50 %.2fx  p99 %.2fx  rss/watcher %.2fx\n", g.p50 / e.p50,
              g.p99 / e.p99, e.rss != 0 ? g.rss / e.rss : 0.0);
  return 0;
}
