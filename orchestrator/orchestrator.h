// The orchestrator inside one `ganglion` member: the reconciler host with the
// built-in reconcilers (scheduler, ReplicaSet, Deployment, ...), reading and
// writing this member's own store through an in-process gRPC channel (no
// socket, no network hop: the same KV and Watch services, proposal path and
// watch hub as any client). The member tells it when it starts and stops
// leading; on followers the reconcilers never run.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "orchestrator/reconcile/host.h"

namespace grpc {
class Channel;
}

namespace ganglion::orchestrator {

class EtcdObjectStore;
class ApiHandler;

// Every built-in reconciler, in start order (orchestrator/reconcilers.cc).
std::vector<ReconcilerSpec> BuiltinReconcilers();

struct OrchestratorOptions {
  // In-process channel into this member's etcd services.
  std::shared_ptr<grpc::Channel> channel;
  // "all", "none" (or ""), or reconciler names separated by commas.
  std::string reconcilers = "all";
};

class Orchestrator {
 public:
  static absl::StatusOr<std::unique_ptr<Orchestrator>> Start(OrchestratorOptions options);
  ~Orchestrator();  // Stop()s
  Orchestrator(const Orchestrator&) = delete;
  Orchestrator& operator=(const Orchestrator&) = delete;

  // From the member's leadership observer; never blocks.
  void SetLeading(bool leading, uint64_t term) {
    if (host_) host_->SetLeading(leading, term);
  }
  // Stops the reconcilers and closes the store: the channel is unused after.
  void Stop();
  HostStats stats() const { return host_ ? host_->stats() : HostStats{}; }
  const std::vector<std::string>& reconciler_names() const { return names_; }

 private:
  Orchestrator() = default;

  // All null when no reconciler is chosen: then nothing watches the store.
  std::unique_ptr<EtcdObjectStore> store_;
  std::unique_ptr<ApiHandler> api_;
  std::unique_ptr<ReconcilerHost> host_;
  std::vector<std::string> names_;
};

}  // namespace ganglion::orchestrator
