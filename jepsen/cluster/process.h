// Child processes for the harness: member servers (long-lived, optionally in
// a network namespace and under libfaketime) and short commands (`ip`,
// `iptables`). It must never leave a process behind: every child runs in its
// own process group, is killed with it, and dies with the harness
// (PR_SET_PDEATHSIG) even if the harness crashes. Every wait has a deadline.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace ganglion::jepsen {

struct SpawnOptions {
  std::vector<std::string> argv;  // argv[0] is a path; no PATH lookup
  std::vector<std::string> env;   // "NAME=value", added to (or replacing in) ours
  std::string netns;              // enter /var/run/netns/<netns> before exec; "" = ours
  std::string log_path;           // stdout and stderr, appended
};

// Starts the child and returns its pid (also its process group id).
absl::StatusOr<pid_t> Spawn(const SpawnOptions& options);

// Sends `signal` to the process group of `pid`.
void SignalGroup(pid_t pid, int signal);

// Waits for `pid` to exit, up to `timeout`. True if it was reaped.
bool Reap(pid_t pid, std::chrono::milliseconds timeout);

struct CommandResult {
  int exit_code = -1;  // 128 + signal if killed; -1 if timed out
  std::string output;  // stdout and stderr together
};

// Runs a short command (argv[0] is a path) and collects its output; killed at
// `timeout`.
CommandResult RunCommand(const std::vector<std::string>& argv,
                         std::chrono::milliseconds timeout = std::chrono::milliseconds(10000));

// The same, failing with the command's output unless it exits 0.
absl::Status RunOrError(const std::vector<std::string>& argv,
                        std::chrono::milliseconds timeout = std::chrono::milliseconds(10000));

}  // namespace ganglion::jepsen
