// Watch workload: writers put unique values under w/; watchers, each on its
// own client preferring a different member, watch the prefix from one start
// revision and resume through faults from their last revision + 1 (the
// client library does this when a stream breaks; a watcher that ends with an
// error is re-created here the same way). At the end one more write marks
// the final revision and every watcher must reach it. Checked: identical
// sequences, no gap, no duplicate, every acknowledged write present.
#include <map>

#include "absl/strings/str_cat.h"
#include "jepsen/check/events.h"
#include "jepsen/workload/common.h"

namespace ganglion::jepsen {
namespace {

constexpr int kWatchers = 3;
constexpr int kKeys = 4;
constexpr auto kWatchNextTimeout = absl::Milliseconds(200);
constexpr std::chrono::seconds kCatchUpTimeout{60};
constexpr std::chrono::seconds kSetupTimeout{30};

class WatchWorkload : public Workload {
 public:
  WatchWorkload(Recorder& recorder, WorkloadOptions options)
      : recorder_(recorder), options_(std::move(options)), logs_(kWatchers) {
    for (int i = 0; i < kWatchers; i++) logs_[i].watcher = i;
  }
  std::string name() const override { return "watch"; }

  absl::Status Start() override {
    auto clients = MakeClients(options_, options_.concurrency + kWatchers);
    if (!clients.ok()) return clients.status();
    clients_ = *std::move(clients);
    auto start = PutUntilOk("w/start", "start");
    if (!start.ok()) return start.status();
    start_revision_ = *start;
    for (int i = 0; i < kWatchers; i++) next_revision_[i] = start_revision_;
    watchers_.Start(kWatchers, [this](int w, const std::atomic<bool>& stop) { Watch(w, stop); });
    writers_.Start(options_.concurrency,
                   [this](int t, const std::atomic<bool>& stop) { Write(t, stop); });
    return absl::OkStatus();
  }
  void Stop() override { writers_.Stop(); }

