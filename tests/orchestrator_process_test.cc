// The reconcilers on a 3-member cluster: they run on the leader alone, and
// when the leader is killed the new leader's reconcilers take over. The
// failover time (kill to the new leader's first reconcile) is printed for
// the closing note; it is measured, never asserted.
#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/support/kube_cluster.h"

namespace ganglion::tests {
namespace {

using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;

std::string Deployment(const std::string& name, int replicas) {
  return absl::StrCat("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: ", name,
                      "}\nspec:\n  replicas: ", replicas,
                      "\n  selector: {matchLabels: {app: ", name,
                      "}}\n  template:\n    metadata: {labels: {app: ", name,
                      "}}\n    spec:\n      containers:\n      - {name: c, image: busybox, command: "
                      "[sleep, '1000']}\n");
}

class OrchestratorProcessTest : public KubeTest {
 protected:
  // The replica sets of deployment `name` (by the deployment's label).
  int ReplicaSetsOf(const std::string& name, int member = 0) const {
    auto r = K({"get", "replicasets", "-l", "app=" + name, "-o", "json"}, member);
    if (r.exit_code != 0) return -1;
    Json list = Json::parse(r.out, nullptr, false);
    return list.is_object() ? static_cast<int>(list["items"].size()) : -1;
  }

  template <typename Pred>
  static bool Eventually(Pred pred, std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      if (pred()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return pred();
  }
};

TEST_F(OrchestratorProcessTest, ReconcilersRunOnTheLeaderOnly) {
  ASSERT_TRUE(Eventually([] { return kube().ReconcilingMember().ok(); },
                         std::chrono::seconds(15)));
  auto reconciling = kube().ReconcilingMember();
  ASSERT_TRUE(reconciling.ok()) << reconciling.status();
  auto leader = cluster().LeaderIndex();
  ASSERT_TRUE(leader.ok()) << leader.status();
  EXPECT_EQ(*reconciling, *leader);
  for (int i = 0; i < cluster().size(); ++i) {
    auto running = kube().Metric(i, "ganglion_reconcilers_running");
    ASSERT_TRUE(running.ok()) << running.status();
    if (i == *leader) {
      EXPECT_GT(*running, 0) << "member " << i;
    } else {
      EXPECT_EQ(*running, 0) << "member " << i;
      EXPECT_EQ(*kube().Metric(i, "ganglion_reconciles_total"), 0) << "member " << i;
    }
  }
}

TEST_F(OrchestratorProcessTest, NewLeaderTakesOverWhenTheLeaderIsKilled) {
  ASSERT_EQ(K({"apply", "-f", WriteFile("d.yaml", Deployment("web", 2))}).exit_code, 0);
  ASSERT_TRUE(Eventually([&] { return ReplicaSetsOf("web") == 1; }, std::chrono::seconds(20)))
      << K({"get", "all"}).out;
  auto old = kube().ReconcilingMember();
  ASSERT_TRUE(old.ok()) << old.status();

  const double killed_at = absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch());
  ASSERT_TRUE(cluster().Kill(*old).ok());
  int next = -1;
  double first = 0;
  ASSERT_TRUE(Eventually(
      [&] {
        auto m = kube().ReconcilingMember();
        if (!m.ok()) return false;
        auto f = kube().Metric(*m, "ganglion_reconcile_first_seconds");
        if (!f.ok() || *f < killed_at) return false;
        next = *m;
        first = *f;
        return true;
      },
      std::chrono::seconds(20)));
  EXPECT_NE(next, *old);
  std::printf("failover: kill to the new leader's first reconcile %.0f ms\n",
              (first - killed_at) * 1000);
  RecordProperty("failover_ms", static_cast<int>((first - killed_at) * 1000));

  // The new leader's reconcilers act on a change made after the kill.
  ASSERT_EQ(K({"set", "image", "deployment/web", "c=busybox:2"}, next).exit_code, 0);
  EXPECT_TRUE(Eventually([&] { return ReplicaSetsOf("web", next) == 2; }, std::chrono::seconds(20)))
      << K({"get", "replicasets"}, next).out;
  ASSERT_TRUE(cluster().Restart(*old).ok());
}

}  // namespace
}  // namespace ganglion::tests
