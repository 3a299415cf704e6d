// etcdserverpb.KV: Range, Put, DeleteRange, Txn, Compact.
#include <thread>

#include "server/errors.h"
#include "server/services.h"

namespace ganglion::server {

bool RequiresLeader(const grpc::ServerContextBase* ctx) {
  const auto& md = ctx->client_metadata();
  auto it = md.find("hasleader");
  return it != md.end() && it->second == "true";
}

absl::Status CheckRequireLeader(const grpc::ServerContextBase* ctx, const Server& server) {
  if (RequiresLeader(ctx) && !server.HasLeader()) return NoLeader();
  return absl::OkStatus();
}

namespace {

class KvService final : public etcdserverpb::KV::CallbackService {
 public:
  explicit KvService(Server* server) : server_(server) {}

  grpc::ServerUnaryReactor* Range(grpc::CallbackServerContext* ctx,
                                  const etcdserverpb::RangeRequest* req,
                                  etcdserverpb::RangeResponse* resp) override {
    auto* reactor = ctx->DefaultReactor();
    if (auto s = Admit(ctx, /*serializable_read=*/req->serializable()); !s.ok()) {
      reactor->Finish(ToGrpc(s));
      return reactor;
    }
    server_->Range(*req, [reactor, resp](absl::StatusOr<etcdserverpb::RangeResponse> r) {
      if (!r.ok()) {
        reactor->Finish(ToGrpc(r.status()));
        return;
      }
      *resp = *std::move(r);
      reactor->Finish(grpc::Status::OK);
    });
    return reactor;
  }

  grpc::ServerUnaryReactor* Put(grpc::CallbackServerContext* ctx,
                                const etcdserverpb::PutRequest* req,
                                etcdserverpb::PutResponse* resp) override {
    internal::Request r;
    *r.mutable_put() = *req;
    return Write(ctx, std::move(r), resp);
  }

  grpc::ServerUnaryReactor* DeleteRange(grpc::CallbackServerContext* ctx,
                                        const etcdserverpb::DeleteRangeRequest* req,
                                        etcdserverpb::DeleteRangeResponse* resp) override {
    internal::Request r;
    *r.mutable_delete_range() = *req;
    return Write(ctx, std::move(r), resp);
  }

  grpc::ServerUnaryReactor* Txn(grpc::CallbackServerContext* ctx,
                                const etcdserverpb::TxnRequest* req,
                                etcdserverpb::TxnResponse* resp) override {
    internal::Request r;
    *r.mutable_txn() = *req;
    return Write(ctx, std::move(r), resp);
  }

  grpc::ServerUnaryReactor* Compact(grpc::CallbackServerContext* ctx,
                                    const etcdserverpb::CompactionRequest* req,
                                    etcdserverpb::CompactionResponse* resp) override {
    internal::Request r;
    *r.mutable_compaction() = *req;
    return Write(ctx, std::move(r), resp);
  }

 private:
  absl::Status Admit(const grpc::CallbackServerContext* ctx, bool serializable_read) const {
    if (auto s = CheckRequireLeader(ctx, *server_); !s.ok()) return s;
    // A learner serves serializable reads only, as in etcd.
    if (!serializable_read && server_->IsLearner()) {
      return absl::UnavailableError(kErrNotSupportedForLearner);
    }
    return absl::OkStatus();
  }

  template <typename Response>
  grpc::ServerUnaryReactor* Write(grpc::CallbackServerContext* ctx, internal::Request req,
                                  Response* resp) {
    auto* reactor = ctx->DefaultReactor();
    if (auto s = Admit(ctx, false); !s.ok()) {
      reactor->Finish(ToGrpc(s));
      return reactor;
    }
    const bool physical = req.has_compaction() && req.compaction().physical();
    server_->Write(std::move(req), [this, reactor, resp, physical](Outcome o) {
      if (!o.ok()) {
        reactor->Finish(ToGrpc(o.status()));
        return;
      }
      *resp = std::get<Response>(*o->kv);
      server_->FillHeader(resp->mutable_header(), resp->header().revision());
      if (!physical) {
        reactor->Finish(grpc::Status::OK);
        return;
      }
      // --physical: answer once the compacted history is gone. Off the
      // apply thread, which must not wait for the background removal.
      std::thread([this, reactor] {
        server_->WaitForPhysicalCompaction();
        reactor->Finish(grpc::Status::OK);
      }).detach();
    });
    return reactor;
  }

  Server* const server_;
};

}  // namespace

std::unique_ptr<grpc::Service> MakeKvService(Server* server) {
  return std::make_unique<KvService>(server);
}

}  // namespace ganglion::server
