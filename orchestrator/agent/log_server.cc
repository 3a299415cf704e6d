#include "orchestrator/agent/log_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <map>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "orchestrator/agent/logs.h"

namespace ganglion::orchestrator::agent {

namespace {

constexpr size_t kRequestBytesMax = 16 * 1024;

std::string Decode(absl::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    int v = 0;
    if (s[i] == '%' && i + 2 < s.size() && absl::SimpleHexAtoi(s.substr(i + 1, 2), &v)) {
      out.push_back(static_cast<char>(v));
      i += 2;
    } else {
      out.push_back(s[i] == '+' ? ' ' : s[i]);
    }
  }
  return out;
}

bool SendAll(int fd, absl::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

void Respond(int fd, int code, const std::string& body) {
  const char* text = code == 200   ? "OK"
                     : code == 400 ? "Bad Request"
                     : code == 404 ? "Not Found"
                     : code == 503 ? "Service Unavailable"
                                   : "Error";
  SendAll(fd, absl::StrCat("HTTP/1.1 ", code, " ", text,
                           "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ",
                           body.size(), "\r\nConnection: close\r\n\r\n", body));
}

bool Truthy(const std::map<std::string, std::string>& q, const char* key) {
  auto it = q.find(key);
  return it != q.end() && (it->second == "true" || it->second == "1");
}

bool PeerClosed(int fd) {
  pollfd p{fd, POLLIN | POLLRDHUP, 0};
  if (::poll(&p, 1, 0) <= 0) return false;
  if (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) return true;
  char c;
  return ::recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

}  // namespace

absl::StatusOr<std::unique_ptr<LogServer>> LogServer::Start(const std::string& listen,
                                                            LogLookup lookup) {
  const size_t colon = listen.rfind(':');
  int port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(listen.substr(colon + 1), &port)) {
    return absl::InvalidArgumentError(absl::StrCat("--listen ", listen, " is not host:port"));
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  const std::string host = colon == 0 ? "0.0.0.0" : listen.substr(0, colon);
  if (::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--listen host ", host, " is not an IPv4 address"));
  }
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || ::listen(fd, 128) != 0) {
    const std::string why = strerror(errno);
    ::close(fd);
    return absl::UnavailableError(absl::StrCat("cannot listen on ", listen, ": ", why));
  }
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  std::unique_ptr<LogServer> server(new LogServer(fd, ntohs(addr.sin_port), std::move(lookup)));
  server->accept_thread_ = std::thread([s = server.get()] { s->AcceptLoop(); });
  return server;
}

LogServer::LogServer(int fd, int port, LogLookup lookup)
    : listen_fd_(fd), port_(port), lookup_(std::move(lookup)) {}

LogServer::~LogServer() {
  Stop();
}

void LogServer::Stop() {
  if (stop_.exchange(true)) return;
  ::shutdown(listen_fd_, SHUT_RDWR);
  if (accept_thread_.joinable()) accept_thread_.join();
  ::close(listen_fd_);
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(mu_);
    threads.swap(threads_);
  }
  for (auto& t : threads) t.join();
}

void LogServer::AcceptLoop() {
  while (!stop_.load()) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 200) <= 0) continue;
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    if (connections_.fetch_add(1) >= kConnectionsMax) {
      connections_.fetch_sub(1);
      Respond(fd, 503, "too many log requests at once\n");
      ::close(fd);
      continue;
    }
    std::lock_guard lock(mu_);
    threads_.emplace_back([this, fd] {
      Serve(fd);
      ::close(fd);
      connections_.fetch_sub(1);
    });
    // Finished threads are joined at Stop; bounded by the connections served.
    if (threads_.size() > 4 * static_cast<size_t>(kConnectionsMax)) {
      // Join the oldest ones, which are done or about to be.
      for (size_t i = 0; i < static_cast<size_t>(kConnectionsMax); ++i) threads_[i].join();
      threads_.erase(threads_.begin(), threads_.begin() + kConnectionsMax);
    }
  }
}

