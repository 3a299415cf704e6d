// The node agent end to end: a 3-member ganglion cluster serving the API,
// real ganglion-agent processes (node-1, node-2) and the real kubectl.
// Pods name their node in the manifest (spec.nodeName: the scheduler is not
// part of this test). What a kubelet user would notice: pods reach Running
// with their own address, killed containers restart with --previous logs,
// probes restart and gate readiness, deletion stops the processes within the
// grace period, and an agent killed with SIGKILL and started again leaves
// exactly the right processes. Processes are counted in /proc.
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/kube_cluster.h"

namespace ganglion::tests {
namespace {

using Json = nlohmann::json;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

// A process in /proc: its pid, process group and command line.
struct Proc {
  pid_t pid = 0;
  pid_t pgid = 0;
  std::string cmdline;
};

std::vector<Proc> AllProcesses() {
  std::vector<Proc> out;
  DIR* dir = opendir("/proc");
  if (dir == nullptr) return out;
  while (dirent* e = readdir(dir)) {
    int pid = 0;
    if (!absl::SimpleAtoi(e->d_name, &pid)) continue;
    std::ifstream stat(absl::StrCat("/proc/", pid, "/stat"));
    std::string line;
    if (!std::getline(stat, line)) continue;
    const size_t close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::vector<std::string> f = absl::StrSplit(line.substr(close + 2), ' ');
    if (f.size() < 3 || f[0] == "Z" || f[0] == "X") continue;
    Proc p;
    p.pid = pid;
    absl::SimpleAtoi(f[2], &p.pgid);
    std::ifstream cmd(absl::StrCat("/proc/", pid, "/cmdline"));
    std::stringstream ss;
    ss << cmd.rdbuf();
    p.cmdline = ss.str();
    for (char& c : p.cmdline) {
      if (c == '\0') c = ' ';
    }
    out.push_back(p);
  }
  closedir(dir);
  return out;
}

// Processes whose command line contains `marker` (every container command
// in these tests carries its pod's unique marker).
std::vector<Proc> ProcessesWith(const std::string& marker) {
  std::vector<Proc> out;
  for (Proc& p : AllProcesses()) {
    if (absl::StrContains(p.cmdline, marker) && !absl::StrContains(p.cmdline, "--shim") &&
        !absl::StrContains(p.cmdline, "kubectl")) {
      out.push_back(p);
    }
  }
  return out;
}

// Every live process of process group `pgid` (a container's supervisor and its tree).
size_t GroupSize(pid_t pgid) {
  size_t n = 0;
  for (const Proc& p : AllProcesses()) n += p.pgid == pgid;
  return n;
}

bool WaitFor(const std::function<bool()>& done, milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(milliseconds(200));
  }
  return done();
}

// GET http://ip:port/ ; the status code, 0 if it could not connect.
int HttpGet(const std::string& ip, int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  timeval tv{3, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(fd);
    return 0;
  }
  const std::string req = absl::StrCat("GET / HTTP/1.0\r\nHost: ", ip, "\r\n\r\n");
  send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  char buf[64] = {};
  const ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
  close(fd);
  int code = 0;
  if (n > 12) absl::SimpleAtoi(std::string(buf + 9, 3), &code);
  return code;
}

class AgentProcess {
 public:
  AgentProcess(std::string name, std::string root_dir, std::string endpoints, std::string log,
               std::vector<std::string> args_override = {})
      : name_(std::move(name)),
        root_dir_(std::move(root_dir)),
        endpoints_(std::move(endpoints)),
        log_(std::move(log)),
        args_override_(std::move(args_override)) {}
  ~AgentProcess() { Kill(SIGKILL); }

  void Start() {
    std::vector<std::string> args = {GANGLION_AGENT_BINARY,
                                     "--name",
                                     name_,
                                     "--endpoints",
                                     endpoints_,
                                     "--root-dir",
                                     root_dir_,
                                     "--listen",
                                     "127.0.0.1:0",
                                     "--backoff-initial",
                                     "1",
                                     "--backoff-max",
                                     "4",
                                     "--capacity",
                                     "cpu=2,memory=4Gi,pods=50",
                                     "--labels",
                                     "tier=test"};
    if (!args_override_.empty()) {
      args = {GANGLION_AGENT_BINARY, "--endpoints", endpoints_};
      args.insert(args.end(), args_override_.begin(), args_override_.end());
    }
    pid_ = fork();
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      setpgid(0, 0);
      const int fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      dup2(fd, 1);
      dup2(fd, 2);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
  }

