#include "bench/load/driver.h"

#include <grpcpp/alarm.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <mutex>
#include <thread>

namespace ganglion::bench {

int64_t MonotonicNowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

uint64_t DriverReport::total() const {
  uint64_t n = 0;
  for (const auto& [kind, s] : by_kind) n += s.ok + s.failed();
  return n;
}

std::vector<std::shared_ptr<grpc::Channel>> MakeChannels(const std::vector<std::string>& endpoints,
                                                         int connections) {
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int c = 0; c < std::max(1, connections); c++) {
    grpc::ChannelArguments args;
    args.SetInt("ganglion_bench_connection", c);
    args.SetMaxReceiveMessageSize(-1);
    channels.push_back(
        grpc::CreateCustomChannel(endpoints[static_cast<size_t>(c) % endpoints.size()],
                                  grpc::InsecureChannelCredentials(), args));
  }
  return channels;
}

namespace {

struct ClientSlot {
  Op* op = nullptr;
  int64_t started_ns = 0;
  bool waiting_alarm = false;
  grpc::Alarm alarm;
};

// Shared by the threads: when to stop, and the pacing schedule.
struct Schedule {
  int64_t end_ns = 0;  // 0: no time limit
  uint64_t total_ops = 0;
  std::atomic<uint64_t> started{0};
  int64_t interval_ns = 0;  // 0: unpaced
  std::atomic<int64_t> next_slot_ns{0};
  std::atomic<uint64_t> completed{0};

  // Claims the right to start one more call; false once the run is over.
  bool Claim() {
    if (end_ns != 0 && MonotonicNowNs() >= end_ns) return false;
    if (total_ops != 0 && started.fetch_add(1) >= total_ops) return false;
    return true;
  }
  // The time the claimed call may start (paced runs).
  int64_t NextSlot() { return interval_ns == 0 ? 0 : next_slot_ns.fetch_add(interval_ns); }
};

void StartOrWait(ClientSlot* c, grpc::CompletionQueue* cq, Schedule* schedule) {
  const int64_t slot = schedule->NextSlot();
  const int64_t now = MonotonicNowNs();
  if (slot > now) {
    c->waiting_alarm = true;
    c->alarm.Set(cq, std::chrono::system_clock::now() + std::chrono::nanoseconds(slot - now), c);
    return;
  }
  c->started_ns = now;
  c->op->Start(cq, c);
}

}  // namespace

DriverReport RunLoad(std::vector<std::unique_ptr<Op>>& clients, const DriverOptions& options) {
  const int threads = std::max(1, std::min<int>(options.threads, static_cast<int>(clients.size())));
  Schedule schedule;
  const int64_t begin_ns = MonotonicNowNs();
  if (options.duration.count() > 0) {
    schedule.end_ns = begin_ns + std::chrono::nanoseconds(options.duration).count();
  }
  schedule.total_ops = options.total_ops;
  if (options.rate_per_second > 0) {
    schedule.interval_ns = static_cast<int64_t>(1e9 / options.rate_per_second);
    schedule.next_slot_ns = begin_ns;
  }

  std::vector<ClientSlot> slots(clients.size());
  std::vector<std::unique_ptr<grpc::CompletionQueue>> queues;
  for (int t = 0; t < threads; t++) queues.push_back(std::make_unique<grpc::CompletionQueue>());
  std::vector<std::map<std::string, OpStats>> per_thread(static_cast<size_t>(threads));
  std::atomic<int> running_threads{threads};

  auto worker = [&](int t) {
    grpc::CompletionQueue* cq = queues[static_cast<size_t>(t)].get();
    std::map<std::string, OpStats>& stats = per_thread[static_cast<size_t>(t)];
    int active = 0;
    for (size_t i = static_cast<size_t>(t); i < slots.size(); i += static_cast<size_t>(threads)) {
      slots[i].op = clients[i].get();
      if (!schedule.Claim()) continue;
      active++;
      StartOrWait(&slots[i], cq, &schedule);
    }
    if (active == 0) cq->Shutdown();
    void* tag = nullptr;
    bool ok = false;
    while (cq->Next(&tag, &ok)) {
      auto* c = static_cast<ClientSlot*>(tag);
      if (c->waiting_alarm) {
        c->waiting_alarm = false;
        c->started_ns = MonotonicNowNs();
        c->op->Start(cq, c);
        continue;
      }
      if (!c->op->Step(ok)) continue;
      const int64_t took = MonotonicNowNs() - c->started_ns;
      OpStats& s = stats[c->op->kind()];
      const grpc::Status& st = c->op->status();
      if (st.ok()) {
        s.ok++;
        s.latency.Record(took);
      } else {
        std::string what =
            std::string(GrpcCodeName(st.error_code())) + ": " + st.error_message().substr(0, 120);
        s.errors[what]++;
      }
      schedule.completed++;
      if (schedule.Claim()) {
        StartOrWait(c, cq, &schedule);
      } else if (--active == 0) {
        cq->Shutdown();  // drains what is left (nothing of this thread's)
      }
    }
    running_threads--;
  };

  std::vector<std::thread> pool;
  for (int t = 0; t < threads; t++) pool.emplace_back(worker, t);
  // Progress, until every thread is done.
  int64_t last_report_ns = begin_ns;
  uint64_t last_completed = 0;
  while (running_threads.load() > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const int64_t now = MonotonicNowNs();
    if (options.progress_interval.count() > 0 &&
        now - last_report_ns >= std::chrono::nanoseconds(options.progress_interval).count()) {
      const uint64_t done = schedule.completed.load();
      std::fprintf(stderr, "%s %5.0f s  %10llu calls  %9.0f/s\n", options.progress_label.c_str(),
                   (now - begin_ns) / 1e9, static_cast<unsigned long long>(done),
                   (done - last_completed) / ((now - last_report_ns) / 1e9));
      last_report_ns = now;
      last_completed = done;
    }
  }
  for (auto& t : pool) t.join();
  // Streams end while their completion queues still exist.
  for (auto& c : clients) c->Cancel();
  clients.clear();

  DriverReport report;
  report.elapsed_seconds = (MonotonicNowNs() - begin_ns) / 1e9;
  for (auto& m : per_thread) {
    for (auto& [kind, s] : m) report.by_kind[kind].Merge(s);
  }
  return report;
}

}  // namespace ganglion::bench
