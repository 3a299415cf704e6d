// ganglion-jepsen: starts a real ganglion cluster, runs workloads against it
// while a nemesis injects faults, heals everything, waits for recovery, and
// checks every history. Writes jepsen/store/<run>/{history.jsonl,
// results.json, report.html}. Exit status: 0 valid, 1 invalid, 2 unknown,
// 3 the run itself failed (bad flags, cluster would not start).
#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <map>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "jepsen/cluster/cluster.h"
#include "jepsen/nemesis/nemesis.h"
#include "jepsen/report/report.h"
#include "jepsen/workload/workload.h"

namespace {

namespace fs = std::filesystem;
using namespace ganglion::jepsen;
using std::chrono::milliseconds;

std::atomic<bool> g_interrupted{false};
void OnSignal(int) {
  g_interrupted = true;
}

constexpr char kUsage[] = R"(Usage: ganglion-jepsen [flags]
  --workload W        register | list-append | watch | lock | lease | all (comma-separated)
  --nemesis N         kill | pause | partition | clock | membership | transfer | compaction | all
                      | none, or single faults (kill-one, kill-leader, kill-majority, kill-all,
                      pause-one, pause-leader, partition-leader, partition-halves,
                      partition-ring, partition-bridge, partition-one-way, clock-skew) (comma-sep.)
  --members N         3 or 5 (default 3)
  --time-limit S      seconds of workload under faults (default 60)
  --quiet S           seconds after the final heal in which the cluster must recover (default 10)
  --net M             auto | netns | filter (default auto: netns when possible)
  --net-prefix P      names of the namespaces and links this run creates (default gjep)
  --ganglion PATH     the server binary (default: ganglion beside this binary)
  --store DIR         where runs are written (default jepsen/store)
  --concurrency N     client threads per workload (default 5)
  --op-interval-ms N  each thread starts at most one operation per N ms (default 20)
  --fault-s A:B       a fault lasts A to B seconds (default 4:8)
  --gap-s A:B         quiet time between faults, A to B seconds (default 3:6)
  --seed N            randomness of workloads and nemesis (default: time)
  --server-flag F     pass F to every member (repeatable), e.g. --server-flag=--unsafe-no-fsync
  --unsafe-no-fsync, --unsafe-local-linearizable-reads
                      shorthands for --server-flag with the same flag (tests only)
)";

struct Flags {
  std::vector<std::string> workloads = {"register"};
  std::vector<std::string> nemeses = {"kill", "partition"};
  int members = 3;
  int time_limit_s = 60;
  int quiet_s = 10;
  std::string net = "auto";
  std::string net_prefix = "gjep";
  std::string ganglion;
  std::string store = "jepsen/store";
  int concurrency = 5;
  int op_interval_ms = 20;
  std::pair<int, int> fault_s = {4, 8}, gap_s = {3, 6};
  uint64_t seed = 0;
  std::vector<std::string> server_flags;
};

bool ParseRange(const std::string& v, std::pair<int, int>& out) {
  std::vector<std::string> parts = absl::StrSplit(v, ':');
  if (parts.size() != 2) return false;
  return absl::SimpleAtoi(parts[0], &out.first) && absl::SimpleAtoi(parts[1], &out.second) &&
         out.first >= 0 && out.second >= out.first;
}

