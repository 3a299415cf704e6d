// Watch fan-out against a local 3-member cluster of ganglion and, with the
// same harness, of etcd 3.4: N streams x M watchers (watcher m of every
// stream watches key bench/<m>), one writer putting bench/<i mod M> at a
// fixed rate with its send time in the value. Reports delivery latency
// (put sent -> event read by the client) p50/p99, events delivered, and the
// connected member's RSS growth per watcher. Runs each binary `--runs` times
// and prints medians and the ganglion/etcd ratio.
//
//   watch_bench [--streams=10] [--watchers=100] [--rate=300] [--seconds=10]
//               [--runs=3] [--ganglion=<path>] [--etcd=/usr/bin/etcd]
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
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "tests/support/process_cluster.h"

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

struct Args {
  int streams = 10;
  int watchers = 100;
  int rate = 300;
  int seconds = 10;
  int runs = 3;
  std::string ganglion = GANGLION_BINARY;
  std::string etcd = "/usr/bin/etcd";
};

struct Result {
  double p50_us = 0, p99_us = 0;
  uint64_t delivered = 0, expected = 0;
  double rss_per_watcher_bytes = 0;
};

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

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

  std::mutex mu;
  std::vector<int64_t> latencies_ns;  // guarded by mu
  std::atomic<uint64_t> delivered{0};
  std::atomic<int> created{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> readers;
  std::vector<std::shared_ptr<grpc::ClientContext>> contexts;
  for (int s = 0; s < a.streams; s++) contexts.push_back(std::make_shared<grpc::ClientContext>());
  for (int s = 0; s < a.streams; s++) {
    readers.emplace_back([&, s] {
      auto channel = grpc::CreateCustomChannel(cluster.client_endpoint(0),
                                               grpc::InsecureChannelCredentials(), [s] {
                                                 grpc::ChannelArguments args;
                                                 args.SetInt("bench_channel", s);  // own conn
                                                 return args;
                                               }());
      auto stub = etcdserverpb::Watch::NewStub(channel);
      auto stream = stub->Watch(contexts[s].get());
      for (int m = 0; m < a.watchers; m++) {
        etcdserverpb::WatchRequest req;
        req.mutable_create_request()->set_key(absl::StrCat("bench/", m));
        if (!stream->Write(req)) return;
      }
      std::vector<int64_t> local;
      etcdserverpb::WatchResponse resp;
      while (stream->Read(&resp)) {
        if (resp.created()) created++;
        const int64_t now = NowNs();
        for (const auto& ev : resp.events()) {
          int64_t sent = 0;
          if (absl::SimpleAtoi(ev.kv().value(), &sent)) local.push_back(now - sent);
          delivered++;
        }
      }
      std::lock_guard lock(mu);
      latencies_ns.insert(latencies_ns.end(), local.begin(), local.end());
    });
  }
  for (auto deadline = Clock::now() + std::chrono::seconds(30);
       created < a.streams * a.watchers && Clock::now() < deadline;) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  const int64_t rss_watching = RssBytes(pid);

  auto kv = etcdserverpb::KV::NewStub(
      grpc::CreateChannel(cluster.client_endpoint(*leader), grpc::InsecureChannelCredentials()));
  uint64_t puts = 0;
  const auto start = Clock::now();
  const auto interval = std::chrono::nanoseconds(1000000000LL / std::max(1, a.rate));
  for (auto next = start; Clock::now() < start + std::chrono::seconds(a.seconds);
       next += interval) {
    std::this_thread::sleep_until(next);
    etcdserverpb::PutRequest req;
    req.set_key(absl::StrCat("bench/", puts % a.watchers));
    req.set_value(std::to_string(NowNs()));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    etcdserverpb::PutResponse resp;
    if (kv->Put(&ctx, req, &resp).ok()) puts++;
  }
  // Let the last events arrive (bounded), then close the streams.
  const uint64_t expected = puts * a.streams;
  for (auto deadline = Clock::now() + std::chrono::seconds(10);
       delivered < expected && Clock::now() < deadline;) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  stop = true;
  for (auto& c : contexts) c->TryCancel();
  for (auto& t : readers) t.join();

  Result r;
  r.delivered = delivered;
  r.expected = expected;
  r.rss_per_watcher_bytes =
      static_cast<double>(rss_watching - rss_before) / (a.streams * a.watchers);
  std::sort(latencies_ns.begin(), latencies_ns.end());
  if (!latencies_ns.empty()) {
    r.p50_us = latencies_ns[latencies_ns.size() / 2] / 1e3;
    r.p99_us = latencies_ns[latencies_ns.size() * 99 / 100] / 1e3;
  }
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
    else if (const char* v = value("ganglion"))
      a.ganglion = v;
    else if (const char* v = value("etcd"))
      a.etcd = v;
    else {
      std::fprintf(stderr, "unknown flag %s\n", argv[i]);
      return 2;
    }
  }
  std::printf("streams=%d watchers/stream=%d rate=%d puts/s seconds=%d runs=%d\n", a.streams,
              a.watchers, a.rate, a.seconds, a.runs);
  struct Summary {
    double p50, p99, rss;
    uint64_t delivered, expected;
  };
  std::vector<Summary> summaries;
  for (const std::string& binary : {a.etcd, a.ganglion}) {
    std::vector<double> p50, p99, rss;
    uint64_t delivered = 0, expected = 0;
    for (int run = 0; run < a.runs; run++) {
      auto r = RunOnce(binary, a);
      if (!r.ok()) {
        std::fprintf(stderr, "%s: %s\n", binary.c_str(), r.status().ToString().c_str());
        return 1;
      }
      std::printf(
          "  %-40s run %d: p50 %.0f us  p99 %.0f us  delivered %lu/%lu  rss/watcher %.0f B\n",
          binary.c_str(), run, r->p50_us, r->p99_us, r->delivered, r->expected,
          r->rss_per_watcher_bytes);
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
  std::printf("ganglion/etcd: p50 %.2fx  p99 %.2fx  rss/watcher %.2fx\n", g.p50 / e.p50,
              g.p99 / e.p99, e.rss != 0 ? g.rss / e.rss : 0.0);
  return 0;
}
