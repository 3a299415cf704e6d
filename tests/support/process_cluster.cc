#include "tests/support/process_cluster.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "nlohmann/json.hpp"

extern char** environ;

namespace ganglion::tests {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// How often waits re-check a condition; short enough not to slow tests,
// long enough not to spin a shared 2-core machine.
constexpr milliseconds kPollInterval{20};
constexpr milliseconds kHealthPollInterval{200};
// One `endpoint health` probe while waiting for a member.
constexpr milliseconds kHealthProbeTimeout{5000};
// Bounds the port search: a loopback bind(0) essentially never collides.
constexpr int kPortAttemptsMax = 100;

// A NULL-terminated char* array over strings that outlive it. Built before
// fork() because the child of a multi-threaded process may only make
// async-signal-safe calls until exec.
std::vector<char*> CStrings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

std::vector<std::string> EnvironmentWith(const std::vector<std::string>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry(*e);
    bool overridden = false;
    for (const auto& x : extra) {
      std::string name = x.substr(0, x.find('=') + 1);
      if (entry.rfind(name, 0) == 0) overridden = true;
    }
    if (!overridden) env.push_back(std::move(entry));
  }
  env.insert(env.end(), extra.begin(), extra.end());
  return env;
}

// In the child, between fork and exec: only async-signal-safe calls.
[[noreturn]] void ExecChild(pid_t parent, char* const* argv, char* const* envp) {
  // Die with the test process even if it crashes before its destructors run.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(127);  // the parent died before prctl took effect
  // Descriptors the test opened without O_CLOEXEC must not leak into servers.
  close_range(3, ~0U, 0);
  execve(argv[0], argv, envp);
  _exit(127);
}

int ExitCode(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

bool EnvSet(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' && std::string(v) != "0";
}

}  // namespace

absl::StatusOr<int> FreeLoopbackPort(std::set<int>& taken) {
  for (int attempt = 0; attempt < kPortAttemptsMax; ++attempt) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", strerror(errno)));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof(addr);
    int port = -1;
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
        getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port = ntohs(addr.sin_port);
    }
    close(fd);
    // The same port can come back after it was released; never hand it out twice.
    if (port > 0 && taken.insert(port).second) return port;
  }
  return absl::UnavailableError("no free loopback port");
}

