// Leases on a real three-member ganglion cluster: a lease kept alive survives
// the leader's kill -9, an abandoned one takes its keys with it once its TTL
// is over (and not before), and expiry is the same at every member.
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/support/process_cluster.h"

namespace ganglion::tests {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

ClusterOptions GanglionOptions(std::vector<std::string> extra_flags = {}) {
  ClusterOptions options;
  options.binary = GANGLION_BINARY;
  options.members = 3;
  options.extra_flags = std::move(extra_flags);
  return options;
}

// `etcdctl lease grant` prints "lease <hex id> granted with TTL(<n>s)".
int64_t GrantLease(const ProcessCluster& cluster, int ttl_seconds) {
  CommandResult r = cluster.Etcdctl({"lease", "grant", std::to_string(ttl_seconds)});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> words = absl::StrSplit(r.out, ' ');
  uint64_t id = 0;
  EXPECT_TRUE(words.size() > 1 && absl::SimpleHexAtoi(words[1], &id)) << r.out;
  return static_cast<int64_t>(id);
}

bool KeyExists(const ProcessCluster& cluster, const std::string& key, int member) {
  CommandResult r = cluster.Etcdctl({"get", key, "--keys-only", "--consistency=s"},
                                    cluster.client_endpoint(member));
  return r.exit_code == 0 && !r.out.empty();
}

// Keeps one lease alive over etcd's KeepAlive stream, every `period`, moving
// to the next member whenever a stream fails. Counts the answers that said
// the lease was gone (TTL 0).
class KeepAlive {
 public:
  KeepAlive(const ProcessCluster& cluster, int64_t id, milliseconds period)
      : id_(id), period_(period) {
    for (int i = 0; i < cluster.size(); i++) endpoints_.push_back(cluster.client_endpoint(i));
    thread_ = std::thread([this] { Run(); });
  }
  ~KeepAlive() {
    stop_ = true;
    thread_.join();
  }
  int lost() const { return lost_; }
  int renewed() const { return renewed_; }

 private:
  void Run() {
    for (size_t e = 0; !stop_; e++) {
      auto stub = etcdserverpb::Lease::NewStub(grpc::CreateChannel(
          endpoints_[e % endpoints_.size()], grpc::InsecureChannelCredentials()));
      grpc::ClientContext ctx;
      auto stream = stub->LeaseKeepAlive(&ctx);
      while (!stop_) {
        etcdserverpb::LeaseKeepAliveRequest req;
        req.set_id(id_);
        etcdserverpb::LeaseKeepAliveResponse resp;
        // A read that never returns (a killed member's half-open stream)
        // is cut by cancelling the call from a watchdog.
        std::atomic<bool> answered{false};
        std::thread watchdog([&] {
          for (int i = 0; i < 20 && !answered; i++) std::this_thread::sleep_for(milliseconds(100));
          if (!answered) ctx.TryCancel();
        });
        const bool ok = stream->Write(req) && stream->Read(&resp);
        answered = true;
        watchdog.join();
        if (!ok) break;
        if (resp.ttl() <= 0) {
          lost_++;
        } else {
          renewed_++;
        }
        std::this_thread::sleep_for(period_);
      }
      ctx.TryCancel();
      stream->WritesDone();
      (void)stream->Finish();
      std::this_thread::sleep_for(milliseconds(100));
    }
  }

