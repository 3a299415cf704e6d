// etcdserverpb.Lease: LeaseGrant, LeaseRevoke, LeaseKeepAlive (a stream),
// LeaseTimeToLive, LeaseLeases.
#include <deque>
#include <mutex>

#include "server/errors.h"
#include "server/services.h"

namespace ganglion::server {

namespace {

// One keep-alive stream: every request renews on the leader (through
// Server::LeaseRenew) and is answered in order of completion, one write in
// flight. It finishes once the client stopped sending, every renewal came
// back and every answer is written.
class KeepAliveStream final : public grpc::ServerBidiReactor<etcdserverpb::LeaseKeepAliveRequest,
                                                             etcdserverpb::LeaseKeepAliveResponse> {
 public:
  // Answers queued beyond this end the stream: the client is not reading.
  static constexpr size_t kQueuedMax = 1024;

  explicit KeepAliveStream(Server* server) : server_(server) { StartRead(&req_); }

  void OnReadDone(bool ok) override {
    std::unique_lock lock(mu_);
    if (!ok) {
      reading_done_ = true;
      MaybeFinishLocked();
      return;
    }
    const int64_t id = req_.id();
    pending_++;
    lock.unlock();
    server_->LeaseRenew(id, [this, id](absl::StatusOr<int64_t> ttl) {
      std::lock_guard lock(mu_);
      pending_--;
      if (!ttl.ok() && ttl.status().code() != absl::StatusCode::kNotFound) {
        if (error_.ok()) error_ = ttl.status();
      } else if (queue_.size() >= kQueuedMax) {
        if (error_.ok()) error_ = absl::ResourceExhaustedError(kErrTooManyRequests);
      } else {
        etcdserverpb::LeaseKeepAliveResponse resp;
        server_->FillHeader(resp.mutable_header());
        resp.set_id(id);
        // An unknown (expired or revoked) lease answers TTL 0, as etcd does.
        resp.set_ttl(ttl.ok() ? *ttl : 0);
        queue_.push_back(std::move(resp));
        MaybeWriteLocked();
      }
      MaybeFinishLocked();
    });
    lock.lock();
    if (error_.ok() && !finished_) StartRead(&req_);
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard lock(mu_);
    writing_ = false;
    queue_.pop_front();
    if (!ok) {
      reading_done_ = true;
      if (error_.ok()) error_ = absl::CancelledError("keep-alive stream closed");
    }
    MaybeWriteLocked();
    MaybeFinishLocked();
  }

  void OnDone() override { delete this; }

 private:
  void MaybeWriteLocked() {
    if (writing_ || queue_.empty() || finished_) return;
    writing_ = true;
    StartWrite(&queue_.front());
  }
  void MaybeFinishLocked() {
    if (finished_ || pending_ > 0 || writing_) return;
    if (!error_.ok() || (reading_done_ && queue_.empty())) {
      finished_ = true;
      Finish(ToGrpc(error_));
    }
  }

  Server* const server_;
  etcdserverpb::LeaseKeepAliveRequest req_;
  std::mutex mu_;
  std::deque<etcdserverpb::LeaseKeepAliveResponse> queue_;  // guarded by mu_; <= kQueuedMax
  size_t pending_ = 0;                                      // guarded by mu_
  bool writing_ = false;                                    // guarded by mu_
  bool reading_done_ = false;                               // guarded by mu_
  bool finished_ = false;                                   // guarded by mu_
  absl::Status error_;                                      // guarded by mu_
};

class LeaseService final : public etcdserverpb::Lease::CallbackService {
 public:
  explicit LeaseService(Server* server) : server_(server) {}

