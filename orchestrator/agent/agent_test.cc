// Pure logic of the node agent: restart back-off, probe bookkeeping, log
// lines and reading them back (tail, since, timestamps, rotation), pod
// address allocation, the per-pod state file, and a real supervisor run.
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "orchestrator/agent/backoff.h"
#include "orchestrator/agent/logs.h"
#include "orchestrator/agent/node.h"
#include "orchestrator/agent/pod_ip.h"
#include "orchestrator/agent/probe.h"
#include "orchestrator/agent/process.h"
#include "orchestrator/agent/state.h"

namespace ganglion::orchestrator::agent {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() / absl::StrCat("agent_test_", getpid(), "_", counter_++);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string path() const { return path_.string(); }

 private:
  static inline int counter_ = 0;
  fs::path path_;
};

const absl::Time kT0 = absl::FromUnixSeconds(1700000000);

TEST(AgentBackoff, DoublesFromInitialToMax) {
  RestartBackoff b({absl::Seconds(10), absl::Seconds(60), absl::Minutes(10)});
  absl::Time t = kT0;
  std::vector<int64_t> waits;
  for (int i = 0; i < 6; ++i) {
    const absl::Time next = b.OnExit(t, t + absl::Seconds(1));
    waits.push_back(absl::ToInt64Seconds(next - (t + absl::Seconds(1))));
    t = next;
  }
  EXPECT_EQ(waits, (std::vector<int64_t>{10, 20, 40, 60, 60, 60}));
}

TEST(AgentBackoff, LongRunForgetsEarlierCrashes) {
  RestartBackoff b({absl::Seconds(10), absl::Minutes(5), absl::Minutes(10)});
  b.OnExit(kT0, kT0 + absl::Seconds(1));
  b.OnExit(kT0, kT0 + absl::Seconds(2));
  EXPECT_EQ(b.current(), absl::Seconds(20));
  const absl::Time next = b.OnExit(kT0, kT0 + absl::Minutes(11));
  EXPECT_EQ(next - (kT0 + absl::Minutes(11)), absl::Seconds(10));
}

ProbeSpec Spec(int period, int initial_delay, int success, int failure) {
  ProbeSpec s;
  s.period = absl::Seconds(period);
  s.initial_delay = absl::Seconds(initial_delay);
  s.success_threshold = success;
  s.failure_threshold = failure;
  return s;
}

TEST(AgentProbe, FirstDueAfterInitialDelayThenEveryPeriod) {
  ProbeTracker t(Spec(5, 3, 1, 3), ProbeKind::kReadiness, kT0);
  EXPECT_EQ(t.next_due(), kT0 + absl::Seconds(3));
  t.Record(true, kT0 + absl::Seconds(3));
  EXPECT_EQ(t.next_due(), kT0 + absl::Seconds(8));
}

TEST(AgentProbe, ReadinessStartsFailingLivenessStartsPassing) {
  EXPECT_FALSE(ProbeTracker(Spec(1, 0, 1, 3), ProbeKind::kReadiness, kT0).passing());
  EXPECT_FALSE(ProbeTracker(Spec(1, 0, 1, 3), ProbeKind::kStartup, kT0).passing());
  EXPECT_TRUE(ProbeTracker(Spec(1, 0, 1, 3), ProbeKind::kLiveness, kT0).passing());
}

TEST(AgentProbe, ThresholdsCountConsecutiveResults) {
  ProbeTracker t(Spec(1, 0, 2, 3), ProbeKind::kReadiness, kT0);
  EXPECT_FALSE(t.Record(true, kT0));
  EXPECT_FALSE(t.passing());
  EXPECT_TRUE(t.Record(true, kT0 + absl::Seconds(1)));  // 2 in a row
  EXPECT_TRUE(t.passing());
  t.Record(false, kT0 + absl::Seconds(2));
  t.Record(false, kT0 + absl::Seconds(3));
  t.Record(true, kT0 + absl::Seconds(4));  // breaks the run of failures
  t.Record(false, kT0 + absl::Seconds(5));
  t.Record(false, kT0 + absl::Seconds(6));
  EXPECT_TRUE(t.passing());
  EXPECT_TRUE(t.Record(false, kT0 + absl::Seconds(7)));  // the third in a row
  EXPECT_FALSE(t.passing());
}

