// A ProcessCluster whose members serve the Kubernetes-shaped API, driven with
// the real kubectl: one kubeconfig per member, a kubectl runner with a cache
// directory private to the run, and a fixture base that gives each test its
// own namespace. Tests of the API, the reconcilers and the node agent share it.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/process_cluster.h"

namespace ganglion::tests {

inline constexpr std::chrono::milliseconds kKubectlTimeout{30000};

class KubeCluster {
 public:
  // Starts the members (options.serve_api is forced on), writes the
  // kubeconfigs and waits until every member's API answers.
  static absl::StatusOr<std::unique_ptr<KubeCluster>> Start(ClusterOptions options,
                                                            std::string kubectl);

  // kubectl against member `member`.
  CommandResult Kubectl(std::vector<std::string> args, int member = 0,
                        const std::string& stdin_data = "",
                        std::chrono::milliseconds timeout = kKubectlTimeout) const;
  std::string KubeconfigPath(int member) const;
  ProcessCluster& cluster() { return *cluster_; }
  const ProcessCluster& cluster() const { return *cluster_; }
  // One metric's value from member i's /metrics (NotFound if absent).
  absl::StatusOr<double> Metric(int member, const std::string& name) const;
  // The member whose reconcilers run (ganglion_reconcilers_leading == 1), if any.
  absl::StatusOr<int> ReconcilingMember() const;

 private:
  KubeCluster(std::unique_ptr<ProcessCluster> cluster, std::string kubectl)
      : cluster_(std::move(cluster)), kubectl_(std::move(kubectl)) {}
  absl::Status WriteKubeconfigs() const;

  std::unique_ptr<ProcessCluster> cluster_;
  const std::string kubectl_;
};

// A test suite over one KubeCluster (started once per suite); each test gets
// a fresh namespace named after it.
class KubeTest : public ::testing::Test {
 protected:
  // The default suite: 3 members of this build's ganglion, driven by the
  // machine's kubectl. A suite that needs other flags calls StartGanglion.
  static void SetUpTestSuite() { StartGanglion(); }
  static void TearDownTestSuite() { StopCluster(); }
  static void StartGanglion(std::vector<std::string> extra_flags = {});
  static void StartCluster(ClusterOptions options, std::string kubectl);
  static void StopCluster();
  void SetUp() override;

  static KubeCluster& kube() { return *kube_; }
  static ProcessCluster& cluster() { return kube_->cluster(); }
  static CommandResult Kubectl(std::vector<std::string> args, int member = 0,
                               const std::string& stdin_data = "",
                               std::chrono::milliseconds timeout = kKubectlTimeout) {
    return kube_->Kubectl(std::move(args), member, stdin_data, timeout);
  }
  // kubectl in the test's namespace.
  CommandResult K(std::vector<std::string> args, int member = 0,
                  std::chrono::milliseconds timeout = kKubectlTimeout) const;
  nlohmann::json GetJson(const std::string& kind, const std::string& name, int member = 0) const;
  // Writes `text` to a file private to the test; returns its path.
  std::string WriteFile(const std::string& name, const std::string& text) const;

  static KubeCluster* kube_;
  std::string ns_;
};

}  // namespace ganglion::tests
