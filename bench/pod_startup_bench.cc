// Pod start-up latency against a running cluster with node agents: creates
// pods bound directly to nodes (spec.nodeName; no scheduler involved) through
// the API's REST semantics, and measures, from each create to the moment the
// pod cache (a watch) sees it Running, the latency distribution and the time
// until all are Running. A figure, never a pass/fail.
//
//   pod_startup_bench --endpoints 127.0.0.1:2379 --nodes node-1,node-2 --pods 50
//   pod_startup_bench --endpoints ... --node-prefix hollow- --node-count 1000 --pods-per-node 30
//       [--namespace bench] [--command "sleep 3600"] [--concurrency 8] [--timeout 600] [--cleanup
//       true]
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <map>
#include <mutex>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "orchestrator/api/handler.h"
#include "orchestrator/reconcile/object_cache.h"
#include "orchestrator/reconcile/object_client.h"
#include "orchestrator/storage/etcd_object_store.h"

using namespace ganglion::orchestrator;

int main(int argc, char** argv) {
  std::map<std::string, std::string> flags;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k.rfind("--", 0) != 0) {
      fprintf(stderr, "unexpected %s\n", argv[i]);
      return 2;
    }
    flags[k.substr(2)] = argv[i + 1];
  }
  auto num = [&](const char* k, int64_t def) {
    int64_t v = def;
    if (flags.count(k) && !absl::SimpleAtoi(flags[k], &v)) {
      fprintf(stderr, "--%s: not a number\n", k);
      exit(2);
    }
    return v;
  };
  std::vector<std::string> nodes = absl::StrSplit(flags["nodes"], ',', absl::SkipEmpty());
  for (int64_t i = 0; i < num("node-count", 0); ++i) {
    nodes.push_back(absl::StrCat(flags["node-prefix"], i));
  }
  const int64_t per_node = num("pods-per-node", 0);
  const int64_t total =
      per_node > 0 ? per_node * static_cast<int64_t>(nodes.size()) : num("pods", 20);
  if (nodes.empty() || flags["endpoints"].empty() || total <= 0) {
    fprintf(stderr, "need --endpoints, --nodes or --node-prefix/--node-count, and pods\n");
    return 2;
  }
  const std::string ns = flags.count("namespace") ? flags["namespace"] : "bench";
  const std::string command = flags.count("command") ? flags["command"] : "sleep 3600";
  const int concurrency = static_cast<int>(num("concurrency", 8));
  const absl::Duration timeout = absl::Seconds(num("timeout", 600));

  EtcdObjectStoreOptions so;
  so.endpoints = absl::StrSplit(flags["endpoints"], ',', absl::SkipEmpty());
  auto store = EtcdObjectStore::Create(so);
  if (!store.ok() || !(*store)->WaitReady(absl::Seconds(30))) {
    fprintf(stderr, "store not ready\n");
    return 1;
  }
  ApiHandler api(**store, "");
  ObjectClient client(api, nullptr, "pod-startup-bench");
  const ResourceType& pods = TypeOf("", "pods");
  (void)client.Create(
      TypeOf("", "namespaces"),
      Json{{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", ns}}}});

  const std::string run = absl::StrCat(absl::ToUnixSeconds(absl::Now()) % 100000);
  std::mutex mu;
  std::map<std::string, absl::Time> created;      // name -> create call start
  std::map<std::string, absl::Duration> running;  // name -> latency
  absl::Time last_running;
  ObjectCache cache(**store, pods);
  cache.AddHandlers({nullptr,
                     [&](const ObjectPtr&, const ObjectPtr& after) {
                       if ((*after)["metadata"].value("namespace", "") != ns) return;
                       if (!after->contains("status") ||
                           (*after)["status"].value("phase", "") != "Running") {
                         return;
                       }
                       const absl::Time now = absl::Now();
                       std::lock_guard lock(mu);
                       const std::string name = (*after)["metadata"].value("name", "");
                       auto it = created.find(name);
                       if (it == created.end() || running.count(name)) return;
                       running[name] = now - it->second;
                       last_running = now;
                     },
                     nullptr});
  if (auto s = cache.Start(); !s.ok()) {
    fprintf(stderr, "cache: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  std::vector<std::string> argv_cmd = absl::StrSplit(command, ' ', absl::SkipEmpty());
  const absl::Time start = absl::Now();
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> failed{0};
  std::vector<std::thread> writers;
  for (int t = 0; t < concurrency; ++t) {
    writers.emplace_back([&] {
      for (int64_t i = next++; i < total; i = next++) {
        const std::string name = absl::StrCat("p", run, "-", i);
        Json pod = {{"apiVersion", "v1"},
                    {"kind", "Pod"},
                    {"metadata", {{"name", name}, {"namespace", ns}}},
                    {"spec",
                     {{"nodeName", nodes[static_cast<size_t>(i) % nodes.size()]},
                      {"terminationGracePeriodSeconds", 1},
                      {"containers",
                       Json::array({{{"name", "c"}, {"image", "none"}, {"command", argv_cmd}}})}}}};
        {
          std::lock_guard lock(mu);
          created[name] = absl::Now();
        }
        if (!client.Create(pods, pod).ok()) ++failed;
      }
    });
  }
  for (auto& w : writers) w.join();
  const absl::Time created_all = absl::Now();
  while (absl::Now() - start < timeout) {
    {
      std::lock_guard lock(mu);
      if (static_cast<int64_t>(running.size()) >= total - failed) break;
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
  std::vector<double> ms;
  {
    std::lock_guard lock(mu);
    for (auto& [n, d] : running) ms.push_back(absl::ToDoubleMilliseconds(d));
  }
  std::sort(ms.begin(), ms.end());
  auto pct = [&](double p) {
    return ms.empty() ? 0.0 : ms[std::min(ms.size() - 1, static_cast<size_t>(p * ms.size()))];
  };
  printf("pods=%lld nodes=%zu create_failed=%lld running=%zu\n", static_cast<long long>(total),
         nodes.size(), static_cast<long long>(failed.load()), ms.size());
  printf("create_all_s=%.2f all_running_s=%.2f\n", absl::ToDoubleSeconds(created_all - start),
         ms.empty() ? -1.0 : absl::ToDoubleSeconds(last_running - start));
  printf("latency_ms p50=%.1f p90=%.1f p99=%.1f max=%.1f\n", pct(0.5), pct(0.9), pct(0.99),
         ms.empty() ? 0.0 : ms.back());
  cache.Stop();
  if (flags.count("cleanup")) {
    for (int64_t i = 0; i < total; ++i) {
      DeleteOptions d;
      (void)client.Delete(pods, ns, absl::StrCat("p", run, "-", i), d);
    }
  }
  return ms.size() == static_cast<size_t>(total) ? 0 : 1;
}
