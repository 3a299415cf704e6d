#include "server/http_endpoint.h"

#include <pthread.h>
#include <spdlog/spdlog.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <ctime>
#include <optional>
#include <string_view>
#include <unordered_set>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace ganglion::server {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

// The exact texts etcd 3.4 (Go's net/http and promhttp) sends, so anything
// that matches on them keeps working.
constexpr std::string_view kTextPlain = "text/plain; charset=utf-8";
constexpr std::string_view kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";
constexpr std::string_view kHealthyBody = R"({"health":"true"})";
// Go's http.Error appends a newline; etcd's 503 goes through it, its 200 does not.
constexpr std::string_view kUnhealthyBody = "{\"health\":\"false\"}\n";
constexpr std::string_view kNotFoundBody = "404 page not found\n";
constexpr std::string_view kMethodNotAllowedBody = "Method Not Allowed\n";

// After a failed accept (e.g. out of file descriptors) wait before trying
// again instead of spinning on the same error.
constexpr std::chrono::milliseconds kAcceptRetryDelay{100};

using Response = http::response<http::string_body>;

// RFC 7231 IMF-fixdate, e.g. "Mon, 23 Nov 2026 21:38:22 GMT". The wall clock
// is read directly: the Date header is informational and no test or
// simulation depends on it.
std::string HttpDate() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&now, &tm);
  char buf[64];
  size_t n = std::strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return std::string(buf, n);
}

Response MakeResponse(http::status status, unsigned version, bool keep_alive,
                      std::string_view content_type, std::string body) {
  Response res{status, version};
  // Boost 1.74's Beast takes boost::string_view, not std::string_view.
  res.set(http::field::content_type, beast::string_view(content_type.data(), content_type.size()));
  res.set(http::field::date, HttpDate());
  res.keep_alive(keep_alive);
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

// Go's http.Error: the error text plus nosniff.
Response MakeError(http::status status, unsigned version, bool keep_alive, std::string_view body) {
  Response res = MakeResponse(status, version, keep_alive, kTextPlain, std::string(body));
  res.set("X-Content-Type-Options", "nosniff");
  return res;
}

absl::StatusOr<tcp::endpoint> ParseEndpoint(const std::string& address) {
  size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics listen address '", address, "': expected ip:port"));
  }
  std::string host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  unsigned port = 0;
  std::string_view port_text = std::string_view(address).substr(colon + 1);
  for (char c : port_text) {
    if (c < '0' || c > '9' || port > 65535) {
      return absl::InvalidArgumentError(
          absl::StrCat("metrics listen address '", address, "': bad port"));
    }
    port = port * 10 + (c - '0');
  }
  if (port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics listen address '", address, "': bad port"));
  }
  boost::system::error_code ec;
  asio::ip::address ip = asio::ip::make_address(host, ec);
  if (ec) {
    // etcd binds listen URLs by IP only, never by resolving a name.
    return absl::InvalidArgumentError(
        absl::StrCat("metrics listen address '", address, "': expected an IP address"));
  }
  return tcp::endpoint(ip, static_cast<uint16_t>(port));
}

}  // namespace

class MetricsHttpServer::Impl {
 public:
  class Session;

  Impl(const MetricsRegistry* registry, MetricsHttpOptions options)
      : registry_(registry), options_(std::move(options)) {}

  absl::Status Bind(std::vector<uint16_t>* ports);
  void StartAccepting() {
    for (size_t i = 0; i < acceptors_.size(); ++i) Accept(i);
  }
  void Run() { ioc_.run(); }
  asio::io_context::executor_type executor() { return ioc_.get_executor(); }
  // Runs on the I/O thread: once it has run and every aborted handler has
  // finished, ioc_.run() returns.
  void Shutdown();

  Response Handle(const http::request<http::string_body>& req);

  // I/O thread only.
  void AddSession(Session* s) { sessions_.insert(s); }
  void RemoveSession(Session* s) { sessions_.erase(s); }
  const MetricsHttpOptions& options() const { return options_; }

 private:
  void Accept(size_t i);

  const MetricsRegistry* const registry_;
  const MetricsHttpOptions options_;
  // I/O thread only. Live connections; Shutdown closes them all. Declared
  // before ioc_ so it outlives any handler the context destroys.
  std::unordered_set<Session*> sessions_;
  bool stopping_ = false;  // I/O thread only

