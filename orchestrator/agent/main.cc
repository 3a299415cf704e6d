// ganglion-agent: the node agent (see agent.h), or with --hollow many
// simulated nodes in one process (hollow.h). `ganglion-agent --shim ...` is
// the container supervisor the agent starts (process.h), not for users.
#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>
#include <map>
#include <set>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "orchestrator/agent/agent.h"
#include "orchestrator/agent/hollow.h"
#include "orchestrator/agent/process.h"

namespace {

using namespace ganglion::orchestrator::agent;

constexpr const char* kUsage =
    R"(usage: ganglion-agent --name NAME --endpoints HOST:PORT[,...] --root-dir DIR [flags]
       ganglion-agent --hollow --count N --name-prefix PREFIX --endpoints HOST:PORT[,...]

  --name NAME                 the Node's name
  --endpoints LIST            the ganglion members' client addresses (host:port, comma-separated)
  --capacity cpu=4,memory=8Gi,pods=110
  --labels k=v,...            extra Node labels
  --taints k=v:NoSchedule,... Node taints (set when the Node is created)
  --root-dir DIR              pod state, volumes and logs
  --listen HOST:PORT          the log endpoint (default 127.0.0.1:10250; port 0 picks one)
  --node-ip IP                the Node's InternalIP (default 127.0.0.1)
  --pod-cidr CIDR             the pods' loopback block (default: a /24 derived from the name)
  --backoff-initial SECONDS   restart back-off start (default 10; doubles to --backoff-max)
  --backoff-max SECONDS       restart back-off cap (default 300)
  --log-max-bytes BYTES       rotate a container's log beyond this size (default 10485760)
  --node-status-interval S    how often the Node status is refreshed (default 60)
  --hollow                    simulate --count nodes named PREFIX0..: no processes run
)";

int Fail(const std::string& message) {
  fprintf(stderr, "ganglion-agent: %s\n%s", message.c_str(), kUsage);
  return 2;
}

volatile sig_atomic_t g_stop = 0;
void OnSignal(int) {
  g_stop = 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::string(argv[1]) == "--shim") return RunShim(argc - 2, argv + 2);
  std::map<std::string, std::string> flags;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      fputs(kUsage, stdout);
      return 0;
    }
    if (arg.rfind("--", 0) != 0) return Fail(absl::StrCat("unexpected argument ", arg));
    arg = arg.substr(2);
    const size_t eq = arg.find('=');
    if (eq != std::string::npos) {
      flags[arg.substr(0, eq)] = arg.substr(eq + 1);
    } else if (arg == "hollow") {
      flags[arg] = "true";
    } else if (i + 1 < argc) {
      flags[arg] = argv[++i];
    } else {
      return Fail(absl::StrCat("--", arg, " needs a value"));
    }
  }
  static const std::set<std::string> kKnown = {"name",
                                               "endpoints",
                                               "capacity",
                                               "labels",
                                               "taints",
                                               "root-dir",
                                               "listen",
                                               "node-ip",
                                               "pod-cidr",
                                               "backoff-initial",
                                               "backoff-max",
                                               "log-max-bytes",
                                               "node-status-interval",
                                               "hollow",
                                               "count",
                                               "name-prefix",
                                               "threads"};
  for (const auto& [k, v] : flags) {
    if (!kKnown.count(k)) return Fail(absl::StrCat("unknown flag --", k));
  }
  auto get = [&](const char* k, std::string def = "") {
    auto it = flags.find(k);
    return it == flags.end() ? def : it->second;
  };
  auto seconds = [&](const char* k, int64_t def, int64_t* out) {
    *out = def;
    if (!flags.count(k)) return true;
    return absl::SimpleAtoi(flags[k], out) && *out > 0;
  };
  std::vector<std::string> endpoints = absl::StrSplit(get("endpoints"), ',', absl::SkipEmpty());
  if (endpoints.empty()) return Fail("--endpoints is required");

  signal(SIGPIPE, SIG_IGN);
  signal(SIGTERM, OnSignal);
  signal(SIGINT, OnSignal);

  NodeConfig node;
  auto capacity = ParseKeyValues(get("capacity", "cpu=4,memory=8Gi,pods=110"));
  if (!capacity.ok()) return Fail(absl::StrCat("--capacity: ", capacity.status().message()));
  node.capacity = *capacity;
  for (const char* k : {"cpu", "memory", "pods"}) {
    if (!node.capacity.count(k)) {
      node.capacity[k] = std::string(k) == "cpu" ? "4" : std::string(k) == "memory" ? "8Gi" : "110";
    }
  }
  auto labels = ParseKeyValues(get("labels"));
  if (!labels.ok()) return Fail(absl::StrCat("--labels: ", labels.status().message()));
  node.labels = *labels;
  auto taints = ParseTaints(get("taints"));
  if (!taints.ok()) return Fail(absl::StrCat("--taints: ", taints.status().message()));
  node.taints = *taints;
  node.internal_ip = get("node-ip", "127.0.0.1");

  if (flags.count("hollow")) {
    HollowOptions options;
    options.endpoints = endpoints;
    options.node_template = node;
    options.name_prefix = get("name-prefix", "hollow-");
    int64_t count = 0, threads = 0;
    if (!absl::SimpleAtoi(get("count", "0"), &count) || count < 1 || count > 100000) {
      return Fail("--count must be 1..100000");
    }
    if (!seconds("threads", 4, &threads) || threads > 64) return Fail("--threads must be 1..64");
    options.count = static_cast<int>(count);
    options.threads = static_cast<int>(threads);
    auto fleet = HollowFleet::Start(options);
    if (!fleet.ok()) {
      fprintf(stderr, "ganglion-agent: %s\n", std::string(fleet.status().message()).c_str());
      return 1;
    }
    while (!g_stop) pause();
    (*fleet)->Stop();
    return 0;
  }

  AgentOptions options;
  options.node = node;
  options.node.name = get("name");
  if (options.node.name.empty()) return Fail("--name is required");
  options.endpoints = endpoints;
  options.root_dir = get("root-dir");
  if (options.root_dir.empty()) return Fail("--root-dir is required");
  options.listen = get("listen", "127.0.0.1:10250");
  options.pod_cidr = get("pod-cidr");
  int64_t v = 0;
  if (!seconds("backoff-initial", 10, &v)) return Fail("--backoff-initial must be > 0");
  options.backoff.initial = absl::Seconds(v);
  if (!seconds("backoff-max", 300, &v)) return Fail("--backoff-max must be > 0");
  options.backoff.max = absl::Seconds(v);
  if (!seconds("log-max-bytes", 10 * 1024 * 1024, &v)) return Fail("--log-max-bytes must be > 0");
  options.log_rotate_bytes = v;
  if (!seconds("node-status-interval", 60, &v)) return Fail("--node-status-interval must be > 0");
  options.node_status_interval = absl::Seconds(v);

  auto agent = Agent::Create(options);
  if (!agent.ok()) return Fail(std::string(agent.status().message()));
  if (auto s = (*agent)->Start(); !s.ok()) {
    fprintf(stderr, "ganglion-agent: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  while (!g_stop) pause();
  spdlog::info("event=agent_stopping node={} (containers keep running)", options.node.name);
  (*agent)->Stop();
  return 0;
}
