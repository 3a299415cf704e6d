// The scheduler's throughput on a local 3-member ganglion cluster whose
// members serve the API (or on the API endpoints given): create N Ready
// nodes, then per run M pods through the API from C concurrent clients
// spread over the members, and measure pods placed per second from the first
// create sent to the last pod seen bound by a watch of the run's namespace.
// Prints each run and the median.
//
// --mode=bind separates binding from creating: the nodes are cordoned while
// the run's pods are created (each is marked Unschedulable), then every node
// is uncordoned and the clock runs from the first uncordon to the last bind.
// --mode=in-process runs the scheduler alone on a ReconcilerHost over a
// MemoryObjectStore and the ApiHandler (no Raft, no HTTP): its own ceiling.
// --mode=create only creates the pods (with --server-flag=--reconcilers=none,
// the API's create throughput with no scheduler writing beside it).
// --mode=deployments creates --deployments Deployments of --replicas each
// (the ReplicaSet reconciler makes the pods) and times the first create to
// the last of their pods seen bound: the whole leader-hosted pipeline.
//
//   scheduler_bench [--mode=e2e|bind|in-process|create|deployments] [--nodes=1000]
//                   [--pods=10000] [--deployments=300 --replicas=100]
//                   [--runs=3] [--clients=32] [--api=127.0.0.1:6443,...]
//                   [--server-flag=--reconcilers=none ...]
// clang-format off
#include <utility>  // before Boost.Asio 1.74, whose awaitable.hpp uses std::exchange
// clang-format on
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "bench/load/http_connection.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "nlohmann/json.hpp"
#include "orchestrator/api/handler.h"
#include "orchestrator/reconcile/host.h"
#include "orchestrator/scheduler/scheduler.h"
#include "orchestrator/storage/memory_object_store.h"
#include "tests/support/process_cluster.h"

namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;

struct Args {
  std::string mode = "e2e";
  int nodes = 1000;
  int pods = 10000;
  int runs = 3;
  int clients = 32;
  int deployments = 300;
  int replicas = 100;
  std::vector<int> api_ports;  // empty: start a cluster
  std::vector<std::string> server_flags;
};

using Connection = ganglion::bench::HttpConnection;

Json NodeObject(int i, bool cordoned) {
  Json resources = {{"cpu", "32"}, {"memory", "128Gi"}, {"pods", "110"}};
  return {{"apiVersion", "v1"},
          {"kind", "Node"},
          {"metadata",
           {{"name", absl::StrCat("bench-node-", i)},
            {"labels", {{"zone", absl::StrCat("z", i % 3)}}}}},
          {"spec", {{"unschedulable", cordoned}}},
          {"status",
           {{"allocatable", resources},
            {"capacity", resources},
            {"conditions", {{{"type", "Ready"}, {"status", "True"}}}}}}};
}

Json PodObject(const std::string& ns, int i) {
  return {{"apiVersion", "v1"},
          {"kind", "Pod"},
          {"metadata", {{"name", absl::StrCat("pod-", i)}, {"namespace", ns}}},
          {"spec",
           {{"containers",
             {{{"name", "main"},
               {"image", "nginx:1.25"},
               {"resources", {{"requests", {{"cpu", "10m"}, {"memory", "16Mi"}}}}}}}}}}};
}

Json DeploymentObject(const std::string& ns, int i, int replicas) {
  const std::string name = absl::StrCat("web-", i);
  Json container = {{"name", "main"}, {"image", "nginx:1.25"}};
  container["resources"]["requests"] = {{"cpu", "10m"}, {"memory", "16Mi"}};
  Json d = {{"apiVersion", "apps/v1"}, {"kind", "Deployment"}};
  d["metadata"] = {{"name", name}, {"namespace", ns}};
  d["spec"]["replicas"] = replicas;
  d["spec"]["selector"]["matchLabels"]["app"] = name;
  d["spec"]["template"]["metadata"]["labels"]["app"] = name;
  d["spec"]["template"]["spec"]["containers"] = Json::array({container});
  return d;
}

