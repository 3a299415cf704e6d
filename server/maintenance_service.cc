// etcdserverpb.Maintenance: Alarm, Status, Defragment, Hash, HashKV,
// Snapshot, MoveLeader.
#include <spdlog/spdlog.h>

#include <atomic>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_format.h"
#include "server/errors.h"
#include "server/services.h"
#include "server/snapshot_file.h"

namespace ganglion::server {

namespace {

namespace fs = std::filesystem;

// Streams one snapshot file: packs a fresh checkpoint, then writes it in
// chunks, one in flight at a time (gRPC's flow control paces it).
class SnapshotStream final : public grpc::ServerWriteReactor<etcdserverpb::SnapshotResponse> {
 public:
  static constexpr size_t kChunkBytes = 32 * 1024;

  SnapshotStream(Server* server, uint64_t seq) : server_(server) {
    base_ = absl::StrFormat("%s/snap/export-%d-%d", server->config().data_dir, ::getpid(), seq);
    std::error_code ec;
    fs::remove_all(base_, ec);
    auto index = server->CheckpointTo(base_);
    if (!index.ok()) {
      Finish(ToGrpc(index.status()));
      return;
    }
    file_ = base_ + ".snapshot";
    if (auto s = PackSnapshot(base_, file_); !s.ok()) {
      Finish(ToGrpc(s));
      return;
    }
    fs::remove_all(base_, ec);
    remaining_ = fs::file_size(file_, ec);
    in_.open(file_, std::ios::binary);
    if (ec || !in_) {
      Finish(grpc::Status(grpc::StatusCode::INTERNAL, "cannot read snapshot file"));
      return;
    }
    spdlog::info("event=snapshot_stream_start applied_index={} bytes={}", *index, remaining_);
    server_->FillHeader(resp_.mutable_header());
    NextWrite();
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "snapshot stream cancelled"));
      return;
    }
    resp_.clear_header();  // only the first message carries it
    NextWrite();
  }

  void OnDone() override {
    std::error_code ec;
    fs::remove_all(base_, ec);
    if (!file_.empty()) fs::remove(file_, ec);
    delete this;
  }

 private:
  void NextWrite() {
    if (remaining_ == 0) {
      Finish(grpc::Status::OK);
      return;
    }
    const size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, kChunkBytes));
    std::string blob(n, '\0');
    in_.read(blob.data(), static_cast<std::streamsize>(n));
    if (static_cast<size_t>(in_.gcount()) != n) {
      Finish(grpc::Status(grpc::StatusCode::INTERNAL, "short read of snapshot file"));
      return;
    }
    remaining_ -= n;
    resp_.set_blob(std::move(blob));
    resp_.set_remaining_bytes(remaining_);
    StartWrite(&resp_);
  }

  Server* const server_;
  std::string base_;
  std::string file_;
  std::ifstream in_;
  uint64_t remaining_ = 0;
  etcdserverpb::SnapshotResponse resp_;
};

class MaintenanceService final : public etcdserverpb::Maintenance::CallbackService {
 public:
  explicit MaintenanceService(Server* server) : server_(server) {}

  grpc::ServerUnaryReactor* Alarm(grpc::CallbackServerContext* ctx,
                                  const etcdserverpb::AlarmRequest* req,
                                  etcdserverpb::AlarmResponse* resp) override {
    auto* reactor = ctx->DefaultReactor();
    server_->Alarm(*req, [reactor, resp](absl::StatusOr<etcdserverpb::AlarmResponse> r) {
      if (!r.ok()) {
        reactor->Finish(ToGrpc(r.status()));
        return;
      }
      *resp = *std::move(r);
      reactor->Finish(grpc::Status::OK);
    });
    return reactor;
  }

