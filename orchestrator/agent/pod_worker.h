// One pod on this node: turns the pod's spec into supervised processes and
// their state back into the pod's status. Level-triggered: Sync() reads the
// current pod object (or its absence) and the processes' state and closes
// the gap (start, restart after back-off, stop, kill after the grace period),
// any number of times. Single-threaded: only the agent's sync thread calls
// it; probes run elsewhere and come back through OnProbeResult().
//
// It must never run two processes for one container, never leave a process
// of a pod it stopped, and never report a container running that is not.
#pragma once

#include <algorithm>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "orchestrator/agent/backoff.h"
#include "orchestrator/agent/probe.h"
#include "orchestrator/agent/state.h"

namespace ganglion::orchestrator::agent {

using Json = nlohmann::json;

struct WorkerConfig {
  std::string agent_binary;  // the container supervisor (--shim)
  std::string node_name;
  std::string node_ip;
  std::string pods_dir;  // <root-dir>/pods
  BackoffPolicy backoff;
  int64_t log_rotate_bytes = 10 * 1024 * 1024;
  std::vector<std::string> base_env;  // PATH etc., under the pod's own variables
};

// A probe the agent should run now, and where its result goes.
struct ProbeJob {
  std::string pod_uid;
  std::string container;
  ProbeKind kind;
  ProbeSpec spec;
  ProbeContext context;
};

// Where a container's logs are, for the log server.
// An Event about the pod the agent should record (best effort).
struct PodEvent {
  std::string type;  // Normal, Warning
  std::string reason;
  std::string message;
};

struct LogLocation {
  std::string dir;
  int run = 0;  // the current (or last) run; 0: never started
  bool running = false;
};

class PodWorker {
 public:
  // `record` is new (pod_ip set) or adopted from disk (pids to re-check).
  PodWorker(const WorkerConfig& config, PodRecord record);

  // `pod`: the pod as last seen in the store; null once it is gone.
  void Sync(const Json* pod, absl::Time now);
  void OnProbeResult(const std::string& container, ProbeKind kind, bool success,
                     const std::string& message, absl::Time now);
  // Probes due at `now` that are not already running; marks them running.
  std::vector<ProbeJob> TakeDueProbes(absl::Time now);

  // The status to write if it differs from what was last written.
  std::optional<Json> StatusToWrite() const;
  void MarkStatusWritten(const Json& status) { written_status_ = status; }
  // The pod is being deleted and none of its processes is left.
  bool ReadyToConfirmDelete() const;
  // Nothing of it runs and the pod is gone: remove its state.
  bool Done() const { return gone_ && !AnyProcessLeft(); }
  void RemoveFiles();

  const PodRecord& record() const { return record_; }
  // Events since the last call (bounded by kPendingEventsMax; older ones dropped).
  std::vector<PodEvent> TakeEvents() { return std::exchange(events_, {}); }
  std::map<std::string, LogLocation> LogLocations() const;
  std::string PodDir() const;
  // The earliest time something is due (a start, a kill, a probe).
  absl::Time NextWake() const { return next_wake_; }
  // Processes of this pod still alive (supervisors and their groups).
  int LiveProcessCount() const;

 private:
  struct Container {
    std::string name;
    bool init = false;
    Json spec;
    RestartBackoff backoff;
    absl::Time next_start = absl::InfinitePast();
    bool finished = false;  // exited and will not run again
    std::string waiting_reason;
    std::string waiting_message;
    std::optional<ProbeTracker> probes[3];  // by ProbeKind
    bool probe_running[3] = {false, false, false};
    std::string config_error;                           // why it cannot be started (bad probe, env)
    absl::Time stop_deadline = absl::InfiniteFuture();  // SIGKILL after it
    bool killed_by_probe = false;
  };

  std::string ContainerDir(const std::string& name) const;
  ContainerRecord& RecordOf(const Container& c) { return record_.containers[c.name]; }
  const ContainerRecord* Rec(const Container& c) const;
  void UpdateSpec(const Json& pod);
  void CheckExit(Container& c, absl::Time now);
  void Start(Container& c, absl::Time now);
  void Stop(Container& c, absl::Time now, absl::Duration grace);
  void Terminate(absl::Time now);
  bool AnyProcessLeft() const;
  std::vector<std::string> EnvFor(const Container& c, std::string* error) const;
  std::string WorkingDirFor(const Container& c, std::string* error) const;
  bool PrepareVolumes(const Container& c, std::string* error) const;
  Json BuildStatus(absl::Time now);
  Json ContainerStatus(const Container& c) const;
  void Save();
  void Wake(absl::Time at) { next_wake_ = std::min(next_wake_, at); }
  void Event(const std::string& type, const std::string& reason, const std::string& message);
  static constexpr size_t kPendingEventsMax = 64;

  const WorkerConfig& config_;
  PodRecord record_;
  Json pod_;                           // latest seen
  std::vector<Container> containers_;  // init containers first, in spec order
  bool gone_ = false;
  bool terminating_ = false;
  absl::Time kill_at_ = absl::InfiniteFuture();
  bool init_failed_ = false;
  std::optional<Json> status_;  // built by the last Sync
  std::optional<Json> written_status_;
  std::map<std::string, std::pair<std::string, absl::Time>> conditions_;  // type -> status, since
  absl::Time next_wake_ = absl::InfiniteFuture();
  std::vector<PodEvent> events_;  // bounded by kPendingEventsMax
};

}  // namespace ganglion::orchestrator::agent