  absl::Status Finish() override {
    auto end = PutUntilOk("w/end", "end");
    if (!end.ok()) {
      watchers_.Stop();
      return end.status();
    }
    end_revision_ = *end;
    const auto deadline = std::chrono::steady_clock::now() + kCatchUpTimeout;
    while (std::chrono::steady_clock::now() < deadline) {
      bool all = true;
      for (int i = 0; i < kWatchers; i++) all = all && next_revision_[i] > end_revision_;
      if (all) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    watchers_.Stop();
    return absl::OkStatus();
  }

  int64_t CompactionFloor() const override {
    int64_t floor = std::numeric_limits<int64_t>::max();
    for (int i = 0; i < kWatchers; i++) floor = std::min(floor, next_revision_[i].load());
    return floor - 1;
  }

  std::vector<CheckResult> Check(const std::vector<Operation>& history) override {
    std::vector<AckedWrite> acked;
    {
      std::lock_guard lock(mu_);
      acked = acked_;
    }
    for (WatcherLog& l : logs_)
      l.complete =
          end_revision_ > 0 && !l.events.empty() && l.events.back().revision >= end_revision_;
    EventCheckResult r = CheckWatch(logs_, acked);
    CheckResult out;
    out.checker = "watch";
    out.verdict = r.verdict;
    size_t events = logs_.empty() ? 0 : logs_[0].events.size();
    out.summary = absl::StrCat(kWatchers, " watchers, ", events, " events each from rev ",
                               start_revision_, " to ", end_revision_, ", ", acked.size(),
                               " acknowledged writes; ", r.problems.size(), " problems");
    out.details = {{"problems", r.problems},
                   {"ops", OpsJson(history, r.ops)},
                   {"start_revision", start_revision_},
                   {"end_revision", end_revision_}};
    return {out};
  }

 private:
  absl::StatusOr<int64_t> PutUntilOk(const std::string& key, const std::string& value) {
    const auto deadline = std::chrono::steady_clock::now() + kSetupTimeout;
    absl::Status last;
    while (std::chrono::steady_clock::now() < deadline) {
      Operation op;
      op.process = options_.process_base + 999;
      op.f = "watch-put";
      op.key = key;
      op.start_ns = recorder_.NowNs();
      auto r = clients_[0]->kv().Put(key, value);
      op.end_ns = recorder_.NowNs();
      op.type = r.ok() ? OpType::kOk : ClassifyWriteError(r.status());
      if (!r.ok()) op.error = r.status().ToString();
      const int64_t index = recorder_.Add(op);
      if (r.ok()) {
        std::lock_guard lock(mu_);
        acked_.push_back({index, r->header().revision(), key, value});
        return r->header().revision();
      }
      last = r.status();
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    return absl::DeadlineExceededError(absl::StrCat("put ", key, ": ", last.ToString()));
  }

  void Write(int t, const std::atomic<bool>& stop) {
    client::Client& c = *clients_[t];
    int process = options_.process_base + t;
    Pace pace(options_.op_interval);
    for (int64_t seq = 0; !stop; seq++) {
      pace.Wait();
      Operation op;
      op.process = process;
      op.f = "watch-put";
      op.key = absl::StrCat("w/", (t + seq) % kKeys);
      const std::string value = absl::StrCat(t, "-", seq);
      op.start_ns = recorder_.NowNs();
      auto r = c.kv().Put(op.key, value);
      op.end_ns = recorder_.NowNs();
      op.type = r.ok() ? OpType::kOk : ClassifyWriteError(r.status());
      if (!r.ok()) op.error = r.status().ToString();
      const int64_t index = recorder_.Add(op);
      if (r.ok()) {
        std::lock_guard lock(mu_);
        acked_.push_back({index, r->header().revision(), op.key, value});
      }
      if (op.type == OpType::kInfo) process += options_.concurrency;
    }
  }

  void Watch(int w, const std::atomic<bool>& stop) {
    client::Client& c = *clients_[options_.concurrency + w];
    WatcherLog& log = logs_[w];
    std::unique_ptr<client::Watcher> watcher;
    while (!stop) {
      if (!watcher) {
        client::WatchOptions wo;
        wo.prefix = true;
        wo.start_revision = next_revision_[w];
        auto made = c.watch().Watch("w/", wo);
        if (!made.ok()) {
          if (client::IsCompacted(made.status())) {
            log.error = made.status().ToString();
            return;
          }
          std::this_thread::sleep_for(std::chrono::milliseconds(200));
          continue;
        }
        watcher = *std::move(made);
      }
      auto batch = watcher->Next(kWatchNextTimeout);
      if (!batch.ok()) {
        if (absl::IsDeadlineExceeded(batch.status())) continue;
        if (client::IsCompacted(batch.status())) {
          log.error = batch.status().ToString();
          return;
        }
        // Cancelled by the server or the stream: resume where it stopped.
        watcher.reset();
        continue;
      }
      for (const mvccpb::Event& e : batch->events) {
        log.events.push_back({e.kv().mod_revision(), e.kv().key(), e.kv().value(),
                              e.type() == mvccpb::Event::DELETE});
        next_revision_[w] = e.kv().mod_revision() + 1;
      }
    }
  }

  Recorder& recorder_;
  const WorkloadOptions options_;
  std::vector<std::unique_ptr<client::Client>> clients_;
  WorkerPool writers_, watchers_;
  std::mutex mu_;
  std::vector<AckedWrite> acked_;  // guarded by mu_
  // logs_[i] is written only by watcher thread i, read after it was joined.
  std::vector<WatcherLog> logs_;
  std::atomic<int64_t> next_revision_[kWatchers] = {};
  int64_t start_revision_ = 0;
  int64_t end_revision_ = 0;
};

}  // namespace

std::unique_ptr<Workload> MakeWatchWorkload(Recorder& recorder, const WorkloadOptions& options) {
  return std::make_unique<WatchWorkload>(recorder, options);
}

}  // namespace ganglion::jepsen
