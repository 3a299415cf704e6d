#include "bench/load/watch_load.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "bench/load/ops.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"

namespace ganglion::bench {
namespace {

// One stream: the next create request is written once the previous write
// completes, while a read is always outstanding.
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
  LatencyHistogram delivery;  // only this stream's thread touches it

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

}  // namespace

absl::StatusOr<WatchLoadReport> RunWatchLoad(const WatchLoadOptions& o) {
  if (o.watch_endpoints.empty() || o.put_endpoints.empty() || o.streams < 1 ||
      o.watchers_per_stream < 1 || o.rate <= 0 || o.writers < 1 || o.client_threads < 1) {
    return absl::InvalidArgumentError("watch load: endpoints and every count must be set");
  }
  const int keys = o.keys > 0 ? o.keys : o.watchers_per_stream;
  KeySpace key_space{"bench/", 0, static_cast<uint64_t>(keys)};
  std::vector<uint64_t> watchers_of_key(static_cast<size_t>(keys), 0);
  std::vector<std::unique_ptr<WatchStream>> streams;
  for (int s = 0; s < o.streams; s++) {
    auto stream = std::make_unique<WatchStream>();
    for (int m = 0; m < o.watchers_per_stream; m++) {
      const int key = (s * o.watchers_per_stream + m) % keys;
      stream->keys.push_back(key_space.Key(static_cast<uint64_t>(key)));
      watchers_of_key[static_cast<size_t>(key)]++;
    }
    streams.push_back(std::move(stream));
  }

  std::atomic<uint64_t> delivered{0};
  std::atomic<int> created{0};
  std::vector<std::unique_ptr<grpc::CompletionQueue>> queues;
  for (int t = 0; t < o.client_threads; t++) {
    queues.push_back(std::make_unique<grpc::CompletionQueue>());
  }
  auto channels = MakeChannels(o.watch_endpoints, o.connections > 0 ? o.connections : o.streams);
  for (size_t s = 0; s < streams.size(); s++) {
    WatchStream* stream = streams[s].get();
    auto stub = etcdserverpb::Watch::NewStub(channels[s % channels.size()]);
    stream->rw = stub->AsyncWatch(&stream->ctx, queues[s % queues.size()].get(),
                                  stream->Tag(WatchStream::kStart));
  }
  std::vector<std::thread> client_threads;
  for (auto& queue : queues) {
    client_threads.emplace_back([&, cq = queue.get()] {
      void* tag = nullptr;
      bool ok = false;
      while (cq->Next(&tag, &ok)) {
        auto [stream, op] = WatchStream::Untag(tag);
        if (!ok) continue;  // canceled at the end of the run
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
            const int64_t now = MonotonicNowNs();
            for (const auto& ev : stream->resp.events()) {
              int64_t sent = 0;
              if (absl::SimpleAtoi(ev.kv().value(), &sent)) stream->delivery.Record(now - sent);
              delivered++;
            }
            stream->rw->Read(&stream->resp, stream->Tag(WatchStream::kRead));
            break;
          }
        }
      }
    });
  }
  auto stop_streams = [&] {
    for (auto& s : streams) s->ctx.TryCancel();
    // Each stream's outstanding read (and write) completes with !ok.
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    for (auto& q : queues) q->Shutdown();
    for (auto& t : client_threads) t.join();
  };
  const int watchers = o.streams * o.watchers_per_stream;
  for (auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
       created < watchers && std::chrono::steady_clock::now() < deadline;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (created < watchers) {
    stop_streams();
    return absl::DeadlineExceededError(
        absl::StrCat("only ", created.load(), " of ", watchers, " watchers created in 60 s"));
  }
  if (o.on_watching) o.on_watching();

  std::atomic<uint64_t> expected{0};
  std::vector<std::unique_ptr<Op>> writers;
  auto put_channels = MakeChannels(o.put_endpoints, o.writers);
  // The writers share one key sequence, so the keys are put round-robin.
  auto sequence = std::make_shared<std::atomic<uint64_t>>(0);
  for (int w = 0; w < o.writers; w++) {
    PutOp::Options po;
    po.keys = key_space;
    po.sequential_keys = true;
    po.sequence = sequence;
    po.timestamp_values = true;
    po.on_ok = [&](uint64_t key) { expected += watchers_of_key[key]; };
    writers.push_back(std::make_unique<PutOp>(put_channels[static_cast<size_t>(w)], po, w));
  }
  DriverOptions d;
  d.threads = 1;
  d.rate_per_second = o.rate;
  d.duration = o.duration;
  d.progress_interval = std::chrono::seconds(0);
  WatchLoadReport report;
  report.puts = RunLoad(writers, d);

  // Let the last events arrive (bounded), then close the streams.
  for (auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
       delivered < expected && std::chrono::steady_clock::now() < deadline;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  stop_streams();
  report.delivered = delivered;
  report.expected = expected;
  for (auto& s : streams) report.delivery.Merge(s->delivery);
  return report;
}

}  // namespace ganglion::bench
