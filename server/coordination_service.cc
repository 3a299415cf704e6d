// v3lockpb.Lock and v3electionpb.Election, served by the member itself on
// top of its own Txn, Range and key waiters, as etcd's server-side lock and
// election do on top of leases:
//   - a contender's key is <name>/<lease id hex>, created with its lease in a
//     txn (or found, if the same lease already holds it);
//   - it owns the lock (or leads) once no key under <name>/ has a smaller
//     create revision: it waits for the deletion of the newest such key, then
//     looks again;
//   - its key's create revision orders contenders and is the fencing token: a
//     write guarded by `create_revision(key) == rev` can only succeed while
//     the owner still holds the lock.
#include <memory>
#include <mutex>

#include "absl/strings/str_format.h"
#include "etcd/etcdserver/api/v3election/v3electionpb/v3election.grpc.pb.h"
#include "etcd/etcdserver/api/v3lock/v3lockpb/v3lock.grpc.pb.h"
#include "server/errors.h"
#include "server/services.h"

namespace ganglion::server {

namespace {

constexpr char kErrElectionNotLeader[] = "election: not leader";
constexpr char kErrElectionNoLeader[] = "election: no leader";
constexpr char kErrSessionExpired[] = "session: expired lease";

// The asynchronous steps of acquiring ownership, shared by Lock and Campaign.
class Contender : public std::enable_shared_from_this<Contender> {
 public:
  using Done = std::function<void(absl::StatusOr<mvccpb::KeyValue>)>;

  Contender(Server* server, std::string name, int64_t lease, std::string value, Done done,
            std::function<bool()> cancelled)
      : server_(server),
        prefix_(name + "/"),
        key_(absl::StrFormat("%s%x", prefix_, lease)),
        lease_(lease),
        value_(std::move(value)),
        done_(std::move(done)),
        cancelled_(std::move(cancelled)) {}

  // Creates the key (or adopts the one this lease already holds).
  void Start() {
    internal::Request req;
    etcdserverpb::TxnRequest* txn = req.mutable_txn();
    etcdserverpb::Compare* c = txn->add_compare();
    c->set_key(key_);
    c->set_target(etcdserverpb::Compare::CREATE);
    c->set_result(etcdserverpb::Compare::EQUAL);
    c->set_create_revision(0);
    auto* put = txn->add_success()->mutable_request_put();
    put->set_key(key_);
    put->set_value(value_);
    put->set_lease(lease_);
    txn->add_failure()->mutable_request_range()->set_key(key_);
    auto self = shared_from_this();
    server_->Write(std::move(req), [self](Outcome o) {
      if (!o.ok()) return self->Finish(o.status());
      const auto& resp = std::get<etcdserverpb::TxnResponse>(*o->kv);
      if (resp.succeeded()) {
        self->rev_ = resp.header().revision();
      } else {
        const auto& kvs = resp.responses(0).response_range().kvs();
        if (kvs.empty()) return self->Finish(absl::UnavailableError("lock key vanished"));
        self->rev_ = kvs[0].create_revision();
      }
      self->WaitForPredecessors();
    });
  }

 private:
  void WaitForPredecessors() {
    if (cancelled_()) return;
    etcdserverpb::RangeRequest req;
    req.set_key(prefix_);
    req.set_range_end(storage::PrefixEnd(prefix_));
    req.set_max_create_revision(rev_ - 1);
    req.set_sort_target(etcdserverpb::RangeRequest::CREATE);
    req.set_sort_order(etcdserverpb::RangeRequest::DESCEND);
    req.set_limit(1);
    auto self = shared_from_this();
    server_->Range(req, [self](absl::StatusOr<etcdserverpb::RangeResponse> r) {
      if (!r.ok()) return self->Finish(r.status());
      if (r->kvs().empty()) return self->CheckStillHeld();
      self->WaitForDelete(r->kvs(0).key());
    });
  }

  void WaitForDelete(const std::string& key) {
    auto self = shared_from_this();
    // Registered before looking again, so a deletion in between is not missed.
    const uint64_t token =
        server_->key_waiters().Add(key, "", [self] { self->WaitForPredecessors(); });
    if (token == 0) return Finish(absl::ResourceExhaustedError(kErrTooManyRequests));
    etcdserverpb::RangeRequest req;
    req.set_key(key);
    req.set_keys_only(true);
    server_->Range(req, [self, token](absl::StatusOr<etcdserverpb::RangeResponse> r) {
      if (!r.ok()) {
        self->server_->key_waiters().Remove(token);
        return self->Finish(r.status());
      }
      if (r->kvs().empty()) {
        self->server_->key_waiters().Remove(token);
        self->WaitForPredecessors();
      }
    });
  }