  void Kill(int signal) {
    if (pid_ <= 0) return;
    ::kill(pid_, signal);
    waitpid(pid_, nullptr, 0);
    pid_ = 0;
  }

  const std::string& root_dir() const { return root_dir_; }
  const std::string& log() const { return log_; }

 private:
  std::string name_, root_dir_, endpoints_, log_;
  std::vector<std::string> args_override_;
  pid_t pid_ = 0;
};

class AgentProcessTest : public KubeTest {
 protected:
  static void SetUpTestSuite() {
    StartGanglion();
    if (kube_ == nullptr) return;
    std::vector<std::string> endpoints;
    for (int i = 0; i < cluster().size(); ++i) {
      endpoints.push_back(cluster().member(i).ClientEndpoint());
    }
    endpoints_ = absl::StrJoin(endpoints, ",");
    for (int i = 0; i < 2; ++i) {
      const std::string name = absl::StrCat("node-", i + 1);
      const std::string root = absl::StrCat(cluster().data_root(), "/agent-", name);
      agents_[i] = new AgentProcess(name, root, absl::StrJoin(endpoints, ","),
                                    absl::StrCat(cluster().data_root(), "/", name, ".log"));
      agents_[i]->Start();
    }
    for (int i = 0; i < 2; ++i) {
      const std::string name = absl::StrCat("node-", i + 1);
      ASSERT_TRUE(WaitFor(
          [&] {
            auto r = Kubectl({"get", "node", name, "-o",
                              "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}"});
            return r.exit_code == 0 && r.out == "True";
          },
          milliseconds(30000)))
          << "node " << name << " never became Ready: " << TailFile(agents_[i]->log());
    }
  }

  static void TearDownTestSuite() {
    for (AgentProcess*& a : agents_) {
      delete a;
      a = nullptr;
    }
    // Every container of this test process carries "agenttest-<pid>-" in
    // its command: nothing of them may outlive the suite.
    KillLeftovers();
    StopCluster();
  }

  static void KillLeftovers() {
    for (const Proc& p : AllProcesses()) {
      if (absl::StrContains(p.cmdline, kube_ ? cluster().data_root() : "/nonexistent") &&
          absl::StrContains(p.cmdline, "--shim")) {
        ::kill(-p.pgid, SIGKILL);
      }
    }
    // Only this process's: other suites may run beside it (ctest -j).
    for (const Proc& p : ProcessesWith(absl::StrCat("agenttest-", ::getpid(), "-"))) {
      ::kill(-p.pgid, SIGKILL);
    }
  }

  // kubectl talks to the API of member api_member_.
  static CommandResult Kubectl(std::vector<std::string> args, const std::string& stdin_data = "",
                               milliseconds timeout = kKubectlTimeout) {
    return kube().Kubectl(std::move(args), api_member_, stdin_data, timeout);
  }

  CommandResult K(std::vector<std::string> args, const std::string& stdin_data = "",
                  milliseconds timeout = kKubectlTimeout) const {
    args.insert(args.begin(), {"-n", ns_});
    return Kubectl(args, stdin_data, timeout);
  }

  Json GetPod(const std::string& name) const {
    auto r = K({"get", "pod", name, "-o", "json"});
    if (r.exit_code != 0) return Json();
    return Json::parse(r.out, nullptr, false);
  }

  // Applies a pod on `node` whose single container runs `script` under sh;
  // `extra` is appended to the container (YAML, indented 4).
  void ApplyPod(const std::string& name, const std::string& node, const std::string& script,
                const std::string& extra = "", const std::string& pod_extra = "") {
    const std::string yaml = absl::StrCat(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: ", name, "\nspec:\n  nodeName: ", node, "\n",
        pod_extra, "  containers:\n  - name: main\n    image: busybox:1.36\n",
        "    command: [sh, -c]\n    args: [", Json(script + "; exit $?").dump(), ", ", Marker(name),
        "]\n", extra);
    auto r = K({"apply", "-f", "-"}, yaml);
    ASSERT_EQ(r.exit_code, 0) << r.err << "\n" << yaml;
  }

