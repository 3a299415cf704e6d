// A cluster of etcd-compatible server processes (the `ganglion` binary, or etcd
// 3.4 itself as the reference) on loopback, for tests that start real
// processes. It speaks only etcd 3.4's command-line flags and drives the
// cluster with etcdctl, so the same test runs unchanged against either binary.
//
// It must never leave a process behind: every member runs in its own process
// group, is killed with its group by the destructor, and dies with the test
// process (PR_SET_PDEATHSIG) even if the test crashes before the destructor
// runs. Every wait has a deadline; no call blocks forever.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <csignal>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ganglion::tests {

// What a finished (or timed-out) child process left behind.
struct CommandResult {
  int exit_code = -1;  // 128 + signal number if it died by a signal
  std::string out;
  std::string err;
  bool timed_out = false;  // killed at the deadline; exit_code is then -1
};

// Runs argv[0] (a path, no shell, no PATH lookup) with `stdin_data` on its
// standard input and `extra_env` ("NAME=value") added to the environment.
// At `timeout` the child gets `stop_signal`; anything but SIGKILL (say SIGINT,
// a user's Ctrl-C) lets it clean up and exit for up to kStopGrace while its
// output is still read, then SIGKILL. Either way the result is timed_out.
CommandResult RunCommand(const std::vector<std::string>& argv, const std::string& stdin_data,
                         std::chrono::milliseconds timeout,
                         const std::vector<std::string>& extra_env = {}, int stop_signal = SIGKILL);
inline constexpr std::chrono::milliseconds kStopGrace{5000};

// A loopback port nothing listens on now, never one already in `taken`
// (which it joins). Free when picked: a process must take it soon after.
absl::StatusOr<int> FreeLoopbackPort(std::set<int>& taken);

// GET http://127.0.0.1:<port><path> (HTTP/1.0, 5 s read timeout): the raw
// response, headers included, or "" if nothing answered.
std::string HttpGet(int port, const std::string& path);

// The value of the unlabelled series `name` in Prometheus text (a /metrics
// body), or nullopt if it is not there.
std::optional<double> MetricValue(absl::string_view text, absl::string_view name);

// The last `max_lines` lines of a file ("" if it cannot be read).
std::string TailFile(const std::string& path, int max_lines = 40);

struct ClusterOptions {
  std::string binary;  // the server: <build>/bin/ganglion or /usr/bin/etcd
  int members = 3;
  // Holds <name>/ (data dir) and <name>.log per member. A fresh temp dir when
  // empty; removed at teardown unless GANGLION_KEEP_DATA is set in the
  // environment or keep_data is true. A given data_root is never removed.
  std::string data_root;
  bool keep_data = false;
  std::vector<std::string> extra_flags;  // appended to every member's flags
  // Give each member --listen-api-urls on a free loopback port (ganglion only).
  bool serve_api = false;
  std::string name_prefix = "m";  // members are m1, m2, ...
  std::string cluster_token = "ganglion-test";
  int heartbeat_interval_ms = 100;
  int election_timeout_ms = 1000;

  std::string etcdctl = "/usr/bin/etcdctl";
  // Deadline for a member to answer `endpoint health` after it was started.
  std::chrono::milliseconds start_timeout{30000};
  // SIGTERM grace before SIGKILL in Stop(), and the wait for exit after any kill.
  std::chrono::milliseconds stop_timeout{10000};
  // Wall-clock limit of one etcdctl run (its own --command-timeout is shorter).
  std::chrono::milliseconds etcdctl_timeout{20000};
};

struct Member {
  std::string name;
  int client_port = 0;
  int peer_port = 0;
  int metrics_port = 0;
  int api_port = 0;  // 0 unless ClusterOptions::serve_api
  std::string data_dir;
  std::string log_path;
  std::string initial_cluster;        // --initial-cluster it was started with
  std::string initial_cluster_state;  // "new" or "existing"
  pid_t pid = 0;                      // 0 when not running
  bool paused = false;
  int wait_status = -1;  // waitpid's status from its last exit; -1 before one

  std::string ClientEndpoint() const;  // "127.0.0.1:port"
  std::string ClientUrl() const;       // "http://127.0.0.1:port"
  std::string PeerUrl() const;
  std::string ApiUrl() const;  // "http://127.0.0.1:api_port"
};

