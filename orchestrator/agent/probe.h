// Container probes (liveness, readiness, startup): the spec read from the
// container, the pure bookkeeping of when a probe is due and what its
// consecutive results mean, and running one probe (exec, httpGet to the pod
// address, tcpSocket) with its timeout. Running a probe blocks its caller
// for at most the probe's timeout (exec: plus the time to reap the command).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "nlohmann/json.hpp"

namespace ganglion::orchestrator::agent {

enum class ProbeKind { kLiveness, kReadiness, kStartup };
const char* ProbeKindName(ProbeKind kind);

struct ProbeSpec {
  enum class Action { kExec, kHttpGet, kTcpSocket } action = Action::kExec;
  std::vector<std::string> command;  // exec
  std::string host;                  // httpGet/tcpSocket; "" means the pod IP
  int port = 0;
  std::string path = "/";  // httpGet
  std::string scheme = "HTTP";
  absl::Duration initial_delay = absl::ZeroDuration();
  absl::Duration period = absl::Seconds(10);
  absl::Duration timeout = absl::Seconds(1);
  int success_threshold = 1;
  int failure_threshold = 3;
};

// The probe of `kind` in a container spec; nullopt if it has none. A named
// port is looked up in the container's ports; an error names what is wrong.
std::optional<ProbeSpec> ParseProbe(const nlohmann::json& container, ProbeKind kind,
                                    std::string* error);

// When a probe runs next and what its results add up to. Before the
// threshold is first reached: liveness counts as passing, readiness and
// startup as failing (as kubelet).
class ProbeTracker {
 public:
  ProbeTracker(ProbeSpec spec, ProbeKind kind, absl::Time container_started_at);
  absl::Time next_due() const { return next_due_; }
  // Records one result taken at `now`; returns true if the verdict changed.
  bool Record(bool success, absl::Time now, std::string message = "");
  bool passing() const { return passing_; }
  const std::string& last_message() const { return last_message_; }
  const ProbeSpec& spec() const { return spec_; }
  ProbeKind kind() const { return kind_; }

 private:
  ProbeSpec spec_;
  ProbeKind kind_;
  absl::Time next_due_;
  bool passing_;
  int successes_ = 0;  // consecutive
  int failures_ = 0;   // consecutive
  std::string last_message_;
};

struct ProbeContext {
  std::string pod_ip;
  std::vector<std::string> env;  // for exec
  std::string working_dir;       // for exec
};

struct ProbeResult {
  bool success = false;
  std::string message;  // why it failed
};
ProbeResult RunProbe(const ProbeSpec& spec, const ProbeContext& context);

}  // namespace ganglion::orchestrator::agent