  bool WaitPod(const std::string& name, const std::function<bool(const Json&)>& done,
               milliseconds timeout = milliseconds(30000)) const {
    return WaitFor(
        [&] {
          Json p = GetPod(name);
          return p.is_object() && done(p);
        },
        timeout);
  }

  static bool Running(const Json& p) {
    return p["status"].value("phase", "") == "Running" &&
           p["status"].contains("containerStatuses") &&
           p["status"]["containerStatuses"][0]["state"].contains("running");
  }
  static std::string Condition(const Json& p, const std::string& type) {
    for (const Json& c : p["status"].value("conditions", Json::array())) {
      if (c.value("type", "") == type) return c.value("status", "");
    }
    return "";
  }
  static int RestartCount(const Json& p) {
    return p["status"]["containerStatuses"][0].value("restartCount", 0);
  }
  std::string Marker(const std::string& pod) const {
    return absl::StrCat("agenttest-", ::getpid(), "-", ns_, "-", pod);
  }

  static AgentProcess* agents_[2];
  static std::string endpoints_;
  static int api_member_;
};

std::string AgentProcessTest::endpoints_;
int AgentProcessTest::api_member_ = 0;
AgentProcess* AgentProcessTest::agents_[2] = {nullptr, nullptr};

TEST_F(AgentProcessTest, NodesRegisterWithLeaseAndCapacity) {
  auto node = Kubectl({"get", "node", "node-1", "-o", "json"});
  ASSERT_EQ(node.exit_code, 0) << node.err;
  Json n = Json::parse(node.out);
  EXPECT_EQ(n["status"]["capacity"]["pods"], "50");
  EXPECT_EQ(n["status"]["allocatable"]["memory"], "4Gi");
  EXPECT_EQ(n["metadata"]["labels"]["tier"], "test");
  EXPECT_EQ(n["status"]["addresses"][0]["type"], "InternalIP");
  EXPECT_GT(n["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"].get<int>(), 0);
  EXPECT_FALSE(n["status"]["nodeInfo"].value("kubeletVersion", "").empty());
  auto lease = Kubectl({"get", "lease", "-n", "kube-node-lease", "node-1", "-o", "json"});
  ASSERT_EQ(lease.exit_code, 0) << lease.err;
  Json l = Json::parse(lease.out);
  EXPECT_EQ(l["spec"]["holderIdentity"], "node-1");
  const std::string first_renew = l["spec"]["renewTime"];
  // Renewed every 10 s.
  EXPECT_TRUE(WaitFor(
      [&] {
        auto again = Kubectl({"get", "lease", "-n", "kube-node-lease", "node-1", "-o",
                              "jsonpath={.spec.renewTime}"});
        return again.exit_code == 0 && again.out != first_renew;
      },
      milliseconds(15000)));
  auto wide = Kubectl({"get", "nodes"});
  EXPECT_TRUE(absl::StrContains(wide.out, "node-2")) << wide.out;
}

TEST_F(AgentProcessTest, TwoPodsWithTheSamePortBothServe) {
  const std::string serve = "python3 -m http.server 8080 --bind $POD_IP --directory .";
  ApplyPod("web-a", "node-1", serve, "    ports: [{containerPort: 8080}]\n");
  ApplyPod("web-b", "node-1", serve, "    ports: [{containerPort: 8080}]\n");
  std::string ips[2];
  for (int i = 0; i < 2; ++i) {
    const std::string name = i == 0 ? "web-a" : "web-b";
    ASSERT_TRUE(WaitPod(name, [&](const Json& p) {
      ips[i] = p["status"].value("podIP", "");
      return Running(p) && Condition(p, "Ready") == "True" && !ips[i].empty();
    })) << GetPod(name).dump(2);
  }
  EXPECT_NE(ips[0], ips[1]);
  for (const std::string& ip : ips) {
    EXPECT_TRUE(WaitFor([&] { return HttpGet(ip, 8080) == 200; }, milliseconds(10000))) << ip;
  }
  Json p = GetPod("web-a");
  EXPECT_EQ(Condition(p, "PodScheduled"), "True");
  EXPECT_EQ(Condition(p, "Initialized"), "True");
  EXPECT_EQ(Condition(p, "ContainersReady"), "True");
  EXPECT_EQ(p["status"]["containerStatuses"][0]["image"], "busybox:1.36");
  EXPECT_TRUE(
      absl::StartsWith(p["status"]["containerStatuses"][0].value("containerID", ""), "process://"));
  auto get = K({"get", "pods", "-o", "wide"});
  EXPECT_TRUE(absl::StrContains(get.out, ips[0])) << get.out;
  ASSERT_EQ(K({"delete", "pod", "web-a", "web-b", "--timeout=60s"}).exit_code, 0);
  EXPECT_TRUE(ProcessesWith(Marker("web")).empty());
}

TEST_F(AgentProcessTest, KilledContainerRestartsAndKeepsPreviousLogs) {
  ApplyPod("crash", "node-1",
           "echo run started $(date +%s%N); sleep 0.2; echo to-stderr >&2; sleep 1000");
  ASSERT_TRUE(WaitPod("crash", Running)) << GetPod("crash").dump(2);
  std::vector<Proc> procs;
  ASSERT_TRUE(WaitFor([&] { return (procs = ProcessesWith(Marker("crash"))).size() == 1; },
                      milliseconds(5000)));
  const pid_t first = procs[0].pid;
  // Both lines are out before the kill.
  ASSERT_TRUE(WaitFor(
      [&] {
        return absl::StrContains(K({"logs", "crash"}).out, "to-stderr");
      },
      milliseconds(10000)));
  ASSERT_EQ(::kill(first, SIGKILL), 0);
  ASSERT_TRUE(WaitPod("crash", [](const Json& p) { return RestartCount(p) >= 1 && Running(p); }))
      << GetPod("crash").dump(2);
  Json p = GetPod("crash");
  const Json& last = p["status"]["containerStatuses"][0]["lastState"]["terminated"];
  EXPECT_EQ(last.value("exitCode", 0), 137) << p.dump(2);
  EXPECT_EQ(last.value("reason", ""), "Error");
  ASSERT_TRUE(WaitFor([&] { return (procs = ProcessesWith(Marker("crash"))).size() == 1; },
                      milliseconds(5000)));
  EXPECT_NE(procs[0].pid, first);
  auto previous = K({"logs", "crash", "--previous"});
  ASSERT_EQ(previous.exit_code, 0) << previous.err;
  EXPECT_TRUE(absl::StrContains(previous.out, "run started")) << previous.out;
  EXPECT_TRUE(absl::StrContains(previous.out, "to-stderr")) << previous.out;
  auto current = K({"logs", "crash", "-c", "main", "--timestamps"});
  ASSERT_EQ(current.exit_code, 0) << current.err;
  EXPECT_TRUE(absl::StrContains(current.out, "Z run started")) << current.out;
  EXPECT_NE(previous.out, current.out);
  // The new run writes its second line 0.2 s after its first.
  ASSERT_TRUE(WaitFor(
      [&] {
        return absl::StrContains(K({"logs", "crash"}).out, "to-stderr");
      },
      milliseconds(10000)));
  auto tail = K({"logs", "crash", "--tail=1"});
  EXPECT_EQ(tail.out, "to-stderr\n");
  auto since = K({"logs", "crash", "--since=1h"});
  EXPECT_TRUE(absl::StrContains(since.out, "run started"));
  ASSERT_EQ(K({"delete", "pod", "crash", "--grace-period=1", "--timeout=60s"}).exit_code, 0);
  EXPECT_TRUE(ProcessesWith(Marker("crash")).empty());
}

TEST_F(AgentProcessTest, CrashLoopBacksOffAndFollowStreams) {
  ApplyPod("loop", "node-1", "for i in 1 2 3; do echo line $i; sleep 0.3; done; exit 3");
  // kubectl logs -f ends when the run ends.
  ASSERT_TRUE(WaitPod("loop", [](const Json& p) {
    return p["status"].contains("containerStatuses") &&
           p["status"]["containerStatuses"][0]["state"].contains("running");
  }));
  auto follow = K({"logs", "-f", "loop"}, "", milliseconds(20000));
  EXPECT_EQ(follow.exit_code, 0) << follow.err;
  EXPECT_TRUE(absl::StrContains(follow.out, "line 3")) << follow.out;
  ASSERT_TRUE(WaitPod("loop", [](const Json& p) {
    const Json& s = p["status"]["containerStatuses"][0];
    return s.value("restartCount", 0) >= 2 && s["state"].contains("waiting") &&
           s["state"]["waiting"].value("reason", "") == "CrashLoopBackOff";
  })) << GetPod("loop").dump(2);
  Json p = GetPod("loop");
  EXPECT_EQ(p["status"]["containerStatuses"][0]["lastState"]["terminated"]["exitCode"], 3);
  // The agent records what happened as Events, as kubelet does.
  ASSERT_TRUE(WaitFor(
      [&] {
        auto events = K({"get", "events", "-o", "json"});
        return absl::StrContains(events.out, "\"BackOff\"") &&
               absl::StrContains(events.out, "\"Started\"");
      },
      milliseconds(10000)))
      << K({"get", "events"}).out;
  ASSERT_EQ(K({"delete", "pod", "loop", "--timeout=60s"}).exit_code, 0);
}

TEST_F(AgentProcessTest, FailingLivenessProbeRestarts) {
  ApplyPod("live", "node-1", "sleep 1000",
           "    livenessProbe:\n      exec: {command: [sh, -c, 'exit 1']}\n"
           "      periodSeconds: 1\n      failureThreshold: 2\n",
           "  terminationGracePeriodSeconds: 2\n");
  ASSERT_TRUE(WaitPod(
      "live", [](const Json& p) { return RestartCount(p) >= 1; }, milliseconds(40000)))
      << GetPod("live").dump(2);
  Json p = GetPod("live");
  EXPECT_TRUE(p["status"]["containerStatuses"][0]["lastState"].contains("terminated")) << p.dump(2);
  auto events = K({"get", "events", "-o", "json"});
  EXPECT_TRUE(absl::StrContains(events.out, "Liveness probe failed")) << events.out;
  ASSERT_EQ(K({"delete", "pod", "live", "--timeout=60s"}).exit_code, 0);
}

TEST_F(AgentProcessTest, ReadinessGatesReadyAndHttpProbePasses) {
  ApplyPod("unready", "node-1", "sleep 1000",
           "    readinessProbe:\n      exec: {command: [test, -f, /nonexistent/ready]}\n"
           "      periodSeconds: 1\n");
  ApplyPod("httpready", "node-1", "python3 -m http.server 8081 --bind $POD_IP",
           "    readinessProbe:\n      httpGet: {path: /, port: 8081}\n      periodSeconds: 1\n"
           "    livenessProbe:\n      tcpSocket: {port: 8081}\n      periodSeconds: 1\n"
           "      initialDelaySeconds: 2\n");
  ASSERT_TRUE(WaitPod("httpready", [](const Json& p) { return Condition(p, "Ready") == "True"; }))
      << GetPod("httpready").dump(2);
  ASSERT_TRUE(WaitPod("unready", Running));
  std::this_thread::sleep_for(milliseconds(3000));
  Json p = GetPod("unready");
  EXPECT_EQ(p["status"]["phase"], "Running");
  EXPECT_EQ(Condition(p, "Ready"), "False") << p.dump(2);
  EXPECT_EQ(Condition(p, "ContainersReady"), "False");
  EXPECT_EQ(p["status"]["containerStatuses"][0]["ready"], false);
  EXPECT_EQ(RestartCount(GetPod("httpready")), 0);  // the passing liveness probe kills nothing
  ASSERT_EQ(K({"delete", "pod", "unready", "httpready", "--timeout=60s"}).exit_code, 0);
}

TEST_F(AgentProcessTest, DeleteStopsProcessesWithinTheGracePeriod) {
  // One exits on SIGTERM at once; one ignores it and must be killed at the end of its grace.
  ApplyPod("polite", "node-1", "trap 'exit 0' TERM; while true; do sleep 0.1; done");
  ApplyPod("stubborn", "node-1", "trap '' TERM; while true; do sleep 0.1; done", "",
           "  terminationGracePeriodSeconds: 3\n");
  ASSERT_TRUE(WaitPod("polite", Running));
  ASSERT_TRUE(WaitPod("stubborn", Running));
  ASSERT_FALSE(ProcessesWith(Marker("polite")).empty());
  ASSERT_FALSE(ProcessesWith(Marker("stubborn")).empty());
  auto start = Clock::now();
  ASSERT_EQ(K({"delete", "pod", "polite", "--timeout=60s"}).exit_code, 0);
  const auto polite_ms = std::chrono::duration_cast<milliseconds>(Clock::now() - start).count();
  EXPECT_TRUE(ProcessesWith(Marker("polite")).empty());
  EXPECT_LT(polite_ms, 15000);
  start = Clock::now();
  ASSERT_EQ(K({"delete", "pod", "stubborn", "--timeout=60s"}).exit_code, 0);
  const auto stubborn_ms = std::chrono::duration_cast<milliseconds>(Clock::now() - start).count();
  EXPECT_TRUE(ProcessesWith(Marker("stubborn")).empty());
  EXPECT_GE(stubborn_ms, 2500);   // it was given its grace period
  EXPECT_LT(stubborn_ms, 15000);  // and then killed
  EXPECT_EQ(K({"get", "pod", "stubborn"}).exit_code, 1);
}

// With the leader's scheduler and workload reconcilers: a Deployment's pods are
// placed on the agents' nodes and run as processes; a rollout replaces every
// old process with a new one.
TEST_F(AgentProcessTest, DeploymentRolloutReplacesProcesses) {
  auto deployment = [&](const std::string& version) {
    const std::string marker = absl::StrCat(Marker("roll"), "-", version);
    return absl::StrCat(R"y(apiVersion: apps/v1
kind: Deployment
metadata: {name: roll}
spec:
  replicas: 2
  selector: {matchLabels: {app: roll}}
  template:
    metadata: {labels: {app: roll}}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: main
        image: busybox:)y",
                        version, R"y(
        command: [sh, -c, "while true; do sleep 0.2; done", )y",
                        marker, "]\n");
  };
  auto count = [&](const std::string& version) {
    return ProcessesWith(absl::StrCat(Marker("roll"), "-", version)).size();
  };
  ASSERT_EQ(K({"apply", "-f", "-"}, deployment("v1")).exit_code, 0);
  auto status =
      K({"rollout", "status", "deployment/roll", "--timeout=60s"}, "", milliseconds(70000));
  ASSERT_EQ(status.exit_code, 0) << status.out << status.err;
  EXPECT_TRUE(WaitFor([&] { return count("v1") == 2; }, milliseconds(20000))) << count("v1");

