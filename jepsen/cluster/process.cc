#include "jepsen/cluster/process.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

extern char** environ;

namespace ganglion::jepsen {
namespace {

using Clock = std::chrono::steady_clock;
constexpr std::chrono::milliseconds kPollInterval{10};
// A command's output beyond this is dropped: `ip` and `iptables` print little.
constexpr size_t kCommandOutputBytesMax = 1 << 20;

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
      if (entry.rfind(x.substr(0, x.find('=') + 1), 0) == 0) overridden = true;
    }
    if (!overridden) env.push_back(std::move(entry));
  }
  env.insert(env.end(), extra.begin(), extra.end());
  return env;
}

// Between fork and exec in a multi-threaded parent: async-signal-safe calls only.
[[noreturn]] void ExecChild(pid_t parent, char* const* argv, char* const* envp, int netns_fd,
                            int out_fd) {
  setpgid(0, 0);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(127);
  if (netns_fd >= 0 && setns(netns_fd, CLONE_NEWNET) != 0) _exit(126);
  if (out_fd >= 0) {
    dup2(out_fd, 1);
    dup2(out_fd, 2);
  }
  int null_fd = open("/dev/null", O_RDONLY);
  if (null_fd >= 0) dup2(null_fd, 0);
  close_range(3, ~0U, 0);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  execve(argv[0], argv, envp);
  _exit(127);
}

int ExitCode(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace

absl::StatusOr<pid_t> Spawn(const SpawnOptions& options) {
  if (options.argv.empty()) return absl::InvalidArgumentError("spawn: empty argv");
  std::vector<std::string> argv_strings = options.argv;
  std::vector<std::string> env_strings = EnvironmentWith(options.env);
  std::vector<char*> argv = CStrings(argv_strings);
  std::vector<char*> envp = CStrings(env_strings);
  int netns_fd = -1;
  if (!options.netns.empty()) {
    std::string path = "/var/run/netns/" + options.netns;
    netns_fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (netns_fd < 0)
      return absl::InternalError(absl::StrCat("open ", path, ": ", strerror(errno)));
  }
  int out_fd = -1;
  if (!options.log_path.empty()) {
    out_fd = open(options.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (out_fd < 0) {
      if (netns_fd >= 0) close(netns_fd);
      return absl::InternalError(absl::StrCat("open ", options.log_path, ": ", strerror(errno)));
    }
  }
  const pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) ExecChild(parent, argv.data(), envp.data(), netns_fd, out_fd);
  const int fork_errno = errno;
  if (netns_fd >= 0) close(netns_fd);
  if (out_fd >= 0) close(out_fd);
  if (pid < 0) return absl::InternalError(absl::StrCat("fork: ", strerror(fork_errno)));
  // Also from the parent, so a signal sent right after Spawn reaches the group.
  setpgid(pid, pid);
  return pid;
}

Spawner::Spawner() : thread_([this] { Run(); }) {}

Spawner::~Spawner() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

absl::StatusOr<pid_t> Spawner::Spawn(const SpawnOptions& options) {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [this] { return request_ == nullptr && !result_; });
  request_ = &options;
  cv_.notify_all();
  cv_.wait(lock, [this] { return result_.has_value(); });
  absl::StatusOr<pid_t> r = *std::move(result_);
  result_.reset();
  cv_.notify_all();
  return r;
}

void Spawner::Run() {
  std::unique_lock lock(mu_);
  while (true) {
    cv_.wait(lock, [this] { return stop_ || request_ != nullptr; });
    if (request_ == nullptr) return;
    result_ = jepsen::Spawn(*request_);
    request_ = nullptr;
    cv_.notify_all();
  }
}

void SignalGroup(pid_t pid, int signal) {
  if (pid > 0) ::kill(-pid, signal);
}

bool Reap(pid_t pid, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    int status = 0;
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid || (r < 0 && errno == ECHILD)) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(kPollInterval);
  }
}

CommandResult RunCommand(const std::vector<std::string>& argv_in,
                         std::chrono::milliseconds timeout) {
  CommandResult result;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    result.output = absl::StrCat("pipe: ", strerror(errno));
    return result;
  }
  std::vector<std::string> argv_strings = argv_in;
  std::vector<std::string> env_strings = EnvironmentWith({});
  std::vector<char*> argv = CStrings(argv_strings);
  std::vector<char*> envp = CStrings(env_strings);
  const pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) ExecChild(parent, argv.data(), envp.data(), -1, fds[1]);
  close(fds[1]);
  if (pid < 0) {
    close(fds[0]);
    result.output = absl::StrCat("fork: ", strerror(errno));
    return result;
  }
  const auto deadline = Clock::now() + timeout;
  char buf[4096];
  bool timed_out = false;
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    pollfd p{fds[0], POLLIN, 0};
    int n = poll(&p, 1, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) continue;
    ssize_t got = read(fds[0], buf, sizeof(buf));
    if (got <= 0) break;  // EOF: the child closed its end (exited)
    if (result.output.size() < kCommandOutputBytesMax) result.output.append(buf, got);
  }
  close(fds[0]);
  if (timed_out) SignalGroup(pid, SIGKILL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.exit_code = timed_out ? -1 : ExitCode(status);
  return result;
}

absl::Status RunOrError(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  CommandResult r = RunCommand(argv, timeout);
  if (r.exit_code == 0) return absl::OkStatus();
  return absl::InternalError(
      absl::StrCat(absl::StrJoin(argv, " "), ": exit ", r.exit_code, ": ", r.output));
}

}  // namespace ganglion::jepsen