  grpc::ServerUnaryReactor* Status(grpc::CallbackServerContext* ctx,
                                   const etcdserverpb::StatusRequest* /*req*/,
                                   etcdserverpb::StatusResponse* resp) override {
    auto* reactor = ctx->DefaultReactor();
    MemberStatus s = server_->Status();
    server_->FillHeader(resp->mutable_header(), s.revision);
    resp->set_version(kEtcdApiVersion);
    resp->set_dbsize(static_cast<int64_t>(s.db_size_bytes));
    resp->set_dbsizeinuse(static_cast<int64_t>(s.db_size_bytes));
    resp->set_leader(s.leader);
    resp->set_raftindex(s.raft_index);
    resp->set_raftterm(s.raft_term);
    resp->set_raftappliedindex(s.raft_applied_index);
    resp->set_islearner(s.is_learner);
    for (const etcdserverpb::AlarmMember& a : server_->Alarms()) {
      if (a.alarm() == etcdserverpb::NOSPACE)
        resp->add_errors("memberID:" + std::to_string(a.memberid()) + " alarm:NOSPACE ");
    }
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  grpc::ServerUnaryReactor* Defragment(grpc::CallbackServerContext* ctx,
                                       const etcdserverpb::DefragmentRequest* /*req*/,
                                       etcdserverpb::DefragmentResponse* resp) override {
    auto* reactor = ctx->DefaultReactor();
    server_->Defragment();
    server_->FillHeader(resp->mutable_header());
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  grpc::ServerUnaryReactor* Hash(grpc::CallbackServerContext* ctx,
                                 const etcdserverpb::HashRequest* /*req*/,
                                 etcdserverpb::HashResponse* resp) override {
    auto* reactor = ctx->DefaultReactor();
    auto h = server_->HashKV(0);
    if (!h.ok()) {
      reactor->Finish(ToGrpc(h.status()));
      return reactor;
    }
    server_->FillHeader(resp->mutable_header(), h->current_revision);
    resp->set_hash(h->hash);
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  grpc::ServerUnaryReactor* HashKV(grpc::CallbackServerContext* ctx,
                                   const etcdserverpb::HashKVRequest* req,
                                   etcdserverpb::HashKVResponse* resp) override {
    auto* reactor = ctx->DefaultReactor();
    auto h = server_->HashKV(req->revision());
    if (!h.ok()) {
      reactor->Finish(ToGrpc(h.status()));
      return reactor;
    }
    server_->FillHeader(resp->mutable_header(), h->current_revision);
    resp->set_hash(h->hash);
    resp->set_compact_revision(h->compact_revision);
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  grpc::ServerWriteReactor<etcdserverpb::SnapshotResponse>* Snapshot(
      grpc::CallbackServerContext* /*ctx*/, const etcdserverpb::SnapshotRequest* /*req*/) override {
    return new SnapshotStream(server_, ++snapshot_seq_);
  }

  grpc::ServerUnaryReactor* MoveLeader(grpc::CallbackServerContext* ctx,
                                       const etcdserverpb::MoveLeaderRequest* req,
                                       etcdserverpb::MoveLeaderResponse* resp) override {
    auto* reactor = ctx->DefaultReactor();
    server_->MoveLeader(req->targetid(), [this, reactor, resp](absl::Status s) {
      if (!s.ok()) {
        reactor->Finish(ToGrpc(s));
        return;
      }
      server_->FillHeader(resp->mutable_header());
      reactor->Finish(grpc::Status::OK);
    });
    return reactor;
  }

 private:
  Server* const server_;
  std::atomic<uint64_t> snapshot_seq_{0};
};

}  // namespace

std::unique_ptr<grpc::Service> MakeKvService(Server* server);
std::unique_ptr<grpc::Service> MakeClusterService(Server* server);
std::unique_ptr<grpc::Service> MakeLeaseService(Server* server);
std::unique_ptr<grpc::Service> MakeLockService(Server* server);
std::unique_ptr<grpc::Service> MakeElectionService(Server* server);

std::vector<std::unique_ptr<grpc::Service>> MakeEtcdServices(Server* server) {
  std::vector<std::unique_ptr<grpc::Service>> services;
  services.push_back(MakeKvService(server));
  services.push_back(MakeClusterService(server));
  services.push_back(MakeLeaseService(server));
  services.push_back(MakeLockService(server));
  services.push_back(MakeElectionService(server));
  services.push_back(std::make_unique<MaintenanceService>(server));
  return services;
}

}  // namespace ganglion::server
