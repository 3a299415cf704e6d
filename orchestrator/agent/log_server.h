// The agent's HTTP endpoint for container logs:
//   GET /containerLogs/<namespace>/<pod>/<container>?follow=&previous=
//       &tailLines=&sinceSeconds=&sinceTime=&timestamps=&limitBytes=
// Answers text/plain; a follow stream is delimited by closing the connection
// and ends when the container's run ends. A thread per connection, at most
// kConnectionsMax at once (more get 503); a follow polls its file every
// kFollowPoll and ends if its client went away.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace ganglion::orchestrator::agent {

inline constexpr int kConnectionsMax = 64;
inline constexpr absl::Duration kFollowPoll = absl::Milliseconds(200);

// What the agent knows of one container's run for a log request.
struct LogSource {
  int http_code = 200;  // else: the error to answer with `message`
  std::string message;
  std::string dir;  // the container's log folder
  int run = 0;      // the run to read
  // Whether the run is still going (a follow waits for more output).
  std::function<bool()> still_running;
};
using LogLookup = std::function<LogSource(const std::string& namespace_name, const std::string& pod,
                                          const std::string& container, bool previous)>;

class LogServer {
 public:
  // Binds "host:port" (port 0 picks one) and serves until Stop().
  static absl::StatusOr<std::unique_ptr<LogServer>> Start(const std::string& listen,
                                                          LogLookup lookup);
  ~LogServer();
  void Stop();
  int port() const { return port_; }

 private:
  LogServer(int fd, int port, LogLookup lookup);
  void AcceptLoop();
  void Serve(int fd);

  const int listen_fd_;
  const int port_;
  const LogLookup lookup_;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};  // bounded by kConnectionsMax
  std::thread accept_thread_;
  std::mutex mu_;
  std::vector<std::thread> threads_;  // guarded by mu_; joined at Stop
};

}  // namespace ganglion::orchestrator::agent