  ASSERT_EQ(K({"apply", "-f", "-"}, deployment("v2")).exit_code, 0);
  status = K({"rollout", "status", "deployment/roll", "--timeout=90s"}, "", milliseconds(100000));
  ASSERT_EQ(status.exit_code, 0) << status.out << status.err;
  EXPECT_TRUE(WaitFor([&] { return count("v1") == 0 && count("v2") == 2; }, milliseconds(30000)))
      << "v1 processes " << count("v1") << ", v2 processes " << count("v2");
  // Every pod of the deployment is on an agent's node and runs the new image.
  auto pods = K({"get", "pods", "-l", "app=roll", "-o", "json"});
  ASSERT_EQ(pods.exit_code, 0) << pods.err;
  Json list = Json::parse(pods.out, nullptr, false);
  int running_v2 = 0;
  for (const Json& p : list["items"]) {
    if (p["metadata"].contains("deletionTimestamp")) continue;
    EXPECT_TRUE(absl::StartsWith(p["spec"].value("nodeName", ""), "node-")) << p.dump();
    running_v2 += Running(p) && p["spec"]["containers"][0].value("image", "") == "busybox:v2";
  }
  EXPECT_EQ(running_v2, 2) << pods.out;
  ASSERT_EQ(K({"delete", "deployment", "roll"}).exit_code, 0);
  EXPECT_TRUE(WaitFor([&] { return count("v2") == 0; }, milliseconds(30000))) << count("v2");
}

