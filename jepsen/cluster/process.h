// Child processes for the harness: member servers (long-lived, optionally in
// a network namespace and under libfaketime) and short commands (`ip`,
// `iptables`). It must never leave a process behind: every child runs in its
// own process group, is killed with it, and dies with the harness
// (PR_SET_PDEATHSIG) even if the harness crashes. Every wait has a deadline.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
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
// PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, so
// long-lived children must be spawned from a thread that lives as long as
// they should: see Spawner.
absl::StatusOr<pid_t> Spawn(const SpawnOptions& options);

// One thread that does every Spawn for its owner, so children started on
// behalf of short-lived threads (a nemesis) are not killed when those end.
class Spawner {
 public:
  Spawner();
  ~Spawner();  // joins the thread
  Spawner(const Spawner&) = delete;
  Spawner& operator=(const Spawner&) = delete;
  absl::StatusOr<pid_t> Spawn(const SpawnOptions& options);

 private:
  void Run();
  std::mutex mu_;
  std::condition_variable cv_;
  // One request at a time: Spawn blocks its caller until the child exists.
  const SpawnOptions* request_ = nullptr;        // guarded by mu_
  std::optional<absl::StatusOr<pid_t>> result_;  // guarded by mu_
  bool stop_ = false;                            // guarded by mu_
  std::thread thread_;
};

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
