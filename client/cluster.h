// Membership and maintenance calls: list, add, remove, update and promote
// members; a member's status, alarms, defragmentation, hashes and leadership
// transfer. Calls addressed to one member (Status, Defragment, HashKV) go to
// that member only and must never fail over to another, since the answer
// would describe the wrong member.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/endpoints.h"

namespace ganglion::client {

class ClusterClient {
 public:
  explicit ClusterClient(std::shared_ptr<EndpointSet> endpoints)
      : endpoints_(std::move(endpoints)) {}

  absl::StatusOr<etcdserverpb::MemberListResponse> MemberList();
  absl::StatusOr<etcdserverpb::MemberAddResponse> MemberAdd(
      const std::vector<std::string>& peer_urls, bool is_learner = false);
  absl::StatusOr<etcdserverpb::MemberRemoveResponse> MemberRemove(uint64_t id);
  absl::StatusOr<etcdserverpb::MemberUpdateResponse> MemberUpdate(
      uint64_t id, const std::vector<std::string>& peer_urls);
  absl::StatusOr<etcdserverpb::MemberPromoteResponse> MemberPromote(uint64_t id);

 private:
  std::shared_ptr<EndpointSet> endpoints_;
};

class MaintenanceClient {
 public:
  explicit MaintenanceClient(std::shared_ptr<EndpointSet> endpoints)
      : endpoints_(std::move(endpoints)) {}

  // `endpoint` must be one of the Client's endpoints ("host:port").
  absl::StatusOr<etcdserverpb::StatusResponse> Status(const std::string& endpoint);
  absl::StatusOr<etcdserverpb::DefragmentResponse> Defragment(const std::string& endpoint);
  absl::StatusOr<etcdserverpb::HashKVResponse> HashKV(const std::string& endpoint,
                                                      int64_t revision);
  absl::StatusOr<etcdserverpb::AlarmResponse> AlarmList();
  // Disarms `alarm` on member `member_id` (0: every member).
  absl::StatusOr<etcdserverpb::AlarmResponse> AlarmDisarm(uint64_t member_id,
                                                          etcdserverpb::AlarmType alarm);
  // Streams a snapshot of `endpoint`'s store to `sink`, chunk by chunk; a
  // sink error stops the transfer and is returned. Bounded by `timeout`.
  absl::Status Snapshot(const std::string& endpoint,
                        const std::function<absl::Status(std::string_view chunk)>& sink,
                        absl::Duration timeout = absl::Minutes(5));
  // Hands leadership to member `target_id`. Only the leader accepts this,
  // so the call finds it first (by asking every endpoint's Status).
  absl::StatusOr<etcdserverpb::MoveLeaderResponse> MoveLeader(uint64_t target_id);

 private:
  absl::StatusOr<int> IndexOf(const std::string& endpoint) const;
  std::shared_ptr<EndpointSet> endpoints_;
};

}  // namespace ganglion::client