  grpc::ServerUnaryReactor* LeaseGrant(grpc::CallbackServerContext* ctx,
                                       const etcdserverpb::LeaseGrantRequest* req,
                                       etcdserverpb::LeaseGrantResponse* resp) override {
    auto* reactor = ctx->DefaultReactor();
    if (auto s = CheckRequireLeader(ctx, *server_); !s.ok()) {
      reactor->Finish(ToGrpc(s));
      return reactor;
    }
    server_->LeaseGrant(req->id(), req->ttl(), [this, reactor, resp](auto granted) {
      if (!granted.ok()) {
        reactor->Finish(ToGrpc(granted.status()));
        return;
      }
      server_->FillHeader(resp->mutable_header());
      resp->set_id(granted->first);
      resp->set_ttl(granted->second);
      reactor->Finish(grpc::Status::OK);
    });
    return reactor;
  }

  grpc::ServerUnaryReactor* LeaseRevoke(grpc::CallbackServerContext* ctx,
                                        const etcdserverpb::LeaseRevokeRequest* req,
                                        etcdserverpb::LeaseRevokeResponse* resp) override {
    auto* reactor = ctx->DefaultReactor();
    if (auto s = CheckRequireLeader(ctx, *server_); !s.ok()) {
      reactor->Finish(ToGrpc(s));
      return reactor;
    }
    server_->LeaseRevoke(req->id(), [this, reactor, resp](absl::Status s) {
      if (!s.ok()) {
        reactor->Finish(ToGrpc(s));
        return;
      }
      server_->FillHeader(resp->mutable_header());
      reactor->Finish(grpc::Status::OK);
    });
    return reactor;
  }

  grpc::ServerBidiReactor<etcdserverpb::LeaseKeepAliveRequest,
                          etcdserverpb::LeaseKeepAliveResponse>*
  LeaseKeepAlive(grpc::CallbackServerContext* ctx) override {
    if (auto s = CheckRequireLeader(ctx, *server_); !s.ok()) {
      class Refused final : public grpc::ServerBidiReactor<etcdserverpb::LeaseKeepAliveRequest,
                                                           etcdserverpb::LeaseKeepAliveResponse> {
       public:
        explicit Refused(const absl::Status& s) { Finish(ToGrpc(s)); }
        void OnDone() override { delete this; }
      };
      return new Refused(s);
    }
    return new KeepAliveStream(server_);
  }

  grpc::ServerUnaryReactor* LeaseTimeToLive(grpc::CallbackServerContext* ctx,
                                            const etcdserverpb::LeaseTimeToLiveRequest* req,
                                            etcdserverpb::LeaseTimeToLiveResponse* resp) override {
    auto* reactor = ctx->DefaultReactor();
    const int64_t id = req->id();
    server_->LeaseTimeToLive(id, req->keys(),
                             [this, reactor, resp, id](absl::StatusOr<lease::TimeToLive> t) {
                               server_->FillHeader(resp->mutable_header());
                               resp->set_id(id);
                               if (!t.ok()) {
                                 // etcd answers an unknown lease with TTL -1.
                                 if (t.status().code() == absl::StatusCode::kNotFound) {
                                   resp->set_ttl(-1);
                                   reactor->Finish(grpc::Status::OK);
                                 } else {
                                   reactor->Finish(ToGrpc(t.status()));
                                 }
                                 return;
                               }
                               resp->set_ttl(t->ttl_seconds);
                               resp->set_grantedttl(t->granted_ttl_seconds);
                               for (const std::string& k : t->keys) resp->add_keys(k);
                               reactor->Finish(grpc::Status::OK);
                             });
    return reactor;
  }

  grpc::ServerUnaryReactor* LeaseLeases(grpc::CallbackServerContext* ctx,
                                        const etcdserverpb::LeaseLeasesRequest* /*req*/,
                                        etcdserverpb::LeaseLeasesResponse* resp) override {
    auto* reactor = ctx->DefaultReactor();
    server_->FillHeader(resp->mutable_header());
    const std::vector<int64_t> ids = server_->Leases();
    resp->mutable_leases()->Reserve(static_cast<int>(ids.size()));
    for (int64_t id : ids) resp->add_leases()->set_id(id);
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

 private:
  Server* const server_;
};

}  // namespace

std::unique_ptr<grpc::Service> MakeLeaseService(Server* server) {
  return std::make_unique<LeaseService>(server);
}

}  // namespace ganglion::server
