// The scheduler in a 3-member ganglion cluster whose members serve the API,
// driven by the real kubectl: nodes the test creates (Ready, with
// allocatable), pods applied from YAML get bound by the leader's scheduler
// respecting their nodeSelector (as `kubectl get pods -o wide` shows); a pod
// no node fits stays Pending and `kubectl describe pod` shows the
// FailedScheduling event; a Deployment's pods spread over the nodes; after a
// leadership change the new leader's scheduler binds new pods.
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/kube_cluster.h"

namespace ganglion::tests {
namespace {

using Json = nlohmann::json;
using std::chrono::milliseconds;

constexpr int kWaitAttemptsMax = 300;  // of 100 ms each

class SchedulerProcessTest : public KubeTest {
 protected:
  // `kubectl apply -f -` of `yaml`.
  void Apply(const std::string& yaml, int member = 0) const {
    auto r = Kubectl({"-n", ns_, "apply", "-f", "-"}, member, yaml);
    ASSERT_EQ(r.exit_code, 0) << r.err << "\n" << yaml;
  }

  static std::string NodeYaml(const std::string& name, const std::string& labels,
                              const std::string& cpu) {
    return absl::StrCat("apiVersion: v1\nkind: Node\nmetadata:\n  name: ", name,
                        "\n  labels: ", labels, R"(
status:
  capacity: {cpu: ")",
                        cpu, R"(", memory: 8Gi, pods: "110"}
  allocatable: {cpu: ")",
                        cpu, R"(", memory: 8Gi, pods: "110"}
  conditions:
  - {type: Ready, status: "True", reason: KubeletReady, message: kubelet is posting ready status}
)");
  }

  static std::string PodYaml(const std::string& name, const std::string& node_selector,
                             const std::string& cpu = "100m") {
    std::string yaml =
        absl::StrCat("apiVersion: v1\nkind: Pod\nmetadata:\n  name: ", name, "\nspec:\n");
    if (!node_selector.empty()) absl::StrAppend(&yaml, "  nodeSelector: ", node_selector, "\n");
    absl::StrAppend(&yaml, "  containers:\n  - name: c\n    image: busybox:1.36\n",
                    "    resources:\n      requests: {cpu: ", cpu, "}\n");
    return yaml;
  }

  // Pod name -> (status, node) from `kubectl get pods -o wide`.
  std::map<std::string, std::pair<std::string, std::string>> Wide(int member = 0) const {
    std::map<std::string, std::pair<std::string, std::string>> out;
    auto r = K({"get", "pods", "-o", "wide"}, member);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::vector<std::string> lines = absl::StrSplit(r.out, '\n', absl::SkipEmpty());
    if (lines.empty()) return out;
    const size_t status_at = lines[0].find("STATUS"), node_at = lines[0].find("NODE ");
    EXPECT_NE(node_at, std::string::npos) << lines[0];
    for (size_t i = 1; i < lines.size(); ++i) {
      const std::string& l = lines[i];
      auto word_at = [&](size_t at) {
        if (at >= l.size()) return std::string();
        return l.substr(at, l.find(' ', at) - at);
      };
      out[l.substr(0, l.find(' '))] = {word_at(status_at), word_at(node_at)};
    }
    return out;
  }

