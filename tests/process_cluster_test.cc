// The process-cluster harness itself, against real etcd 3.4: if these fail,
// no test built on the harness can be trusted.
#include "tests/support/process_cluster.h"

#include <signal.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "gtest/gtest.h"

namespace ganglion::tests {
namespace {

using std::chrono::milliseconds;

ClusterOptions EtcdOptions(int members) {
  ClusterOptions options;
  options.binary = GANGLION_ETCD_BINARY;
  options.members = members;
  return options;
}

bool ProcessExists(pid_t pid) {
  return kill(pid, 0) == 0;
}

// A leader is re-elected within a few election timeouts; bound the wait.
absl::StatusOr<int> WaitForLeader(const ProcessCluster& cluster, int not_this = -1) {
  const auto deadline = std::chrono::steady_clock::now() + milliseconds(15000);
  absl::StatusOr<int> leader = absl::UnavailableError("not asked yet");
  while (std::chrono::steady_clock::now() < deadline) {
    leader = cluster.LeaderIndex();
    if (leader.ok() && *leader != not_this) return leader;
    std::this_thread::sleep_for(milliseconds(200));
  }
  return leader.ok() ? absl::DeadlineExceededError("leader did not change") : leader.status();
}

TEST(RunCommand, CapturesOutputsExitCodeAndLargeStdin) {
  const std::string big(1 << 20, 'x');  // larger than a pipe buffer
  CommandResult r = RunCommand({"/usr/bin/wc", "-c"}, big, milliseconds(10000));
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, "1048576\n");
  r = RunCommand({"/bin/sh", "-c", "echo out; echo err >&2; exit 3"}, "", milliseconds(10000));
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.out, "out\n");
  EXPECT_EQ(r.err, "err\n");
}

TEST(RunCommand, KillsAtTheDeadline) {
  const auto start = std::chrono::steady_clock::now();
  CommandResult r = RunCommand({"/bin/sleep", "30"}, "", milliseconds(300));
  EXPECT_TRUE(r.timed_out);
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(5000));
}

TEST(ProcessCluster, StartsServesAndCleansUp) {
  std::vector<pid_t> pids;
  std::string root;
  {
    ProcessCluster cluster(EtcdOptions(3));
    ASSERT_TRUE(cluster.Start().ok());
    root = cluster.data_root();
    for (int i = 0; i < cluster.size(); ++i) pids.push_back(cluster.member(i).pid);
    CommandResult put = cluster.Etcdctl({"put", "k", "v"});
    EXPECT_EQ(put.exit_code, 0) << put.err;
    // Every member serves the write.
    for (int i = 0; i < cluster.size(); ++i) {
      CommandResult get =
          cluster.Etcdctl({"get", "k", "--print-value-only"}, cluster.client_endpoint(i));
      EXPECT_EQ(get.out, "v\n") << cluster.member(i).name << ": " << get.err;
    }
    auto leader = cluster.LeaderIndex();
    ASSERT_TRUE(leader.ok()) << leader.status();
    EXPECT_GE(*leader, 0);
    EXPECT_LT(*leader, 3);
    EXPECT_TRUE(std::filesystem::exists(cluster.member(0).log_path));
  }
  for (pid_t pid : pids) EXPECT_FALSE(ProcessExists(pid)) << "orphan " << pid;
  EXPECT_FALSE(std::filesystem::exists(root)) << root;
}

TEST(ProcessCluster, FailsClearlyWhenTheServerCannotStart) {
  ClusterOptions options = EtcdOptions(1);
  options.extra_flags = {"--no-such-flag"};
  options.start_timeout = milliseconds(10000);
  ProcessCluster cluster(options);
  absl::Status s = cluster.Start();
  ASSERT_FALSE(s.ok());
  // The message names the member and carries its log (etcd names the flag).
  EXPECT_NE(s.message().find("m1"), std::string::npos) << s;
  EXPECT_NE(s.message().find("no-such-flag"), std::string::npos) << s;
}

TEST(ProcessCluster, RejectsAMissingBinary) {
  ClusterOptions options = EtcdOptions(1);
  options.binary = "/nonexistent/ganglion";
  ProcessCluster cluster(options);
  absl::Status s = cluster.Start();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
}

TEST(ProcessCluster, KillRestartPauseAndTransferLeadership) {
  ProcessCluster cluster(EtcdOptions(3));
  ASSERT_TRUE(cluster.Start().ok());
  auto leader = cluster.LeaderIndex();
  ASSERT_TRUE(leader.ok()) << leader.status();

  // Kill -9 the leader: the other two elect a new one and keep serving.
  ASSERT_TRUE(cluster.Kill(*leader).ok());
  EXPECT_FALSE(cluster.IsRunning(*leader));
  auto next = WaitForLeader(cluster, *leader);
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(cluster.Etcdctl({"put", "after-kill", "1"}).exit_code, 0);

  // Restart with the same flags over the existing data dir: it catches up.
  ASSERT_TRUE(cluster.Restart(*leader).ok());
  CommandResult get =
      cluster.Etcdctl({"get", "after-kill", "--print-value-only", "--consistency=s"},
                      cluster.client_endpoint(*leader));
  EXPECT_EQ(get.out, "1\n") << get.err;

  // A paused member does not answer; resumed, it does.
  const int follower = (*next + 1) % 3;
  ASSERT_TRUE(cluster.Pause(follower).ok());
  CommandResult paused =
      cluster.Etcdctl({"--command-timeout=1s", "get", "x"}, cluster.client_endpoint(follower));
  EXPECT_NE(paused.exit_code, 0);
  ASSERT_TRUE(cluster.Resume(follower).ok());
  EXPECT_TRUE(cluster.WaitHealthy(follower, milliseconds(10000)).ok());

  // Graceful stop, then move leadership around.
  ASSERT_TRUE(cluster.Stop(follower).ok());
  ASSERT_TRUE(cluster.Restart(follower).ok());
  ASSERT_TRUE(cluster.TransferLeadership(follower).ok());
  auto moved = cluster.LeaderIndex();
  ASSERT_TRUE(moved.ok()) << moved.status();
  EXPECT_EQ(*moved, follower);
}

TEST(ProcessCluster, AddMemberJoinsARunningCluster) {
  ProcessCluster cluster(EtcdOptions(3));
  ASSERT_TRUE(cluster.Start().ok());
  ASSERT_EQ(cluster.Etcdctl({"put", "before-join", "yes"}).exit_code, 0);
  auto added = cluster.AddMember("m4");
  ASSERT_TRUE(added.ok()) << added.status();
  EXPECT_EQ(*added, 3);
  EXPECT_EQ(cluster.member(3).initial_cluster_state, "existing");
  CommandResult list = cluster.Etcdctl({"member", "list"});
  EXPECT_NE(list.out.find("m4"), std::string::npos) << list.out;
  CommandResult get = cluster.Etcdctl(
      {"get", "before-join", "--print-value-only", "--consistency=s"}, cluster.client_endpoint(3));
  EXPECT_EQ(get.out, "yes\n") << get.err;
}

}  // namespace
}  // namespace ganglion::tests
