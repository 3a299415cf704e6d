// One keep-alive HTTP/1.1 connection to 127.0.0.1:<port>, synchronous: what
// the API benchmarks use to drive the Kubernetes-shaped API. Header-only
// (Boost.Beast); a request that fails throws boost::system::system_error.
#pragma once

// clang-format off
#include <utility>  // before Boost.Asio 1.74, whose awaitable.hpp uses std::exchange
// clang-format on
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstdint>
#include <string>

namespace ganglion::bench {

class HttpConnection {
 public:
  explicit HttpConnection(int port) : stream_(io_) {
    stream_.connect(boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"),
                                                   static_cast<uint16_t>(port)));
  }
  boost::beast::http::response<boost::beast::http::string_body> Do(
      boost::beast::http::verb verb, const std::string& target, const std::string& body = "",
      const std::string& type = "application/json") {
    namespace http = boost::beast::http;
    http::request<http::string_body> req{verb, target, 11};
    req.set(http::field::host, "127.0.0.1");
    req.set(http::field::content_type, type);
    req.set(http::field::accept, "application/json");
    req.body() = body;
    req.prepare_payload();
    http::write(stream_, req);
    boost::beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(1ull << 31);
    http::read(stream_, buffer, parser);
    return parser.release();
  }

 private:
  boost::asio::io_context io_;
  boost::beast::tcp_stream stream_;
};

}  // namespace ganglion::bench
