#include "orchestrator/agent/probe.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace ganglion::orchestrator::agent {

using Json = nlohmann::json;

const char* ProbeKindName(ProbeKind kind) {
  switch (kind) {
    case ProbeKind::kLiveness:
      return "Liveness";
    case ProbeKind::kReadiness:
      return "Readiness";
    case ProbeKind::kStartup:
      return "Startup";
  }
  return "?";
}

namespace {

bool ResolvePort(const Json& container, const Json& port, int* out, std::string* error) {
  if (port.is_number_integer()) {
    *out = port.get<int>();
  } else if (port.is_string()) {
    const std::string name = port.get<std::string>();
    if (absl::SimpleAtoi(name, out)) {
      // numeric string
    } else {
      *out = 0;
      for (const Json& p : container.value("ports", Json::array())) {
        if (p.value("name", "") == name) *out = p.value("containerPort", 0);
      }
      if (*out == 0) {
        *error = absl::StrCat("the container has no port named \"", name, "\"");
        return false;
      }
    }
  } else {
    *error = "the probe names no port";
    return false;
  }
  if (*out < 1 || *out > 65535) {
    *error = absl::StrCat("probe port ", *out, " is not in 1-65535");
    return false;
  }
  return true;
}

// Connects to host:port within `timeout`; -1 and `error` on failure.
int ConnectWithin(const std::string& host, int port, absl::Duration timeout, std::string* error) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    addrinfo hints{}, *res = nullptr;
    hints.ai_family = AF_INET;
    if (::getaddrinfo(host.c_str(), nullptr, &hints, &res) != 0 || res == nullptr) {
      *error = absl::StrCat("cannot resolve ", host);
      return -1;
    }
    addr.sin_addr = reinterpret_cast<sockaddr_in*>(res->ai_addr)->sin_addr;
    ::freeaddrinfo(res);
  }
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *error = absl::StrCat("socket: ", strerror(errno));
    return -1;
  }
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 &&
      errno != EINPROGRESS) {
    *error = absl::StrCat("dial tcp ", host, ":", port, ": ", strerror(errno));
    ::close(fd);
    return -1;
  }
  pollfd p{fd, POLLOUT, 0};
  const int ready = ::poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout)));
  int so_error = 0;
  socklen_t len = sizeof(so_error);
  if (ready <= 0) {
    *error = absl::StrCat("dial tcp ", host, ":", port, ": i/o timeout");
    ::close(fd);
    return -1;
  }
  ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len);
  if (so_error != 0) {
    *error = absl::StrCat("dial tcp ", host, ":", port, ": ", strerror(so_error));
    ::close(fd);
    return -1;
  }
  return fd;
}