  const int64_t id_;
  const milliseconds period_;
  std::vector<std::string> endpoints_;
  std::atomic<bool> stop_{false};
  std::atomic<int> lost_{0};
  std::atomic<int> renewed_{0};
  std::thread thread_;
};

TEST(GanglionLeases, LeaseKeptAliveSurvivesTheLeadersKill) {
  ProcessCluster cluster(GanglionOptions());
  ASSERT_TRUE(cluster.Start().ok());
  auto leader = cluster.LeaderIndex();
  ASSERT_TRUE(leader.ok()) << leader.status();
  const int64_t id = GrantLease(cluster, 3);
  ASSERT_EQ(
      cluster.Etcdctl({"put", "alive", "v", "--lease=" + absl::StrCat(absl::Hex(id))}).exit_code,
      0);
  {
    KeepAlive keeper(cluster, id, milliseconds(500));
    std::this_thread::sleep_for(milliseconds(2000));
    ASSERT_TRUE(cluster.Kill(*leader).ok());
    // Well past the 3 s TTL, across the election.
    std::this_thread::sleep_for(milliseconds(8000));
    EXPECT_EQ(keeper.lost(), 0);
    EXPECT_GT(keeper.renewed(), 5);
  }
  const int survivor = (*leader + 1) % 3;
  EXPECT_TRUE(KeyExists(cluster, "alive", survivor));
}

TEST(GanglionLeases, AbandonedLeaseTakesItsKeysAfterItsTtlAndNotBefore) {
  ProcessCluster cluster(GanglionOptions());
  ASSERT_TRUE(cluster.Start().ok());
  const int ttl_seconds = 5;
  const auto granted_at = Clock::now();
  const int64_t id = GrantLease(cluster, ttl_seconds);
  ASSERT_EQ(cluster.Etcdctl({"put", "ephemeral", "v", "--lease=" + absl::StrCat(absl::Hex(id))})
                .exit_code,
            0);
  // It may go no earlier than TTL minus an election timeout (1 s).
  const auto earliest = granted_at + milliseconds(ttl_seconds * 1000 - 1000);
  auto gone_at = Clock::time_point::max();
  while (Clock::now() < granted_at + milliseconds(ttl_seconds * 1000 + 10000)) {
    const auto probe = Clock::now();
    if (!KeyExists(cluster, "ephemeral", 0)) {
      gone_at = probe;
      break;
    }
    std::this_thread::sleep_for(milliseconds(100));
  }
  ASSERT_NE(gone_at, Clock::time_point::max()) << "the key outlived its lease by 10 s";
  EXPECT_GE(gone_at, earliest);
  std::printf("lease: key gone %lld ms after the grant (TTL %d s)\n",
              static_cast<long long>(
                  std::chrono::duration_cast<milliseconds>(gone_at - granted_at).count()),
              ttl_seconds);
  // Every member revoked it at the same log position.
  for (int i = 0; i < 3; i++) {
    CommandResult ttl = cluster.Etcdctl({"lease", "timetolive", absl::StrCat(absl::Hex(id))},
                                        cluster.client_endpoint(i));
    EXPECT_NE(ttl.out.find("already expired"), std::string::npos) << ttl.out << ttl.err;
    for (int tries = 0; tries < 50 && KeyExists(cluster, "ephemeral", i); tries++) {
      std::this_thread::sleep_for(milliseconds(100));
    }
    EXPECT_FALSE(KeyExists(cluster, "ephemeral", i)) << "member " << i;
  }
}

// The remaining TTL `etcdctl lease timetolive` prints on `member`
// ("... remaining(<n>s)"), retried until a new leader answers; otherwise an
// error with the last output.
absl::StatusOr<int64_t> RemainingTtlAfterFailover(const ProcessCluster& cluster, int64_t id,
                                                  int member) {
  CommandResult ttl;
  for (auto deadline = Clock::now() + milliseconds(20000); Clock::now() < deadline;) {
    ttl = cluster.Etcdctl({"lease", "timetolive", absl::StrCat(absl::Hex(id))},
                          cluster.client_endpoint(member));
    const auto at = ttl.out.find("remaining(");
    if (ttl.exit_code == 0 && at != std::string::npos) {
      const auto start = at + sizeof("remaining(") - 1;
      int64_t seconds = 0;
      if (!absl::SimpleAtoi(ttl.out.substr(start, ttl.out.find('s', start) - start), &seconds)) {
        return absl::InternalError("unparsed: " + ttl.out);
      }
      return seconds;
    }
    std::this_thread::sleep_for(milliseconds(200));
  }
  return absl::DeadlineExceededError(ttl.out + ttl.err);
}

TEST(GanglionLeases, CheckpointedRemainingTtlSurvivesALeaderChange) {
  // Checkpoints every second instead of every 5 minutes.
  ProcessCluster cluster(GanglionOptions({"--lease-checkpoint-interval=1000"}));
  ASSERT_TRUE(cluster.Start().ok());
  auto leader = cluster.LeaderIndex();
  ASSERT_TRUE(leader.ok()) << leader.status();
  const int64_t id = GrantLease(cluster, 60);
  std::this_thread::sleep_for(milliseconds(6000));
  // The new leader starts the lease from its last checkpoint (about 55 s
  // left, plus an election timeout), not from the full 60 s.
  ASSERT_TRUE(cluster.Kill(*leader).ok());
  const int survivor = (*leader + 1) % 3;
  const absl::StatusOr<int64_t> remaining = RemainingTtlAfterFailover(cluster, id, survivor);
  ASSERT_TRUE(remaining.ok()) << remaining.status();
  EXPECT_LE(*remaining, 58);
  EXPECT_GE(*remaining, 45);
}

TEST(GanglionLeases, RenewalAfterACheckpointGivesANewLeaderTheFullTtl) {
  // A checkpoint every 10 s: the first records about 50 s of a 60 s lease
  // (due 10 s after the grant, proposed within a second).
  ProcessCluster cluster(GanglionOptions({"--lease-checkpoint-interval=10000"}));
  ASSERT_TRUE(cluster.Start().ok());
  auto leader = cluster.LeaderIndex();
  ASSERT_TRUE(leader.ok()) << leader.status();
  const int64_t id = GrantLease(cluster, 60);
  std::this_thread::sleep_for(milliseconds(14000));
  // Renewed after that checkpoint, and the leader killed 5 s before the
  // next one: the new leader must not start the lease from the recorded 50 s.
  CommandResult renew =
      cluster.Etcdctl({"lease", "keep-alive", "--once", absl::StrCat(absl::Hex(id))},
                      cluster.client_endpoint(*leader));
  ASSERT_EQ(renew.exit_code, 0) << renew.err;
  std::this_thread::sleep_for(milliseconds(500));  // the clear commits
  ASSERT_TRUE(cluster.Kill(*leader).ok());
  const int survivor = (*leader + 1) % 3;
  const absl::StatusOr<int64_t> remaining = RemainingTtlAfterFailover(cluster, id, survivor);
  ASSERT_TRUE(remaining.ok()) << remaining.status();
  // Full TTL plus an election timeout, less the time the failover took.
  EXPECT_GE(*remaining, 54);
}

}  // namespace
}  // namespace ganglion::tests
