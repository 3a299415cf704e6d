// What the workloads share: a client per thread, pacing, a thread pool that
// stops on request, and the constructors of each workload.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "client/client.h"
#include "jepsen/workload/workload.h"

namespace ganglion::jepsen {

// A client whose endpoint list starts at member `rotate`, so the threads of
// a workload spread over the members instead of all pinning the first.
absl::StatusOr<std::unique_ptr<client::Client>> MakeClient(const WorkloadOptions& options,
                                                           int rotate);
// `count` clients, client t rotated by t (one per workload thread).
absl::StatusOr<std::vector<std::unique_ptr<client::Client>>> MakeClients(
    const WorkloadOptions& options, int count);

// At most one operation per interval per thread.
class Pace {
 public:
  explicit Pace(std::chrono::microseconds interval)
      : interval_(interval), next_(std::chrono::steady_clock::now()) {}
  void Wait();

 private:
  const std::chrono::microseconds interval_;
  std::chrono::steady_clock::time_point next_;
};

class WorkerPool {
 public:
  ~WorkerPool() { Stop(); }
  void Start(int threads, std::function<void(int thread, const std::atomic<bool>& stop)> body);
  void Stop();  // idempotent

 private:
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
};

// The history entries at `indexes`, as JSON objects (for results.json).
nlohmann::json OpsJson(const std::vector<Operation>& history, const std::vector<int64_t>& indexes);

std::unique_ptr<Workload> MakeRegisterWorkload(Recorder& recorder, const WorkloadOptions& options);
std::unique_ptr<Workload> MakeListAppendWorkload(Recorder& recorder,
                                                 const WorkloadOptions& options);
std::unique_ptr<Workload> MakeWatchWorkload(Recorder& recorder, const WorkloadOptions& options);
std::unique_ptr<Workload> MakeLockWorkload(Recorder& recorder, const WorkloadOptions& options);
std::unique_ptr<Workload> MakeLeaseWorkload(Recorder& recorder, const WorkloadOptions& options);

}  // namespace ganglion::jepsen