  // Waits until every pod in `names` shows a node; returns name -> node.
  std::map<std::string, std::string> WaitBound(const std::vector<std::string>& names,
                                               int member = 0) const {
    std::map<std::string, std::string> nodes;
    for (int attempt = 0; attempt < kWaitAttemptsMax; ++attempt) {
      auto wide = Wide(member);
      nodes.clear();
      for (const std::string& n : names) {
        auto it = wide.find(n);
        if (it != wide.end() && it->second.second != "<none>" && !it->second.second.empty()) {
          nodes[n] = it->second.second;
        }
      }
      if (nodes.size() == names.size()) break;
      std::this_thread::sleep_for(milliseconds(100));
    }
    return nodes;
  }
};

TEST_F(SchedulerProcessTest, PodsAreBoundRespectingNodeSelectorAndTheMisfitIsPending) {
  Apply(NodeYaml("sel-plain-1", "{zone: a}", "4") + "---\n" +
        NodeYaml("sel-ssd", "{zone: b, disk: ssd}", "4") + "---\n" +
        NodeYaml("sel-plain-2", "{zone: c}", "4"));
  auto nodes = Kubectl({"get", "nodes"});
  ASSERT_EQ(nodes.exit_code, 0) << nodes.err;
  EXPECT_TRUE(absl::StrContains(nodes.out, "sel-ssd")) << nodes.out;
  EXPECT_TRUE(absl::StrContains(nodes.out, "Ready")) << nodes.out;

  std::string pods;
  for (int i = 0; i < 3; ++i)
    absl::StrAppend(&pods, PodYaml(absl::StrCat("fast-", i), "{disk: ssd}"), "---\n");
  for (int i = 0; i < 3; ++i) absl::StrAppend(&pods, PodYaml(absl::StrCat("any-", i), ""), "---\n");
  absl::StrAppend(&pods, PodYaml("nowhere", "{disk: nvme}"));
  Apply(pods);

  auto bound = WaitBound({"fast-0", "fast-1", "fast-2", "any-0", "any-1", "any-2"});
  ASSERT_EQ(bound.size(), 6u) << K({"get", "pods", "-o", "wide"}).out;
  for (int i = 0; i < 3; ++i) EXPECT_EQ(bound[absl::StrCat("fast-", i)], "sel-ssd");
  // The same view from another member.
  auto wide = Wide(2);
  EXPECT_EQ(wide["fast-1"].second, "sel-ssd");

  // No node has disk=nvme: Pending, with the reason in its events.
  std::string described;
  for (int attempt = 0; attempt < kWaitAttemptsMax; ++attempt) {
    auto d = K({"describe", "pod", "nowhere"});
    ASSERT_EQ(d.exit_code, 0) << d.err;
    described = d.out;
    if (absl::StrContains(described, "FailedScheduling")) break;
    std::this_thread::sleep_for(milliseconds(100));
  }
  EXPECT_TRUE(absl::StrContains(described, "FailedScheduling")) << described;
  EXPECT_TRUE(absl::StrContains(described, "Warning")) << described;
  EXPECT_TRUE(absl::StrContains(described, "nodes are available:")) << described;
  EXPECT_TRUE(absl::StrContains(described, "didn't match Pod's node affinity/selector"))
      << described;
  bool condition_shown = false;
  for (absl::string_view line : absl::StrSplit(described, '\n')) {
    std::vector<absl::string_view> words = absl::StrSplit(line, ' ', absl::SkipEmpty());
    condition_shown |= words.size() == 2 && words[0] == "PodScheduled" && words[1] == "False";
  }
  EXPECT_TRUE(condition_shown) << described;
  EXPECT_EQ(Wide()["nowhere"].first, "Pending");
  EXPECT_EQ(Wide()["nowhere"].second, "<none>");

  // A node that fits appears: the pending pod is bound to it.
  Apply(NodeYaml("sel-nvme", "{disk: nvme}", "2"));
  auto later = WaitBound({"nowhere"});
  EXPECT_EQ(later["nowhere"], "sel-nvme") << K({"describe", "pod", "nowhere"}).out;
}

TEST_F(SchedulerProcessTest, ADeploymentsPodsSpreadOverNodes) {
  Apply(NodeYaml("spread-a", "{group: spread}", "4") + "---\n" +
        NodeYaml("spread-b", "{group: spread}", "4") + "---\n" +
        NodeYaml("spread-c", "{group: spread}", "4"));
  Apply(R"(apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 6
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      nodeSelector: {group: spread}
      containers:
      - name: c
        image: busybox:1.36
        resources: {requests: {cpu: 100m}}
)");
  // The ReplicaSet reconciler creates the pods; the scheduler spreads them
  // over the nodes, two each (their owner's pods count against a node).
  std::map<std::string, int> per_node;
  for (int attempt = 0; attempt < kWaitAttemptsMax; ++attempt) {
    per_node.clear();
    int bound = 0;
    for (auto& [name, state] : Wide()) {
      if (state.second == "<none>" || state.second.empty()) continue;
      per_node[state.second]++;
      ++bound;
    }
    if (bound == 6) break;
    std::this_thread::sleep_for(milliseconds(100));
  }
  EXPECT_EQ(per_node,
            (std::map<std::string, int>{{"spread-a", 2}, {"spread-b", 2}, {"spread-c", 2}}))
      << K({"get", "pods", "-o", "wide"}).out;
}

TEST_F(SchedulerProcessTest, TheNewLeadersSchedulerTakesOver) {
  Apply(NodeYaml("lead-node", "{role: lead-test}", "2"));
  Apply(PodYaml("before", "{role: lead-test}"));
  EXPECT_EQ(WaitBound({"before"})["before"], "lead-node");

  auto leader = cluster().LeaderIndex();
  ASSERT_TRUE(leader.ok()) << leader.status();
  const int next = (*leader + 1) % cluster().size();
  ASSERT_TRUE(cluster().TransferLeadership(next).ok());
  // The scheduler now runs on the new leader (its /metrics says so).
  bool moved = false;
  for (int attempt = 0; attempt < kWaitAttemptsMax && !moved; ++attempt) {
    auto reconciling = kube().ReconcilingMember();
    moved = reconciling.ok() && *reconciling == next;
    if (!moved) std::this_thread::sleep_for(milliseconds(100));
  }
  ASSERT_TRUE(moved) << "the reconcilers never started on member " << next;
  Apply(PodYaml("after", "{role: lead-test}"), next);
  EXPECT_EQ(WaitBound({"after"}, next)["after"], "lead-node");
  // Room is counted across the change: 2 CPUs, 100m + 100m used, 1900m does not fit.
  Apply(PodYaml("too-big", "{role: lead-test}", "1900m"), next);
  std::string described;
  for (int attempt = 0; attempt < kWaitAttemptsMax; ++attempt) {
    described = K({"describe", "pod", "too-big"}).out;
    if (absl::StrContains(described, "FailedScheduling")) break;
    std::this_thread::sleep_for(milliseconds(100));
  }
  EXPECT_TRUE(absl::StrContains(described, "Insufficient cpu")) << described;
}

}  // namespace
}  // namespace ganglion::tests
