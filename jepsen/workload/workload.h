// The workloads: client threads that run operations against the cluster
// through ganglion::client while nemeses inject faults, record what they saw
// in one shared history, and check it afterwards. A workload must record
// every operation it invoked exactly once, and must never call an operation
// ok or fail unless the cluster said so: anything it cannot know (a timeout,
// a lost connection after the request left) is info.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "jepsen/check/history.h"
#include "jepsen/check/linearizable.h"
#include "nlohmann/json.hpp"

namespace ganglion::jepsen {

// The history of a run, shared by every workload; times are nanoseconds
// since the run began (a monotonic clock).
class Recorder {
 public:
  explicit Recorder(std::chrono::steady_clock::time_point origin) : origin_(origin) {}
  int64_t NowNs() const;
  // Assigns op.index; returns it.
  int64_t Add(Operation op);
  std::vector<Operation> Operations() const;

 private:
  const std::chrono::steady_clock::time_point origin_;
  mutable std::mutex mu_;
  std::vector<Operation> ops_;  // guarded by mu_
};

// One checker's verdict, for results.json and the report.
struct CheckResult {
  std::string checker;  // "linearizable", "list-append", "watch", "lock", "lease"
  Verdict verdict = Verdict::kValid;
  std::string summary;                                // one line
  nlohmann::json details = nlohmann::json::object();  // the violating operations, etc.
};

struct WorkloadOptions {
  std::vector<std::string> endpoints;
  int concurrency = 5;   // client threads
  int process_base = 0;  // process ids of this workload start here
  std::chrono::milliseconds request_timeout{3000};
  // Each thread starts at most one operation per interval.
  std::chrono::microseconds op_interval{20000};
  uint64_t seed = 1;
};

class Workload {
 public:
  virtual ~Workload() = default;
  virtual std::string name() const = 0;
  // Starts the client threads; they run until Stop.
  virtual absl::Status Start() = 0;
  // Signals the threads and joins them.
  virtual void Stop() = 0;
  // After the cluster has healed and had its quiet period: final reads and
  // waits (the watchers catch up, leases expire).
  virtual absl::Status Finish() { return absl::OkStatus(); }
  virtual std::vector<CheckResult> Check(const std::vector<Operation>& history) = 0;
  // The oldest revision this workload still needs (a compaction nemesis must
  // not compact past it); max when it needs none.
  virtual int64_t CompactionFloor() const { return std::numeric_limits<int64_t>::max(); }
};

// How a failed call ended for a write: kFail only when it certainly did not
// take effect; otherwise kInfo.
OpType ClassifyWriteError(const absl::Status& status);

// Names the workloads: register, list-append, watch, lock, lease.
std::vector<std::string> WorkloadNames();
std::unique_ptr<Workload> MakeWorkload(const std::string& name, Recorder& recorder,
                                       const WorkloadOptions& options);

}  // namespace ganglion::jepsen