TEST_F(AgentProcessTest, InitContainerAndEmptyDirThenSucceeded) {
  const std::string yaml = absl::StrCat(R"y(apiVersion: v1
kind: Pod
metadata: {name: job}
spec:
  nodeName: node-2
  restartPolicy: Never
  volumes: [{name: shared, emptyDir: {}}]
  initContainers:
  - name: prepare
    image: busybox:1.36
    command: [sh, -c, "echo prepared-by-init > shared/msg", )y",
                                        Marker("job"), R"y(]
    volumeMounts: [{name: shared, mountPath: /shared}]
  containers:
  - name: main
    image: busybox:1.36
    command: [sh, -c, "cat data/msg; echo pod=$POD_NAME ns=$POD_NAMESPACE node=$NODE_NAME me=$(ME)",
              )y",
                                        Marker("job"), R"y(]
    env: [{name: ME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}]
    volumeMounts: [{name: shared, mountPath: /data}]
)y");
  ASSERT_EQ(K({"apply", "-f", "-"}, yaml).exit_code, 0);
  ASSERT_TRUE(WaitPod("job", [](const Json& p) {
    return p["status"].value("phase", "") == "Succeeded";
  })) << GetPod("job").dump(2);
  Json p = GetPod("job");
  EXPECT_EQ(p["status"]["initContainerStatuses"][0]["state"]["terminated"]["reason"], "Completed");
  EXPECT_EQ(p["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"], 0);
  auto logs = K({"logs", "job"});
  EXPECT_TRUE(absl::StrContains(logs.out, "prepared-by-init")) << logs.out << logs.err;
  EXPECT_TRUE(absl::StrContains(logs.out, absl::StrCat("pod=job ns=", ns_, " node=node-2 me=job")))
      << logs.out;
  auto init_logs = K({"logs", "job", "-c", "prepare"});
  EXPECT_EQ(init_logs.exit_code, 0) << init_logs.err;
  ASSERT_EQ(K({"delete", "pod", "job", "--timeout=60s"}).exit_code, 0);
}

