// The orchestrator API's figures on a local 3-member ganglion cluster whose
// members serve the API: pod create throughput through the API (N clients,
// keep-alive connections), the time and bytes of one LIST of every pod, and
// W concurrent watch streams on the serving member (its RSS before/after, and
// the delivery latency of an update to every stream: PATCH sent -> MODIFIED
// read, p50/p99 over all streams and updates).
//
//   api_bench [--pods=10000] [--clients=16] [--watchers=1000] [--updates=20]
// clang-format off
#include <utility>  // before Boost.Asio 1.74, whose awaitable.hpp uses std::exchange
// clang-format on
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "bench/load/http_connection.h"
#include "tests/support/process_cluster.h"

namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

struct Args {
  int pods = 10000;
  int clients = 16;
  int watchers = 1000;
  int updates = 20;
};

using Connection = ganglion::bench::HttpConnection;

std::string PodJson(int i) {
  return absl::StrCat(
      R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":"pod-)", i,
      R"(","labels":{"app":"bench","shard":")", i % 10,
      R"("}},"spec":{"containers":[{"name":"main","image":"nginx:1.25","ports":[{"containerPort":80}],)"
      R"("env":[{"name":"A","value":"1"}]}]}})");
}

long RssKb(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  }
  return -1;
}

// W watch streams on one io_context thread; each counts MODIFIED events and
// records when each arrives.
class Watchers {
 public:
  Watchers(int port, int count, const std::string& target) {
    for (int i = 0; i < count; ++i) {
      auto w = std::make_shared<Watch>(io_);
      w->socket.connect(
          tcp::endpoint(net::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port)));
      w->request = absl::StrCat("GET ", target,
                                " HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n\r\n");
      net::write(w->socket, net::buffer(w->request));
      watches_.push_back(w);
    }
    for (auto& w : watches_) Read(w);
    thread_ = std::thread([this] { io_.run(); });
  }
  ~Watchers() {
    io_.stop();
    thread_.join();
  }
  // Waits until every stream has seen `n` MODIFIED events (or the deadline).
  bool WaitFor(int n, std::chrono::seconds deadline) {
    const auto until = Clock::now() + deadline;
    while (Clock::now() < until) {
      bool all = true;
      {
        std::lock_guard<std::mutex> lock(mu_);
        for (auto& w : watches_) all &= static_cast<int>(w->arrivals.size()) >= n;
      }
      if (all) return true;
      if (closed() + rejected() > 0) return false;  // such a stream will never see it
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return false;
  }
  int closed() const { return closed_.load(); }
  int rejected() const { return rejected_.load(); }
  std::vector<Clock::time_point> Arrivals(int update) {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<Clock::time_point> out;
    for (auto& w : watches_) {
      if (static_cast<int>(w->arrivals.size()) > update) out.push_back(w->arrivals[update]);
    }
    return out;
  }

 private:
  struct Watch {
    explicit Watch(net::io_context& io) : socket(io) {}
    tcp::socket socket;
    std::string request;
    char buf[16384];
    std::string tail;  // the end of the previous read, for a marker split across reads
    std::vector<Clock::time_point> arrivals;
    bool answered = false;  // the status line was read
  };
  void Read(std::shared_ptr<Watch> w) {
    w->socket.async_read_some(net::buffer(w->buf), [this, w](beast::error_code ec, size_t n) {
      if (ec) {
        ++closed_;
        return;
      }
      if (!w->answered) {
        w->answered = true;
        if (std::string_view(w->buf, n).rfind("HTTP/1.1 200", 0) != 0) {
          ++rejected_;  // e.g. 429 when more watches start at once than the server queues
          return;
        }
      }
      const auto now = Clock::now();
      static const std::string kMarker = "\"type\":\"MODIFIED\"";
      std::string text = w->tail + std::string(w->buf, n);
      size_t pos = 0;
      int found = 0;
      while ((pos = text.find(kMarker, pos)) != std::string::npos) {
        ++found;
        pos += kMarker.size();
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        for (int i = 0; i < found; ++i) w->arrivals.push_back(now);
      }
      const size_t keep = std::min(text.size(), kMarker.size() - 1);
      w->tail = text.substr(text.size() - keep);
      // A marker wholly inside the kept tail was already counted.
      if (w->tail.find(kMarker) != std::string::npos) w->tail.clear();
      Read(w);
    });
  }
  net::io_context io_;
  std::atomic<int> closed_{0};    // streams the server ended
  std::atomic<int> rejected_{0};  // watch requests answered with an error
  std::mutex mu_;
  std::vector<std::shared_ptr<Watch>> watches_;
  std::thread thread_;
};

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
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
    value("pods", args.pods);
    value("clients", args.clients);
    value("watchers", args.watchers);
    value("updates", args.updates);
  }
  // Each watch stream is a socket here and one on the server.
  rlimit nofile{65536, 65536};
  setrlimit(RLIMIT_NOFILE, &nofile);

  ganglion::tests::ClusterOptions options;
  options.binary = GANGLION_BINARY;
  options.serve_api = true;
  ganglion::tests::ProcessCluster cluster(options);
  if (auto s = cluster.Start(); !s.ok()) {
    std::fprintf(stderr, "cluster: %s\n", s.ToString().c_str());
    return 1;
  }
  const int port = cluster.member(0).api_port;
  const pid_t pid = cluster.member(0).pid;
  {
    Connection c(port);
    for (int attempt = 0; attempt < 200; ++attempt) {
      auto r = c.Do(http::verb::post, "/api/v1/namespaces",
                    R"({"apiVersion":"v1","kind":"Namespace","metadata":{"name":"bench"}})");
      if (r.result_int() == 201) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // progress shows even when redirected
  std::printf("api_bench: 3 members, API of m1 on port %d, server pid %d\n", port, pid);

  // 1. Create throughput.
  std::atomic<int> next{0}, failed{0};
  const auto create_start = Clock::now();
  std::vector<std::thread> clients;
  for (int c = 0; c < args.clients; ++c) {
    clients.emplace_back([&] {
      Connection conn(port);
      for (int i = next++; i < args.pods; i = next++) {
        auto r = conn.Do(http::verb::post, "/api/v1/namespaces/bench/pods", PodJson(i));
        if (r.result_int() != 201) ++failed;
      }
    });
  }
  for (auto& t : clients) t.join();
  const double create_s = std::chrono::duration<double>(Clock::now() - create_start).count();
  std::printf("create: %d pods in %.2f s = %.0f pods/s (%d clients, %d failed)\n", args.pods,
              create_s, args.pods / create_s, args.clients, failed.load());

  // 2. LIST of every pod.
  {
    Connection conn(port);
    for (int run = 0; run < 3; ++run) {
      const auto t0 = Clock::now();
      auto r = conn.Do(http::verb::get, "/api/v1/namespaces/bench/pods");
      const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
      std::printf("list: %d pods, %.1f ms, %.1f MiB (HTTP %d)\n", args.pods, ms,
                  static_cast<double>(r.body().size()) / (1024.0 * 1024.0), r.result_int());
    }
    const auto t0 = Clock::now();
    auto r = conn.Do(http::verb::get, "/api/v1/namespaces/bench/pods?limit=500");
    std::printf("list page: 500 pods, %.1f ms\n",
                std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    (void)r;
  }

  // 3. W watch streams; updates to one pod.
  const long rss_before = RssKb(pid);
  {
    Connection conn(port);
    auto head = conn.Do(http::verb::get, "/api/v1/namespaces/bench/pods/pod-0");
    const std::string body = head.body();
    const size_t at = body.find("\"resourceVersion\":\"");
    const std::string rv = body.substr(at + 19, body.find('"', at + 19) - at - 19);
    Watchers watchers(port, args.watchers,
                      absl::StrCat("/api/v1/namespaces/bench/pods?watch=true&resourceVersion=", rv,
                                   "&fieldSelector=metadata.name%3Dpod-0"));
    std::this_thread::sleep_for(std::chrono::seconds(2));  // every stream subscribed
    const long rss_open = RssKb(pid);
    std::vector<double> latencies_ms;
    int delivered_all = 0;
    for (int u = 0; u < args.updates; ++u) {
      const auto sent = Clock::now();
      auto r = conn.Do(http::verb::patch, "/api/v1/namespaces/bench/pods/pod-0",
                       absl::StrCat(R"({"metadata":{"labels":{"round":")", u, R"("}}})"),
                       "application/merge-patch+json");
      if (r.result_int() != 200) std::fprintf(stderr, "patch: HTTP %d\n", r.result_int());
      if (watchers.WaitFor(u + 1, std::chrono::seconds(30))) ++delivered_all;
      for (auto t : watchers.Arrivals(u)) {
        latencies_ms.push_back(std::chrono::duration<double, std::milli>(t - sent).count());
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    std::printf(
        "watch: %d streams, server RSS %.1f -> %.1f MiB (%.1f KiB/stream); %d updates, "
        "%d delivered to every stream (%d streams closed by the server, %d rejected); latency "
        "p50 %.1f ms "
        "p99 %.1f ms max %.1f ms\n",
        args.watchers, rss_before / 1024.0, rss_open / 1024.0,
        static_cast<double>(rss_open - rss_before) / std::max(1, args.watchers), args.updates,
        delivered_all, watchers.closed(), watchers.rejected(), Percentile(latencies_ms, 0.5),
        Percentile(latencies_ms, 0.99), Percentile(latencies_ms, 1.0));
  }
  return 0;
}
