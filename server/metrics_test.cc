#include "server/metrics.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cmath>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "server/http_endpoint.h"

namespace ganglion::server {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

// ---- Rendering -------------------------------------------------------------

TEST(MetricsRenderTest, GoldenTextForEveryKind) {
  MetricsRegistry registry;
  Counter* requests = registry.AddCounter("test_requests_total", "Requests seen.");
  Gauge* pending = registry.AddGauge("test_pending", "Pending work.");
  double size_bytes = 20480;
  registry.AddGaugeFunc("test_db_size_bytes", "Size\\of the db.\nIn bytes.",
                        [&] { return size_bytes; });
  Histogram* latency =
      registry.AddHistogram("test_latency_seconds", "Latency.", {0.001, 0.25, 1, 2.5});

  requests->Add(41);
  requests->Inc();
  pending->Set(3);
  pending->Dec();
  pending->Add(0.5);
  latency->Observe(0.001);  // on a bound: counts in that bucket (le)
  latency->Observe(0.2);
  latency->Observe(0.25);
  latency->Observe(3);  // above every bound: +Inf only

  EXPECT_EQ(registry.Render(),
            "# HELP test_db_size_bytes Size\\\\of the db.\\nIn bytes.\n"
            "# TYPE test_db_size_bytes gauge\n"
            "test_db_size_bytes 20480\n"
            "# HELP test_latency_seconds Latency.\n"
            "# TYPE test_latency_seconds histogram\n"
            "test_latency_seconds_bucket{le=\"0.001\"} 1\n"
            "test_latency_seconds_bucket{le=\"0.25\"} 3\n"
            "test_latency_seconds_bucket{le=\"1\"} 3\n"
            "test_latency_seconds_bucket{le=\"2.5\"} 3\n"
            "test_latency_seconds_bucket{le=\"+Inf\"} 4\n"
            "test_latency_seconds_sum 3.451\n"
            "test_latency_seconds_count 4\n"
            "# HELP test_pending Pending work.\n"
            "# TYPE test_pending gauge\n"
            "test_pending 2.5\n"
            "# HELP test_requests_total Requests seen.\n"
            "# TYPE test_requests_total counter\n"
            "test_requests_total 42\n");

  // Gauge functions are read at every render, not at registration.
  size_bytes = 1 << 20;
  EXPECT_NE(registry.Render().find("test_db_size_bytes 1048576\n"), std::string::npos);
}

TEST(MetricsRenderTest, ValuesFormattedAsPrometheusReadsThem) {
  EXPECT_EQ(FormatMetricValue(0), "0");
  EXPECT_EQ(FormatMetricValue(-0.0), "0");
  EXPECT_EQ(FormatMetricValue(-3), "-3");
  EXPECT_EQ(FormatMetricValue(1e6), "1000000");  // no exponent for whole numbers
  EXPECT_EQ(FormatMetricValue(9007199254740992.0), "9007199254740992");
  EXPECT_EQ(FormatMetricValue(0.1), "0.1");
  EXPECT_EQ(FormatMetricValue(8.192), "8.192");
  EXPECT_EQ(FormatMetricValue(5.5137e-05), "5.5137e-05");
  EXPECT_EQ(FormatMetricValue(1e300), "1e+300");
  EXPECT_EQ(FormatMetricValue(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(FormatMetricValue(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(FormatMetricValue(std::nan("")), "NaN");
  // Round trip: the shortest text still reads back as the same double.
  double third = 1.0 / 3.0;
  EXPECT_EQ(std::stod(FormatMetricValue(third)), third);
}

TEST(MetricsRenderTest, NaNObservationCountsInInfBucket) {
  MetricsRegistry registry;
  Histogram* h = registry.AddHistogram("h", "h", {1});
  h->Observe(std::nan(""));
  Histogram::Snapshot s = h->Read();
  EXPECT_EQ(s.cumulative, (std::vector<uint64_t>{0, 1}));
  EXPECT_TRUE(std::isnan(s.sum));
}

TEST(MetricsRenderTest, ExplicitInfBoundIsTheImplicitOne) {
  MetricsRegistry registry;
  Histogram* h = registry.AddHistogram("h", "h", {1, std::numeric_limits<double>::infinity()});
  EXPECT_EQ(h->Read().upper_bounds, (std::vector<double>{1}));
}

TEST(MetricsRenderTest, ExponentialBucketsAreEtcdDiskBuckets) {
  std::vector<double> b = ExponentialBuckets(0.001, 2, 14);
  ASSERT_EQ(b.size(), 14u);
  for (size_t i = 0; i < b.size(); ++i) EXPECT_EQ(b[i], 0.001 * std::pow(2, i)) << i;
  EXPECT_EQ(FormatMetricValue(b.back()), "8.192");
}

// ---- Registration errors ---------------------------------------------------

TEST(MetricsRegistryDeathTest, SameNameTwiceAborts) {
  MetricsRegistry registry;
  registry.AddCounter("dup_total", "first");
  EXPECT_DEATH(registry.AddGauge("dup_total", "second"), "registered twice");
}

TEST(MetricsRegistryDeathTest, HistogramSeriesCollisionAborts) {
  MetricsRegistry registry;
  registry.AddHistogram("latency_seconds", "h", {1});
  EXPECT_DEATH(registry.AddCounter("latency_seconds_count", "c"), "registered twice");
}

TEST(MetricsRegistryDeathTest, InvalidNameAborts) {
  MetricsRegistry registry;
  EXPECT_DEATH(registry.AddCounter("9lives", "c"), "invalid metric name");
  EXPECT_DEATH(registry.AddCounter("has-dash", "c"), "invalid metric name");
}

TEST(MetricsRegistryDeathTest, UnsortedBoundsAbort) {
  MetricsRegistry registry;
  EXPECT_DEATH(registry.AddHistogram("h", "h", {1, 1}), "strictly increasing");
}

// ---- Concurrency -----------------------------------------------------------

TEST(MetricsConcurrencyTest, ConcurrentUpdatesAreExact) {
  MetricsRegistry registry;
  Counter* counter = registry.AddCounter("c_total", "c");
  Gauge* gauge = registry.AddGauge("g", "g");
  Histogram* histogram = registry.AddHistogram("h_seconds", "h", {0.5, 1, 2});

  constexpr int kThreads = 8;
  constexpr int kPerThread = 100'000;
  std::atomic<bool> done{false};
  // A scraper renders and registers while the updaters run: neither may
  // block the hot path nor see a half-registered metric.
  std::thread scraper([&] {
    int registered = 0;
    while (!done.load()) {
      std::string text = registry.Render();
      ASSERT_NE(text.find("# TYPE h_seconds histogram"), std::string::npos);
      if (registered < 100) {
        registry.AddHistogram("late_" + std::to_string(registered++), "late", {1});
      }
    }
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        counter->Inc();
        gauge->Add(1);
        histogram->Observe(t % 2 == 0 ? 1.0 : 3.0);
      }
    });
  }
  for (auto& t : threads) t.join();
  done = true;
  scraper.join();

  constexpr uint64_t kTotal = uint64_t{kThreads} * kPerThread;
  EXPECT_EQ(counter->Value(), kTotal);
  EXPECT_EQ(gauge->Value(), static_cast<double>(kTotal));
  Histogram::Snapshot s = histogram->Read();
  EXPECT_EQ(s.count, kTotal);
  EXPECT_EQ(s.cumulative, (std::vector<uint64_t>{0, kTotal / 2, kTotal / 2, kTotal}));
  EXPECT_EQ(s.sum, 1.0 * kTotal / 2 + 3.0 * kTotal / 2);

  std::string text = registry.Render();
  EXPECT_NE(text.find("c_total 800000\n"), std::string::npos);
  EXPECT_NE(text.find("g 800000\n"), std::string::npos);
  EXPECT_NE(text.find("h_seconds_count 800000\n"), std::string::npos);
}

// ---- ServerMetrics ---------------------------------------------------------

TEST(ServerMetricsTest, ExportsEtcdNamesTypesAndBuckets) {
  MetricsRegistry registry;
  ServerMetrics m(&registry, {.db_total_size_bytes = [] { return 20480.0; }});
  m.has_leader->Set(1);
  m.leader_changes_seen_total->Inc();
  m.wal_fsync_duration_seconds->Observe(0.0015);
  std::string text = registry.Render();

  for (const char* line : {
           "# TYPE etcd_server_has_leader gauge\n",
           "etcd_server_has_leader 1\n",
           "# TYPE etcd_server_leader_changes_seen_total counter\n",
           "etcd_server_leader_changes_seen_total 1\n",
           // etcd exports these two as gauges despite the _total suffix.
           "# TYPE etcd_server_proposals_committed_total gauge\n",
           "# TYPE etcd_server_proposals_applied_total gauge\n",
           "# TYPE etcd_server_proposals_pending gauge\n",
           "# TYPE etcd_server_proposals_failed_total counter\n",
           "# HELP etcd_disk_wal_fsync_duration_seconds The latency distributions of fsync "
           "called by WAL.\n",
           "etcd_disk_wal_fsync_duration_seconds_bucket{le=\"0.001\"} 0\n",
           "etcd_disk_wal_fsync_duration_seconds_bucket{le=\"0.002\"} 1\n",
           "etcd_disk_wal_fsync_duration_seconds_bucket{le=\"8.192\"} 1\n",
           "etcd_disk_backend_commit_duration_seconds_bucket{le=\"8.192\"} 0\n",
           "etcd_mvcc_db_total_size_in_bytes 20480\n",
           "etcd_mvcc_db_total_size_in_use_in_bytes 0\n",  // no source yet
           "# TYPE etcd_debugging_mvcc_watcher_total gauge\n",
           "# TYPE etcd_debugging_lease_granted_total counter\n",
           "etcd_debugging_lease_ttl_total_bucket{le=\"8388608\"} 0\n",
       }) {
    EXPECT_NE(text.find(line), std::string::npos) << line;
  }
  // 14 bounds plus +Inf, as etcd's ExponentialBuckets(0.001, 2, 14).
  size_t buckets = 0;
  for (size_t at = 0;
       (at = text.find("etcd_disk_wal_fsync_duration_seconds_bucket{", at)) != std::string::npos;
       ++at) {
    ++buckets;
  }
  EXPECT_EQ(buckets, 15u);
}

// ---- HTTP ------------------------------------------------------------------

// A blocking HTTP/1.1 client over one connection.
class Client {
 public:
  explicit Client(uint16_t port) : socket_(ioc_) {
    socket_.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  }

  http::response<http::string_body> Send(http::verb method, const std::string& target,
                                         bool keep_alive = true,
                                         const std::string& extra_header_value = "") {
    http::request<http::string_body> req{method, target, 11};
    req.set(http::field::host, "127.0.0.1");
    req.keep_alive(keep_alive);
    if (!extra_header_value.empty()) req.set("X-Padding", extra_header_value);
    req.prepare_payload();
    http::write(socket_, req);
    return Read(method == http::verb::head);
  }

  http::response<http::string_body> Read(bool head = false) {
    http::response_parser<http::string_body> parser;
    parser.skip(head);
    http::read(socket_, buffer_, parser);
    return parser.release();
  }

  // True once the server has closed the connection (EOF or reset).
  bool ClosedByServer() {
    char byte;
    boost::system::error_code ec;
    asio::read(socket_, asio::buffer(&byte, 1), ec);
    return ec == asio::error::eof || ec == asio::error::connection_reset;
  }

 private:
  asio::io_context ioc_;
  tcp::socket socket_;
  beast::flat_buffer buffer_;
};

class MetricsHttpTest : public ::testing::Test {
 protected:
  MetricsHttpOptions Options() {
    MetricsHttpOptions options;
    options.listen_addresses = {"127.0.0.1:0"};
    options.health = [this] { return HealthResult{healthy_.load(), "no leader"}; };
    return options;
  }

  MetricsRegistry registry_;
  std::atomic<bool> healthy_{true};
};

TEST_F(MetricsHttpTest, ServesMetricsOnEveryAddress) {
  Counter* c = registry_.AddCounter("etcd_server_proposals_failed_total", "Failed proposals.");
  c->Add(7);
  MetricsHttpOptions options = Options();
  options.listen_addresses = {"127.0.0.1:0", "[::1]:0"};
  MetricsHttpServer server(&registry_, options);
  absl::Status s = server.Start();
  if (!s.ok() && s.message().find("[::1]") != std::string::npos) {
    GTEST_SKIP() << "no IPv6 loopback: " << s;
  }
  ASSERT_TRUE(s.ok()) << s;
  ASSERT_EQ(server.ports().size(), 2u);
  EXPECT_NE(server.ports()[0], 0);
  EXPECT_NE(server.ports()[1], 0);

  Client client(server.ports()[0]);
  auto res = client.Send(http::verb::get, "/metrics");
  EXPECT_EQ(res.result(), http::status::ok);
  EXPECT_EQ(res[http::field::content_type], "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(res.body(), registry_.Render());
  EXPECT_NE(res.body().find("etcd_server_proposals_failed_total 7\n"), std::string::npos);

  asio::io_context ioc;
  tcp::socket v6(ioc);
  v6.connect(tcp::endpoint(asio::ip::make_address("::1"), server.ports()[1]));
  http::request<http::string_body> req{http::verb::get, "/metrics", 11};
  http::write(v6, req);
  beast::flat_buffer buffer;
  http::response<http::string_body> res6;
  http::read(v6, buffer, res6);
  EXPECT_EQ(res6.result(), http::status::ok);
  EXPECT_EQ(res6.body(), res.body());
}

TEST_F(MetricsHttpTest, HealthAnswersAsEtcd) {
  MetricsHttpServer server(&registry_, Options());
  ASSERT_TRUE(server.Start().ok());
  Client client(server.ports()[0]);

  auto ok = client.Send(http::verb::get, "/health");
  EXPECT_EQ(ok.result(), http::status::ok);
  EXPECT_EQ(ok.body(), R"({"health":"true"})");
  EXPECT_EQ(ok[http::field::content_type], "text/plain; charset=utf-8");
  EXPECT_EQ(ok[http::field::content_length], "17");
  EXPECT_FALSE(ok[http::field::date].empty());

  // etcd ignores the query (e.g. ?exclude=NOSPACE) when routing.
  EXPECT_EQ(client.Send(http::verb::get, "/health?exclude=NOSPACE").result(), http::status::ok);

  healthy_ = false;
  auto bad = client.Send(http::verb::get, "/health");
  EXPECT_EQ(bad.result(), http::status::service_unavailable);
  EXPECT_EQ(bad.body(), "{\"health\":\"false\"}\n");
  EXPECT_EQ(bad[http::field::content_type], "text/plain; charset=utf-8");
  EXPECT_EQ(bad["X-Content-Type-Options"], "nosniff");
  EXPECT_EQ(bad[http::field::content_length], "19");

  healthy_ = true;
  EXPECT_EQ(client.Send(http::verb::get, "/health").result(), http::status::ok);
}

TEST_F(MetricsHttpTest, UnknownPathIs404AndOtherMethods405) {
  MetricsHttpServer server(&registry_, Options());
  ASSERT_TRUE(server.Start().ok());
  Client client(server.ports()[0]);

  for (const char* path : {"/", "/metricsx", "/health/", "/v3/kv/range"}) {
    auto res = client.Send(http::verb::get, path);
    EXPECT_EQ(res.result(), http::status::not_found) << path;
    EXPECT_EQ(res.body(), "404 page not found\n") << path;
  }
  for (const char* path : {"/health", "/metrics"}) {
    auto res = client.Send(http::verb::post, path);
    EXPECT_EQ(res.result(), http::status::method_not_allowed) << path;
    EXPECT_EQ(res[http::field::allow], "GET") << path;
    EXPECT_EQ(res.body(), "Method Not Allowed\n") << path;
  }
  // HEAD gets headers only; the connection stays usable afterwards.
  auto head = client.Send(http::verb::head, "/health");
  EXPECT_EQ(head.result(), http::status::method_not_allowed);
  EXPECT_EQ(client.Send(http::verb::get, "/health").result(), http::status::ok);
}

TEST_F(MetricsHttpTest, FaultEndpointExistsOnlyWhenEnabled) {
  {
    MetricsHttpServer server(&registry_, Options());
    ASSERT_TRUE(server.Start().ok());
    Client client(server.ports()[0]);
    EXPECT_EQ(client.Send(http::verb::get, "/debug/fault").result(), http::status::not_found);
    EXPECT_EQ(client.Send(http::verb::put, "/debug/fault?drop_to=1").result(),
              http::status::not_found);
  }
  MetricsHttpOptions options = Options();
  std::vector<std::pair<bool, std::string>> calls;
  options.fault_injection = [&](bool set, std::string_view query) -> absl::StatusOr<std::string> {
    calls.emplace_back(set, std::string(query));
    if (query == "bad") return absl::InvalidArgumentError("bad rule");
    return std::string("rules\n");
  };
  MetricsHttpServer server(&registry_, options);
  ASSERT_TRUE(server.Start().ok());
  Client client(server.ports()[0]);
  auto got = client.Send(http::verb::get, "/debug/fault");
  EXPECT_EQ(got.result(), http::status::ok);
  EXPECT_EQ(got.body(), "rules\n");
  EXPECT_EQ(client.Send(http::verb::put, "/debug/fault?drop_to=a1&drop_from=").result(),
            http::status::ok);
  auto bad = client.Send(http::verb::put, "/debug/fault?bad");
  EXPECT_EQ(bad.result(), http::status::bad_request);
  EXPECT_EQ(bad.body(), "bad rule\n");
  EXPECT_EQ(client.Send(http::verb::post, "/debug/fault").result(),
            http::status::method_not_allowed);
  ASSERT_EQ(calls.size(), 3u);
  EXPECT_EQ(calls[0], std::make_pair(false, std::string()));
  EXPECT_EQ(calls[1], std::make_pair(true, std::string("drop_to=a1&drop_from=")));
}

TEST_F(MetricsHttpTest, KeepAliveAndClose) {
  MetricsHttpServer server(&registry_, Options());
  ASSERT_TRUE(server.Start().ok());
  Client client(server.ports()[0]);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(client.Send(http::verb::get, "/health").result(), http::status::ok);
  }
  auto last = client.Send(http::verb::get, "/health", /*keep_alive=*/false);
  EXPECT_EQ(last.result(), http::status::ok);
  EXPECT_TRUE(client.ClosedByServer());
}

TEST_F(MetricsHttpTest, OversizedRequestIsRefusedAndClosed) {
  MetricsHttpOptions options = Options();
  options.request_header_bytes_max = 1024;
  MetricsHttpServer server(&registry_, options);
  ASSERT_TRUE(server.Start().ok());
  Client client(server.ports()[0]);
  auto res = client.Send(http::verb::get, "/health", true, std::string(4096, 'x'));
  EXPECT_EQ(res.result(), http::status::request_header_fields_too_large);
  EXPECT_TRUE(client.ClosedByServer());

  // Within the limit is fine.
  Client ok(server.ports()[0]);
  EXPECT_EQ(ok.Send(http::verb::get, "/health", true, std::string(512, 'x')).result(),
            http::status::ok);
}

TEST_F(MetricsHttpTest, ConnectionsBeyondTheBoundAreClosed) {
  MetricsHttpOptions options = Options();
  options.connections_max = 2;
  MetricsHttpServer server(&registry_, options);
  ASSERT_TRUE(server.Start().ok());
  // Two served (and so accepted) keep-alive connections fill the slots.
  Client a(server.ports()[0]);
  Client b(server.ports()[0]);
  ASSERT_EQ(a.Send(http::verb::get, "/health").result(), http::status::ok);
  ASSERT_EQ(b.Send(http::verb::get, "/health").result(), http::status::ok);

  Client refused(server.ports()[0]);  // the kernel completes the handshake
  EXPECT_TRUE(refused.ClosedByServer());

  // Closing one frees its slot.
  { auto closing = a.Send(http::verb::get, "/health", /*keep_alive=*/false); }
  EXPECT_TRUE(a.ClosedByServer());
  bool served = false;
  for (int attempt = 0; attempt < 50 && !served; ++attempt) {
    // The server notices a's close asynchronously; retry briefly.
    try {
      Client c(server.ports()[0]);
      served = c.Send(http::verb::get, "/health").result() == http::status::ok;
    } catch (const boost::system::system_error&) {
      std::this_thread::sleep_for(20ms);
    }
  }
  EXPECT_TRUE(served);
}

TEST_F(MetricsHttpTest, BindErrorsNameTheAddress) {
  MetricsHttpServer first(&registry_, Options());
  ASSERT_TRUE(first.Start().ok());
  std::string taken = "127.0.0.1:" + std::to_string(first.ports()[0]);

  MetricsHttpOptions options = Options();
  options.listen_addresses = {"127.0.0.1:0", taken};
  MetricsHttpServer second(&registry_, options);
  absl::Status s = second.Start();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_NE(s.message().find(taken), std::string::npos) << s;
  EXPECT_TRUE(second.ports().empty());
  second.Stop();  // harmless after a failed Start

  for (const char* bad : {"localhost:2381", "127.0.0.1", "127.0.0.1:99999", "1.2.3.4:x"}) {
    MetricsHttpOptions o = Options();
    o.listen_addresses = {bad};
    MetricsHttpServer server(&registry_, o);
    EXPECT_EQ(server.Start().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST_F(MetricsHttpTest, StopClosesIdleConnectionsAndIsIdempotent) {
  MetricsHttpOptions options = Options();
  options.io_timeout = 60s;  // Stop must not wait for idle clients to time out
  MetricsHttpServer server(&registry_, options);
  ASSERT_TRUE(server.Start().ok());
  uint16_t port = server.ports()[0];
  Client idle(port);
  ASSERT_EQ(idle.Send(http::verb::get, "/health").result(), http::status::ok);

  auto started = std::chrono::steady_clock::now();
  server.Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - started, 10s);
  server.Stop();
  EXPECT_TRUE(idle.ClosedByServer());
  EXPECT_THROW(Client{port}, boost::system::system_error);  // nothing listens
  EXPECT_EQ(server.Start().code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace ganglion::server