CommandResult RunCommand(const std::vector<std::string>& argv_in, const std::string& stdin_data,
                         milliseconds timeout, const std::vector<std::string>& extra_env,
                         int stop_signal) {
  CommandResult result;
  std::vector<std::string> argv_strings = argv_in;
  std::vector<std::string> env_strings = EnvironmentWith(extra_env);
  std::vector<char*> argv = CStrings(argv_strings);
  std::vector<char*> envp = CStrings(env_strings);

  int in_pipe[2], out_pipe[2], err_pipe[2];
  if (pipe2(in_pipe, O_CLOEXEC) != 0) return result;
  if (pipe2(out_pipe, O_CLOEXEC) != 0) {
    close(in_pipe[0]), close(in_pipe[1]);
    return result;
  }
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    close(in_pipe[0]), close(in_pipe[1]), close(out_pipe[0]), close(out_pipe[1]);
    return result;
  }
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(in_pipe[0], 0);
    dup2(out_pipe[1], 1);
    dup2(err_pipe[1], 2);
    ExecChild(parent, argv.data(), envp.data());
  }
  close(in_pipe[0]);
  close(out_pipe[1]);
  close(err_pipe[1]);
  if (pid < 0) {
    close(in_pipe[1]), close(out_pipe[0]), close(err_pipe[0]);
    result.err = absl::StrCat("fork: ", strerror(errno));
    return result;
  }

  // stdin may be larger than a pipe buffer (the oversized-request test feeds
  // 1.6 MB), so it is written in the same poll loop that drains the outputs.
  int in_fd = in_pipe[1];
  fcntl(in_fd, F_SETFL, O_NONBLOCK);
  size_t written = 0;
  if (stdin_data.empty()) close(in_fd), in_fd = -1;
  int out_fd = out_pipe[0], err_fd = err_pipe[0];
  auto deadline = Clock::now() + timeout;
  char buf[65536];
  while (out_fd >= 0 || err_fd >= 0) {
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      if (!result.timed_out && stop_signal != SIGKILL) {
        // Keep reading: what the child prints while it cleans up is its answer.
        result.timed_out = true;
        kill(pid, stop_signal);
        deadline = Clock::now() + kStopGrace;
        continue;
      }
      result.timed_out = true;
      break;
    }
    pollfd fds[3] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}, {in_fd, POLLOUT, 0}};
    int n = poll(fds, 3, static_cast<int>(left));
    if (n < 0 && errno != EINTR) break;
    if (n <= 0) continue;
    for (int k = 0; k < 2; ++k) {
      if (fds[k].fd < 0 || fds[k].revents == 0) continue;
      ssize_t r = read(fds[k].fd, buf, sizeof(buf));
      if (r > 0) {
        (k == 0 ? result.out : result.err).append(buf, static_cast<size_t>(r));
      } else if (r == 0 || errno != EINTR) {
        close(fds[k].fd);
        (k == 0 ? out_fd : err_fd) = -1;
      }
    }
    if (in_fd >= 0 && fds[2].revents != 0) {
      ssize_t w = write(in_fd, stdin_data.data() + written, stdin_data.size() - written);
      if (w > 0) written += static_cast<size_t>(w);
      // EPIPE: the child stopped reading; what it did with the rest is its answer.
      if ((w < 0 && errno != EAGAIN && errno != EINTR) || written == stdin_data.size()) {
        close(in_fd);
        in_fd = -1;
      }
    }
  }
  if (in_fd >= 0) close(in_fd);
  if (out_fd >= 0) close(out_fd);
  if (err_fd >= 0) close(err_fd);
  // A child stopped by another signal has exited by now unless it outlived
  // its grace; a zombie ignores this SIGKILL.
  if (result.timed_out) kill(pid, SIGKILL);
  // The child has closed its outputs (or was just killed): exit is imminent,
  // but the wait is still bounded.
  const auto reap_deadline = Clock::now() + milliseconds(10000);
  int status = 0;
  while (true) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      if (!result.timed_out) result.exit_code = ExitCode(status);
      break;
    }
    if (r < 0 && errno != EINTR) break;
    if (Clock::now() > reap_deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);  // SIGKILL cannot be ignored: this returns
      result.timed_out = true;
      break;
    }
    std::this_thread::sleep_for(milliseconds(5));
  }
  return result;
}

std::string TailFile(const std::string& path, int max_lines) {
  std::ifstream in(path);
  if (!in) return "";
  std::deque<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    lines.push_back(std::move(line));
    if (static_cast<int>(lines.size()) > max_lines) lines.pop_front();
  }
  return absl::StrJoin(lines, "\n");
}

std::string Member::ClientEndpoint() const {
  return absl::StrCat("127.0.0.1:", client_port);
}
std::string Member::ClientUrl() const {
  return absl::StrCat("http://", ClientEndpoint());
}
std::string Member::PeerUrl() const {
  return absl::StrCat("http://127.0.0.1:", peer_port);
}

std::string Member::ApiUrl() const {
  return absl::StrCat("http://127.0.0.1:", api_port);
}

ProcessCluster::ProcessCluster(ClusterOptions options) : options_(std::move(options)) {
  if (options_.data_root.empty()) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "ganglion-cluster-XXXXXX");
    if (mkdtemp(tmpl.data()) != nullptr) data_root_ = tmpl;
    remove_data_root_ = !options_.keep_data && !EnvSet("GANGLION_KEEP_DATA");
  } else {
    data_root_ = options_.data_root;
    std::filesystem::create_directories(data_root_);
  }
}

ProcessCluster::~ProcessCluster() {
  for (auto& m : members_) {
    if (m.pid == 0) continue;
    kill(-m.pid, SIGKILL);
    kill(m.pid, SIGKILL);  // in case setpgid had not happened yet
  }
  for (int i = 0; i < size(); ++i) {
    if (members_[i].pid != 0) (void)Reap(i, options_.stop_timeout);
  }
  if (remove_data_root_ && !data_root_.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(data_root_, ignored);
  }
}

