#include "orchestrator/api/api_server.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <deque>
#include <thread>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "orchestrator/api/handler.h"
#include "orchestrator/storage/etcd_object_store.h"

namespace ganglion::orchestrator {

namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

constexpr size_t kHeaderBytesMax = 64 * 1024;
// A keep-alive connection with no request for this long is closed.
constexpr auto kIdleTimeout = std::chrono::minutes(5);

// RFC 7234 warn-code 299 ("miscellaneous persistent warning"), agent "-", the
// text quoted with its quotes and backslashes escaped, as Kubernetes sends.
std::string WarningHeader(const std::string& text) {
  std::string quoted;
  for (char c : text) {
    if (c == '"' || c == '\\') quoted.push_back('\\');
    quoted.push_back(c == '\n' || c == '\r' ? ' ' : c);
  }
  return "299 - \"" + quoted + "\"";
}

std::string PercentDecode(absl::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int v = 0;
      if (absl::SimpleHexAtoi(s.substr(i + 1, 2), &v)) {
        out.push_back(static_cast<char>(v));
        i += 2;
        continue;
      }
    }
    out.push_back(s[i] == '+' ? ' ' : s[i]);
  }
  return out;
}

HttpRequest ToRequest(const http::request<http::string_body>& req) {
  HttpRequest r;
  r.method = std::string(req.method_string());
  absl::string_view target(req.target().data(), req.target().size());
  const size_t q = target.find('?');
  r.path = PercentDecode(target.substr(0, q));
  if (q != absl::string_view::npos) {
    for (absl::string_view kv : absl::StrSplit(target.substr(q + 1), '&', absl::SkipEmpty())) {
      const size_t eq = kv.find('=');
      r.query[PercentDecode(eq == absl::string_view::npos ? kv : kv.substr(0, eq))] =
          eq == absl::string_view::npos ? "" : PercentDecode(kv.substr(eq + 1));
    }
  }
  r.accept = std::string(req[http::field::accept]);
  r.content_type = std::string(req[http::field::content_type]);
  r.body = req.body();
  return r;
}