TEST_F(AgentProcessTest, AgentKilledAndRestartedAdoptsAndCleansUp) {
  ApplyPod("keep", "node-2", "sleep 1000");
  ApplyPod("drop", "node-2", "sleep 1000");
  ASSERT_TRUE(WaitPod("keep", Running));
  ASSERT_TRUE(WaitPod("drop", Running));
  std::vector<Proc> keep;
  ASSERT_TRUE(WaitFor([&] { return (keep = ProcessesWith(Marker("keep"))).size() == 1; },
                      milliseconds(5000)));
  const int restarts_before = RestartCount(GetPod("keep"));
  // The supervisor, sh and sleep.
  const size_t group_before = GroupSize(keep[0].pgid);
  EXPECT_EQ(group_before, 3u);
  agents_[1]->Kill(SIGKILL);
  // While the agent is down its pod is force-deleted: nobody stops the process yet.
  ASSERT_EQ(K({"delete", "pod", "drop", "--grace-period=0", "--force"}).exit_code, 0);
  EXPECT_EQ(ProcessesWith(Marker("drop")).size(), 1u);
  agents_[1]->Start();
  EXPECT_TRUE(WaitFor([&] { return ProcessesWith(Marker("drop")).empty(); }, milliseconds(20000)))
      << TailFile(agents_[1]->log());
  // The kept pod's process was adopted: the same one, not a second one.
  std::this_thread::sleep_for(milliseconds(2000));
  auto now = ProcessesWith(Marker("keep"));
  ASSERT_EQ(now.size(), 1u);
  EXPECT_EQ(now[0].pid, keep[0].pid);
  EXPECT_EQ(GroupSize(keep[0].pgid), group_before);
  Json p = GetPod("keep");
  EXPECT_TRUE(Running(p)) << p.dump(2);
  EXPECT_EQ(RestartCount(p), restarts_before);
  // And it is still supervised: killing it gets it restarted.
  ASSERT_EQ(::kill(keep[0].pid, SIGKILL), 0);
  EXPECT_TRUE(WaitPod("keep", [&](const Json& p) {
    return RestartCount(p) == restarts_before + 1 && Running(p);
  })) << GetPod("keep").dump(2);
  // Exactly one again (the status may be written before the command forked).
  EXPECT_TRUE(
      WaitFor([&] { return ProcessesWith(Marker("keep")).size() == 1; }, milliseconds(5000)));
  std::this_thread::sleep_for(milliseconds(1000));
  EXPECT_EQ(ProcessesWith(Marker("keep")).size(), 1u);
  ASSERT_EQ(K({"delete", "pod", "keep", "--timeout=60s"}).exit_code, 0);
  EXPECT_TRUE(ProcessesWith(Marker("keep")).empty());
}

