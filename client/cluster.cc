#include "client/cluster.h"

#include "absl/strings/str_cat.h"

namespace ganglion::client {

using Done = std::function<void(grpc::Status)>;
namespace pb = etcdserverpb;

absl::StatusOr<pb::MemberListResponse> ClusterClient::MemberList() {
  auto req = std::make_shared<pb::MemberListRequest>();
  return CallBlocking<pb::MemberListResponse>(
      endpoints_, Idempotency::kIdempotent,
      [req](const Stubs& s, grpc::ClientContext* ctx, pb::MemberListResponse* resp, Done d) {
        s.cluster->async()->MemberList(ctx, req.get(), resp, std::move(d));
      });
}

absl::StatusOr<pb::MemberAddResponse> ClusterClient::MemberAdd(
    const std::vector<std::string>& peer_urls, bool is_learner) {
  auto req = std::make_shared<pb::MemberAddRequest>();
  for (const std::string& url : peer_urls) req->add_peerurls(url);
  req->set_islearner(is_learner);
  return CallBlocking<pb::MemberAddResponse>(
      endpoints_, Idempotency::kMutation,
      [req](const Stubs& s, grpc::ClientContext* ctx, pb::MemberAddResponse* resp, Done d) {
        s.cluster->async()->MemberAdd(ctx, req.get(), resp, std::move(d));
      });
}

absl::StatusOr<pb::MemberRemoveResponse> ClusterClient::MemberRemove(uint64_t id) {
  auto req = std::make_shared<pb::MemberRemoveRequest>();
  req->set_id(id);
  return CallBlocking<pb::MemberRemoveResponse>(
      endpoints_, Idempotency::kMutation,
      [req](const Stubs& s, grpc::ClientContext* ctx, pb::MemberRemoveResponse* resp, Done d) {
        s.cluster->async()->MemberRemove(ctx, req.get(), resp, std::move(d));
      });
}

absl::StatusOr<pb::MemberUpdateResponse> ClusterClient::MemberUpdate(
    uint64_t id, const std::vector<std::string>& peer_urls) {
  auto req = std::make_shared<pb::MemberUpdateRequest>();
  req->set_id(id);
  for (const std::string& url : peer_urls) req->add_peerurls(url);
  // Setting the same peer URLs twice leaves the same state.
  return CallBlocking<pb::MemberUpdateResponse>(
      endpoints_, Idempotency::kIdempotent,
      [req](const Stubs& s, grpc::ClientContext* ctx, pb::MemberUpdateResponse* resp, Done d) {
        s.cluster->async()->MemberUpdate(ctx, req.get(), resp, std::move(d));
      });
}

absl::StatusOr<pb::MemberPromoteResponse> ClusterClient::MemberPromote(uint64_t id) {
  auto req = std::make_shared<pb::MemberPromoteRequest>();
  req->set_id(id);
  return CallBlocking<pb::MemberPromoteResponse>(
      endpoints_, Idempotency::kMutation,
      [req](const Stubs& s, grpc::ClientContext* ctx, pb::MemberPromoteResponse* resp, Done d) {
        s.cluster->async()->MemberPromote(ctx, req.get(), resp, std::move(d));
      });
}

absl::StatusOr<int> MaintenanceClient::IndexOf(const std::string& endpoint) const {
  const int i = endpoints_->Find(endpoint);
  if (i < 0) return absl::InvalidArgumentError(absl::StrCat("client: unknown endpoint ", endpoint));
  return i;
}

absl::StatusOr<pb::StatusResponse> MaintenanceClient::Status(const std::string& endpoint) {
  absl::StatusOr<int> i = IndexOf(endpoint);
  if (!i.ok()) return i.status();
  auto req = std::make_shared<pb::StatusRequest>();
  return CallBlocking<pb::StatusResponse>(
      endpoints_, Idempotency::kIdempotent,
      [req](const Stubs& s, grpc::ClientContext* ctx, pb::StatusResponse* resp, Done d) {
        s.maintenance->async()->Status(ctx, req.get(), resp, std::move(d));
      },
      *i);
}

absl::StatusOr<pb::DefragmentResponse> MaintenanceClient::Defragment(const std::string& endpoint) {
  absl::StatusOr<int> i = IndexOf(endpoint);
  if (!i.ok()) return i.status();
  auto req = std::make_shared<pb::DefragmentRequest>();
  return CallBlocking<pb::DefragmentResponse>(
      endpoints_, Idempotency::kIdempotent,
      [req](const Stubs& s, grpc::ClientContext* ctx, pb::DefragmentResponse* resp, Done d) {
        s.maintenance->async()->Defragment(ctx, req.get(), resp, std::move(d));
      },
      *i);
}

absl::StatusOr<pb::HashKVResponse> MaintenanceClient::HashKV(const std::string& endpoint,
                                                             int64_t revision) {
  absl::StatusOr<int> i = IndexOf(endpoint);
  if (!i.ok()) return i.status();
  auto req = std::make_shared<pb::HashKVRequest>();
  req->set_revision(revision);
  return CallBlocking<pb::HashKVResponse>(
      endpoints_, Idempotency::kIdempotent,
      [req](const Stubs& s, grpc::ClientContext* ctx, pb::HashKVResponse* resp, Done d) {
        s.maintenance->async()->HashKV(ctx, req.get(), resp, std::move(d));
      },
      *i);
}

absl::StatusOr<pb::AlarmResponse> MaintenanceClient::AlarmList() {
  auto req = std::make_shared<pb::AlarmRequest>();
  req->set_action(pb::AlarmRequest::GET);
  return CallBlocking<pb::AlarmResponse>(
      endpoints_, Idempotency::kIdempotent,
      [req](const Stubs& s, grpc::ClientContext* ctx, pb::AlarmResponse* resp, Done d) {
        s.maintenance->async()->Alarm(ctx, req.get(), resp, std::move(d));
      });
}

absl::StatusOr<pb::AlarmResponse> MaintenanceClient::AlarmDisarm(uint64_t member_id,
                                                                 pb::AlarmType alarm) {
  auto req = std::make_shared<pb::AlarmRequest>();
  req->set_action(pb::AlarmRequest::DEACTIVATE);
  req->set_memberid(member_id);
  req->set_alarm(alarm);
  // Disarming an alarm twice leaves it disarmed.
  return CallBlocking<pb::AlarmResponse>(
      endpoints_, Idempotency::kIdempotent,
      [req](const Stubs& s, grpc::ClientContext* ctx, pb::AlarmResponse* resp, Done d) {
        s.maintenance->async()->Alarm(ctx, req.get(), resp, std::move(d));
      });
}

absl::Status MaintenanceClient::Snapshot(
    const std::string& endpoint, const std::function<absl::Status(std::string_view chunk)>& sink,
    absl::Duration timeout) {
  absl::StatusOr<int> i = IndexOf(endpoint);
  if (!i.ok()) return i.status();
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  AddRequireLeader(&ctx);
  pb::SnapshotRequest req;
  std::unique_ptr<grpc::ClientReader<pb::SnapshotResponse>> reader =
      endpoints_->stubs(*i).maintenance->Snapshot(&ctx, req);
  pb::SnapshotResponse chunk;
  absl::Status sunk = absl::OkStatus();
  while (sunk.ok() && reader->Read(&chunk)) sunk = sink(chunk.blob());
  if (!sunk.ok()) ctx.TryCancel();
  grpc::Status finished = reader->Finish();
  if (!sunk.ok()) return sunk;
  return ToAbsl(finished);
}

absl::StatusOr<pb::MoveLeaderResponse> MaintenanceClient::MoveLeader(uint64_t target_id) {
  int leader = -1;
  for (int i = 0; i < endpoints_->size() && leader < 0; ++i) {
    absl::StatusOr<pb::StatusResponse> status = Status(endpoints_->address(i));
    if (status.ok() && status->leader() != 0 && status->leader() == status->header().member_id()) {
      leader = i;
    }
  }
  if (leader < 0) return absl::UnavailableError("client: no endpoint is the leader");
  auto req = std::make_shared<pb::MoveLeaderRequest>();
  req->set_targetid(target_id);
  return CallBlocking<pb::MoveLeaderResponse>(
      endpoints_, Idempotency::kMutation,
      [req](const Stubs& s, grpc::ClientContext* ctx, pb::MoveLeaderResponse* resp, Done d) {
        s.maintenance->async()->MoveLeader(ctx, req.get(), resp, std::move(d));
      },
      leader);
}

}  // namespace ganglion::client