TEST(AgentProbe, ParsesHandlersAndNamedPorts) {
  nlohmann::json c = nlohmann::json::parse(R"({
    "ports": [{"name": "http", "containerPort": 8080}],
    "livenessProbe": {"httpGet": {"path": "healthz", "port": "http"}, "periodSeconds": 2,
                      "failureThreshold": 1},
    "readinessProbe": {"tcpSocket": {"port": 9000}, "successThreshold": 2},
    "startupProbe": {"grpc": {"port": 1}}})");
  std::string error;
  auto live = ParseProbe(c, ProbeKind::kLiveness, &error);
  ASSERT_TRUE(live.has_value()) << error;
  EXPECT_EQ(live->action, ProbeSpec::Action::kHttpGet);
  EXPECT_EQ(live->port, 8080);
  EXPECT_EQ(live->path, "/healthz");
  EXPECT_EQ(live->period, absl::Seconds(2));
  EXPECT_EQ(live->failure_threshold, 1);
  auto ready = ParseProbe(c, ProbeKind::kReadiness, &error);
  ASSERT_TRUE(ready.has_value()) << error;
  EXPECT_EQ(ready->action, ProbeSpec::Action::kTcpSocket);
  EXPECT_EQ(ready->success_threshold, 2);
  EXPECT_FALSE(ParseProbe(c, ProbeKind::kStartup, &error).has_value());
  EXPECT_NE(error.find("grpc"), std::string::npos) << error;
}

TEST(AgentProbe, ExecAndTcpRunForReal) {
  ProbeSpec exec;
  exec.command = {"sh", "-c", "exit 0"};
  ProbeContext context;
  context.env = {"PATH=/usr/bin:/bin"};
  EXPECT_TRUE(RunProbe(exec, context).success);
  exec.command = {"sh", "-c", "exit 3"};
  EXPECT_FALSE(RunProbe(exec, context).success);
  exec.command = {"sleep", "5"};
  exec.timeout = absl::Milliseconds(200);
  const absl::Time start = absl::Now();
  EXPECT_FALSE(RunProbe(exec, context).success);
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  ProbeSpec tcp;
  tcp.action = ProbeSpec::Action::kTcpSocket;
  tcp.port = 1;  // nothing listens on port 1
  context.pod_ip = "127.0.0.1";
  EXPECT_FALSE(RunProbe(tcp, context).success);
}

TEST(AgentLogs, LineRoundTrip) {
  const absl::Time t = kT0 + absl::Nanoseconds(123456789);
  const std::string line = EncodeLogLine(t, "stderr", false, "hello world");
  EXPECT_EQ(line, "2023-11-14T22:13:20.123456789Z stderr F hello world\n");
  auto parsed = ParseLogLine(line);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->time, t);
  EXPECT_EQ(parsed->stream, "stderr");
  EXPECT_FALSE(parsed->partial);
  EXPECT_EQ(parsed->text, "hello world");
  EXPECT_FALSE(ParseLogLine("garbage").has_value());
}

TEST(AgentLogs, TailSinceTimestampsAcrossRotation) {
  TempDir dir;
  {
    std::ofstream rotated(RunLogPath(dir.path(), 1) + ".1");
    for (int i = 0; i < 3; ++i) {
      rotated << EncodeLogLine(kT0 + absl::Seconds(i), "stdout", false, absl::StrCat("line", i));
    }
    std::ofstream current(RunLogPath(dir.path(), 1));
    for (int i = 3; i < 6; ++i) {
      current << EncodeLogLine(kT0 + absl::Seconds(i), "stdout", false, absl::StrCat("line", i));
    }
  }
  const auto files = RunLogFiles(dir.path(), 1);
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(ReadLogs(files, {}), "line0\nline1\nline2\nline3\nline4\nline5\n");
  LogReadOptions tail;
  tail.tail_lines = 2;
  EXPECT_EQ(ReadLogs(files, tail), "line4\nline5\n");
  LogReadOptions since;
  since.since = kT0 + absl::Seconds(2);
  EXPECT_EQ(ReadLogs(files, since), "line2\nline3\nline4\nline5\n");
  LogReadOptions both = since;
  both.tail_lines = 10;
  both.timestamps = true;
  EXPECT_EQ(ReadLogs(files, both).substr(0, 37), "2023-11-14T22:13:22.000000000Z line2\n");
  LogReadOptions zero;
  zero.tail_lines = 0;
  EXPECT_EQ(ReadLogs(files, zero), "");
  EXPECT_TRUE(RunLogFiles(dir.path(), 2).empty());
}

TEST(AgentLogs, WriterRotatesBySize) {
  TempDir dir;
  const std::string path = RunLogPath(dir.path(), 1);
  LogWriter w(path, 200);
  ASSERT_TRUE(w.Open());
  for (int i = 0; i < 10; ++i) w.Write("stdout", false, absl::StrCat("message number ", i));
  EXPECT_TRUE(fs::exists(path + ".1"));
  EXPECT_LE(fs::file_size(path), 200u);
  // Nothing is lost within the two files kept: the last lines are all there.
  const std::string all = ReadLogs(RunLogFiles(dir.path(), 1), {});
  EXPECT_NE(all.find("message number 9\n"), std::string::npos);
}

