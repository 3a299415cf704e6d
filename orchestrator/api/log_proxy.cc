#include "orchestrator/api/log_proxy.h"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace ganglion::orchestrator {

namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

std::string Encode(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == ':') {
      out.push_back(static_cast<char>(c));
    } else {
      absl::StrAppend(&out, "%", absl::Hex(c, absl::kZeroPad2));
    }
  }
  return out;
}

const Json* At(const Json& j, std::initializer_list<const char*> path) {
  const Json* at = &j;
  for (const char* p : path) {
    if (!at->is_object() || !at->contains(p)) return nullptr;
    at = &(*at)[p];
  }
  return at;
}

}  // namespace

std::variant<LogTarget, ApiError> ResolveLogTarget(
    const Json& pod, const Json* node, const std::map<std::string, std::string>& query) {
  const std::string name = pod["metadata"].value("name", "");
  const std::string ns = pod["metadata"].value("namespace", "");
  std::vector<std::string> names;
  for (const char* list : {"containers", "initContainers"}) {
    if (const Json* cs = At(pod, {"spec", list}); cs && cs->is_array()) {
      for (const Json& c : *cs) names.push_back(c.value("name", ""));
    }
  }
  std::string container;
  if (auto it = query.find("container"); it != query.end()) container = it->second;
  if (container.empty()) {
    const Json* cs = At(pod, {"spec", "containers"});
    if (cs && cs->is_array() && cs->size() == 1) {
      container = (*cs)[0].value("name", "");
    } else {
      return BadRequest(absl::StrCat("a container name must be specified for pod ", name,
                                     ", choose one of: [", absl::StrJoin(names, " "), "]"));
    }
  }
  if (std::find(names.begin(), names.end(), container) == names.end()) {
    return BadRequest(absl::StrCat("container ", container, " is not valid for pod ", name));
  }
  const Json* bound = At(pod, {"spec", "nodeName"});
  if (bound == nullptr || !bound->is_string() || bound->get<std::string>().empty()) {
    return BadRequest(absl::StrCat("pod ", name, " does not have a host assigned"));
  }
  if (node == nullptr) {
    return BadRequest(
        absl::StrCat("node ", bound->get<std::string>(), " of pod ", name, " does not exist"));
  }
  LogTarget target;
  if (const Json* addresses = At(*node, {"status", "addresses"});
      addresses && addresses->is_array()) {
    for (const Json& a : *addresses) {
      if (a.value("type", "") == "InternalIP") target.host = a.value("address", "");
    }
  }
  if (const Json* port = At(*node, {"status", "daemonEndpoints", "kubeletEndpoint", "Port"});
      port && port->is_number_integer()) {
    target.port = port->get<int>();
  }
  if (target.host.empty() || target.port <= 0) {
    return ApiError{503, "ServiceUnavailable",
                    absl::StrCat("node ", bound->get<std::string>(),
                                 " reports no InternalIP and kubelet port to fetch logs from"),
                    Json()};
  }
  target.target =
      absl::StrCat("/containerLogs/", Encode(ns), "/", Encode(name), "/", Encode(container));
  std::vector<std::string> params;
  for (const char* key : {"follow", "previous", "tailLines", "sinceSeconds", "sinceTime",
                          "timestamps", "limitBytes"}) {
    if (auto it = query.find(key); it != query.end()) {
      params.push_back(absl::StrCat(key, "=", Encode(it->second)));
    }
  }
  if (!params.empty()) absl::StrAppend(&target.target, "?", absl::StrJoin(params, "&"));
  auto follow = query.find("follow");
  target.follow = follow != query.end() && (follow->second == "true" || follow->second == "1");
  return target;
}

HttpResponse FetchLogs(const LogTarget& target, absl::Duration timeout) {
  net::io_context io;
  beast::tcp_stream stream(io);
  stream.expires_after(absl::ToChronoMilliseconds(timeout));
  beast::error_code ec;
  auto fail = [&](const std::string& what) {
    ApiError e{503, "ServiceUnavailable",
               absl::StrCat("cannot fetch logs from the node agent at ", target.host, ":",
                            target.port, ": ", what),
               Json()};
    return ErrorResponse(e);
  };
  net::ip::tcp::endpoint endpoint(net::ip::make_address(target.host, ec),
                                  static_cast<uint16_t>(target.port));
  if (ec) return fail(ec.message());
  stream.connect(endpoint, ec);
  if (ec) return fail(ec.message());
  http::request<http::empty_body> request(http::verb::get, target.target, 11);
  request.set(http::field::host, absl::StrCat(target.host, ":", target.port));
  request.set(http::field::connection, "close");
  http::write(stream, request, ec);
  if (ec) return fail(ec.message());
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 * 1024 * 1024);
  http::read(stream, buffer, parser, ec);
  if (ec && ec != http::error::end_of_stream) return fail(ec.message());
  auto& response = parser.get();
  const int code = static_cast<int>(response.result_int());
  if (code != 200) {
    std::string message = response.body();
    while (!message.empty() && message.back() == '\n') message.pop_back();
    ApiError e{code == 404   ? 404
               : code == 400 ? 400
                             : 500,
               code == 404   ? "NotFound"
               : code == 400 ? "BadRequest"
                             : "InternalError",
               message, Json()};
    return ErrorResponse(e);
  }
  HttpResponse out;
  out.content_type = "text/plain";
  out.body = std::move(response.body());
  return out;
}

}  // namespace ganglion::orchestrator