absl::StatusOr<Flags> ParseFlags(int argc, char** argv) {
  Flags f;
  for (int i = 1; i < argc; i++) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") return absl::CancelledError(kUsage);
    if (arg == "--unsafe-no-fsync" || arg == "--unsafe-local-linearizable-reads") {
      f.server_flags.push_back(arg);
      continue;
    }
    std::string name = arg, value;
    if (size_t eq = arg.find('='); eq != std::string::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      return absl::InvalidArgumentError(absl::StrCat(arg, " needs a value"));
    }
    bool ok = true;
    if (name == "--workload") {
      f.workloads = absl::StrSplit(value, ',', absl::SkipEmpty());
    } else if (name == "--nemesis") {
      f.nemeses = absl::StrSplit(value, ',', absl::SkipEmpty());
    } else if (name == "--members") {
      ok = absl::SimpleAtoi(value, &f.members) && (f.members == 3 || f.members == 5);
    } else if (name == "--time-limit") {
      ok = absl::SimpleAtoi(value, &f.time_limit_s) && f.time_limit_s >= 0;
    } else if (name == "--quiet") {
      ok = absl::SimpleAtoi(value, &f.quiet_s) && f.quiet_s >= 0;
    } else if (name == "--net") {
      f.net = value;
      ok = value == "auto" || value == "netns" || value == "filter";
    } else if (name == "--net-prefix") {
      f.net_prefix = value;
    } else if (name == "--ganglion") {
      f.ganglion = value;
    } else if (name == "--store") {
      f.store = value;
    } else if (name == "--concurrency") {
      ok = absl::SimpleAtoi(value, &f.concurrency) && f.concurrency > 0 && f.concurrency <= 100;
    } else if (name == "--op-interval-ms") {
      ok = absl::SimpleAtoi(value, &f.op_interval_ms) && f.op_interval_ms >= 0;
    } else if (name == "--fault-s") {
      ok = ParseRange(value, f.fault_s);
    } else if (name == "--gap-s") {
      ok = ParseRange(value, f.gap_s);
    } else if (name == "--seed") {
      ok = absl::SimpleAtoi(value, &f.seed);
    } else if (name == "--server-flag") {
      f.server_flags.push_back(value);
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag ", name, "\n", kUsage));
    }
    if (!ok) return absl::InvalidArgumentError(absl::StrCat("bad value for ", name, ": ", value));
  }
  if (f.workloads.size() == 1 && f.workloads[0] == "all") f.workloads = WorkloadNames();
  for (const std::string& w : f.workloads) {
    auto names = WorkloadNames();
    if (std::find(names.begin(), names.end(), w) == names.end()) {
      return absl::InvalidArgumentError(absl::StrCat("unknown workload ", w));
    }
  }
  if (f.ganglion.empty()) {
    f.ganglion = (fs::canonical("/proc/self/exe").parent_path() / "ganglion").string();
  }
  if (f.seed == 0) f.seed = static_cast<uint64_t>(std::time(nullptr));
  return f;
}

// Sleeps `d`, or less if interrupted. False if interrupted.
bool Sleep(std::chrono::steady_clock::duration d) {
  const auto until = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < until) {
    if (g_interrupted) return false;
    std::this_thread::sleep_for(milliseconds(100));
  }
  return !g_interrupted;
}

std::string RunName() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y%m%dT%H%M%SZ", &tm);
  return absl::StrCat(buf, "-", getpid());
}

