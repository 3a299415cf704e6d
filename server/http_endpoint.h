// The listener behind `--listen-metrics-urls`: plain HTTP/1.1 on one or more
// host:port, serving GET /metrics from a MetricsRegistry and GET /health
// from a callback, byte for byte as etcd 3.4 answers them (status codes,
// bodies, content types), so Prometheus scrapes and load-balancer health
// checks configured for etcd work unchanged. It serves nothing else: no
// pprof, no key-value API, no TLS. One I/O thread, bounded connections,
// bounded requests; it never blocks the threads that update metrics.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/metrics.h"

namespace ganglion::server {

struct HealthResult {
  bool healthy = false;
  std::string reason;  // why not healthy: logged, not sent (etcd 3.4 sends no reason)
};

struct MetricsHttpOptions {
  // "ip:port" ("[::1]:2381" for IPv6), e.g. Url::HostPort() of each
  // --listen-metrics-urls entry. Port 0 picks a free port (see ports()).
  std::vector<std::string> listen_addresses;
  // Runs on the I/O thread for every GET /health: must be quick and must not
  // block, or /metrics stalls with it.
  std::function<HealthResult()> health;
  // Tests only (ganglion --experimental-fault-injection); unset, the path
  // does not exist. GET /debug/fault calls it with set = false; PUT
  // /debug/fault?<query> with set = true and the query string. It answers
  // the body to send (200) or an error (400 with its message).
  std::function<absl::StatusOr<std::string>(bool set, std::string_view query)> fault_injection;

  // Connections beyond this are closed as soon as they are accepted.
  size_t connections_max = 64;
  // Request line plus headers; GETs carry no body worth keeping.
  uint32_t request_header_bytes_max = 8 * 1024;
  uint64_t request_body_bytes_max = 4 * 1024;
  // An idle keep-alive connection, or one that sends or reads too slowly, is
  // closed after this, so stuck clients cannot hold every connection slot.
  std::chrono::milliseconds io_timeout{30'000};
};

class MetricsHttpServer {
 public:
  // `registry` must outlive the server.
  MetricsHttpServer(const MetricsRegistry* registry, MetricsHttpOptions options);
  ~MetricsHttpServer();  // Stop()s
  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

  // Binds every address, then starts the I/O thread. If any address fails
  // to parse or bind, nothing is left listening and the error names the
  // address. Call once.
  absl::Status Start();
  // The bound ports, in the order of options.listen_addresses (valid after
  // Start returned OK).
  std::vector<uint16_t> ports() const;

  // Closes the listeners and every connection and joins the I/O thread; no
  // callback runs after it returns. Idempotent; safe from any thread but
  // the I/O thread itself.
  void Stop();

 private:
  class Impl;
  // The Beast/Asio state lives in Impl so that including this header does
  // not pull in Boost.
  std::mutex mu_;                // serializes Start and Stop
  std::unique_ptr<Impl> impl_;   // guarded by mu_ for Start/Stop
  std::vector<uint16_t> ports_;  // written once by Start before it returns
  std::thread io_thread_;        // guarded by mu_
};

}  // namespace ganglion::server