ProbeResult ExecProbe(const ProbeSpec& spec, const ProbeContext& context) {
  std::vector<std::string> argv = spec.command;
  std::vector<std::string> env = context.env;
  std::vector<char*> c_argv, c_env;
  for (auto& s : argv) c_argv.push_back(s.data());
  c_argv.push_back(nullptr);
  for (auto& s : env) c_env.push_back(s.data());
  c_env.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) return {false, absl::StrCat("fork: ", strerror(errno))};
  if (pid == 0) {
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::setpgid(0, 0);
    const int devnull = ::open("/dev/null", O_RDWR);
    if (devnull >= 0) {
      ::dup2(devnull, 0);
      ::dup2(devnull, 1);
      ::dup2(devnull, 2);
    }
    if (!context.working_dir.empty() && ::chdir(context.working_dir.c_str()) != 0) ::_exit(126);
    ::execvpe(c_argv[0], c_argv.data(), c_env.data());
    ::_exit(127);
  }
  const absl::Time deadline = absl::Now() + spec.timeout;
  int status = 0;
  while (true) {
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (absl::Now() >= deadline) {
      ::kill(-pid, SIGKILL);
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return {false, absl::StrCat("command timed out after ", absl::FormatDuration(spec.timeout))};
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::kill(-pid, SIGKILL);  // what the probe command left behind
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return {true, ""};
  return {false, WIFEXITED(status) ? absl::StrCat("command exited with ", WEXITSTATUS(status))
                                   : "command was killed by a signal"};
}

ProbeResult HttpProbe(const ProbeSpec& spec, const ProbeContext& context) {
  const std::string host = spec.host.empty() ? context.pod_ip : spec.host;
  const absl::Time deadline = absl::Now() + spec.timeout;
  std::string error;
  const int fd = ConnectWithin(host, spec.port, spec.timeout, &error);
  if (fd < 0)
    return {false, absl::StrCat("Get \"http://", host, ":", spec.port, spec.path, "\": ", error)};
  const std::string request =
      absl::StrCat("GET ", spec.path, " HTTP/1.1\r\nHost: ", host, ":", spec.port,
                   "\r\nUser-Agent: ganglion-probe\r\nAccept: */*\r\n"
                   "Connection: close\r\n\r\n");
  ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string response;
  char buf[1024];
  while (response.find("\r\n") == std::string::npos && response.size() < 4096) {
    const int64_t left_ms = absl::ToInt64Milliseconds(deadline - absl::Now());
    pollfd p{fd, POLLIN, 0};
    if (left_ms <= 0 || ::poll(&p, 1, static_cast<int>(left_ms)) <= 0) {
      ::close(fd);
      return {false, absl::StrCat("Get \"http://", host, ":", spec.port, spec.path,
                                  "\": context deadline exceeded")};
    }
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    response.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  // "HTTP/1.x NNN reason"
  int code = 0;
  const size_t sp = response.find(' ');
  if (sp == std::string::npos || !absl::SimpleAtoi(response.substr(sp + 1, 3), &code)) {
    return {false, "the answer is not HTTP"};
  }
  if (code >= 200 && code < 400) return {true, ""};
  return {false, absl::StrCat("HTTP probe failed with statuscode: ", code)};
}

ProbeResult TcpProbe(const ProbeSpec& spec, const ProbeContext& context) {
  const std::string host = spec.host.empty() ? context.pod_ip : spec.host;
  std::string error;
  const int fd = ConnectWithin(host, spec.port, spec.timeout, &error);
  if (fd < 0) return {false, error};
  ::close(fd);
  return {true, ""};
}

}  // namespace

std::optional<ProbeSpec> ParseProbe(const Json& container, ProbeKind kind, std::string* error) {
  const char* field = kind == ProbeKind::kLiveness    ? "livenessProbe"
                      : kind == ProbeKind::kReadiness ? "readinessProbe"
                                                      : "startupProbe";
  auto it = container.find(field);
  if (it == container.end() || !it->is_object()) return std::nullopt;
  const Json& p = *it;
  ProbeSpec spec;
  auto seconds = [&](const char* name, absl::Duration def, int min) {
    const int v = p.value(name, -1);
    return v < min ? def : absl::Seconds(v);
  };
  spec.initial_delay = seconds("initialDelaySeconds", absl::ZeroDuration(), 0);
  spec.period = seconds("periodSeconds", absl::Seconds(10), 1);
  spec.timeout = seconds("timeoutSeconds", absl::Seconds(1), 1);
  spec.success_threshold = std::max(1, p.value("successThreshold", 1));
  spec.failure_threshold = std::max(1, p.value("failureThreshold", 3));
  // kubelet requires 1 for liveness and startup.
  if (kind != ProbeKind::kReadiness) spec.success_threshold = 1;
  if (p.contains("exec")) {
    spec.action = ProbeSpec::Action::kExec;
    for (const Json& a : p["exec"].value("command", Json::array())) {
      if (a.is_string()) spec.command.push_back(a.get<std::string>());
    }
    if (spec.command.empty()) {
      *error = absl::StrCat(field, ".exec.command is empty");
      return std::nullopt;
    }
  } else if (p.contains("httpGet") || p.contains("tcpSocket")) {
    const bool http = p.contains("httpGet");
    const Json& a = http ? p["httpGet"] : p["tcpSocket"];
    spec.action = http ? ProbeSpec::Action::kHttpGet : ProbeSpec::Action::kTcpSocket;
    spec.host = a.value("host", "");
    if (http) {
      spec.path = a.value("path", "/");
      if (spec.path.empty() || spec.path[0] != '/') spec.path = "/" + spec.path;
      spec.scheme = a.value("scheme", "HTTP");
      if (spec.scheme != "HTTP") {
        *error = absl::StrCat(field, ": scheme ", spec.scheme, " is not supported (HTTP only)");
        return std::nullopt;
      }
    }
    if (!ResolvePort(container, a.value("port", Json()), &spec.port, error)) return std::nullopt;
  } else {
    *error =
        absl::StrCat(field, " has no exec, httpGet or tcpSocket handler (grpc is not supported)");
    return std::nullopt;
  }
  return spec;
}

ProbeTracker::ProbeTracker(ProbeSpec spec, ProbeKind kind, absl::Time container_started_at)
    : spec_(std::move(spec)),
      kind_(kind),
      next_due_(container_started_at + spec_.initial_delay),
      passing_(kind == ProbeKind::kLiveness) {}

bool ProbeTracker::Record(bool success, absl::Time now, std::string message) {
  next_due_ = now + spec_.period;
  last_message_ = std::move(message);
  const bool before = passing_;
  if (success) {
    failures_ = 0;
    if (++successes_ >= spec_.success_threshold) passing_ = true;
  } else {
    successes_ = 0;
    if (++failures_ >= spec_.failure_threshold) passing_ = false;
  }
  return before != passing_;
}

ProbeResult RunProbe(const ProbeSpec& spec, const ProbeContext& context) {
  switch (spec.action) {
    case ProbeSpec::Action::kExec:
      return ExecProbe(spec, context);
    case ProbeSpec::Action::kHttpGet:
      return HttpProbe(spec, context);
    case ProbeSpec::Action::kTcpSocket:
      return TcpProbe(spec, context);
  }
  return {false, "unknown probe"};
}

}  // namespace ganglion::orchestrator::agent