  void CheckStillHeld() {
    etcdserverpb::RangeRequest req;
    req.set_key(key_);
    auto self = shared_from_this();
    server_->Range(req, [self](absl::StatusOr<etcdserverpb::RangeResponse> r) {
      if (!r.ok()) return self->Finish(r.status());
      // The lease expired while waiting: the key went with it.
      if (r->kvs().empty() || r->kvs(0).create_revision() != self->rev_) {
        return self->Finish(absl::FailedPreconditionError(kErrSessionExpired));
      }
      self->Finish(r->kvs(0));
    });
  }

  void Finish(absl::StatusOr<mvccpb::KeyValue> r) {
    if (finished_.exchange(true)) return;
    done_(std::move(r));
  }

  Server* const server_;
  const std::string prefix_;
  const std::string key_;
  const int64_t lease_;
  const std::string value_;
  const Done done_;
  const std::function<bool()> cancelled_;
  int64_t rev_ = 0;
  std::atomic<bool> finished_{false};
};

// A unary reactor for a call that may wait for a long time (Lock,
// Campaign): the client may give up first. Completing and cancelling are
// serialized, and the reactor lives until both gRPC is done with it and the
// waiting side let go, so a late completion never touches a finished call.
class CancellableReactor final : public grpc::ServerUnaryReactor {
 public:
  static std::shared_ptr<CancellableReactor> Create() {
    std::shared_ptr<CancellableReactor> r(new CancellableReactor());
    r->self_ = r;
    return r;
  }
  // Writes the response (fill) and finishes, unless the call already ended.
  void Complete(const std::function<grpc::Status()>& fill) {
    std::lock_guard lock(mu_);
    if (finished_) return;
    finished_ = true;
    Finish(fill());
  }
  bool ended() const {
    std::lock_guard lock(mu_);
    return finished_;
  }
  void OnCancel() override {
    std::lock_guard lock(mu_);
    if (finished_) return;
    finished_ = true;
    Finish(grpc::Status(grpc::StatusCode::CANCELLED, "context canceled"));
  }
  void OnDone() override { self_.reset(); }  // may destroy this

 private:
  CancellableReactor() = default;
  mutable std::mutex mu_;
  bool finished_ = false;  // guarded by mu_
  std::shared_ptr<CancellableReactor> self_;
};

class LockService final : public v3lockpb::Lock::CallbackService {
 public:
  explicit LockService(Server* server) : server_(server) {}

  grpc::ServerUnaryReactor* Lock(grpc::CallbackServerContext* /*ctx*/,
                                 const v3lockpb::LockRequest* req,
                                 v3lockpb::LockResponse* resp) override {
    auto reactor = CancellableReactor::Create();
    auto contender = std::make_shared<Contender>(
        server_, req->name(), req->lease(), "",
        [this, reactor, resp](absl::StatusOr<mvccpb::KeyValue> kv) {
          reactor->Complete([&] {
            if (!kv.ok()) return ToGrpc(kv.status());
            server_->FillHeader(resp->mutable_header());
            resp->set_key(kv->key());
            return grpc::Status::OK;
          });
        },
        [reactor] { return reactor->ended(); });
    contender->Start();
    return reactor.get();
  }

  grpc::ServerUnaryReactor* Unlock(grpc::CallbackServerContext* ctx,
                                   const v3lockpb::UnlockRequest* req,
                                   v3lockpb::UnlockResponse* resp) override {
    auto* reactor = ctx->DefaultReactor();
    internal::Request r;
    r.mutable_delete_range()->set_key(req->key());
    server_->Write(std::move(r), [this, reactor, resp](Outcome o) {
      if (!o.ok()) return reactor->Finish(ToGrpc(o.status()));
      server_->FillHeader(resp->mutable_header());
      reactor->Finish(grpc::Status::OK);
    });
    return reactor;
  }