int ProcessCluster::PrepareMember(const std::string& name) {
  Member m;
  m.name = name;
  std::set<int> taken;
  for (const auto& other : members_) {
    taken.insert({other.client_port, other.peer_port, other.metrics_port, other.api_port});
  }
  // A port search failure leaves port 0; Spawn reports it.
  auto take = [&] { return FreeLoopbackPort(taken).value_or(0); };
  m.client_port = take();
  m.peer_port = take();
  m.metrics_port = take();
  if (options_.serve_api) m.api_port = take();
  m.data_dir = absl::StrCat(data_root_, "/", name);
  m.log_path = absl::StrCat(data_root_, "/", name, ".log");
  members_.push_back(std::move(m));
  return size() - 1;
}

std::string ProcessCluster::initial_cluster() const {
  std::vector<std::string> parts;
  for (const auto& m : members_) parts.push_back(absl::StrCat(m.name, "=", m.PeerUrl()));
  return absl::StrJoin(parts, ",");
}

std::string ProcessCluster::client_endpoints() const {
  std::vector<std::string> parts;
  for (const auto& m : members_) {
    if (m.pid != 0) parts.push_back(m.ClientEndpoint());
  }
  return absl::StrJoin(parts, ",");
}

absl::Status ProcessCluster::Start() {
  if (data_root_.empty()) return absl::InternalError("could not create a temp data root");
  if (!members_.empty()) return absl::FailedPreconditionError("Start() called twice");
  if (options_.members < 1) return absl::InvalidArgumentError("members must be >= 1");
  if (options_.binary.empty() || access(options_.binary.c_str(), X_OK) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("server binary '", options_.binary, "' is not an executable file"));
  }
  for (int i = 0; i < options_.members; ++i) {
    PrepareMember(absl::StrCat(options_.name_prefix, i + 1));
  }
  const std::string cluster = initial_cluster();
  for (auto& m : members_) {
    m.initial_cluster = cluster;
    m.initial_cluster_state = "new";
  }
  for (int i = 0; i < size(); ++i) {
    if (auto s = Spawn(i); !s.ok()) return s;
  }
  // All members first, then the waits: a member cannot be healthy before a
  // quorum exists. One deadline for the whole cluster.
  const auto deadline = Clock::now() + options_.start_timeout;
  for (int i = 0; i < size(); ++i) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    if (auto s = WaitHealthy(i, std::max(left, milliseconds(0))); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status ProcessCluster::Spawn(int i) {
  Member& m = members_.at(i);
  if (m.pid != 0) return absl::FailedPreconditionError(absl::StrCat(m.name, " already runs"));
  if (m.client_port == 0 || m.peer_port == 0 || m.metrics_port == 0 ||
      (options_.serve_api && m.api_port == 0)) {
    return absl::UnavailableError(absl::StrCat(m.name, ": no free loopback ports"));
  }
  std::vector<std::string> args = {
      options_.binary,
      "--name",
      m.name,
      "--data-dir",
      m.data_dir,
      "--listen-client-urls",
      m.ClientUrl(),
      "--advertise-client-urls",
      m.ClientUrl(),
      "--listen-peer-urls",
      m.PeerUrl(),
      "--initial-advertise-peer-urls",
      m.PeerUrl(),
      "--listen-metrics-urls",
      absl::StrCat("http://127.0.0.1:", m.metrics_port),
      "--initial-cluster",
      m.initial_cluster,
      "--initial-cluster-state",
      m.initial_cluster_state,
      "--initial-cluster-token",
      options_.cluster_token,
      "--heartbeat-interval",
      std::to_string(options_.heartbeat_interval_ms),
      "--election-timeout",
      std::to_string(options_.election_timeout_ms),
  };
  if (options_.serve_api) {
    args.push_back("--listen-api-urls");
    args.push_back(m.ApiUrl());
  }
  args.insert(args.end(), options_.extra_flags.begin(), options_.extra_flags.end());
  std::vector<std::string> env_strings = EnvironmentWith({});
  std::vector<char*> argv = CStrings(args);
  std::vector<char*> envp = CStrings(env_strings);

  int log_fd = open(m.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    return absl::InternalError(absl::StrCat("open ", m.log_path, ": ", strerror(errno)));
  }
  const std::string banner =
      absl::StrCat("==== harness: starting ", absl::StrJoin(args, " "), "\n");
  (void)!write(log_fd, banner.data(), banner.size());
  int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    // Its own process group, so a kill reaches anything the server spawns.
    setpgid(0, 0);
    if (null_fd >= 0) dup2(null_fd, 0);
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    ExecChild(parent, argv.data(), envp.data());
  }
  const int fork_errno = errno;
  close(log_fd);
  if (null_fd >= 0) close(null_fd);
  if (pid < 0) return absl::InternalError(absl::StrCat("fork: ", strerror(fork_errno)));
  // Also from the parent: whichever runs first, the group exists before any kill.
  setpgid(pid, pid);
  m.pid = pid;
  m.paused = false;
  return absl::OkStatus();
}

