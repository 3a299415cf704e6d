#include "orchestrator/agent/process.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "orchestrator/agent/logs.h"

namespace ganglion::orchestrator::agent {

namespace {

std::vector<char*> CStrings(std::vector<std::string>& v) {
  std::vector<char*> out;
  out.reserve(v.size() + 1);
  for (std::string& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// How long the supervisor keeps reading output after the command exited,
// for descendants that still hold the pipes; then it stops waiting for them.
constexpr auto kDrainAfterExit = std::chrono::milliseconds(500);

}  // namespace

absl::StatusOr<pid_t> Launch(const LaunchSpec& spec) {
  if (spec.command.empty()) return absl::InvalidArgumentError("no command");
  std::vector<std::string> argv = {spec.agent_binary,
                                   "--shim",
                                   spec.log_path,
                                   spec.exit_path,
                                   absl::StrCat(spec.log_rotate_bytes),
                                   "--"};
  argv.insert(argv.end(), spec.command.begin(), spec.command.end());
  std::vector<std::string> env = spec.env;
  std::vector<char*> c_argv = CStrings(argv);
  std::vector<char*> c_env = CStrings(env);
  // A pipe closed on exec tells a failed chdir/exec apart from a started supervisor.
  int status_pipe[2];
  if (::pipe2(status_pipe, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe: ", strerror(errno)));
  }
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(status_pipe[0]);
    ::close(status_pipe[1]);
    return absl::ResourceExhaustedError(absl::StrCat("fork: ", strerror(errno)));
  }
  if (pid == 0) {
    // Only async-signal-safe calls between fork and exec.
    ::close(status_pipe[0]);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::setsid();
    const int devnull = ::open("/dev/null", O_RDWR);
    if (devnull >= 0) {
      ::dup2(devnull, 0);
      ::dup2(devnull, 1);
      ::dup2(devnull, 2);
    }
    int err = 0;
    if (!spec.working_dir.empty() && ::chdir(spec.working_dir.c_str()) != 0) {
      err = errno;
    } else {
      ::execve(c_argv[0], c_argv.data(), c_env.data());
      err = errno;
    }
    (void)!::write(status_pipe[1], &err, sizeof(err));
    ::_exit(127);
  }
  ::close(status_pipe[1]);
  int err = 0;
  ssize_t n;
  do {
    n = ::read(status_pipe[0], &err, sizeof(err));
  } while (n < 0 && errno == EINTR);
  ::close(status_pipe[0]);
  if (n == sizeof(err)) {
    ::waitpid(pid, nullptr, 0);
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot start the container's supervisor in \"", spec.working_dir, "\": ", strerror(err)));
  }
  return pid;
}

int RunShim(int argc, char** argv) {
  // argv: <log path> <exit path> <rotate bytes> -- <command...>
  if (argc < 5 || std::string(argv[3]) != "--") {
    fprintf(stderr, "usage: ganglion-agent --shim <log> <exit> <rotate-bytes> -- command...\n");
    return 2;
  }
  const std::string log_path = argv[0];
  const std::string exit_path = argv[1];
  int64_t rotate_bytes = 0;
  if (!absl::SimpleAtoi(argv[2], &rotate_bytes) || rotate_bytes <= 0) return 2;
  // The supervisor outlives SIGTERM to the group: it must record how the
  // command ended. SIGKILL still ends it (and the agent copes).
  ::signal(SIGTERM, SIG_IGN);
  ::signal(SIGINT, SIG_IGN);
  ::signal(SIGHUP, SIG_IGN);
  ::signal(SIGPIPE, SIG_IGN);
  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0) return 1;
  const pid_t child = ::fork();
  if (child < 0) return 1;
  if (child == 0) {
    ::signal(SIGTERM, SIG_DFL);
    ::signal(SIGINT, SIG_DFL);
    ::signal(SIGHUP, SIG_DFL);
    ::signal(SIGPIPE, SIG_DFL);
    ::dup2(out_pipe[1], 1);
    ::dup2(err_pipe[1], 2);
    ::execvp(argv[4], argv + 4);
    const int err = errno;
    dprintf(2, "cannot run %s: %s\n", argv[4], strerror(err));
    ::_exit(err == ENOENT ? 127 : 126);
  }
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  LogWriter writer(log_path, rotate_bytes);
  writer.Open();
  // One thread reads both pipes, so lines written one after the other keep
  // their order in the log even across stdout and stderr (when both are
  // readable at once, stdout goes first). After the command exited it goes on
  // for kDrainAfterExit at most, for descendants that still hold the pipes.
  std::atomic<bool> exited{false};
  std::thread reader([&] {
    struct Stream {
      int fd;
      const char* name;
      std::string pending;
    } streams[2] = {{out_pipe[0], "stdout", {}}, {err_pipe[0], "stderr", {}}};
    absl::Time give_up_at = absl::InfiniteFuture();
    char buf[8192];
    int open_count = 2;
    while (open_count > 0) {
      if (exited.load() && give_up_at == absl::InfiniteFuture()) {
        give_up_at = absl::Now() + absl::FromChrono(kDrainAfterExit);
      }
      if (absl::Now() >= give_up_at) break;
      pollfd fds[2];
      for (int i = 0; i < 2; ++i) fds[i] = {streams[i].fd, POLLIN, 0};
      const int ready = ::poll(fds, 2, 100);
      if (ready <= 0) continue;
      for (int i = 0; i < 2; ++i) {
        Stream& st = streams[i];
        if (st.fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        const ssize_t n = ::read(st.fd, buf, sizeof(buf));
        if (n <= 0) {
          if (n < 0 && errno == EINTR) continue;
          st.fd = -1;
          --open_count;
          continue;
        }
        st.pending.append(buf, static_cast<size_t>(n));
        size_t start = 0;
        for (size_t nl; (nl = st.pending.find('\n', start)) != std::string::npos; start = nl + 1) {
          writer.Write(st.name, false, std::string_view(st.pending).substr(start, nl - start));
        }
        st.pending.erase(0, start);
        while (st.pending.size() >= kLogChunkBytesMax) {
          writer.Write(st.name, true, std::string_view(st.pending).substr(0, kLogChunkBytesMax));
          st.pending.erase(0, kLogChunkBytesMax);
        }
      }
    }
    for (Stream& st : streams) {
      if (!st.pending.empty()) writer.Write(st.name, true, st.pending);
    }
  });
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  exited = true;
  reader.join();
  int code = 0, sig = 0;
  if (WIFEXITED(status)) code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) {
    sig = WTERMSIG(status);
    code = 128 + sig;
  }
  const std::string tmp = exit_path + ".tmp";
  if (FILE* f = fopen(tmp.c_str(), "w")) {
    fprintf(f, "%d %d %lld\n", code, sig, static_cast<long long>(absl::ToUnixNanos(absl::Now())));
    fflush(f);
    ::fsync(fileno(f));
    fclose(f);
    ::rename(tmp.c_str(), exit_path.c_str());
  }
  return code;
}

std::optional<ExitRecord> ReadExitRecord(const std::string& path) {
  std::ifstream in(path);
  long long nanos = 0;
  ExitRecord r;
  if (!(in >> r.exit_code >> r.signal >> nanos)) return std::nullopt;
  r.finished_at = absl::FromUnixNanos(nanos);
  return r;
}

void SignalGroup(pid_t pgid, int signal) {
  if (pgid > 1) ::kill(-pgid, signal);
}

std::vector<pid_t> GroupMembers(pid_t pgid) {
  std::vector<pid_t> out;
  DIR* dir = ::opendir("/proc");
  if (dir == nullptr) return out;
  while (dirent* e = ::readdir(dir)) {
    int pid = 0;
    if (!absl::SimpleAtoi(e->d_name, &pid)) continue;
    std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
    std::string line;
    if (!std::getline(in, line)) continue;
    const size_t close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::vector<std::string> f = absl::StrSplit(line.substr(close + 2), ' ', absl::SkipEmpty());
    // f[0] state, f[1] ppid, f[2] pgrp
    if (f.size() < 3 || f[0] == "Z" || f[0] == "X") continue;
    int group = 0;
    if (absl::SimpleAtoi(f[2], &group) && group == pgid) out.push_back(pid);
  }
  ::closedir(dir);
  return out;
}

void ReapIfChild(pid_t pid) {
  if (pid > 0) ::waitpid(pid, nullptr, WNOHANG);
}

}  // namespace ganglion::orchestrator::agent