 private:
  Server* const server_;
};

// The current leader of election `name`: its oldest key.
void CurrentLeader(Server* server, const std::string& name,
                   std::function<void(absl::StatusOr<etcdserverpb::RangeResponse>)> done) {
  etcdserverpb::RangeRequest req;
  req.set_key(name + "/");
  req.set_range_end(storage::PrefixEnd(name + "/"));
  req.set_sort_target(etcdserverpb::RangeRequest::CREATE);
  req.set_sort_order(etcdserverpb::RangeRequest::ASCEND);
  req.set_limit(1);
  server->Range(req, std::move(done));
}

// Streams the election's leader: now, and after every change under <name>/
// that changes who leads or what they proclaimed.
class ObserveStream final : public grpc::ServerWriteReactor<v3electionpb::LeaderResponse>,
                            public std::enable_shared_from_this<ObserveStream> {
 public:
  // The stream owns itself until gRPC is done with it; callbacks in flight
  // hold it too, so they never outlive it.
  static ObserveStream* Start(Server* server, std::string name) {
    auto s = std::shared_ptr<ObserveStream>(new ObserveStream(server, std::move(name)));
    s->self_ = s;
    s->Look();
    return s.get();
  }
  void OnWriteDone(bool ok) override {
    std::lock_guard lock(mu_);
    writing_ = false;
    if (!ok) return FinishLocked(grpc::Status::OK);
    if (dirty_) {
      dirty_ = false;
      LookLocked();
    } else {
      WaitLocked();
    }
  }
  void OnCancel() override {
    std::lock_guard lock(mu_);
    FinishLocked(grpc::Status::OK);
  }
  void OnDone() override {
    {
      std::lock_guard lock(mu_);
      finished_ = true;
      if (token_ != 0) server_->key_waiters().Remove(token_);
      token_ = 0;
    }
    self_.reset();  // may destroy this
  }

 private:
  ObserveStream(Server* server, std::string name) : server_(server), name_(std::move(name)) {}

  void Look() {
    std::lock_guard lock(mu_);
    LookLocked();
  }
  void LookLocked() {
    if (finished_) return;
    auto self = shared_from_this();
    CurrentLeader(server_, name_, [this, self](absl::StatusOr<etcdserverpb::RangeResponse> r) {
      std::lock_guard lock(mu_);
      if (finished_) return;
      if (!r.ok()) return FinishLocked(ToGrpc(r.status()));
      if (!r->kvs().empty()) {
        const mvccpb::KeyValue& kv = r->kvs(0);
        if (kv.key() != last_.key() || kv.mod_revision() != last_.mod_revision()) {
          last_ = kv;
          resp_.Clear();
          server_->FillHeader(resp_.mutable_header(), r->header().revision());
          *resp_.mutable_kv() = kv;
          writing_ = true;
          StartWrite(&resp_);
          return;
        }
      }
      WaitLocked();
    });
  }
  void WaitLocked() {
    if (finished_ || token_ != 0) return;
    auto self = shared_from_this();
    token_ = server_->key_waiters().Add(name_ + "/", storage::PrefixEnd(name_ + "/"), [this, self] {
      std::lock_guard lock(mu_);
      token_ = 0;
      if (writing_) {
        dirty_ = true;
      } else {
        LookLocked();
      }
    });
    if (token_ == 0) FinishLocked(ToGrpc(absl::ResourceExhaustedError(kErrTooManyRequests)));
  }
  void FinishLocked(const grpc::Status& s) {
    if (finished_) return;
    finished_ = true;
    Finish(s);
  }

  Server* const server_;
  const std::string name_;
  std::shared_ptr<ObserveStream> self_;
  // Recursive: a read may answer on the calling thread.
  std::recursive_mutex mu_;
  mvccpb::KeyValue last_;              // guarded by mu_: the leader last sent
  v3electionpb::LeaderResponse resp_;  // guarded by mu_
  uint64_t token_ = 0;                 // guarded by mu_: the pending key waiter
  bool writing_ = false;               // guarded by mu_
  bool dirty_ = false;                 // guarded by mu_: changed while writing
  bool finished_ = false;              // guarded by mu_
};

class ElectionService final : public v3electionpb::Election::CallbackService {
 public:
  explicit ElectionService(Server* server) : server_(server) {}

  grpc::ServerUnaryReactor* Campaign(grpc::CallbackServerContext* /*ctx*/,
                                     const v3electionpb::CampaignRequest* req,
                                     v3electionpb::CampaignResponse* resp) override {
    auto reactor = CancellableReactor::Create();
    const std::string name = req->name();
    const int64_t lease = req->lease();
    const std::string value = req->value();
    auto contender = std::make_shared<Contender>(
        server_, name, lease, value,
        [this, reactor, resp, name, lease, value](absl::StatusOr<mvccpb::KeyValue> kv) {
          if (!kv.ok()) {
            return reactor->Complete([&] { return ToGrpc(kv.status()); });
          }
          v3electionpb::LeaderKey leader;
          leader.set_name(name);
          leader.set_key(kv->key());
          leader.set_rev(kv->create_revision());
          leader.set_lease(lease);
          auto answer = [this, reactor, resp, leader](absl::Status s) {
            reactor->Complete([&] {
              if (!s.ok()) return ToGrpc(s);
              *resp->mutable_leader() = leader;
              server_->FillHeader(resp->mutable_header());
              return grpc::Status::OK;
            });
          };
          if (kv->value() == value) return answer(absl::OkStatus());
          // Re-campaigning with the key already held: proclaim the new value.
          Proclaim(leader, value, std::move(answer));
        },
        [reactor] { return reactor->ended(); });
    contender->Start();
    return reactor.get();
  }