// A watch of one namespace's pods: counts distinct pods seen with a node.
class BindWatch {
 public:
  BindWatch(int port, const std::string& ns, const std::string& resource_version, int want)
      : want_(want), stream_(io_) {
    stream_.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port)));
    http::request<http::empty_body> req{
        http::verb::get,
        absl::StrCat(
            "/api/v1/namespaces/", ns,
            "/pods?watch=true&allowWatchBookmarks=false&resourceVersion=", resource_version),
        11};
    req.set(http::field::host, "127.0.0.1");
    req.set(http::field::accept, "application/json");
    http::write(stream_, req);
    thread_ = std::thread([this] { Read(); });
  }
  ~BindWatch() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    thread_.join();
  }
  // Waits for `want` pods bound; returns when the last one was seen.
  std::optional<Clock::time_point> Wait(std::chrono::seconds deadline) {
    const auto until = Clock::now() + deadline;
    while (Clock::now() < until) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (static_cast<int>(bound_.size()) >= want_) return last_;
        if (ended_) return std::nullopt;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return std::nullopt;
  }
  int bound() {
    std::lock_guard<std::mutex> lock(mu_);
    return static_cast<int>(bound_.size());
  }
  // Waits until every pod was seen marked Unschedulable.
  bool WaitUnschedulable(std::chrono::seconds deadline) {
    const auto until = Clock::now() + deadline;
    while (Clock::now() < until) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (static_cast<int>(unschedulable_.size()) >= want_) return true;
        if (ended_) return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return false;
  }

 private:
  void Read() {
    beast::flat_buffer buffer;
    http::response_parser<http::empty_body> parser;
    parser.body_limit(boost::none);
    std::string pending;
    auto on_chunk = [&](std::uint64_t, beast::string_view body, beast::error_code& ec) {
      pending.append(body.data(), body.size());
      size_t start = 0, nl;
      while ((nl = pending.find('\n', start)) != std::string::npos) {
        Line(std::string_view(pending).substr(start, nl - start));
        start = nl + 1;
      }
      pending.erase(0, start);
      ec = {};
      return body.size();
    };
    parser.on_chunk_body(on_chunk);
    beast::error_code ec;
    http::read_header(stream_, buffer, parser, ec);
    while (!ec && !parser.is_done()) http::read_some(stream_, buffer, parser, ec);
    std::lock_guard<std::mutex> lock(mu_);
    ended_ = true;
  }
  void Line(std::string_view line) {
    const bool has_node = line.find("\"nodeName\"") != std::string_view::npos;
    const bool unschedulable = line.find("\"Unschedulable\"") != std::string_view::npos;
    if (!has_node && !unschedulable) return;
    Json e = Json::parse(line, nullptr, false);
    if (e.is_discarded()) return;
    const Json& o = e["object"];
    const std::string name = o["metadata"].value("name", "");
    const auto now = Clock::now();
    const bool bound = o.contains("spec") && !o["spec"].value("nodeName", "").empty();
    std::lock_guard<std::mutex> lock(mu_);
    if (bound) {
      if (bound_.insert(name).second) last_ = now;
    } else if (unschedulable) {
      unschedulable_.insert(name);
    }
  }

  const int want_;
  net::io_context io_;
  beast::tcp_stream stream_;
  std::mutex mu_;
  std::set<std::string> bound_;          // guarded by mu_
  std::set<std::string> unschedulable_;  // guarded by mu_
  Clock::time_point last_;               // guarded by mu_
  bool ended_ = false;                   // guarded by mu_
  std::thread thread_;
};