TEST(AgentPodIp, AllocatesDistinctAddressesAndReportsExhaustion) {
  auto block = ParseLoopbackBlock("127.1.1.0/30");
  ASSERT_TRUE(block.ok()) << block.status();
  PodIpAllocator a(*block);
  EXPECT_EQ(a.capacity(), 2u);
  auto x = a.Allocate(), y = a.Allocate(), z = a.Allocate();
  ASSERT_TRUE(x.ok() && y.ok());
  EXPECT_EQ(*x, "127.1.1.1");
  EXPECT_EQ(*y, "127.1.1.2");
  EXPECT_TRUE(absl::IsResourceExhausted(z.status()));
  a.Release(*x);
  EXPECT_EQ(*a.Allocate(), "127.1.1.1");
  EXPECT_FALSE(a.Reserve("127.1.2.1"));
}

TEST(AgentPodIp, RejectsBlocksOutsideLoopback) {
  EXPECT_FALSE(ParseLoopbackBlock("10.0.0.0/24").ok());
  EXPECT_FALSE(ParseLoopbackBlock("127.1.0.0/8").ok());
  EXPECT_FALSE(ParseLoopbackBlock("127.1.0.0").ok());
  const Ipv4Block d = DefaultBlockFor("node-1");
  EXPECT_EQ(d.prefix_bits, 24);
  EXPECT_EQ(d.base >> 24, 127u);
  EXPECT_NE((d.base >> 16) & 0xff, 0u);
  EXPECT_EQ(DefaultBlockFor("node-1").base, d.base);  // stable
  EXPECT_NE(DefaultBlockFor("node-2").base, d.base);
}

TEST(AgentState, RoundTripsThroughAFile) {
  TempDir dir;
  PodRecord r;
  r.uid = "u-1";
  r.namespace_name = "ns";
  r.name = "web";
  r.pod_ip = "127.3.4.5";
  r.started_at = kT0;
  ContainerRecord c;
  c.pid = 4242;
  c.start_ticks = 987654321;
  c.started_at = kT0 + absl::Seconds(1);
  c.restart_count = 3;
  c.run = 4;
  Termination t;
  t.exit_code = 137;
  t.signal = 9;
  t.reason = "Error";
  t.started_at = kT0;
  t.finished_at = kT0 + absl::Seconds(5);
  t.container_id = "process://4000";
  c.last = t;
  r.containers["main"] = c;
  r.containers["init"].succeeded = true;
  const std::string path = dir.path() + "/state.json";
  ASSERT_TRUE(WritePodRecord(path, r).ok());
  auto back = ReadPodRecord(path);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(EncodePodRecord(*back), EncodePodRecord(r));
  EXPECT_EQ(back->containers["main"].last->finished_at, kT0 + absl::Seconds(5));
  EXPECT_TRUE(back->containers["init"].succeeded);
  EXPECT_FALSE(DecodePodRecord("{\"no\":1}").ok());
  EXPECT_FALSE(DecodePodRecord("{\"uid\":\"x\",\"containers\":{\"a\":{\"pid\":\"x\"}}}").ok());
}

TEST(AgentState, ProcessIdentityUsesStartTime) {
  auto mine = ProcessStartTicks(getpid());
  ASSERT_TRUE(mine.has_value());
  EXPECT_TRUE(SameProcessAlive(getpid(), *mine));
  EXPECT_FALSE(SameProcessAlive(getpid(), *mine + 1));  // a recycled pid
  EXPECT_FALSE(ProcessStartTicks(0).has_value());
}

TEST(AgentNode, ParsesFlags) {
  auto kv = ParseKeyValues("cpu=2, memory=1Gi,pods=10");
  ASSERT_TRUE(kv.ok());
  EXPECT_EQ((*kv)["memory"], "1Gi");
  EXPECT_FALSE(ParseKeyValues("cpu").ok());
  auto taints = ParseTaints("dedicated=db:NoSchedule,gpu:NoExecute");
  ASSERT_TRUE(taints.ok());
  EXPECT_EQ((*taints)[0]["value"], "db");
  EXPECT_EQ((*taints)[1]["effect"], "NoExecute");
  EXPECT_FALSE(ParseTaints("x=y:Sometimes").ok());
}

}  // namespace
}  // namespace ganglion::orchestrator::agent
