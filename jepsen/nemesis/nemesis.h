// The nemesis: on a schedule, injects one fault at a time into the cluster
// and heals it before the next (kill -9 and restart, pause and resume,
// network partitions, clock skew by libfaketime, membership change,
// leadership transfer, compaction), recording each fault's interval for the
// report. It must leave the cluster whole when it stops: every fault it
// started is healed, whatever happened in between.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "jepsen/cluster/cluster.h"

namespace ganglion::jepsen {

struct NemesisInterval {
  std::string fault;   // "kill-leader", "partition-ring", ...
  std::string detail;  // which members, what rule
  int64_t start_ns = 0;
  int64_t end_ns = 0;
  std::string error;  // why injecting or healing failed, if it did
};

struct NemesisOptions {
  // Fault names: kill-one, kill-leader, kill-majority, kill-all, pause-one,
  // pause-leader, partition-leader, partition-halves, partition-ring,
  // partition-bridge, partition-one-way, clock-skew, membership, transfer,
  // compaction. ExpandFaults turns the CLI's groups into these.
  std::vector<std::string> faults;
  std::chrono::milliseconds quiet_min{3000}, quiet_max{6000};
  std::chrono::milliseconds fault_min{4000}, fault_max{8000};
  uint64_t seed = 1;
  // The lowest revision any workload still needs; compaction stays below it.
  std::function<int64_t()> compaction_floor;
  std::string faketime_lib = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";
};

// "kill" -> every kill fault, "partition" -> every partition, "all" ->
// everything; a single fault name passes through. Unknown names fail.
absl::StatusOr<std::vector<std::string>> ExpandFaults(const std::vector<std::string>& groups);

class Nemesis {
 public:
  // `now_ns` gives the run's clock (Recorder::NowNs).
  Nemesis(Cluster& cluster, NemesisOptions options, std::function<int64_t()> now_ns);
  ~Nemesis();  // Stop()s

  void Start();
  // Stops the schedule and heals the fault in progress, if any.
  void Stop();
  std::vector<NemesisInterval> intervals() const;

 private:
  void Run();
  // Injects `fault`; returns the heal to run at its end.
  absl::StatusOr<std::function<absl::Status()>> Inject(const std::string& fault,
                                                       std::string& detail);
  std::vector<int> Pick(int count);            // distinct running members, at random
  bool SleepFor(std::chrono::milliseconds d);  // false if stopped meanwhile
  std::chrono::milliseconds Between(std::chrono::milliseconds lo, std::chrono::milliseconds hi);

  Cluster& cluster_;
  const NemesisOptions options_;
  std::function<int64_t()> now_ns_;
  std::mt19937_64 rng_;             // nemesis thread only
  int64_t compacted_revision_ = 0;  // nemesis thread only
  std::thread thread_;
  std::mutex mu_;  // guards stop_ with cv_, and intervals_
  std::condition_variable cv_;
  bool stop_ = false;
  std::vector<NemesisInterval> intervals_;
};

}  // namespace ganglion::jepsen