class ProcessCluster {
 public:
  explicit ProcessCluster(ClusterOptions options);
  // Kills (SIGKILL, whole process group) and reaps every member still running.
  ~ProcessCluster();
  ProcessCluster(const ProcessCluster&) = delete;
  ProcessCluster& operator=(const ProcessCluster&) = delete;

  // Picks free loopback ports, starts every member as a new cluster and waits
  // until each one reports healthy. On failure the message carries the tail of
  // the failing member's log.
  absl::Status Start();

  // Sends `signal` to member i's process group and waits (stop_timeout) for it
  // to exit. Not for SIGSTOP/SIGCONT: use Pause/Resume.
  absl::Status Kill(int i, int signal = SIGKILL);
  // SIGTERM, then SIGKILL if it is still running after stop_timeout.
  absl::Status Stop(int i);
  // Stops member i if it runs, starts it again with the same flags (etcd
  // ignores --initial-cluster* once the data dir exists) and waits until healthy.
  absl::Status Restart(int i);
  // Stops every member, then starts them all before waiting for any (one
  // member alone has no quorum, so restarting one at a time would not do).
  absl::Status RestartAll();
  absl::Status Pause(int i);   // SIGSTOP
  absl::Status Resume(int i);  // SIGCONT

  // Joining a member is two steps because the cluster must learn the new
  // peer URL (`etcdctl member add`) before the process starts.
  // PrepareMember reserves ports and a data dir and returns the new index.
  int PrepareMember(const std::string& name);
  // Starts a prepared member with --initial-cluster-state existing and the
  // given --initial-cluster (what `member add` printed), and waits until healthy
  // (unless wait_healthy is false: a learner never reports healthy, since it
  // refuses the linearizable read `endpoint health` makes).
  absl::Status StartAddedMember(int i, const std::string& initial_cluster,
                                bool wait_healthy = true);
  // Both steps, running `etcdctl member add` against the running members.
  absl::StatusOr<int> AddMember(const std::string& name);

  // Runs etcdctl (ETCDCTL_API=3) with `args` against `endpoints` ("" means
  // every running member), stopped with `stop_signal` after `timeout` (0:
  // options.etcdctl_timeout), as RunCommand does.
  CommandResult Etcdctl(const std::vector<std::string>& args, const std::string& endpoints = "",
                        const std::string& stdin_data = "",
                        std::chrono::milliseconds timeout = std::chrono::milliseconds(0),
                        int stop_signal = SIGKILL) const;

  // The index of the member every running member agrees is the leader, from
  // `endpoint status -w json`.
  absl::StatusOr<int> LeaderIndex() const;
  // Member i's id as the cluster reports it (`member list -w json`).
  absl::StatusOr<uint64_t> MemberId(int i) const;
  // Moves leadership to member i (`etcdctl move-leader`) and waits until every
  // running member agrees, bounded by start_timeout.
  absl::Status TransferLeadership(int i);

  // Waits until member i answers `endpoint health`, bounded by `timeout`;
  // fails early if the process exits.
  absl::Status WaitHealthy(int i, std::chrono::milliseconds timeout);

  int size() const { return static_cast<int>(members_.size()); }
  const Member& member(int i) const { return members_.at(i); }
  bool IsRunning(int i) const { return members_.at(i).pid != 0; }
  const std::string& data_root() const { return data_root_; }
  const ClusterOptions& options() const { return options_; }

  // "127.0.0.1:p1,127.0.0.1:p2,..." over the running members.
  std::string client_endpoints() const;
  std::string client_endpoint(int i) const { return members_.at(i).ClientEndpoint(); }
  // "m1=http://127.0.0.1:peer1,..." over every member started so far.
  std::string initial_cluster() const;

 private:
  absl::Status Spawn(int i);
  // Waits until member i's process exits, bounded by `timeout`.
  absl::Status Reap(int i, std::chrono::milliseconds timeout);
  std::string Describe(int i) const;  // name, pid, log tail: for failure messages

  ClusterOptions options_;
  std::string data_root_;
  bool remove_data_root_ = false;
  std::vector<Member> members_;
};

}  // namespace ganglion::tests