void LogServer::Serve(int fd) {
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::string request;
  char buf[2048];
  while (request.find("\r\n\r\n") == std::string::npos && request.size() < kRequestBytesMax) {
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) return;
    request.append(buf, static_cast<size_t>(n));
  }
  const size_t line_end = request.find("\r\n");
  std::vector<std::string> first = absl::StrSplit(request.substr(0, line_end), ' ');
  if (first.size() < 2 || first[0] != "GET") return Respond(fd, 400, "only GET is served\n");
  const std::string target = first[1];
  const size_t q = target.find('?');
  std::vector<std::string> parts = absl::StrSplit(target.substr(0, q), '/', absl::SkipEmpty());
  if (parts.size() != 4 || parts[0] != "containerLogs") {
    return Respond(fd, 404,
                   "not found: the path is /containerLogs/<namespace>/<pod>/<container>\n");
  }
  std::map<std::string, std::string> query;
  if (q != std::string::npos) {
    for (absl::string_view kv : absl::StrSplit(target.substr(q + 1), '&', absl::SkipEmpty())) {
      const size_t eq = kv.find('=');
      query[Decode(kv.substr(0, eq))] =
          eq == absl::string_view::npos ? "" : Decode(kv.substr(eq + 1));
    }
  }
  LogReadOptions options;
  options.timestamps = Truthy(query, "timestamps");
  int64_t v = 0;
  if (auto it = query.find("tailLines"); it != query.end()) {
    if (!absl::SimpleAtoi(it->second, &v) || v < 0) return Respond(fd, 400, "bad tailLines\n");
    options.tail_lines = v;
  }
  if (auto it = query.find("limitBytes"); it != query.end()) {
    if (!absl::SimpleAtoi(it->second, &v) || v < 1) return Respond(fd, 400, "bad limitBytes\n");
    options.limit_bytes = v;
  }
  if (auto it = query.find("sinceSeconds"); it != query.end()) {
    if (!absl::SimpleAtoi(it->second, &v) || v < 1) return Respond(fd, 400, "bad sinceSeconds\n");
    options.since = absl::Now() - absl::Seconds(v);
  }
  if (auto it = query.find("sinceTime"); it != query.end()) {
    absl::Time t;
    std::string error;
    if (!absl::ParseTime(absl::RFC3339_full, it->second, &t, &error)) {
      return Respond(fd, 400, "bad sinceTime\n");
    }
    options.since = t;
  }
  const bool follow = Truthy(query, "follow");
  LogSource source =
      lookup_(Decode(parts[1]), Decode(parts[2]), Decode(parts[3]), Truthy(query, "previous"));
  if (source.http_code != 200) return Respond(fd, source.http_code, source.message + "\n");
  const std::vector<std::string> files = RunLogFiles(source.dir, source.run);
  if (!follow) return Respond(fd, 200, ReadLogs(files, options));

  // Follow: what is there now, then what is appended, until the run ends.
  const std::string current = RunLogPath(source.dir, source.run);
  std::ifstream in;
  ino_t inode = 0;
  auto open_current = [&] {
    in = std::ifstream(current);
    struct stat st;
    inode = ::stat(current.c_str(), &st) == 0 ? st.st_ino : 0;
  };
  // Read the rotated file (if any) whole, then the current one line by line.
  std::string initial;
  {
    std::vector<std::string> rotated;
    for (const std::string& f : files) {
      if (f != current) rotated.push_back(f);
    }
    open_current();
    std::vector<LogLine> lines;
    std::string raw;
    // The rotated part whole, the current file up to where `in` is now.
    for (const std::string& f : rotated) {
      std::ifstream r(f);
      while (std::getline(r, raw)) {
        if (auto l = ParseLogLine(raw)) lines.push_back(*l);
      }
    }
    while (std::getline(in, raw)) {
      if (in.eof()) {
        // An incomplete last line: leave it for the follow loop.
        in.clear();
        in.seekg(-static_cast<std::streamoff>(raw.size()), std::ios::cur);
        break;
      }
      if (auto l = ParseLogLine(raw)) lines.push_back(*l);
    }
    in.clear();
    size_t first_line = 0;
    if (options.since) {
      while (first_line < lines.size() && lines[first_line].time < *options.since) ++first_line;
    }
    if (options.tail_lines &&
        lines.size() - first_line > static_cast<size_t>(*options.tail_lines)) {
      first_line = lines.size() - static_cast<size_t>(*options.tail_lines);
    }
    for (size_t i = first_line; i < lines.size(); ++i) {
      initial += RenderLine(lines[i], options.timestamps);
    }
  }
  if (!SendAll(fd,
               "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
               "Connection: close\r\n\r\n") ||
      !SendAll(fd, initial)) {
    return;
  }
  std::string partial;
  while (!stop_.load()) {
    bool got = false;
    std::string raw;
    while (std::getline(in, raw)) {
      if (in.eof()) {
        partial += raw;  // no newline yet
        break;
      }
      raw = partial + raw;
      partial.clear();
      got = true;
      if (auto l = ParseLogLine(raw); l && !(options.since && l->time < *options.since)) {
        if (!SendAll(fd, RenderLine(*l, options.timestamps))) return;
      }
    }
    in.clear();
    if (got) continue;
    struct stat st;
    if (::stat(current.c_str(), &st) == 0 && st.st_ino != inode) {
      // Rotated: `in` still reads the old file to its end (done above); go on
      // with the new one.
      open_current();
      partial.clear();
      continue;
    }
    if (!source.still_running()) {
      // One more read for what was written just before the end.
      bool more = false;
      while (std::getline(in, raw)) {
        if (in.eof()) break;
        more = true;
        if (auto l = ParseLogLine(partial + raw)) {
          if (!SendAll(fd, RenderLine(*l, options.timestamps))) return;
        }
        partial.clear();
      }
      in.clear();
      if (!more) return;
      continue;
    }
    if (PeerClosed(fd)) return;
    std::this_thread::sleep_for(absl::ToChronoMilliseconds(kFollowPoll));
  }
}

}  // namespace ganglion::orchestrator::agent
