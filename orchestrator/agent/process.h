// Containers as supervised process trees. Each container runs under a small
// supervisor: the agent binary re-executed with `--shim` in a new session
// (so the supervisor's pid is the container's process group id). The
// supervisor starts the command with its stdout and stderr on pipes, stamps
// every line into the run's log file (logs.h), waits for the command and
// writes its exit status to the run's exit file, then exits. It outlives the
// agent (no parent-death signal): a restarted agent finds the exit file or
// the live supervisor, which is what makes adoption possible. Stopping a
// container is a signal to its whole process group.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace ganglion::orchestrator::agent {

struct LaunchSpec {
  std::string agent_binary;          // the supervisor (this binary, /proc/self/exe)
  std::vector<std::string> command;  // command + args; [0] looked up in the env's PATH
  std::vector<std::string> env;      // "NAME=value", the container's whole environment
  std::string working_dir;
  std::string log_path;
  std::string exit_path;
  int64_t log_rotate_bytes = 10 * 1024 * 1024;
};

// Starts the supervisor; returns its pid (= the container's process group).
absl::StatusOr<pid_t> Launch(const LaunchSpec& spec);

// The supervisor's main: argv after `--shim`. Returns the process exit code.
int RunShim(int argc, char** argv);

struct ExitRecord {
  int exit_code = 0;  // 128 + signal when killed by one
  int signal = 0;
  absl::Time finished_at;
  std::string message;  // e.g. why the command could not start
};
std::optional<ExitRecord> ReadExitRecord(const std::string& path);

// Signals the process group `pgid` (ESRCH is fine: it is gone).
void SignalGroup(pid_t pgid, int signal);
// Every pid whose process group is `pgid` (from /proc), zombies excluded.
std::vector<pid_t> GroupMembers(pid_t pgid);
// Reaps `pid` if it is a child of this process that has exited (no-op otherwise).
void ReapIfChild(pid_t pid);

}  // namespace ganglion::orchestrator::agent