  asio::io_context ioc_{1};
  std::vector<tcp::acceptor> acceptors_;          // fixed after Bind
  std::vector<asio::steady_timer> accept_retry_;  // one per acceptor
};

// One connection: read a request, write its response, repeat while the
// client keeps the connection alive. Owned by its pending handler.
class MetricsHttpServer::Impl::Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Impl* server, tcp::socket socket) : server_(server), stream_(std::move(socket)) {
    server_->AddSession(this);
  }
  ~Session() { server_->RemoveSession(this); }

  void Read() {
    // A fresh parser per request: its limits apply per request, not per
    // connection.
    parser_.emplace();
    parser_->header_limit(server_->options().request_header_bytes_max);
    parser_->body_limit(server_->options().request_body_bytes_max);
    stream_.expires_after(server_->options().io_timeout);
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

  void Close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
  }

 private:
  void OnRead(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == asio::error::operation_aborted ||
        ec == beast::error::timeout) {
      Close();
      return;
    }
    if (ec) {
      if (ec.category() != http::make_error_code(http::error::header_limit).category()) {
        Close();  // the connection broke: nobody to answer
        return;
      }
      // A malformed or oversized request: say why, then hang up, as Go's
      // server does.
      http::status status = http::status::bad_request;
      std::string_view body = "400 Bad Request";
      if (ec == http::error::header_limit) {
        status = http::status::request_header_fields_too_large;
        body = "431 Request Header Fields Too Large";
      } else if (ec == http::error::body_limit) {
        status = http::status::payload_too_large;
        body = "413 Request Entity Too Large";
      }
      Write(MakeResponse(status, 11, false, kTextPlain, std::string(body)));
      return;
    }
    Write(server_->Handle(parser_->get()));
  }

  void Write(Response res) {
    response_ = std::move(res);
    stream_.expires_after(server_->options().io_timeout);
    http::async_write(
        stream_, response_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnWrite(ec); });
  }

  void OnWrite(beast::error_code ec) {
    if (ec || !response_.keep_alive()) {
      Close();
      return;
    }
    Read();
  }

  Impl* const server_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  Response response_;
};

absl::Status MetricsHttpServer::Impl::Bind(std::vector<uint16_t>* ports) {
  for (const std::string& address : options_.listen_addresses) {
    absl::StatusOr<tcp::endpoint> endpoint = ParseEndpoint(address);
    if (!endpoint.ok()) return endpoint.status();
    tcp::acceptor acceptor(ioc_);
    boost::system::error_code ec;
    acceptor.open(endpoint->protocol(), ec);
    // A restarted member must not wait for old connections in TIME_WAIT;
    // on Linux this still refuses a port someone is listening on.
    if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor.bind(*endpoint, ec);
    if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return absl::UnavailableError(
          absl::StrCat("listen for metrics on ", address, ": ", ec.message()));
    }
    ports->push_back(acceptor.local_endpoint().port());
    acceptors_.push_back(std::move(acceptor));
    accept_retry_.emplace_back(ioc_);
  }
  return absl::OkStatus();
}

void MetricsHttpServer::Impl::Accept(size_t i) {
  acceptors_[i].async_accept([this, i](boost::system::error_code ec, tcp::socket socket) {
    if (stopping_) return;
    if (ec) {
      spdlog::warn("event=metrics_accept_failed error=\"{}\"", ec.message());
      accept_retry_[i].expires_after(kAcceptRetryDelay);
      accept_retry_[i].async_wait([this, i](boost::system::error_code wait_ec) {
        if (!wait_ec && !stopping_) Accept(i);
      });
      return;
    }
    if (sessions_.size() >= options_.connections_max) {
      // Refused by closing: a scraper retries, and the slots stay bounded.
      boost::system::error_code ignored;
      socket.close(ignored);
    } else {
      std::make_shared<Session>(this, std::move(socket))->Read();
    }
    Accept(i);
  });
}