struct Shared {
  ApiServerOptions options;
  ObjectStore* store = nullptr;
  std::unique_ptr<ApiHandler> handler;
  net::thread_pool* workers = nullptr;
  std::atomic<int> in_flight{0};            // bounded by requests_in_flight_max
  std::atomic<int> watch_starts_queued{0};  // bounded by watch_starts_queued_max
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, std::shared_ptr<Shared> shared)
      : stream_(std::move(socket)), shared_(std::move(shared)) {}

  void Run() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->Read(); });
  }

 private:
  void Read() {
    parser_.emplace();
    parser_->header_limit(kHeaderBytesMax);
    parser_->body_limit(shared_->options.request_body_bytes_max);
    stream_.expires_after(kIdleTimeout);
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

  void OnRead(beast::error_code ec) {
    if (ec == http::error::body_limit) {
      HttpResponse r{
          413,
          "application/json",
          R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",)"
          R"("message":"the request body is too large","reason":"RequestEntityTooLarge",)"
          R"("code":413})",
          {}};
      keep_alive_ = false;
      Write(std::move(r));
      return;
    }
    if (ec) return Close();
    request_ = parser_->release();
    keep_alive_ = request_.keep_alive();
    HttpRequest req = ToRequest(request_);
    // A watch start has no body and its stream holds nothing on a worker, so
    // many may queue at once (informers re-watching after a restart); other
    // requests are held to a tighter bound.
    auto watch = req.query.find("watch");
    const bool is_watch = req.method == "GET" && watch != req.query.end() &&
                          (watch->second == "true" || watch->second == "1");
    std::atomic<int>& queued = is_watch ? shared_->watch_starts_queued : shared_->in_flight;
    const int queued_max = is_watch ? shared_->options.watch_starts_queued_max
                                    : shared_->options.requests_in_flight_max;
    if (queued.fetch_add(1) >= queued_max) {
      queued.fetch_sub(1);
      Write(ErrorResponse(TooManyRequests()));
      return;
    }
    // Everything that may block (store calls) runs on a worker; the answer
    // comes back to this connection's strand.
    net::post(
        *shared_->workers, [self = shared_from_this(), req = std::move(req), &queued]() mutable {
          if (auto log = self->shared_->handler->PlanLogStream(req)) {
            queued.fetch_sub(1);
            if (auto* target = std::get_if<LogTarget>(&*log)) {
              net::post(self->stream_.get_executor(),
                        [self, target = *target] { self->StartLogStream(target); });
            } else {
              net::post(self->stream_.get_executor(),
                        [self, r = std::get<HttpResponse>(std::move(*log))]() mutable {
                          self->Write(std::move(r));
                        });
            }
            return;
          }
          auto plan = self->shared_->handler->PlanWatch(req);
          if (plan.has_value() && std::holds_alternative<WatchPlan>(*plan)) {
            queued.fetch_sub(1);
            self->StartWatch(std::get<WatchPlan>(std::move(*plan)));
            return;
          }
          HttpResponse response = plan.has_value() ? std::get<HttpResponse>(std::move(*plan))
                                                   : self->shared_->handler->Handle(req);
          queued.fetch_sub(1);
          net::post(self->stream_.get_executor(), [self, response = std::move(response)]() mutable {
            self->Write(std::move(response));
          });
        });
  }

  void Write(HttpResponse r) {
    auto res = std::make_shared<http::response<http::string_body>>(
        static_cast<http::status>(r.status), request_.version());
    res->set(http::field::server, "ganglion");
    res->set(http::field::content_type, r.content_type);
    res->set(http::field::cache_control, "no-cache, private");
    for (const std::string& w : r.warnings) res->insert(http::field::warning, WarningHeader(w));
    res->keep_alive(keep_alive_);
    res->body() = std::move(r.body);
    res->prepare_payload();
    http::async_write(stream_, *res,
                      [self = shared_from_this(), res](beast::error_code ec, size_t) {
                        if (ec || !self->keep_alive_) return self->Close();
                        self->Read();
                      });
  }

  void Close() {
    if (closed_) return;
    closed_ = true;
    if (subscription_) subscription_->Cancel();
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.socket().close(ignored);
    if (timer_) timer_->cancel();
    if (bookmark_timer_) bookmark_timer_->cancel();
    if (upstream_) upstream_->close(ignored);
  }

  // --- kubectl logs -f: a chunked response fed by the node agent's stream, on the strand ---

  void StartLogStream(const LogTarget& target) {
    beast::error_code ec;
    const auto address = net::ip::make_address(target.host, ec);
    if (ec) return Write(ErrorResponse(Internal("the node's InternalIP is not an IP address")));
    upstream_ = std::make_unique<tcp::socket>(stream_.get_executor());
    upstream_request_ = absl::StrCat("GET ", target.target, " HTTP/1.1\r\nHost: ", target.host, ":",
                                     target.port, "\r\nConnection: close\r\n\r\n");
    upstream_->async_connect(
        tcp::endpoint(address, static_cast<uint16_t>(target.port)),
        [self = shared_from_this()](beast::error_code ec) {
          if (ec) return self->LogUpstreamFailed(ec.message());
          net::async_write(*self->upstream_, net::buffer(self->upstream_request_),
                           [self](beast::error_code ec, size_t) {
                             if (ec) return self->LogUpstreamFailed(ec.message());
                             net::async_read_until(
                                 *self->upstream_, net::dynamic_buffer(self->upstream_data_),
                                 "\r\n\r\n", [self](beast::error_code ec, size_t header_bytes) {
                                   if (ec) return self->LogUpstreamFailed(ec.message());
                                   self->OnLogHeader(header_bytes);
                                 });
                           });
        });
  }

  void LogUpstreamFailed(const std::string& why) {
    if (closed_ || header_serializer_) return Close();
    ApiError e{503, "ServiceUnavailable",
               absl::StrCat("cannot stream logs from the node agent: ", why), Json()};
    Write(ErrorResponse(e));
  }

  void OnLogHeader(size_t header_bytes) {
    const std::string header = upstream_data_.substr(0, header_bytes);
    upstream_data_.erase(0, header_bytes);
    if (header.rfind("HTTP/1.1 200", 0) != 0 && header.rfind("HTTP/1.0 200", 0) != 0) {
      // An error answer: read it to the end, then pass its message on.
      int code = 500;
      if (header.size() > 12) absl::SimpleAtoi(header.substr(9, 3), &code);
      net::async_read(*upstream_, net::dynamic_buffer(upstream_data_),
                      [self = shared_from_this(), code](beast::error_code, size_t) {
                        std::string message = self->upstream_data_;
                        while (!message.empty() && message.back() == '\n') message.pop_back();
                        ApiError e{code == 404 || code == 400 ? code : 500,
                                   code == 404   ? "NotFound"
                                   : code == 400 ? "BadRequest"
                                                 : "",
                                   message, Json()};
                        self->Write(ErrorResponse(e));
                      });
      return;
    }
    header_ =
        std::make_shared<http::response<http::empty_body>>(http::status::ok, request_.version());
    header_->set(http::field::server, "ganglion");
    header_->set(http::field::content_type, "text/plain");
    header_->set(http::field::cache_control, "no-cache, private");
    header_->chunked(true);
    header_serializer_ = std::make_shared<http::response_serializer<http::empty_body>>(*header_);
    stream_.expires_never();
    writing_ = true;
    http::async_write_header(stream_, *header_serializer_,
                             [self = shared_from_this()](beast::error_code ec, size_t) {
                               self->writing_ = false;
                               if (ec) return self->Close();
                               self->Pump();
                             });
    stream_.socket().async_read_some(
        net::buffer(discard_),
        [self = shared_from_this()](beast::error_code, size_t) { self->Close(); });
    if (!upstream_data_.empty()) Enqueue(std::exchange(upstream_data_, std::string()));
    ReadLogUpstream();
  }

  void ReadLogUpstream() {
    upstream_buffer_.resize(16 * 1024);
    upstream_->async_read_some(net::buffer(upstream_buffer_),
                               [self = shared_from_this()](beast::error_code ec, size_t n) {
                                 if (self->closed_) return;
                                 if (n > 0) self->Enqueue(self->upstream_buffer_.substr(0, n));
                                 if (ec) {
                                   self->finish_after_queue_ = true;
                                   self->Pump();
                                   return;
                                 }
                                 self->ReadLogUpstream();
                               });
  }

  // --- watch: runs on a worker until the subscription exists, then on the strand ---

  void StartWatch(WatchPlan plan) {
    plan_ = std::make_shared<WatchPlan>(std::move(plan));
    std::vector<std::string> initial;
    if (plan_->send_initial) {
      auto lines = shared_->handler->InitialEvents(*plan_);
      if (!lines.ok()) {
        net::post(stream_.get_executor(), [self = shared_from_this(), s = lines.status()] {
          self->Write(ErrorResponse(FromStore(s, *self->plan_->type, "")));
        });
        return;
      }
      initial = std::move(*lines);
    }
    // Headers first; events are queued behind them on the strand.
    net::post(stream_.get_executor(),
              [self = shared_from_this(), initial = std::move(initial)]() mutable {
                self->WriteWatchHeader();
                for (auto& line : initial) self->Enqueue(std::move(line));
              });
    // The sinks run on the store's thread under its lock. They hold the
    // session only weakly and lock it on the strand, so the store's thread is
    // never the last owner: a session destroyed there would cancel its
    // subscription under the very lock its sink was called with.
    std::weak_ptr<Session> weak = shared_from_this();
    auto executor = stream_.get_executor();
    auto plan_ptr = plan_;
    ApiHandler* handler = shared_->handler.get();
    auto sub = shared_->store->Watch(
        plan_->prefix, plan_->after_revision,
        [weak, executor, plan_ptr, handler](const std::vector<ObjectEvent>& events) {
          std::string chunk;
          for (const ObjectEvent& e : events) chunk += handler->EncodeEvent(*plan_ptr, e);
          if (chunk.empty()) return;
          net::post(executor, [weak, chunk = std::move(chunk)]() mutable {
            if (auto self = weak.lock()) self->Enqueue(std::move(chunk));
          });
        },
        [weak, executor, handler](const absl::Status& why) {
          std::string line = handler->EncodeError(Expired(std::string(why.message())));
          net::post(executor, [weak, line = std::move(line)]() mutable {
            auto self = weak.lock();
            if (!self) return;
            self->Enqueue(std::move(line));
            self->finish_after_queue_ = true;
            self->Pump();
          });
        });
    net::post(stream_.get_executor(), [self = shared_from_this(), sub = std::move(sub)]() mutable {
      if (!sub.ok()) {
        const ApiError error = absl::IsOutOfRange(sub.status())
                                   ? Expired(std::string(sub.status().message()))
                                   : FromStore(sub.status(), *self->plan_->type, "");
        self->Enqueue(self->shared_->handler->EncodeError(error));
        self->finish_after_queue_ = true;
        self->Pump();
        return;
      }
      self->subscription_ = std::move(*sub);
      if (self->closed_) self->subscription_->Cancel();
    });
  }

  void WriteWatchHeader() {
    header_ =
        std::make_shared<http::response<http::empty_body>>(http::status::ok, request_.version());
    header_->set(http::field::server, "ganglion");
    header_->set(http::field::content_type, "application/json");
    header_->set(http::field::cache_control, "no-cache, private");
    header_->chunked(true);
    header_serializer_ = std::make_shared<http::response_serializer<http::empty_body>>(*header_);
    stream_.expires_never();
    writing_ = true;
    http::async_write_header(stream_, *header_serializer_,
                             [self = shared_from_this()](beast::error_code ec, size_t) {
                               self->writing_ = false;
                               if (ec) return self->Close();
                               self->Pump();
                             });
    // The client may go away at any time; a pending read notices.
    stream_.socket().async_read_some(
        net::buffer(discard_),
        [self = shared_from_this()](beast::error_code, size_t) { self->Close(); });
    timer_ = std::make_unique<net::steady_timer>(stream_.get_executor());
    timer_->expires_after(absl::ToChronoMilliseconds(plan_->timeout));
    timer_->async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec) return;
      self->finish_after_queue_ = true;
      self->Pump();
    });
    bookmarked_revision_ = plan_->after_revision;
    if (plan_->bookmarks) ScheduleBookmark();
  }

  void ScheduleBookmark() {
    bookmark_timer_ = std::make_unique<net::steady_timer>(stream_.get_executor());
    bookmark_timer_->expires_after(shared_->options.watch_bookmark_interval);
    bookmark_timer_->async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec || self->closed_) return;
      // Until the subscription is in place its replay of history may still
      // be on the way: no bookmark may go ahead of it.
      if (!self->subscription_) return self->ScheduleBookmark();
      // A bookmark must follow every event up to its revision. The store
      // calls the sinks under the lock watched_revision() takes, so every
      // event up to `rev` has been posted to this strand before this read
      // returns; posting the bookmark now queues it behind them (the strand
      // runs handlers in order). Enqueued directly, it could overtake them.
      const int64_t rev = self->shared_->store->watched_revision();
      net::post(self->stream_.get_executor(), [self, rev] {
        if (self->closed_ || rev < self->bookmarked_revision_) return;
        self->bookmarked_revision_ = rev;
        self->Enqueue(self->shared_->handler->EncodeBookmark(*self->plan_, rev));
      });
      self->ScheduleBookmark();
    });
  }

  void Enqueue(std::string chunk) {
    if (closed_) return;
    queued_bytes_ += chunk.size();
    if (queued_bytes_ > shared_->options.watch_queued_bytes_max) {
      spdlog::warn("event=api_watch_dropped reason=slow_client queued_bytes={}", queued_bytes_);
      return Close();
    }
    queue_.push_back(std::move(chunk));
    Pump();
  }

  void Pump() {
    if (writing_ || closed_ || !header_serializer_) return;
    if (queue_.empty()) {
      if (finish_after_queue_) {
        writing_ = true;
        net::async_write(stream_, http::make_chunk_last(),
                         [self = shared_from_this()](beast::error_code, size_t) { self->Close(); });
      }
      return;
    }
    current_ = std::move(queue_.front());
    queue_.pop_front();
    queued_bytes_ -= current_.size();
    writing_ = true;
    net::async_write(stream_, http::make_chunk(net::buffer(current_)),
                     [self = shared_from_this()](beast::error_code ec, size_t) {
                       self->writing_ = false;
                       if (ec) return self->Close();
                       self->Pump();
                     });
  }

  beast::tcp_stream stream_;
  std::shared_ptr<Shared> shared_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::request<http::string_body> request_;
  bool keep_alive_ = true;
  bool closed_ = false;

  // Watch state, touched only on the strand (plan_ also by the worker before it).
  std::shared_ptr<WatchPlan> plan_;
  std::unique_ptr<Subscription> subscription_;
  std::shared_ptr<http::response<http::empty_body>> header_;
  std::shared_ptr<http::response_serializer<http::empty_body>> header_serializer_;
  std::deque<std::string> queue_;  // bounded by watch_queued_bytes_max
  size_t queued_bytes_ = 0;
  std::string current_;
  bool writing_ = false;
  bool finish_after_queue_ = false;
  char discard_[64];
  std::unique_ptr<net::steady_timer> timer_;
  std::unique_ptr<net::steady_timer> bookmark_timer_;
  // The newest revision sent as a bookmark, from the watch's own start:
  // bookmarks never go backwards (an idle watch gets the same one again, as
  // Kubernetes sends them).
  int64_t bookmarked_revision_ = 0;

  // Log stream state, on the strand.
  std::unique_ptr<tcp::socket> upstream_;
  std::string upstream_request_;
  std::string upstream_data_;
  std::string upstream_buffer_;
};

