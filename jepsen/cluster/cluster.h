// The cluster under test: 3 or 5 real `ganglion` processes, each either in
// its own network namespace (NetLab) or on loopback with the server's
// test-only peer fault filter, and the operations the nemeses perform on
// them: kill, restart (optionally under libfaketime), pause, resume,
// partition, heal, remove and re-add a member, move the leader, compact.
// It must never leave a process or a namespace behind: the destructor kills
// every member's process group and tears the network down.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client/client.h"
#include "jepsen/cluster/netlab.h"
#include "jepsen/cluster/process.h"

namespace ganglion::jepsen {

struct ClusterOptions {
  std::string binary;  // the ganglion server
  int members = 3;
  std::string dir;           // data dirs and logs go under <dir>/
  std::string net = "auto";  // auto | netns | filter
  std::string net_prefix = "gjep";
  std::vector<std::string> extra_flags;  // appended to every member's flags
  int heartbeat_interval_ms = 100;
  int election_timeout_ms = 1000;
  std::chrono::milliseconds start_timeout{30000};
};

struct MemberState {
  std::string name;  // n1, n2, ...
  std::string host;  // its IP (netns) or 127.0.0.1
  int client_port = 0, peer_port = 0, metrics_port = 0;
  int incarnation = 0;  // bumped when removed and added back as a new member
  pid_t pid = 0;        // 0: not running
  bool paused = false;
  bool removed = false;          // removed from the cluster, not yet added back
  std::vector<std::string> env;  // for its next start (libfaketime)
  std::string initial_cluster;   // what it was (last) started with
  std::string initial_cluster_state = "new";

  std::string client_endpoint() const;  // host:port
  std::string peer_url() const;
  std::string data_dir(const std::string& root) const;
};

class Cluster {
 public:
  explicit Cluster(ClusterOptions options);
  ~Cluster();  // kills every member, removes the network
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  // Builds the network (netns when it can, unless told otherwise), starts
  // every member and waits until each is healthy.
  absl::Status Start();
  // "netns" or "filter", and why when netns was not used.
  const std::string& net_mode() const { return net_mode_; }
  const std::string& net_note() const { return net_note_; }

  int size() const { return static_cast<int>(members_.size()); }
  std::vector<std::string> client_endpoints() const;
  // A member's state (copy: nemeses run concurrently with readers).
  MemberState member(int i) const;
  bool running(int i) const;

  absl::Status Kill(int i);  // SIGKILL, reaped
  // Starts a member that is not running, with `env` added (e.g. libfaketime);
  // does not wait for health (a minority member never becomes healthy).
  absl::Status StartMember(int i, const std::vector<std::string>& env = {});
  absl::Status Pause(int i);
  absl::Status Resume(int i);
  absl::Status WaitHealthy(int i, std::chrono::milliseconds timeout);

  // drop_from[i]: members whose traffic member i drops. Empty sets heal.
  absl::Status Partition(const std::vector<std::set<int>>& drop_from);
  absl::Status Heal();

  // The leader as the members see it, or an error if none answers.
  absl::StatusOr<int> Leader();
  absl::StatusOr<uint64_t> MemberId(int i);
  absl::Status TransferLeadership(int to);
  // Removes member i from the cluster and stops it; AddBack adds it as a new
  // member (fresh data dir) and starts it.
  absl::Status Remove(int i);
  absl::Status AddBack(int i);
  absl::StatusOr<int64_t> Compact(int64_t revision);
  absl::StatusOr<int64_t> CurrentRevision();

  // Resumes paused members, heals, restarts stopped ones without extra env,
  // adds removed ones back: the end-of-run heal.
  absl::Status HealAll();

  void Shutdown();
  std::string LogPath(int i) const;

 private:
  absl::Status SpawnLocked(int i);
  absl::Status SetFilterRules(const std::vector<std::set<int>>& drop_from);
  std::vector<std::string> FlagsFor(const MemberState& m) const;
  // A client over every member, for admin calls.
  client::Client& admin();

  const ClusterOptions options_;
  Spawner spawner_;  // members die with its thread; it lives as long as the cluster
  std::string net_mode_, net_note_;
  std::unique_ptr<NetLab> lab_;
  mutable std::mutex mu_;  // guards members_
  std::vector<MemberState> members_;
  std::unique_ptr<client::Client> admin_;  // created by Start
  std::vector<uint64_t> ids_;              // member ids by slot (guarded by mu_)
};

// A bare HTTP/1.1 request (no body), for the members' metrics listener.
absl::StatusOr<std::pair<int, std::string>> HttpRequest(const std::string& host, int port,
                                                        const std::string& method,
                                                        const std::string& target,
                                                        std::chrono::milliseconds timeout);

}  // namespace ganglion::jepsen