// Runs `count` requests from `clients` threads over the API ports in turn;
// returns how many failed.
int Parallel(const std::vector<int>& ports, int clients, int count,
             const std::function<std::pair<std::string, std::string>(int)>& request,
             http::verb verb = http::verb::post) {
  std::atomic<int> next{0}, failed{0};
  std::vector<std::thread> threads;
  const std::string type =
      verb == http::verb::patch ? "application/merge-patch+json" : "application/json";
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      Connection conn(ports[c % ports.size()]);
      for (int i = next++; i < count; i = next++) {
        auto [target, body] = request(i);
        auto r = conn.Do(verb, target, body, type);
        if (r.result_int() != 201 && r.result_int() != 200) {
          if (failed++ < 3) {
            std::fprintf(stderr, "%s %s: HTTP %d %s\n", std::string(http::to_string(verb)).c_str(),
                         target.c_str(), r.result_int(), r.body().substr(0, 200).c_str());
          }
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  return failed.load();
}

std::string ResourceVersionOf(const std::string& list_body) {
  Json l = Json::parse(list_body, nullptr, false);
  if (l.is_discarded()) return "0";
  return l["metadata"].value("resourceVersion", "0");
}

// Cordons (or uncordons) every bench node; returns how many failed.
int Cordon(const Args& args, bool cordoned) {
  return Parallel(
      args.api_ports, args.clients, args.nodes,
      [&](int i) {
        return std::make_pair(
            absl::StrCat("/api/v1/nodes/bench-node-", i),
            absl::StrCat(R"({"spec":{"unschedulable":)", cordoned ? "true" : "false", "}}"));
      },
      http::verb::patch);
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// The scheduler alone: decisions and binds through the ApiHandler over a
// MemoryObjectStore, no Raft and no HTTP.
int InProcess(const Args& args) {
  namespace o = ganglion::orchestrator;
  std::vector<double> rates;
  for (int run = 0; run < args.runs; ++run) {
    o::MemoryObjectStore store;
    o::ApiHandler api(store, "bench");
    (void)api.EnsureDefaultNamespaces();
    o::ObjectClient client(api);
    for (int i = 0; i < args.nodes; ++i) {
      auto made = client.Create(o::TypeOf("", "nodes"), NodeObject(i, false));
      if (!made.ok()) {
        std::fprintf(stderr, "node: %s\n", made.status().ToString().c_str());
        return 1;
      }
    }
    // Pods exist before the scheduler starts: it finds them all pending.
    for (int i = 0; i < args.pods; ++i) {
      auto made = client.Create(o::TypeOf("", "pods"), PodObject("default", i));
      if (!made.ok()) {
        std::fprintf(stderr, "pod: %s\n", made.status().ToString().c_str());
        return 1;
      }
    }
    std::atomic<int> bound{0};
    auto sub = store.Watch(
        "/registry/pods/", store.watched_revision(),
        [&](const std::vector<o::ObjectEvent>& events) {
          for (const o::ObjectEvent& e : events) {
            if (e.object.value.find("\"nodeName\"") != std::string::npos) {
              ++bound;
            }
          }
        },
        [](const absl::Status&) {});
    if (!sub.ok()) return 1;
    o::ReconcilerHost host(store, api);
    host.Register(o::scheduler::SchedulerSpec());
    const auto start = Clock::now();
    host.SetLeading(true, 1);
    while (bound.load() < args.pods && Clock::now() - start < std::chrono::seconds(600)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    const double s = std::chrono::duration<double>(Clock::now() - start).count();
    host.Stop();
    (*sub)->Cancel();
    rates.push_back(bound.load() / s);
    std::printf("in-process run %d: %d of %d pods bound on %d nodes in %.2f s = %.0f pods/s\n",
                run + 1, bound.load(), args.pods, args.nodes, s, bound.load() / s);
  }
  std::printf("median: %.0f pods/s placed over %zu runs (in-process)\n", Median(rates),
              rates.size());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](const char* name, int& out) {
      const std::string prefix = absl::StrCat("--", name, "=");
      if (a.rfind(prefix, 0) == 0) (void)absl::SimpleAtoi(a.substr(prefix.size()), &out);
    };
    value("nodes", args.nodes);
    value("pods", args.pods);
    value("runs", args.runs);
    value("clients", args.clients);
    value("deployments", args.deployments);
    value("replicas", args.replicas);
    if (a.rfind("--mode=", 0) == 0) args.mode = a.substr(7);
    if (a.rfind("--server-flag=", 0) == 0) args.server_flags.push_back(a.substr(14));
    if (a.rfind("--api=", 0) == 0) {
      for (absl::string_view ep : absl::StrSplit(a.substr(6), ',', absl::SkipEmpty())) {
        int port = 0;
        const size_t colon = ep.rfind(':');
        if (colon != absl::string_view::npos && absl::SimpleAtoi(ep.substr(colon + 1), &port)) {
          args.api_ports.push_back(port);
        }
      }
    }
  }
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  if (args.mode == "in-process") return InProcess(args);
  if (args.mode == "deployments") args.pods = args.deployments * args.replicas;
  if (args.mode != "e2e" && args.mode != "bind" && args.mode != "create" &&
      args.mode != "deployments") {
    std::fprintf(stderr, "unknown --mode=%s (want e2e, bind, in-process, create or deployments)\n",
                 args.mode.c_str());
    return 2;
  }
  const bool bind_mode = args.mode == "bind";

  std::unique_ptr<ganglion::tests::ProcessCluster> cluster;
  if (args.api_ports.empty()) {
    ganglion::tests::ClusterOptions options;
    options.binary = GANGLION_BINARY;
    options.serve_api = true;
    options.extra_flags = args.server_flags;
    cluster = std::make_unique<ganglion::tests::ProcessCluster>(options);
    if (auto s = cluster->Start(); !s.ok()) {
      std::fprintf(stderr, "cluster: %s\n", s.ToString().c_str());
      return 1;
    }
    for (int i = 0; i < cluster->size(); ++i) args.api_ports.push_back(cluster->member(i).api_port);
    std::string pids;
    for (int i = 0; i < cluster->size(); ++i) absl::StrAppend(&pids, " ", cluster->member(i).pid);
    auto leader = cluster->LeaderIndex();
    std::printf("scheduler_bench: 3 members (pids%s), leader m%d pid %d\n", pids.c_str(),
                leader.ok() ? *leader + 1 : 0, leader.ok() ? cluster->member(*leader).pid : 0);
  }
  const int port = args.api_ports[0];
  {
    bool up = false;
    for (int attempt = 0; attempt < 200 && !up; ++attempt) {
      try {
        Connection c(port);
        up = c.Do(http::verb::get, "/api/v1/namespaces/default").result_int() == 200;
      } catch (const std::exception&) {
      }
      if (!up) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (!up) {
      std::fprintf(stderr, "the API on port %d never answered\n", port);
      return 1;
    }
  }

  auto t0 = Clock::now();
  int failed = Parallel(args.api_ports, args.clients, args.nodes, [&](int i) {
    return std::make_pair(std::string("/api/v1/nodes"), NodeObject(i, bind_mode).dump());
  });
  std::printf("nodes: %d created in %.2f s (%d failed)\n", args.nodes,
              std::chrono::duration<double>(Clock::now() - t0).count(), failed);

  std::vector<double> rates;
  for (int run = 0; run < args.runs; ++run) {
    const std::string ns = absl::StrCat("bench-", run, "-", ::getpid());
    Connection c(port);
    auto made = c.Do(http::verb::post, "/api/v1/namespaces",
                     absl::StrCat(R"({"apiVersion":"v1","kind":"Namespace","metadata":{"name":")",
                                  ns, R"("}})"));
    if (made.result_int() != 201) {
      std::fprintf(stderr, "namespace %s: HTTP %d\n", ns.c_str(), made.result_int());
      return 1;
    }
    if (bind_mode && run > 0 && Cordon(args, true) != 0) return 1;
    const std::string rv = ResourceVersionOf(
        c.Do(http::verb::get, absl::StrCat("/api/v1/namespaces/", ns, "/pods")).body());
    BindWatch watch(port, ns, rv, args.pods);
    auto start = Clock::now();
    if (args.mode == "deployments") {
      failed = Parallel(args.api_ports, args.clients, args.deployments, [&](int i) {
        return std::make_pair(absl::StrCat("/apis/apps/v1/namespaces/", ns, "/deployments"),
                              DeploymentObject(ns, i, args.replicas).dump());
      });
    } else {
      failed = Parallel(args.api_ports, args.clients, args.pods, [&](int i) {
        return std::make_pair(absl::StrCat("/api/v1/namespaces/", ns, "/pods"),
                              PodObject(ns, i).dump());
      });
    }
    const auto created = Clock::now();
    const double create_s = std::chrono::duration<double>(created - start).count();
    if (args.mode == "create") {
      rates.push_back(args.pods / create_s);
      std::printf("run %d: %d pods created in %.2f s = %.0f/s (%d failed)\n", run + 1, args.pods,
                  create_s, args.pods / create_s, failed);
      continue;
    }
    if (bind_mode) {
      if (!watch.WaitUnschedulable(std::chrono::seconds(600))) {
        std::printf("run %d: not every pod was marked Unschedulable\n", run + 1);
        return 1;
      }
      std::printf(
          "run %d: %d pods created in %.2f s (%.0f/s, %d failed), all marked Unschedulable "
          "after %.2f s\n",
          run + 1, args.pods, create_s, args.pods / create_s, failed,
          std::chrono::duration<double>(Clock::now() - start).count());
      start = Clock::now();
      failed = Cordon(args, false);
    }
    const auto released = Clock::now();
    auto done = watch.Wait(std::chrono::seconds(600));
    if (!done) {
      std::printf("run %d: only %d of %d pods bound within 600 s\n", run + 1, watch.bound(),
                  args.pods);
      return 1;
    }
    const double total_s = std::chrono::duration<double>(*done - start).count();
    const double rate = args.pods / total_s;
    rates.push_back(rate);
    if (args.mode == "deployments") {
      std::printf(
          "run %d: %d deployments x %d replicas = %d pods on %d nodes: deployments created in "
          "%.2f s (%d failed), every pod bound after %.2f s = %.0f pods/s placed\n",
          run + 1, args.deployments, args.replicas, args.pods, args.nodes, create_s, failed,
          total_s, rate);
    } else if (bind_mode) {
      std::printf(
          "run %d: %d nodes uncordoned in %.2f s (%d failed); all %d pods bound %.2f s after "
          "the first uncordon = %.0f pods/s placed\n",
          run + 1, args.nodes, std::chrono::duration<double>(released - start).count(), failed,
          args.pods, total_s, rate);
    } else {
      std::printf(
          "run %d: %d pods on %d nodes: created in %.2f s (%.0f/s, %d failed), all bound after "
          "%.2f s = %.0f pods/s placed (last bind %.2f s after the last create)\n",
          run + 1, args.pods, args.nodes, create_s, args.pods / create_s, failed, total_s, rate,
          std::chrono::duration<double>(*done - created).count());
    }
  }
  std::printf("median: %.0f pods/s %s over %zu runs (%s)\n", Median(rates),
              args.mode == "create" ? "created" : "placed", rates.size(), args.mode.c_str());
  return 0;
}