class ApiServerImpl : public ApiServer {
 public:
  ApiServerImpl(ApiServerOptions options, std::unique_ptr<EtcdObjectStore> owned,
                ObjectStore* store)
      : owned_store_(std::move(owned)),
        workers_(static_cast<size_t>(options.worker_threads)),
        shared_(std::make_shared<Shared>()) {
    shared_->options = std::move(options);
    shared_->store = store;
    shared_->workers = &workers_;
  }

  ~ApiServerImpl() override { Stop(); }

  absl::Status Listen() {
    for (const std::string& address : shared_->options.listen_addresses) {
      const size_t colon = address.rfind(':');
      int port = 0;
      if (colon == std::string::npos || !absl::SimpleAtoi(address.substr(colon + 1), &port)) {
        return absl::InvalidArgumentError(absl::StrCat("bad listen address ", address));
      }
      std::string host = address.substr(0, colon);
      if (host.size() > 1 && host.front() == '[') host = host.substr(1, host.size() - 2);
      beast::error_code ec;
      auto ip = net::ip::make_address(host.empty() ? "0.0.0.0" : host, ec);
      if (ec) return absl::InvalidArgumentError(absl::StrCat("bad listen host ", host));
      auto acceptor = std::make_unique<tcp::acceptor>(net::make_strand(io_));
      tcp::endpoint endpoint(ip, static_cast<uint16_t>(port));
      acceptor->open(endpoint.protocol(), ec);
      if (!ec) acceptor->set_option(net::socket_base::reuse_address(true), ec);
      if (!ec) acceptor->bind(endpoint, ec);
      if (!ec) acceptor->listen(net::socket_base::max_listen_connections, ec);
      if (ec) {
        return absl::UnavailableError(
            absl::StrCat("cannot listen for the API on ", address, ": ", ec.message()));
      }
      const auto bound = acceptor->local_endpoint();
      addresses_.push_back(absl::StrCat(bound.address().to_string(), ":", bound.port()));
      acceptors_.push_back(std::move(acceptor));
    }
    shared_->handler =
        std::make_unique<ApiHandler>(*shared_->store, addresses_.empty() ? "" : addresses_.front());
    for (auto& a : acceptors_) Accept(*a);
    for (int i = 0; i < shared_->options.io_threads; ++i) {
      io_threads_.emplace_back([this] { io_.run(); });
    }
    // The default namespaces need the member up; create them in the background.
    net::post(workers_, [shared = shared_, stopping = stopping_] {
      for (int attempt = 0; attempt < 600 && !stopping->load(); ++attempt) {
        if (shared->handler->EnsureDefaultNamespaces().ok()) return;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    });
    return absl::OkStatus();
  }

  void Stop() override {
    if (stopped_) return;
    stopped_ = true;
    stopping_->store(true);
    net::post(io_, [this] {
      for (auto& a : acceptors_) {
        beast::error_code ignored;
        a->close(ignored);
      }
    });
    io_.stop();
    for (auto& t : io_threads_) t.join();
    workers_.join();
    owned_store_.reset();
  }

  std::vector<std::string> addresses() const override { return addresses_; }

 private:
  void Accept(tcp::acceptor& acceptor) {
    acceptor.async_accept(net::make_strand(io_),
                          [this, &acceptor](beast::error_code ec, tcp::socket socket) {
                            if (ec == net::error::operation_aborted) return;
                            if (!ec) {
                              socket.set_option(tcp::no_delay(true), ec);
                              std::make_shared<Session>(std::move(socket), shared_)->Run();
                            }
                            Accept(acceptor);
                          });
  }

  std::unique_ptr<EtcdObjectStore> owned_store_;
  net::io_context io_;
  net::thread_pool workers_;
  std::shared_ptr<Shared> shared_;
  std::shared_ptr<std::atomic<bool>> stopping_ = std::make_shared<std::atomic<bool>>(false);
  std::vector<std::unique_ptr<tcp::acceptor>> acceptors_;
  std::vector<std::string> addresses_;
  std::vector<std::thread> io_threads_;
  bool stopped_ = false;
};

}  // namespace

absl::StatusOr<std::unique_ptr<ApiServer>> ApiServer::Start(ApiServerOptions options) {
  EtcdObjectStoreOptions so;
  so.endpoints = options.store_endpoints;
  auto store = EtcdObjectStore::Create(std::move(so));
  if (!store.ok()) return store.status();
  ObjectStore* raw = store->get();
  auto server = std::make_unique<ApiServerImpl>(std::move(options), std::move(*store), raw);
  if (auto s = server->Listen(); !s.ok()) return s;
  return server;
}

absl::StatusOr<std::unique_ptr<ApiServer>> ApiServer::Start(ApiServerOptions options,
                                                            ObjectStore* store) {
  auto server = std::make_unique<ApiServerImpl>(std::move(options), nullptr, store);
  if (auto s = server->Listen(); !s.ok()) return s;
  return server;
}

}  // namespace ganglion::orchestrator
