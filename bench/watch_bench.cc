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

// One watch stream driven by the completion queue of its client thread: a
// create request is written after the previous write completes while a read
// is always outstanding, so 1000 streams need no 1000 threads (the client
// must not be what the figure measures).
struct WatchStream {
  enum Op : uintptr_t { kStart = 0, kWrite = 1, kRead = 2 };
  grpc::ClientContext ctx;
  std::unique_ptr<
      grpc::ClientAsyncReaderWriter<etcdserverpb::WatchRequest, etcdserverpb::WatchResponse>>
      rw;
  etcdserverpb::WatchRequest req;
  etcdserverpb::WatchResponse resp;
  std::vector<std::string> keys;  // one watcher per key, created in order
  size_t next_create = 0;
  std::vector<int64_t> latencies_ns;  // only this stream's client thread touches it

  void* Tag(Op op) { return reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(this) | op); }
  static std::pair<WatchStream*, Op> Untag(void* tag) {
    const auto bits = reinterpret_cast<uintptr_t>(tag);
    return {reinterpret_cast<WatchStream*>(bits & ~uintptr_t{3}), static_cast<Op>(bits & 3)};
  }
  void WriteNextCreate() {
    req.Clear();
    req.mutable_create_request()->set_key(keys[next_create++]);
    rw->Write(req, Tag(kWrite));
  }
};
static_assert(alignof(WatchStream) >= 4, "the two low bits of a stream's address tag the op");

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

  // Watcher m of stream s watches key (s * watchers + m) mod keys.
  std::vector<uint64_t> watchers_of_key(static_cast<size_t>(a.keys), 0);
  std::vector<std::unique_ptr<WatchStream>> streams;
  for (int s = 0; s < a.streams; s++) {
    auto stream = std::make_unique<WatchStream>();
    for (int m = 0; m < a.watchers; m++) {
      const int key = (s * a.watchers + m) % a.keys;
      stream->keys.push_back(absl::StrCat("bench/", key));
      watchers_of_key[static_cast<size_t>(key)]++;
    }
    streams.push_back(std::move(stream));
  }

  std::atomic<uint64_t> delivered{0};
  std::atomic<int> created{0};
  std::vector<std::unique_ptr<grpc::CompletionQueue>> queues;
  std::vector<std::thread> client_threads;
  for (int t = 0; t < a.client_threads; t++) {
    queues.push_back(std::make_unique<grpc::CompletionQueue>());
  }
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int c = 0; c < a.connections; c++) {
    // Distinct channel args make distinct connections, as separate clients have.
    grpc::ChannelArguments args;
    args.SetInt("bench_channel", c);
    channels.push_back(grpc::CreateCustomChannel(cluster.client_endpoint(0),
                                                 grpc::InsecureChannelCredentials(), args));
  }
  for (int s = 0; s < a.streams; s++) {
    WatchStream* stream = streams[static_cast<size_t>(s)].get();
    auto stub = etcdserverpb::Watch::NewStub(channels[static_cast<size_t>(s % a.connections)]);
    stream->rw =
        stub->AsyncWatch(&stream->ctx, queues[static_cast<size_t>(s % a.client_threads)].get(),
                         stream->Tag(WatchStream::kStart));
  }
  for (int t = 0; t < a.client_threads; t++) {
    client_threads.emplace_back([&, cq = queues[static_cast<size_t>(t)].get()] {
      void* tag = nullptr;
      bool ok = false;
      while (cq->Next(&tag, &ok)) {
        auto [stream, op] = WatchStream::Untag(tag);
        if (!ok) continue;  // cancelled at the end of the run: the stream is done
        switch (op) {
          case WatchStream::kStart:
            stream->WriteNextCreate();
            stream->rw->Read(&stream->resp, stream->Tag(WatchStream::kRead));
            break;
          case WatchStream::kWrite:
            if (stream->next_create < stream->keys.size()) stream->WriteNextCreate();
            break;
          case WatchStream::kRead: {
            if (stream->resp.created()) created++;
            const int64_t now = NowNs();
            for (const auto& ev : stream->resp.events()) {
              int64_t sent = 0;
              if (absl::SimpleAtoi(ev.kv().value(), &sent)) {
                stream->latencies_ns.push_back(now - sent);
              }
              delivered++;
            }
            stream->rw->Read(&stream->resp, stream->Tag(WatchStream::kRead));
            break;
          }
        }
      }
    });
  }
  for (auto deadline = Clock::now() + std::chrono::seconds(60);
       created < a.streams * a.watchers && Clock::now() < deadline;) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  if (created < a.streams * a.watchers) {
    return absl::DeadlineExceededError(
        absl::StrCat("only ", created.load(), " watchers created in 60 s"));
  }
  const int64_t rss_watching = RssBytes(pid);

  // Open loop: `writers` threads share the rate, each on its own schedule, so
  // a slow put delays neither the schedule nor the other writers.
  std::atomic<uint64_t> next_key{0};
  std::atomic<uint64_t> puts{0}, expected{0}, put_errors{0};
  std::vector<std::vector<int64_t>> put_latencies_ns(static_cast<size_t>(a.writers));
  std::vector<std::thread> writers;
  const auto start = Clock::now();
  for (int w = 0; w < a.writers; w++) {
    writers.emplace_back([&, w] {
      auto kv = etcdserverpb::KV::NewStub(grpc::CreateChannel(cluster.client_endpoint(*leader),
                                                              grpc::InsecureChannelCredentials()));
      const auto interval =
          std::chrono::nanoseconds(1000000000LL * a.writers / std::max(1, a.rate));
      auto next = start + interval * w / a.writers;
      for (; next < start + std::chrono::seconds(a.seconds); next += interval) {
        std::this_thread::sleep_until(next);
        const uint64_t key = next_key++ % static_cast<uint64_t>(a.keys);
        etcdserverpb::PutRequest req;
        req.set_key(absl::StrCat("bench/", key));
        req.set_value(std::to_string(NowNs()));
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
        etcdserverpb::PutResponse resp;
        const int64_t sent_ns = NowNs();
        if (kv->Put(&ctx, req, &resp).ok()) {
          put_latencies_ns[static_cast<size_t>(w)].push_back(NowNs() - sent_ns);
          puts++;
          expected += watchers_of_key[key];
        } else {
          put_errors++;
        }
      }
    });
  }
  for (auto& t : writers) t.join();
  const double put_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  // Let the last events arrive (bounded), then close the streams.
  for (auto deadline = Clock::now() + std::chrono::seconds(10);
       delivered < expected && Clock::now() < deadline;) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  for (auto& s : streams) s->ctx.TryCancel();
  // Each stream's outstanding read (and write) now completes with !ok; the
  // queues drain once shut down.
  std::this_thread::sleep_for(milliseconds(500));
  for (auto& q : queues) q->Shutdown();
  for (auto& t : client_threads) t.join();

  std::vector<int64_t> latencies_ns;
  for (auto& s : streams) {
    latencies_ns.insert(latencies_ns.end(), s->latencies_ns.begin(), s->latencies_ns.end());
  }
  Result r;
  r.delivered = delivered;
  r.expected = expected;
  r.puts_per_second = static_cast<double>(puts) / put_seconds;
  r.put_errors = put_errors;
  r.rss_per_watcher_bytes =
      static_cast<double>(rss_watching - rss_before) / (a.streams * a.watchers);
  std::sort(latencies_ns.begin(), latencies_ns.end());
  if (!latencies_ns.empty()) {
    r.p50_us = latencies_ns[latencies_ns.size() / 2] / 1e3;
    r.p99_us = latencies_ns[latencies_ns.size() * 99 / 100] / 1e3;
  }
  std::vector<int64_t> put_ns;
  for (const auto& v : put_latencies_ns) put_ns.insert(put_ns.end(), v.begin(), v.end());
  std::sort(put_ns.begin(), put_ns.end());
  if (!put_ns.empty()) {
    r.put_p50_us = put_ns[put_ns.size() / 2] / 1e3;
    r.put_p99_us = put_ns[put_ns.size() * 99 / 100] / 1e3;
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
