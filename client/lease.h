// Leases: grant, revoke, time-to-live, list, and keep-alive managed in the
// background. One stream per Client carries every kept-alive lease's renewals
// and moves to another member when its member fails. It must never report a
// lease alive past the moment it may have expired: a lease counts as lost
// when its TTL elapses after the last renewal request the server answered.
#pragma once

#include <atomic>
#include <functional>
#include <memory>

#include "absl/status/statusor.h"
#include "client/endpoints.h"

namespace ganglion::client {

class KeepAliveLoop;

// Keeps one lease alive while it exists. Destroying it stops the renewals
// (the lease then expires at its TTL; Revoke ends it at once).
class KeepAliveHandle {
 public:
  KeepAliveHandle(std::shared_ptr<KeepAliveLoop> loop, int64_t lease_id,
                  std::shared_ptr<std::atomic<bool>> lost);
  ~KeepAliveHandle();
  KeepAliveHandle(const KeepAliveHandle&) = delete;
  KeepAliveHandle& operator=(const KeepAliveHandle&) = delete;

  int64_t lease_id() const { return lease_id_; }
  bool lost() const { return lost_->load(); }

 private:
  std::shared_ptr<KeepAliveLoop> loop_;
  const int64_t lease_id_;
  std::shared_ptr<std::atomic<bool>> lost_;
};

// Why a kept-alive lease was lost, given to the on_lost callback.
using LeaseLostCallback = std::function<void(absl::Status)>;

class LeaseClient {
 public:
  explicit LeaseClient(std::shared_ptr<EndpointSet> endpoints);
  ~LeaseClient();  // stops the keep-alive threads; handles that outlive it renew nothing

  absl::StatusOr<etcdserverpb::LeaseGrantResponse> Grant(int64_t ttl_s, int64_t id = 0);
  absl::StatusOr<etcdserverpb::LeaseRevokeResponse> Revoke(int64_t id);
  absl::StatusOr<etcdserverpb::LeaseTimeToLiveResponse> TimeToLive(int64_t id, bool keys = false);
  absl::StatusOr<etcdserverpb::LeaseLeasesResponse> Leases();
  // One renewal, outside the background loop.
  absl::StatusOr<etcdserverpb::LeaseKeepAliveResponse> KeepAliveOnce(int64_t id);

  // Renews lease `id` every TTL/3 until the handle is destroyed. `on_lost`
  // runs at most once, on the keep-alive thread, when the lease is gone
  // (the server answered TTL <= 0) or its TTL ran out without a renewal; it
  // must not block.
  absl::StatusOr<std::unique_ptr<KeepAliveHandle>> KeepAlive(int64_t id,
                                                             LeaseLostCallback on_lost = {});

 private:
  std::shared_ptr<EndpointSet> endpoints_;
  std::shared_ptr<KeepAliveLoop> loop_;  // started by the first KeepAlive
  std::mutex mu_;                        // guards loop_ creation
};

}  // namespace ganglion::client