absl::Status ProcessCluster::WaitHealthy(int i, milliseconds timeout) {
  const Member& m = members_.at(i);
  const auto deadline = Clock::now() + timeout;
  CommandResult last;
  while (true) {
    if (m.pid == 0) return absl::FailedPreconditionError(absl::StrCat(m.name, " is not running"));
    int status = 0;
    if (waitpid(m.pid, &status, WNOHANG) == m.pid) {
      members_.at(i).pid = 0;
      return absl::InternalError(absl::StrCat(m.name, " exited with status ", ExitCode(status),
                                              " while starting\n", Describe(i)));
    }
    last = RunCommand({options_.etcdctl, "--endpoints=" + m.ClientEndpoint(), "--dial-timeout=1s",
                       "--command-timeout=2s", "endpoint", "health"},
                      "", kHealthProbeTimeout, {"ETCDCTL_API=3"});
    if (last.exit_code == 0) return absl::OkStatus();
    if (Clock::now() + kHealthPollInterval > deadline) break;
    std::this_thread::sleep_for(kHealthPollInterval);
  }
  return absl::DeadlineExceededError(absl::StrCat(m.name, " not healthy after ", timeout.count(),
                                                  " ms; last etcdctl said: ", last.out, last.err,
                                                  "\n", Describe(i)));
}

std::string ProcessCluster::Describe(int i) const {
  const Member& m = members_.at(i);
  return absl::StrCat("member ", m.name, " (pid ", m.pid, ", client ", m.ClientEndpoint(), ", log ",
                      m.log_path, "), last lines of its log:\n", TailFile(m.log_path));
}

absl::Status ProcessCluster::Reap(int i, milliseconds timeout) {
  Member& m = members_.at(i);
  if (m.pid == 0) return absl::OkStatus();
  const auto deadline = Clock::now() + timeout;
  while (true) {
    int status = 0;
    pid_t r = waitpid(m.pid, &status, WNOHANG);
    if (r == m.pid || (r < 0 && errno == ECHILD)) {
      m.wait_status = r == m.pid ? status : -1;
      // The server is gone; take down anything left in its group as well.
      kill(-m.pid, SIGKILL);
      m.pid = 0;
      m.paused = false;
      return absl::OkStatus();
    }
    if (Clock::now() > deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat(m.name, " did not exit within ", timeout.count(), " ms"));
    }
    std::this_thread::sleep_for(kPollInterval);
  }
}

absl::Status ProcessCluster::Kill(int i, int signal) {
  Member& m = members_.at(i);
  if (m.pid == 0) return absl::FailedPreconditionError(absl::StrCat(m.name, " is not running"));
  if (signal == SIGSTOP || signal == SIGCONT) {
    return absl::InvalidArgumentError("use Pause/Resume for SIGSTOP/SIGCONT");
  }
  kill(-m.pid, signal);
  // A stopped process does not act on SIGTERM until it is continued.
  if (m.paused) kill(-m.pid, SIGCONT);
  return Reap(i, options_.stop_timeout);
}

