#include "tests/support/kube_cluster.h"

#include <cctype>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"

namespace ganglion::tests {

absl::StatusOr<std::unique_ptr<KubeCluster>> KubeCluster::Start(ClusterOptions options,
                                                                std::string kubectl) {
  options.serve_api = true;
  auto cluster = std::make_unique<ProcessCluster>(std::move(options));
  if (absl::Status st = cluster->Start(); !st.ok()) return st;
  std::unique_ptr<KubeCluster> kube(new KubeCluster(std::move(cluster), std::move(kubectl)));
  if (absl::Status st = kube->WriteKubeconfigs(); !st.ok()) return st;
  // Each member's API connects to its member in the background; wait until
  // every one answers and the default namespace exists.
  for (int i = 0; i < kube->cluster().size(); ++i) {
    CommandResult r;
    for (int attempt = 0; attempt < 100; ++attempt) {
      r = kube->Kubectl({"get", "namespace", "default"}, i);
      if (r.exit_code == 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    if (r.exit_code != 0) {
      return absl::UnavailableError(absl::StrCat("member ", i, " API never answered: ", r.err));
    }
  }
  return kube;
}

std::string KubeCluster::KubeconfigPath(int member) const {
  return absl::StrCat(cluster_->data_root(), "/kubeconfig-", member);
}

absl::Status KubeCluster::WriteKubeconfigs() const {
  for (int i = 0; i < cluster_->size(); ++i) {
    std::ofstream out(KubeconfigPath(i));
    out << "apiVersion: v1\nkind: Config\nclusters:\n- name: ganglion\n  cluster:\n"
        << "    server: " << cluster_->member(i).ApiUrl() << "\n"
        << "contexts:\n- name: ganglion\n  context: {cluster: ganglion, user: ganglion}\n"
        << "users:\n- name: ganglion\n  user: {}\ncurrent-context: ganglion\n";
    if (!out) return absl::InternalError("cannot write " + KubeconfigPath(i));
  }
  return absl::OkStatus();
}

CommandResult KubeCluster::Kubectl(std::vector<std::string> args, int member,
                                   const std::string& stdin_data,
                                   std::chrono::milliseconds timeout) const {
  std::vector<std::string> argv = {kubectl_, "--kubeconfig", KubeconfigPath(member), "--cache-dir",
                                   absl::StrCat(cluster_->data_root(), "/kube-cache-", member)};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv, stdin_data, timeout);
}

absl::StatusOr<double> KubeCluster::Metric(int member, const std::string& name) const {
  const std::string text = HttpGet(cluster_->member(member).metrics_port, "/metrics");
  if (text.empty()) return absl::UnavailableError(absl::StrCat("member ", member, " no metrics"));
  if (auto v = MetricValue(text, name)) return *v;
  return absl::NotFoundError(absl::StrCat("metric ", name, " not on member ", member));
}

absl::StatusOr<int> KubeCluster::ReconcilingMember() const {
  for (int i = 0; i < cluster_->size(); ++i) {
    if (!cluster_->IsRunning(i)) continue;
    auto v = Metric(i, "ganglion_reconcilers_leading");
    if (v.ok() && *v == 1) return i;
  }
  return absl::NotFoundError("no member runs the reconcilers");
}

KubeCluster* KubeTest::kube_ = nullptr;

void KubeTest::StartCluster(ClusterOptions options, std::string kubectl) {
  auto started = KubeCluster::Start(std::move(options), std::move(kubectl));
  ASSERT_TRUE(started.ok()) << started.status();
  kube_ = started->release();
}

void KubeTest::StartGanglion(std::vector<std::string> extra_flags) {
  ClusterOptions options;
  options.binary = GANGLION_BINARY;
  options.members = 3;
  options.extra_flags = std::move(extra_flags);
  StartCluster(options, GANGLION_KUBECTL);
}

void KubeTest::StopCluster() {
  delete kube_;
  kube_ = nullptr;
}

void KubeTest::SetUp() {
  ASSERT_NE(kube_, nullptr);
  ns_ = absl::StrCat("t-", ::testing::UnitTest::GetInstance()->current_test_info()->name());
  for (char& c : ns_) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (ns_.size() > 63) ns_.resize(63);
  while (!ns_.empty() && ns_.back() == '-') ns_.pop_back();
  auto created = Kubectl({"create", "namespace", ns_});
  ASSERT_EQ(created.exit_code, 0) << created.err;
}

CommandResult KubeTest::K(std::vector<std::string> args, int member,
                          std::chrono::milliseconds timeout) const {
  args.insert(args.begin(), {"-n", ns_});
  return Kubectl(args, member, "", timeout);
}

nlohmann::json KubeTest::GetJson(const std::string& kind, const std::string& name,
                                 int member) const {
  auto r = K({"get", kind, name, "-o", "json"}, member);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return nlohmann::json::parse(r.out, nullptr, false);
}

std::string KubeTest::WriteFile(const std::string& name, const std::string& text) const {
  const std::string path = absl::StrCat(cluster().data_root(), "/", ns_, "-", name);
  std::ofstream(path) << text;
  return path;
}

}  // namespace ganglion::tests