TEST_F(AgentProcessTest, HollowNodesRegisterRunAndDeletePods) {
  constexpr int kNodes = 20, kPods = 40;
  AgentProcess hollow(
      "hollow", "", endpoints_, absl::StrCat(cluster().data_root(), "/hollow.log"),
      {"--hollow", "--count", absl::StrCat(kNodes), "--name-prefix", "hollow-", "--threads", "2"});
  hollow.Start();
  ASSERT_TRUE(WaitFor(
      [&] {
        auto r = Kubectl({"get", "nodes", "-l", "ganglion.io/hollow=true", "-o", "name"});
        return r.exit_code == 0 && std::count(r.out.begin(), r.out.end(), '\n') == kNodes;
      },
      milliseconds(30000)))
      << TailFile(hollow.log());
  auto lease = Kubectl({"get", "lease", "-n", "kube-node-lease", "hollow-7", "-o",
                        "jsonpath={.spec.holderIdentity}"});
  EXPECT_EQ(lease.out, "hollow-7");
  std::string manifests;
  for (int i = 0; i < kPods; ++i) {
    absl::StrAppend(&manifests, "---\napiVersion: v1\nkind: Pod\nmetadata: {name: h", i,
                    "}\nspec:\n  nodeName: hollow-", i % kNodes,
                    "\n  containers: [{name: c, image: none, command: [sleep, '1']}]\n");
  }
  ASSERT_EQ(K({"apply", "-f", "-"}, manifests).exit_code, 0);
  ASSERT_TRUE(WaitFor(
      [&] {
        auto r = K({"get", "pods", "--field-selector", "status.phase=Running", "-o", "name"});
        return std::count(r.out.begin(), r.out.end(), '\n') == kPods;
      },
      milliseconds(60000)))
      << TailFile(hollow.log());
  Json p = GetPod("h3");
  EXPECT_EQ(Condition(p, "Ready"), "True");
  EXPECT_FALSE(p["status"].value("podIP", "").empty());
  ASSERT_EQ(K({"delete", "pods", "--all", "--timeout=60s"}).exit_code, 0);
  EXPECT_EQ(K({"get", "pods", "-o", "name"}).out, "");
  hollow.Kill(SIGTERM);
}

