// The ReplicaSet and Deployment reconcilers in a 3-member ganglion cluster
// driven by the real kubectl: apply, `rollout status|history|undo|pause|
// resume|restart`, `set image`, `scale`, and a kill -9 of the member running
// the reconcilers in the middle of a rollout. No node agent runs: a fake
// kubelet thread in the test marks pods Running and Ready through the API
// (pods need no node for the replica counts). Every test works in its own
// namespace.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/kube_cluster.h"

namespace ganglion::tests {
namespace {

using Json = nlohmann::json;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

// `rollout status` waits for the whole rollout; bounded well below the test timeout.
constexpr char kRolloutTimeout[] = "--timeout=120s";
constexpr milliseconds kRolloutCommandTimeout{130000};

struct HttpResult {
  int status = 0;  // 0: no answer
  std::string body;
};

int Connect(int port, int recv_timeout_ms) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{recv_timeout_ms / 1000, (recv_timeout_ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool SendAll(int fd, const std::string& data) {
  size_t sent = 0;
  while (sent < data.size()) {
    ssize_t n = write(fd, data.data() + sent, data.size() - sent);
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

// Decodes a chunked body incrementally: feed bytes, take whole payload out.
class Dechunker {
 public:
  void Feed(const std::string& bytes) { raw_ += bytes; }
  // Payload decoded so far (consumed from the raw buffer).
  std::string Take() {
    std::string out;
    for (;;) {
      if (want_ == 0) {
        const size_t eol = raw_.find("\r\n");
        if (eol == std::string::npos) break;
        const std::string size_text = raw_.substr(0, eol);
        raw_.erase(0, eol + 2);
        if (size_text.empty()) continue;  // the CRLF after a chunk
        want_ = std::stoul(size_text, nullptr, 16);
        if (want_ == 0) {
          done_ = true;
          break;
        }
      }
      const size_t n = std::min(want_, raw_.size());
      out.append(raw_, 0, n);
      raw_.erase(0, n);
      want_ -= n;
      if (want_ > 0) break;
    }
    return out;
  }
  bool done() const { return done_; }

 private:
  std::string raw_;
  size_t want_ = 0;
  bool done_ = false;
};

HttpResult Http(int port, const std::string& method, const std::string& path,
                const std::string& body = "",
                const std::string& content_type = "application/json") {
  HttpResult result;
  int fd = Connect(port, 10000);
  if (fd < 0) return result;
  std::string request = absl::StrCat(method, " ", path,
                                     " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                                     "Accept: application/json\r\n");
  if (!body.empty()) {
    absl::StrAppend(&request, "Content-Type: ", content_type, "\r\nContent-Length: ", body.size(),
                    "\r\n");
  }
  absl::StrAppend(&request, "\r\n", body);
  std::string raw;
  if (SendAll(fd, request)) {
    char buf[65536];
    for (ssize_t n; (n = read(fd, buf, sizeof(buf))) > 0;) raw.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  const size_t header_end = raw.find("\r\n\r\n");
  if (header_end == std::string::npos || raw.size() < 12) return result;
  (void)absl::SimpleAtoi(raw.substr(9, 3), &result.status);
  const std::string headers = raw.substr(0, header_end);
  std::string payload = raw.substr(header_end + 4);
  if (absl::StrContains(absl::AsciiStrToLower(headers), "transfer-encoding: chunked")) {
    Dechunker d;
    d.Feed(payload);
    payload = d.Take();
  }
  result.body = std::move(payload);
  return result;
}

// The value of `metric` on member i's metrics listener, or -1.
double Metric(const Member& m, const std::string& metric) {
  return MetricValue(Http(m.metrics_port, "GET", "/metrics").body, metric).value_or(-1);
}

bool IsReady(const Json& pod) {
  for (const Json& c : pod["status"].value("conditions", Json::array())) {
    if (c.value("type", "") == "Ready") return c.value("status", "") == "True";
  }
  return false;
}

// Marks the pods of one namespace Running and Ready through the API of any
// member that answers, `delay` after it first saw each one.
class FakeKubelet {
 public:
  FakeKubelet(const ProcessCluster& cluster, std::string ns, milliseconds delay)
      : cluster_(cluster), ns_(std::move(ns)), delay_(delay) {
    thread_ = std::thread([this] { Run(); });
  }
  ~FakeKubelet() {
    stop_ = true;
    thread_.join();
  }

 private:
  void Run() {
    std::map<std::string, Clock::time_point> first_seen;  // by uid
    int member = 0;
    while (!stop_) {
      std::this_thread::sleep_for(milliseconds(100));
      if (!cluster_.IsRunning(member)) member = (member + 1) % cluster_.size();
      const int port = cluster_.member(member).api_port;
      HttpResult list = Http(port, "GET", absl::StrCat("/api/v1/namespaces/", ns_, "/pods"));
      Json pods = Json::parse(list.body, nullptr, false);
      if (list.status != 200 || !pods.is_object()) {
        member = (member + 1) % cluster_.size();
        continue;
      }
      const auto now = Clock::now();
      for (Json pod : pods["items"]) {
        if (IsReady(pod) || pod["metadata"].contains("deletionTimestamp")) continue;
        const std::string uid = pod["metadata"].value("uid", "");
        auto [it, fresh] = first_seen.emplace(uid, now);
        if (now - it->second < delay_) continue;
        char stamp[32];
        const time_t t = time(nullptr);
        strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
        pod["status"]["phase"] = "Running";
        pod["status"]["conditions"] = Json::array(
            {{{"type", "Ready"}, {"status", "True"}, {"lastTransitionTime", stamp}},
             {{"type", "ContainersReady"}, {"status", "True"}, {"lastTransitionTime", stamp}}});
        pod["status"]["containerStatuses"] =
            Json::array({{{"name", "main"},
                          {"ready", true},
                          {"restartCount", 0},
                          {"image", pod["spec"]["containers"][0].value("image", "")}}});
        // A conflict (the pod changed) is retried on the next round.
        Http(port, "PUT",
             absl::StrCat("/api/v1/namespaces/", ns_, "/pods/", pod["metadata"].value("name", ""),
                          "/status"),
             pod.dump());
      }
    }
  }

  const ProcessCluster& cluster_;
  const std::string ns_;
  const milliseconds delay_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// Follows every pod change of a namespace through one member's watch and
// records the most pods that existed at once.
class PodCensus {
 public:
  PodCensus(int api_port, std::string ns, std::string resource_version)
      : port_(api_port), ns_(std::move(ns)), rv_(std::move(resource_version)) {
    thread_ = std::thread([this] { Run(); });
  }
  ~PodCensus() {
    stop_ = true;
    thread_.join();
  }
  int most() const {
    std::lock_guard<std::mutex> lock(mu_);
    return most_;
  }
  int events() const {
    std::lock_guard<std::mutex> lock(mu_);
    return events_;
  }
  void Seed(const Json& list) {
    std::lock_guard<std::mutex> lock(mu_);
    for (const Json& pod : list["items"]) pods_.insert(pod["metadata"].value("name", ""));
    most_ = std::max<int>(most_, static_cast<int>(pods_.size()));
  }

 private:
  void Run() {
    while (!stop_) {
      int fd = Connect(port_, 500);
      if (fd < 0) {
        std::this_thread::sleep_for(milliseconds(100));
        continue;
      }
      std::string rv;
      {
        std::lock_guard<std::mutex> lock(mu_);
        rv = rv_;
      }
      const std::string request =
          absl::StrCat("GET /api/v1/namespaces/", ns_,
                       "/pods?watch=true&allowWatchBookmarks=true&resourceVersion=", rv,
                       " HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n\r\n");
      if (!SendAll(fd, request)) {
        close(fd);
        continue;
      }
      std::string pending, raw;
      bool in_body = false;
      Dechunker chunks;
      char buf[65536];
      while (!stop_) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n == 0) break;
        if (n < 0) {
          if (errno == EAGAIN || errno == EWOULDBLOCK) continue;
          break;
        }
        if (!in_body) {
          raw.append(buf, static_cast<size_t>(n));
          const size_t end = raw.find("\r\n\r\n");
          if (end == std::string::npos) continue;
          in_body = true;
          chunks.Feed(raw.substr(end + 4));
        } else {
          chunks.Feed(std::string(buf, static_cast<size_t>(n)));
        }
        pending += chunks.Take();
        for (size_t eol; (eol = pending.find('\n')) != std::string::npos;) {
          Apply(pending.substr(0, eol));
          pending.erase(0, eol + 1);
        }
        if (chunks.done()) break;
      }
      close(fd);
    }
  }

  void Apply(const std::string& line) {
    Json event = Json::parse(line, nullptr, false);
    if (!event.is_object()) return;
    const std::string type = event.value("type", "");
    const Json& object = event["object"];
    std::lock_guard<std::mutex> lock(mu_);
    if (object.contains("metadata")) {
      rv_ = object["metadata"].value("resourceVersion", rv_);
    }
    const std::string name = object["metadata"].value("name", "");
    if (type == "ADDED" || type == "MODIFIED") {
      pods_.insert(name);
    } else if (type == "DELETED") {
      pods_.erase(name);
    } else {
      return;
    }
    ++events_;
    most_ = std::max<int>(most_, static_cast<int>(pods_.size()));
  }

  const int port_;
  const std::string ns_;
  mutable std::mutex mu_;
  std::string rv_;              // guarded by mu_
  std::set<std::string> pods_;  // guarded by mu_
  int most_ = 0;                // guarded by mu_
  int events_ = 0;              // guarded by mu_
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

class WorkloadsProcessTest : public KubeTest {
 protected:
  // kubectl in the test's namespace, through a running member (`member_`).
  CommandResult K(std::vector<std::string> args, milliseconds timeout = kKubectlTimeout) const {
    args.insert(args.begin(), {"-n", ns_});
    return Kubectl(args, member_, "", timeout);
  }

  CommandResult RolloutStatus(const std::string& name) const {
    return K({"rollout", "status", "deployment/" + name, kRolloutTimeout}, kRolloutCommandTimeout);
  }

  Json GetJson(const std::string& what) const {
    std::vector<std::string> args = absl::StrSplit(what, ' ');
    args.insert(args.begin(), "get");
    args.push_back("-o");
    args.push_back("json");
    auto r = K(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return Json::parse(r.out, nullptr, false);
  }

  std::string Apply(const std::string& yaml) const {
    const std::string path = absl::StrCat(cluster().data_root(), "/", ns_, "-", ++files_, ".yaml");
    std::ofstream(path) << yaml;
    auto r = K({"apply", "-f", path});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out;
  }

  static std::string Deployment(const std::string& name, int replicas, const std::string& image,
                                const std::string& extra_spec = "") {
    return absl::StrCat(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: ", name,
        "\nspec:\n  replicas: ", replicas, "\n", extra_spec,
        "  selector:\n    matchLabels: {app: ", name,
        "}\n  template:\n    metadata:\n      labels: {app: ", name,
        "}\n    spec:\n      containers:\n      - name: main\n        image: ", image, "\n");
  }

  // The images of the namespace's pods, sorted.
  std::vector<std::string> PodImages() const {
    std::vector<std::string> images;
    Json pods = GetJson("pods");
    for (const Json& p : pods["items"]) {
      images.push_back(p["spec"]["containers"][0].value("image", ""));
    }
    std::sort(images.begin(), images.end());
    return images;
  }

  std::string ImageOf(const std::string& deployment) const {
    return GetJson("deployment " + deployment)["spec"]["template"]["spec"]["containers"][0].value(
        "image", "");
  }

  // The REVISION column of `rollout history`.
  std::vector<int> HistoryRevisions(const std::string& name) const {
    auto r = K({"rollout", "history", "deployment/" + name});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::vector<int> revisions;
    for (absl::string_view line : absl::StrSplit(r.out, '\n')) {
      int n = 0;
      std::vector<absl::string_view> cells = absl::StrSplit(line, ' ', absl::SkipEmpty());
      if (!cells.empty() && absl::SimpleAtoi(cells[0], &n)) revisions.push_back(n);
    }
    return revisions;
  }

  int member_ = 0;
  mutable int files_ = 0;
};

TEST_F(WorkloadsProcessTest, ApplyRolloutStatusSetImageAndScale) {
  FakeKubelet kubelet(cluster(), ns_, milliseconds(200));
  Apply(Deployment("web", 3, "nginx:1.25"));
  auto status = RolloutStatus("web");
  ASSERT_EQ(status.exit_code, 0) << status.out << status.err;
  EXPECT_TRUE(absl::StrContains(status.out, "deployment \"web\" successfully rolled out"))
      << status.out;
  EXPECT_EQ(PodImages(), std::vector<std::string>(3, "nginx:1.25"));
  Json d = GetJson("deployment web");
  EXPECT_EQ(d["status"]["availableReplicas"], 3);
  EXPECT_EQ(d["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "1");
  auto table = K({"get", "deployment", "web"});
  EXPECT_TRUE(absl::StrContains(table.out, "3/3")) << table.out;

  auto set = K({"set", "image", "deployment/web", "main=nginx:1.26"});
  ASSERT_EQ(set.exit_code, 0) << set.err;
  EXPECT_EQ(set.out, "deployment.apps/web image updated\n");
  status = RolloutStatus("web");
  ASSERT_EQ(status.exit_code, 0) << status.out << status.err;
  EXPECT_TRUE(absl::StrContains(status.out, "successfully rolled out")) << status.out;
  EXPECT_EQ(PodImages(), std::vector<std::string>(3, "nginx:1.26"));

  auto scaled = K({"scale", "deployment/web", "--replicas=5"});
  ASSERT_EQ(scaled.exit_code, 0) << scaled.err;
  status = RolloutStatus("web");
  ASSERT_EQ(status.exit_code, 0) << status.out << status.err;
  EXPECT_EQ(PodImages(), std::vector<std::string>(5, "nginx:1.26"));
  scaled = K({"scale", "deployment/web", "--replicas=2"});
  ASSERT_EQ(scaled.exit_code, 0) << scaled.err;
  status = RolloutStatus("web");
  ASSERT_EQ(status.exit_code, 0) << status.out << status.err;
  // The rollout is complete once the surplus is gone.
  EXPECT_EQ(PodImages(), std::vector<std::string>(2, "nginx:1.26"));
  auto rs = K({"get", "replicasets", "-o", "name"});
  EXPECT_EQ(std::count(rs.out.begin(), rs.out.end(), '\n'), 2) << rs.out;
}

TEST_F(WorkloadsProcessTest, RolloutHistoryAndUndo) {
  FakeKubelet kubelet(cluster(), ns_, milliseconds(100));
  Apply(Deployment("hist", 2, "app:v1"));
  ASSERT_EQ(RolloutStatus("hist").exit_code, 0);
  for (const char* image : {"main=app:v2", "main=app:v3"}) {
    ASSERT_EQ(K({"set", "image", "deployment/hist", image}).exit_code, 0);
    auto status = RolloutStatus("hist");
    ASSERT_EQ(status.exit_code, 0) << status.out << status.err;
  }
  EXPECT_EQ(HistoryRevisions("hist"), (std::vector<int>{1, 2, 3}));
  auto two = K({"rollout", "history", "deployment/hist", "--revision=2"});
  ASSERT_EQ(two.exit_code, 0) << two.err;
  EXPECT_TRUE(absl::StrContains(two.out, "with revision #2")) << two.out;
  EXPECT_TRUE(absl::StrContains(two.out, "app:v2")) << two.out;
  EXPECT_FALSE(absl::StrContains(two.out, "app:v3")) << two.out;

  // Undo: back to the previous template, which becomes the newest revision.
  auto undo = K({"rollout", "undo", "deployment/hist"});
  ASSERT_EQ(undo.exit_code, 0) << undo.err;
  EXPECT_EQ(undo.out, "deployment.apps/hist rolled back\n");
  auto status = RolloutStatus("hist");
  ASSERT_EQ(status.exit_code, 0) << status.out << status.err;
  EXPECT_EQ(ImageOf("hist"), "app:v2");
  EXPECT_EQ(PodImages(), std::vector<std::string>(2, "app:v2"));
  EXPECT_EQ(HistoryRevisions("hist"), (std::vector<int>{1, 3, 4}));
  EXPECT_EQ(
      GetJson("deployment hist")["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
      "4");

  auto to_one = K({"rollout", "undo", "deployment/hist", "--to-revision=1"});
  ASSERT_EQ(to_one.exit_code, 0) << to_one.err;
  status = RolloutStatus("hist");
  ASSERT_EQ(status.exit_code, 0) << status.out << status.err;
  EXPECT_EQ(ImageOf("hist"), "app:v1");
  EXPECT_EQ(PodImages(), std::vector<std::string>(2, "app:v1"));
  EXPECT_EQ(HistoryRevisions("hist"), (std::vector<int>{3, 4, 5}));
  auto missing = K({"rollout", "undo", "deployment/hist", "--to-revision=2"});
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(missing.err, "unable to find specified revision")) << missing.err;
}

TEST_F(WorkloadsProcessTest, PauseResumeAndRestart) {
  FakeKubelet kubelet(cluster(), ns_, milliseconds(100));
  Apply(Deployment("pr", 2, "app:v1"));
  ASSERT_EQ(RolloutStatus("pr").exit_code, 0);
  ASSERT_EQ(K({"set", "image", "deployment/pr", "main=app:v2"}).exit_code, 0);
  ASSERT_EQ(RolloutStatus("pr").exit_code, 0);
  auto paused = K({"rollout", "pause", "deployment/pr"});
  ASSERT_EQ(paused.exit_code, 0) << paused.err;
  EXPECT_EQ(paused.out, "deployment.apps/pr paused\n");
  auto undo_paused = K({"rollout", "undo", "deployment/pr"});
  EXPECT_NE(undo_paused.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(undo_paused.err, "cannot rollback a paused deployment"))
      << undo_paused.err;
  ASSERT_EQ(K({"set", "image", "deployment/pr", "main=app:v3"}).exit_code, 0);
  // Wait until the paused spec was observed: it had its chance to roll out.
  bool observed = false;
  for (int i = 0; i < 300 && !observed; ++i) {
    Json d = GetJson("deployment pr");
    observed = d["status"].value("observedGeneration", 0) == d["metadata"].value("generation", -1);
    if (!observed) std::this_thread::sleep_for(milliseconds(100));
  }
  ASSERT_TRUE(observed);
  auto sets = K({"get", "replicasets", "-o", "name"});
  EXPECT_EQ(std::count(sets.out.begin(), sets.out.end(), '\n'), 2) << sets.out;
  EXPECT_EQ(PodImages(), std::vector<std::string>(2, "app:v2"));

  auto resumed = K({"rollout", "resume", "deployment/pr"});
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_EQ(resumed.out, "deployment.apps/pr resumed\n");
  auto status = RolloutStatus("pr");
  ASSERT_EQ(status.exit_code, 0) << status.out << status.err;
  EXPECT_EQ(PodImages(), std::vector<std::string>(2, "app:v3"));

  // restart: same image, new pods (a template annotation changes).
  std::set<std::string> before;
  const Json old_pods = GetJson("pods");
  for (const Json& p : old_pods["items"]) before.insert(p["metadata"].value("name", ""));
  auto restarted = K({"rollout", "restart", "deployment/pr"});
  ASSERT_EQ(restarted.exit_code, 0) << restarted.err;
  EXPECT_EQ(restarted.out, "deployment.apps/pr restarted\n");
  status = RolloutStatus("pr");
  ASSERT_EQ(status.exit_code, 0) << status.out << status.err;
  Json pods = GetJson("pods");
  ASSERT_EQ(pods["items"].size(), 2u);
  for (const Json& p : pods["items"]) {
    EXPECT_EQ(before.count(p["metadata"].value("name", "")), 0u) << "pod was not replaced";
    EXPECT_TRUE(p["metadata"]["annotations"].contains("kubectl.kubernetes.io/restartedAt"));
  }
  EXPECT_EQ(HistoryRevisions("pr"), (std::vector<int>{1, 2, 3, 4}));
}

TEST_F(WorkloadsProcessTest, ProgressDeadlineFailsRolloutStatus) {
  // No kubelet: pods never become ready.
  Apply(Deployment("stuck", 1, "app:v1", "  progressDeadlineSeconds: 3\n"));
  auto status = RolloutStatus("stuck");
  EXPECT_NE(status.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(status.err, "exceeded its progress deadline"))
      << status.out << status.err;
}

TEST_F(WorkloadsProcessTest, RolloutCompletesAfterTheLeaderIsKilled) {
  // Pods take a while to become ready, so the kill lands mid-rollout.
  FakeKubelet kubelet(cluster(), ns_, milliseconds(1500));
  const int replicas = 4, max_surge = 1;
  Apply(Deployment("ha", replicas, "app:v1",
                   "  strategy:\n    type: RollingUpdate\n    rollingUpdate: {maxSurge: 1, "
                   "maxUnavailable: 1}\n"));
  ASSERT_EQ(RolloutStatus("ha").exit_code, 0);

  int leader = -1;
  for (int attempt = 0; attempt < 100 && leader < 0; ++attempt) {
    for (int i = 0; i < cluster().size(); ++i) {
      if (cluster().IsRunning(i) &&
          Metric(cluster().member(i), "ganglion_reconcilers_leading") == 1) {
        leader = i;
      }
    }
    if (leader < 0) std::this_thread::sleep_for(milliseconds(100));
  }
  ASSERT_GE(leader, 0) << "no member reports ganglion_reconcilers_leading 1";
  member_ = (leader + 1) % cluster().size();
  // Watch the pods through a member that survives, from the current list.
  Json list = GetJson("pods");
  ASSERT_EQ(list["items"].size(), static_cast<size_t>(replicas));
  PodCensus census(cluster().member(member_).api_port, ns_,
                   list["metadata"].value("resourceVersion", "0"));
  census.Seed(list);

  ASSERT_EQ(K({"set", "image", "deployment/ha", "main=app:v2"}).exit_code, 0);
  // Kill the reconcilers' member once the new replica set has pods.
  bool started = false;
  for (int i = 0; i < 300 && !started; ++i) {
    const Json pods = GetJson("pods");
    for (const Json& p : pods["items"]) {
      started = started || p["spec"]["containers"][0].value("image", "") == "app:v2";
    }
    if (!started) std::this_thread::sleep_for(milliseconds(50));
  }
  ASSERT_TRUE(started) << K({"get", "rs,pods", "-o", "wide"}).out
                       << GetJson("deployment ha").dump();
  ASSERT_TRUE(cluster().Kill(leader, SIGKILL).ok());
  EXPECT_NE(PodImages(), std::vector<std::string>(replicas, "app:v2")) << "rollout already done";

  auto status = RolloutStatus("ha");
  ASSERT_EQ(status.exit_code, 0) << status.out << status.err;
  EXPECT_EQ(PodImages(), std::vector<std::string>(replicas, "app:v2"));
  // A new member leads the reconcilers.
  int leading = 0;
  for (int i = 0; i < cluster().size(); ++i) {
    if (cluster().IsRunning(i))
      leading += Metric(cluster().member(i), "ganglion_reconcilers_leading") == 1;
  }
  EXPECT_EQ(leading, 1);
  std::this_thread::sleep_for(milliseconds(500));  // the census's last events
  EXPECT_GT(census.events(), replicas) << "the watch saw no rollout";
  EXPECT_LE(census.most(), replicas + max_surge);
  ASSERT_TRUE(cluster().Restart(leader).ok());
}

}  // namespace
}  // namespace ganglion::tests
