// etcdserverpb.Cluster: MemberAdd, MemberRemove, MemberUpdate, MemberList,
// MemberPromote.
#include "server/errors.h"
#include "server/services.h"

namespace ganglion::server {

namespace {

void ToEtcd(const peer::Member& m, etcdserverpb::Member* out) {
  out->set_id(m.id());
  out->set_name(m.name());
  for (const std::string& u : m.peer_urls()) out->add_peerurls(u);
  for (const std::string& u : m.client_urls()) out->add_clienturls(u);
  out->set_islearner(m.is_learner());
}

template <typename Response>
void FillMembers(const Server& server, Response* resp) {
  for (const peer::Member& m : server.Members()) ToEtcd(m, resp->add_members());
  server.FillHeader(resp->mutable_header());
}

class ClusterService final : public etcdserverpb::Cluster::CallbackService {
 public:
  explicit ClusterService(Server* server) : server_(server) {}

  grpc::ServerUnaryReactor* MemberAdd(grpc::CallbackServerContext* ctx,
                                      const etcdserverpb::MemberAddRequest* req,
                                      etcdserverpb::MemberAddResponse* resp) override {
    auto* reactor = ctx->DefaultReactor();
    std::vector<std::string> urls(req->peerurls().begin(), req->peerurls().end());
    server_->MemberAdd(std::move(urls), req->islearner(), [this, reactor, resp](auto result) {
      if (!result.ok()) {
        reactor->Finish(ToGrpc(result.status()));
        return;
      }
      ToEtcd(result->first, resp->mutable_member());
      for (const peer::Member& m : result->second) {
        ToEtcd(m, resp->add_members());
      }
      server_->FillHeader(resp->mutable_header());
      reactor->Finish(grpc::Status::OK);
    });
    return reactor;
  }

  grpc::ServerUnaryReactor* MemberRemove(grpc::CallbackServerContext* ctx,
                                         const etcdserverpb::MemberRemoveRequest* req,
                                         etcdserverpb::MemberRemoveResponse* resp) override {
    auto* reactor = ctx->DefaultReactor();
    server_->MemberRemove(req->id(), Finisher(reactor, resp));
    return reactor;
  }

  grpc::ServerUnaryReactor* MemberUpdate(grpc::CallbackServerContext* ctx,
                                         const etcdserverpb::MemberUpdateRequest* req,
                                         etcdserverpb::MemberUpdateResponse* resp) override {
    auto* reactor = ctx->DefaultReactor();
    std::vector<std::string> urls(req->peerurls().begin(), req->peerurls().end());
    server_->MemberUpdate(req->id(), std::move(urls), Finisher(reactor, resp));
    return reactor;
  }

  grpc::ServerUnaryReactor* MemberList(grpc::CallbackServerContext* ctx,
                                       const etcdserverpb::MemberListRequest* /*req*/,
                                       etcdserverpb::MemberListResponse* resp) override {
    auto* reactor = ctx->DefaultReactor();
    FillMembers(*server_, resp);
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  grpc::ServerUnaryReactor* MemberPromote(grpc::CallbackServerContext* ctx,
                                          const etcdserverpb::MemberPromoteRequest* req,
                                          etcdserverpb::MemberPromoteResponse* resp) override {
    auto* reactor = ctx->DefaultReactor();
    server_->MemberPromote(req->id(), Finisher(reactor, resp));
    return reactor;
  }

 private:
  template <typename Response>
  std::function<void(absl::Status)> Finisher(grpc::ServerUnaryReactor* reactor, Response* resp) {
    return [this, reactor, resp](absl::Status s) {
      if (!s.ok()) {
        reactor->Finish(ToGrpc(s));
        return;
      }
      FillMembers(*server_, resp);
      reactor->Finish(grpc::Status::OK);
    };
  }

  Server* const server_;
};

}  // namespace

std::unique_ptr<grpc::Service> MakeClusterService(Server* server) {
  return std::make_unique<ClusterService>(server);
}

}  // namespace ganglion::server