int Run(int argc, char** argv) {
  auto flags = ParseFlags(argc, argv);
  if (!flags.ok()) {
    if (absl::IsCancelled(flags.status())) {
      std::fputs(kUsage, stdout);
      return 0;
    }
    std::fprintf(stderr, "ganglion-jepsen: %s\n", std::string(flags.status().message()).c_str());
    return 3;
  }
  auto faults = ExpandFaults(flags->nemeses);
  if (!faults.ok()) {
    std::fprintf(stderr, "ganglion-jepsen: %s\n", std::string(faults.status().message()).c_str());
    return 3;
  }
  if (!fs::exists(flags->ganglion)) {
    std::fprintf(stderr, "ganglion-jepsen: no server binary at %s (use --ganglion)\n",
                 flags->ganglion.c_str());
    return 3;
  }
  spdlog::set_default_logger(spdlog::stderr_color_mt("jepsen"));
  spdlog::set_pattern("%H:%M:%S.%e %^%l%$ %v");

  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  const std::string run = RunName();
  const std::string dir = absl::StrCat(flags->store, "/", run);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    std::fprintf(stderr, "ganglion-jepsen: create %s: %s\n", dir.c_str(), ec.message().c_str());
    return 3;
  }
  fs::remove(fs::path(flags->store) / "latest", ec);
  fs::create_directory_symlink(run, fs::path(flags->store) / "latest", ec);

  const auto origin = std::chrono::steady_clock::now();
  Recorder recorder(origin);
  ClusterOptions co;
  co.binary = flags->ganglion;
  co.members = flags->members;
  co.dir = dir + "/members";
  co.net = flags->net;
  co.net_prefix = flags->net_prefix;
  co.extra_flags = flags->server_flags;
  Cluster cluster(co);
  spdlog::info("event=run_start run={} dir={} workloads={} faults={} seed={}", run, dir,
               absl::StrJoin(flags->workloads, ","), absl::StrJoin(*faults, ","), flags->seed);
  if (auto s = cluster.Start(); !s.ok()) {
    std::fprintf(stderr, "ganglion-jepsen: cluster did not start: %s\n", s.ToString().c_str());
    return 3;
  }
  std::printf("ganglion-jepsen: run %s, network: %s%s%s\n", run.c_str(), cluster.net_mode().c_str(),
              cluster.net_note().empty() ? "" : " (",
              cluster.net_note().empty() ? "" : (cluster.net_note() + ")").c_str());
  std::fflush(stdout);

  std::vector<std::unique_ptr<Workload>> workloads;
  for (size_t i = 0; i < flags->workloads.size(); i++) {
    WorkloadOptions wo;
    wo.endpoints = cluster.client_endpoints();
    wo.concurrency = flags->concurrency;
    wo.process_base = static_cast<int>(i) * 1'000'000;
    wo.op_interval = std::chrono::milliseconds(flags->op_interval_ms);
    wo.seed = flags->seed + i;
    workloads.push_back(MakeWorkload(flags->workloads[i], recorder, wo));
    if (auto s = workloads.back()->Start(); !s.ok()) {
      std::fprintf(stderr, "ganglion-jepsen: workload %s did not start: %s\n",
                   flags->workloads[i].c_str(), s.ToString().c_str());
      for (auto& w : workloads) w->Stop();
      return 3;
    }
  }

  NemesisOptions no;
  no.faults = *faults;
  no.seed = flags->seed;
  no.fault_min = std::chrono::seconds(flags->fault_s.first);
  no.fault_max = std::chrono::seconds(flags->fault_s.second);
  no.quiet_min = std::chrono::seconds(flags->gap_s.first);
  no.quiet_max = std::chrono::seconds(flags->gap_s.second);
  no.compaction_floor = [&workloads] {
    int64_t floor = std::numeric_limits<int64_t>::max();
    for (auto& w : workloads) floor = std::min(floor, w->CompactionFloor());
    return floor;
  };
  Nemesis nemesis(cluster, no, [&recorder] { return recorder.NowNs(); });
  nemesis.Start();
  Sleep(std::chrono::seconds(flags->time_limit_s));
  nemesis.Stop();

  // Heal everything, then the quiet period: workloads keep running and the
  // cluster must come back.
  std::vector<NemesisInterval> intervals = nemesis.intervals();
  NemesisInterval final_heal{"heal-all", "resume, heal network, restart and re-add members",
                             recorder.NowNs(), 0, ""};
  if (auto s = cluster.HealAll(); !s.ok()) final_heal.error = s.ToString();
  final_heal.end_ns = recorder.NowNs();
  intervals.push_back(final_heal);
  Sleep(std::chrono::seconds(flags->quiet_s));

  CheckResult recovery;
  recovery.checker = "recovery";
  std::vector<std::string> unhealthy;
  for (int i = 0; i < cluster.size(); i++) {
    if (auto s = cluster.WaitHealthy(i, milliseconds(60000)); !s.ok()) {
      unhealthy.push_back(std::string(s.message()));
    }
  }
  recovery.verdict = unhealthy.empty() ? Verdict::kValid : Verdict::kInvalid;
  recovery.summary = unhealthy.empty() ? "every member healthy after the quiet period"
                                       : absl::StrCat(unhealthy.size(), " members unhealthy");
  recovery.details = {{"unhealthy", unhealthy}};

  for (auto& w : workloads) w->Stop();
  std::vector<CheckResult> results = {recovery};
  for (auto& w : workloads) {
    if (auto s = w->Finish(); !s.ok()) {
      results.push_back({w->name() + "-finish",
                         Verdict::kUnknown,
                         absl::StrCat("final phase failed: ", s.ToString()),
                         {}});
    }
  }
  const std::vector<Operation> history = recorder.Operations();
  for (auto& w : workloads) {
    for (CheckResult& r : w->Check(history)) results.push_back(std::move(r));
  }
  if (g_interrupted) {
    results.push_back({"interrupted", Verdict::kUnknown, "the run was interrupted", {}});
  }

  RunInfo info;
  info.run = run;
  info.duration_ns = recorder.NowNs();
  info.settings = {{"workloads", flags->workloads},     {"faults", *faults},
                   {"members", flags->members},         {"time_limit_s", flags->time_limit_s},
                   {"quiet_s", flags->quiet_s},         {"net", cluster.net_mode()},
                   {"net_note", cluster.net_note()},    {"server_flags", flags->server_flags},
                   {"concurrency", flags->concurrency}, {"seed", flags->seed}};
  cluster.Shutdown();
  absl::Status written = WriteHistory(dir + "/history.jsonl", history);
  if (written.ok()) written = WriteResults(dir + "/results.json", info, results, intervals);
  if (written.ok()) written = WriteReport(dir + "/report.html", info, history, results, intervals);
  if (!written.ok()) std::fprintf(stderr, "ganglion-jepsen: %s\n", written.ToString().c_str());

  const Verdict overall = Overall(results);
  for (const CheckResult& r : results) {
    std::printf("  %-14s %-8s %s\n", r.checker.c_str(), VerdictName(r.verdict), r.summary.c_str());
  }
  std::printf("ganglion-jepsen: %s (%zu operations, %zu faults, network %s); see %s/report.html\n",
              VerdictName(overall), history.size(), intervals.size() - 1,
              cluster.net_mode().c_str(), dir.c_str());
  if (!written.ok()) return 3;
  return overall == Verdict::kValid ? 0 : overall == Verdict::kInvalid ? 1 : 2;
}

}  // namespace

int main(int argc, char** argv) {
  return Run(argc, argv);
}
