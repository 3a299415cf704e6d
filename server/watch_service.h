// etcdserverpb.Watch on gRPC's async (completion-queue) API, with its own
// queue and threads. The other services use the callback API; a watch stream
// is different: it lives as long as its client and is idle most of that
// time, so what gRPC keeps per call is what a member pays per watcher. On
// gRPC 1.51 the callback path keeps ~3.6 KB more per stream than this one
// (docs/figures.md, "Watch streams on the async API").
#pragma once

#include <grpcpp/grpcpp.h>

#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "server/server.h"

namespace ganglion::server {

class WatchCall;  // one stream (watch_service.cc)

class WatchService {
 public:
  // Completion-queue threads, and Watch calls kept requested ahead of the
  // clients (each arrival requests the next, so a burst is only serialized
  // through these).
  static constexpr int kThreads = 2;
  static constexpr int kRequestsAhead = 4;

  explicit WatchService(Server* server);
  ~WatchService();  // Stop()s
  WatchService(const WatchService&) = delete;
  WatchService& operator=(const WatchService&) = delete;

  // Adds the service and its completion queue to `builder`, once, before
  // BuildAndStart.
  void AddTo(grpc::ServerBuilder* builder);
  // Serves streams; call once the grpc::Server is built and started.
  void Start();
  // Drains the queue and joins its threads. Call after the grpc::Server's
  // Shutdown (which ends every stream); idempotent.
  void Stop();

 private:
  friend class WatchCall;

  void CallCreated();
  void CallDeleted();
  void Register(WatchCall* call);
  void Unregister(WatchCall* call);
  // Handles every event of the queue until it is shut down and drained.
  void Poll();
  // Every election timeout: streams that asked for a leader end with "no
  // leader" when the member has none (as etcd), and the hub's counters go
  // to the member's metrics.
  void MonitorLoop();

  Server* const server_;
  etcdserverpb::Watch::AsyncService service_;
  std::unique_ptr<grpc::ServerCompletionQueue> cq_;  // set by AddTo
  std::vector<std::thread> pollers_;
  bool stopped_ = false;  // Stop ran

  std::mutex mu_;
  std::condition_variable cv_;             // with mu_
  absl::flat_hash_set<WatchCall*> calls_;  // guarded by mu_; accepted streams
  int live_calls_ = 0;                     // guarded by mu_; requested or accepted
  bool stop_monitor_ = false;              // guarded by mu_
  std::thread monitor_;
};

}  // namespace ganglion::server