  grpc::ServerUnaryReactor* Proclaim(grpc::CallbackServerContext* ctx,
                                     const v3electionpb::ProclaimRequest* req,
                                     v3electionpb::ProclaimResponse* resp) override {
    auto* reactor = ctx->DefaultReactor();
    Proclaim(req->leader(), req->value(), [this, reactor, resp](absl::Status s) {
      if (!s.ok()) return reactor->Finish(ToGrpc(s));
      server_->FillHeader(resp->mutable_header());
      reactor->Finish(grpc::Status::OK);
    });
    return reactor;
  }

  grpc::ServerUnaryReactor* Leader(grpc::CallbackServerContext* ctx,
                                   const v3electionpb::LeaderRequest* req,
                                   v3electionpb::LeaderResponse* resp) override {
    auto* reactor = ctx->DefaultReactor();
    CurrentLeader(
        server_, req->name(), [reactor, resp](absl::StatusOr<etcdserverpb::RangeResponse> r) {
          if (!r.ok()) return reactor->Finish(ToGrpc(r.status()));
          if (r->kvs().empty()) {
            return reactor->Finish(grpc::Status(grpc::StatusCode::UNKNOWN, kErrElectionNoLeader));
          }
          *resp->mutable_header() = r->header();
          *resp->mutable_kv() = r->kvs(0);
          reactor->Finish(grpc::Status::OK);
        });
    return reactor;
  }

  grpc::ServerWriteReactor<v3electionpb::LeaderResponse>* Observe(
      grpc::CallbackServerContext* /*ctx*/, const v3electionpb::LeaderRequest* req) override {
    return ObserveStream::Start(server_, req->name());
  }

  grpc::ServerUnaryReactor* Resign(grpc::CallbackServerContext* ctx,
                                   const v3electionpb::ResignRequest* req,
                                   v3electionpb::ResignResponse* resp) override {
    auto* reactor = ctx->DefaultReactor();
    internal::Request r;
    etcdserverpb::TxnRequest* txn = r.mutable_txn();
    *txn->add_compare() = OwnerCompare(req->leader());
    txn->add_success()->mutable_request_delete_range()->set_key(req->leader().key());
    server_->Write(std::move(r), [this, reactor, resp](Outcome o) {
      if (!o.ok()) return reactor->Finish(ToGrpc(o.status()));
      server_->FillHeader(resp->mutable_header());
      reactor->Finish(grpc::Status::OK);
    });
    return reactor;
  }

 private:
  static etcdserverpb::Compare OwnerCompare(const v3electionpb::LeaderKey& leader) {
    etcdserverpb::Compare c;
    c.set_key(leader.key());
    c.set_target(etcdserverpb::Compare::CREATE);
    c.set_result(etcdserverpb::Compare::EQUAL);
    c.set_create_revision(leader.rev());
    return c;
  }

  void Proclaim(const v3electionpb::LeaderKey& leader, const std::string& value,
                std::function<void(absl::Status)> done) {
    internal::Request r;
    etcdserverpb::TxnRequest* txn = r.mutable_txn();
    *txn->add_compare() = OwnerCompare(leader);
    auto* put = txn->add_success()->mutable_request_put();
    put->set_key(leader.key());
    put->set_value(value);
    put->set_lease(leader.lease());
    server_->Write(std::move(r), [done = std::move(done)](Outcome o) {
      if (!o.ok()) return done(o.status());
      if (!std::get<etcdserverpb::TxnResponse>(*o->kv).succeeded()) {
        return done(absl::UnknownError(kErrElectionNotLeader));
      }
      done(absl::OkStatus());
    });
  }

  Server* const server_;
};

}  // namespace

std::unique_ptr<grpc::Service> MakeLockService(Server* server) {
  return std::make_unique<LockService>(server);
}
std::unique_ptr<grpc::Service> MakeElectionService(Server* server) {
  return std::make_unique<ElectionService>(server);
}

}  // namespace ganglion::server