TEST_F(AgentProcessTest, SurvivesTheLossOfAMember) {
  // The agents prefer the first endpoint (m1): stop that member, and drive
  // kubectl through m2. Their watch, lease renewals and status writes must
  // move to the remaining members.
  api_member_ = 1;
  struct Restore {
    ~Restore() { api_member_ = 0; }
  } restore;
  ASSERT_TRUE(cluster().Stop(0).ok());
  auto renew_time = [] {
    return Kubectl({"get", "lease", "-n", "kube-node-lease", "node-1", "-o",
                    "jsonpath={.spec.renewTime}"})
        .out;
  };
  const std::string before = renew_time();
  ApplyPod("after-loss", "node-1", "sleep 1000");
  EXPECT_TRUE(WaitPod("after-loss", Running, milliseconds(40000))) << GetPod("after-loss").dump(2);
  EXPECT_TRUE(WaitFor([&] { return renew_time() != before; }, milliseconds(25000)))
      << "node-1's lease was not renewed without m1: " << TailFile(agents_[0]->log());
  ASSERT_EQ(K({"delete", "pod", "after-loss", "--timeout=60s"}).exit_code, 0);
  EXPECT_TRUE(ProcessesWith(Marker("after-loss")).empty());
  ASSERT_TRUE(cluster().Restart(0).ok());
}

}  // namespace
}  // namespace ganglion::tests