void MetricsHttpServer::Impl::Shutdown() {
  stopping_ = true;
  for (size_t i = 0; i < acceptors_.size(); ++i) {
    boost::system::error_code ignored;
    acceptors_[i].close(ignored);
    accept_retry_[i].cancel();
  }
  // Closing cancels each session's pending read or write; the aborted
  // handlers drop the last references and the sessions erase themselves.
  // Copy first: nothing is erased during the loop, but do not rely on it.
  std::vector<Session*> live(sessions_.begin(), sessions_.end());
  for (Session* s : live) s->Close();
}

Response MetricsHttpServer::Impl::Handle(const http::request<http::string_body>& req) {
  std::string_view target(req.target().data(), req.target().size());
  std::string_view path = target.substr(0, target.find('?'));
  unsigned version = req.version();
  bool keep_alive = req.keep_alive();

  if (path == "/debug/fault" && options_.fault_injection) {
    const bool set = req.method() == http::verb::put;
    if (!set && req.method() != http::verb::get) {
      Response res =
          MakeError(http::status::method_not_allowed, version, keep_alive, kMethodNotAllowedBody);
      res.set(http::field::allow, "GET, PUT");
      if (req.method() == http::verb::head) res.body().clear();
      return res;
    }
    size_t q = target.find('?');
    auto answer = options_.fault_injection(
        set, q == std::string_view::npos ? std::string_view() : target.substr(q + 1));
    if (!answer.ok()) {
      return MakeError(http::status::bad_request, version, keep_alive,
                       absl::StrCat(answer.status().message(), "\n"));
    }
    return MakeResponse(http::status::ok, version, keep_alive, kTextPlain, *std::move(answer));
  }
  if (path != "/metrics" && path != "/health") {
    return MakeError(http::status::not_found, version, keep_alive, kNotFoundBody);
  }
  if (req.method() != http::verb::get) {
    Response res =
        MakeError(http::status::method_not_allowed, version, keep_alive, kMethodNotAllowedBody);
    res.set(http::field::allow, "GET");
    if (req.method() == http::verb::head) {
      // Headers only (Content-Length still says what GET would carry), or
      // the client would read the body as the next response.
      res.body().clear();
    }
    return res;
  }
  if (path == "/metrics") {
    return MakeResponse(http::status::ok, version, keep_alive, kMetricsContentType,
                        registry_->Render());
  }
  HealthResult health = options_.health();
  if (!health.healthy) {
    spdlog::warn("event=health_check_failed reason=\"{}\"", health.reason);
    return MakeError(http::status::service_unavailable, version, keep_alive, kUnhealthyBody);
  }
  return MakeResponse(http::status::ok, version, keep_alive, kTextPlain, std::string(kHealthyBody));
}

MetricsHttpServer::MetricsHttpServer(const MetricsRegistry* registry, MetricsHttpOptions options)
    : impl_(std::make_unique<Impl>(registry, std::move(options))) {}

MetricsHttpServer::~MetricsHttpServer() {
  Stop();
}

absl::Status MetricsHttpServer::Start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!impl_ || io_thread_.joinable() || !ports_.empty()) {
    return absl::FailedPreconditionError("metrics listener: Start may be called only once");
  }
  if (!impl_->options().health) {
    return absl::InvalidArgumentError("metrics listener needs a health callback");
  }
  if (impl_->options().listen_addresses.empty()) {
    return absl::InvalidArgumentError("metrics listener needs at least one address");
  }
  std::vector<uint16_t> ports;
  if (absl::Status s = impl_->Bind(&ports); !s.ok()) {
    // Destroying Impl closes whatever was bound.
    impl_.reset();
    return s;
  }
  ports_ = std::move(ports);
  impl_->StartAccepting();
  io_thread_ = std::thread([impl = impl_.get()] {
    pthread_setname_np(pthread_self(), "http");
    impl->Run();
  });
  for (size_t i = 0; i < ports_.size(); ++i) {
    spdlog::info("event=metrics_listening address={} port={}", impl_->options().listen_addresses[i],
                 ports_[i]);
  }
  return absl::OkStatus();
}

std::vector<uint16_t> MetricsHttpServer::ports() const {
  return ports_;
}

void MetricsHttpServer::Stop() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!io_thread_.joinable()) return;
  Impl* impl = impl_.get();
  // Posted, not called: sessions and acceptors belong to the I/O thread.
  asio::post(impl->executor(), [impl] { impl->Shutdown(); });
  io_thread_.join();
  impl_.reset();
}

}  // namespace ganglion::server