absl::Status ProcessCluster::Stop(int i) {
  if (members_.at(i).pid == 0) return absl::OkStatus();
  if (Kill(i, SIGTERM).ok()) return absl::OkStatus();
  return Kill(i, SIGKILL);
}

absl::Status ProcessCluster::Restart(int i) {
  if (auto s = Stop(i); !s.ok()) return s;
  if (auto s = Spawn(i); !s.ok()) return s;
  return WaitHealthy(i, options_.start_timeout);
}

absl::Status ProcessCluster::RestartAll() {
  for (int i = 0; i < size(); i++) {
    if (auto s = Stop(i); !s.ok()) return s;
  }
  for (int i = 0; i < size(); i++) {
    if (auto s = Spawn(i); !s.ok()) return s;
  }
  for (int i = 0; i < size(); i++) {
    if (auto s = WaitHealthy(i, options_.start_timeout); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status ProcessCluster::Pause(int i) {
  Member& m = members_.at(i);
  if (m.pid == 0) return absl::FailedPreconditionError(absl::StrCat(m.name, " is not running"));
  if (kill(-m.pid, SIGSTOP) != 0) return absl::InternalError(strerror(errno));
  m.paused = true;
  return absl::OkStatus();
}

absl::Status ProcessCluster::Resume(int i) {
  Member& m = members_.at(i);
  if (m.pid == 0) return absl::FailedPreconditionError(absl::StrCat(m.name, " is not running"));
  if (kill(-m.pid, SIGCONT) != 0) return absl::InternalError(strerror(errno));
  m.paused = false;
  return absl::OkStatus();
}

absl::Status ProcessCluster::StartAddedMember(int i, const std::string& initial_cluster,
                                              bool wait_healthy) {
  Member& m = members_.at(i);
  m.initial_cluster = initial_cluster;
  m.initial_cluster_state = "existing";
  if (auto s = Spawn(i); !s.ok()) return s;
  if (!wait_healthy) return absl::OkStatus();
  return WaitHealthy(i, options_.start_timeout);
}

absl::StatusOr<int> ProcessCluster::AddMember(const std::string& name) {
  const std::string endpoints = client_endpoints();
  const int i = PrepareMember(name);
  // etcd refuses a reconfiguration until every member has been connected for
  // 5 s ("unhealthy cluster"), so a fresh cluster needs a few retries.
  const auto deadline = Clock::now() + options_.start_timeout;
  CommandResult r;
  while (true) {
    r = Etcdctl({"member", "add", name, "--peer-urls=" + members_[i].PeerUrl()}, endpoints);
    if (r.exit_code == 0 || r.err.find("unhealthy cluster") == std::string::npos ||
        Clock::now() + kHealthPollInterval > deadline) {
      break;
    }
    std::this_thread::sleep_for(kHealthPollInterval);
  }
  if (r.exit_code != 0) {
    return absl::InternalError(absl::StrCat("member add ", name, " failed: ", r.out, r.err));
  }
  // etcdctl prints the flags the new member needs, e.g.
  // ETCD_INITIAL_CLUSTER="m1=http://...,m4=http://..."
  std::string cluster;
  for (absl::string_view line : absl::StrSplit(r.out, '\n')) {
    constexpr absl::string_view kKey = "ETCD_INITIAL_CLUSTER=\"";
    if (absl::StartsWith(line, kKey) && absl::EndsWith(line, "\"")) {
      line.remove_prefix(kKey.size());
      line.remove_suffix(1);
      cluster = std::string(line);
    }
  }
  if (cluster.empty()) {
    return absl::InternalError(absl::StrCat("no ETCD_INITIAL_CLUSTER in: ", r.out));
  }
  if (auto s = StartAddedMember(i, cluster); !s.ok()) return s;
  return i;
}

CommandResult ProcessCluster::Etcdctl(const std::vector<std::string>& args,
                                      const std::string& endpoints, const std::string& stdin_data,
                                      std::chrono::milliseconds timeout, int stop_signal) const {
  std::vector<std::string> argv = {
      options_.etcdctl, "--endpoints=" + (endpoints.empty() ? client_endpoints() : endpoints)};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv, stdin_data, timeout.count() > 0 ? timeout : options_.etcdctl_timeout,
                    {"ETCDCTL_API=3"}, stop_signal);
}

absl::StatusOr<int> ProcessCluster::LeaderIndex() const {
  CommandResult r = Etcdctl({"endpoint", "status", "-w", "json"});
  if (r.exit_code != 0) {
    return absl::UnavailableError(absl::StrCat("endpoint status failed: ", r.out, r.err));
  }
  nlohmann::json statuses = nlohmann::json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  if (!statuses.is_array() || statuses.empty()) {
    return absl::InternalError(absl::StrCat("unexpected endpoint status output: ", r.out));
  }
  uint64_t leader_id = 0;
  int leader_index = -1;
  for (const auto& entry : statuses) {
    const auto& status = entry.value("Status", nlohmann::json::object());
    const uint64_t leader = status.value("leader", uint64_t{0});
    if (leader == 0) return absl::UnavailableError("a member knows no leader");
    if (leader_id != 0 && leader != leader_id) {
      return absl::UnavailableError("members disagree about the leader");
    }
    leader_id = leader;
    const uint64_t member_id =
        status.value("header", nlohmann::json::object()).value("member_id", uint64_t{0});
    if (member_id == leader) {
      const std::string endpoint = entry.value("Endpoint", "");
      for (int i = 0; i < size(); ++i) {
        if (members_[i].ClientEndpoint() == endpoint) leader_index = i;
      }
    }
  }
  if (leader_index < 0) return absl::UnavailableError("the leader is not a running member");
  return leader_index;
}

absl::StatusOr<uint64_t> ProcessCluster::MemberId(int i) const {
  CommandResult r = Etcdctl({"member", "list", "-w", "json"});
  if (r.exit_code != 0) {
    return absl::UnavailableError(absl::StrCat("member list failed: ", r.out, r.err));
  }
  nlohmann::json list = nlohmann::json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  if (!list.is_object()) return absl::InternalError(absl::StrCat("bad member list: ", r.out));
  for (const auto& m : list.value("members", nlohmann::json::array())) {
    if (m.value("name", "") == members_.at(i).name) return m.value("ID", uint64_t{0});
  }
  return absl::NotFoundError(absl::StrCat(members_.at(i).name, " is not in the member list"));
}

absl::Status ProcessCluster::TransferLeadership(int i) {
  const auto deadline = Clock::now() + options_.start_timeout;
  auto target = MemberId(i);
  if (!target.ok()) return target.status();
  char hex[17];
  snprintf(hex, sizeof(hex), "%llx", static_cast<unsigned long long>(*target));
  while (true) {
    auto leader = LeaderIndex();
    if (leader.ok() && *leader == i) return absl::OkStatus();
    if (leader.ok()) {
      // move-leader must be sent to the current leader.
      CommandResult r = Etcdctl({"move-leader", hex}, client_endpoint(*leader));
      if (r.exit_code != 0 && Clock::now() > deadline) {
        return absl::InternalError(absl::StrCat("move-leader failed: ", r.out, r.err));
      }
    }
    if (Clock::now() > deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("leadership did not move to ", members_.at(i).name));
    }
    std::this_thread::sleep_for(kHealthPollInterval);
  }
}

std::string HttpGet(int port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "";
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::string out;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    const std::string req = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size())) {
      char buf[65536];
      for (ssize_t n; (n = read(fd, buf, sizeof(buf))) > 0;)
        out.append(buf, static_cast<size_t>(n));
    }
  }
  close(fd);
  return out;
}

std::optional<double> MetricValue(absl::string_view text, absl::string_view name) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (!absl::ConsumePrefix(&line, name) || !absl::ConsumePrefix(&line, " ")) continue;
    double v = 0;
    if (absl::SimpleAtod(line, &v)) return v;
  }
  return std::nullopt;
}

}  // namespace ganglion::tests
