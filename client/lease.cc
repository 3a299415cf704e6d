#include "client/lease.h"

#include <condition_variable>
#include <map>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"

namespace ganglion::client {

namespace pb = etcdserverpb;
using Done = std::function<void(grpc::Status)>;

namespace {
// More kept-alive leases than this per Client is a leak, not a workload.
constexpr size_t kKeepAlivesMax = 10000;
// Never renew more often than this, whatever the TTL.
constexpr absl::Duration kRenewIntervalMin = absl::Milliseconds(300);
}  // namespace

// The background renewal of every kept-alive lease: a reader thread owns the
// stream (opens it, reads answers, reopens it elsewhere when it breaks) and
// a sender thread writes renewals when they are due and declares leases lost.
class KeepAliveLoop {
 public:
  explicit KeepAliveLoop(std::shared_ptr<EndpointSet> endpoints)
      : endpoints_(std::move(endpoints)) {
    reader_ = std::thread([this] { ReadLoop(); });
    sender_ = std::thread([this] { SendLoop(); });
  }

  ~KeepAliveLoop() { Shutdown(); }

  void Shutdown() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return;
      stop_ = true;
      if (context_ != nullptr) context_->TryCancel();
    }
    cv_.notify_all();
    reader_.join();
    sender_.join();
  }

  absl::Status Add(int64_t id, int64_t ttl_s, int64_t remaining_s, LeaseLostCallback on_lost,
                   std::shared_ptr<std::atomic<bool>> lost) {
    std::lock_guard<std::mutex> lock(mu_);
    if (leases_.size() >= kKeepAlivesMax) {
      return absl::ResourceExhaustedError("client: too many kept-alive leases");
    }
    if (leases_.contains(id)) {
      return absl::AlreadyExistsError(absl::StrCat("client: lease ", id, " is already kept alive"));
    }
    const absl::Time now = absl::Now();
    Entry e;
    e.ttl_s = ttl_s;
    e.next_send = now;  // renew at once: the remaining TTL may be short
    e.expires_at = now + absl::Seconds(remaining_s);
    e.on_lost = std::move(on_lost);
    e.lost = std::move(lost);
    leases_.emplace(id, std::move(e));
    cv_.notify_all();
    return absl::OkStatus();
  }

  void Remove(int64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    leases_.erase(id);
  }

 private:
  struct Entry {
    int64_t ttl_s = 0;
    absl::Time next_send;
    absl::Time last_sent = absl::InfinitePast();
    absl::Time expires_at;
    LeaseLostCallback on_lost;
    std::shared_ptr<std::atomic<bool>> lost;
  };
  using Stream = grpc::ClientReaderWriter<pb::LeaseKeepAliveRequest, pb::LeaseKeepAliveResponse>;

  void ReadLoop() {
    int failures = 0;
    while (true) {
      std::unique_lock<std::mutex> lock(mu_);
      if (stop_) return;
      const int i = endpoints_->Pick(absl::Now());
      context_ = std::make_unique<grpc::ClientContext>();
      AddRequireLeader(context_.get());
      std::shared_ptr<Stream> stream = endpoints_->stubs(i).lease->LeaseKeepAlive(context_.get());
      stream_ = stream;
      // A fresh stream renews everything at once: answers in flight on the
      // old one are lost.
      for (auto& [id, e] : leases_) e.next_send = absl::Now();
      cv_.notify_all();
      lock.unlock();

      pb::LeaseKeepAliveResponse resp;
      while (stream->Read(&resp)) {
        failures = 0;
        endpoints_->MarkHealthy(i);
        Handle(resp);
      }

      lock.lock();
      stream_ = nullptr;  // the sender writes only under mu_, so none is in progress
      std::unique_ptr<grpc::ClientContext> context = std::move(context_);
      const bool stopping = stop_;
      lock.unlock();
      context->TryCancel();
      stream->Finish();
      stream.reset();  // a call must end before its context: the context dies last
      if (stopping) return;
      endpoints_->MarkUnhealthy(i, absl::Now());
      ++failures;
      lock.lock();
      cv_.wait_for(lock, absl::ToChronoNanoseconds(RetryPause(std::min(failures, 5))),
                   [this] { return stop_; });
    }
  }

  void Handle(const pb::LeaseKeepAliveResponse& resp) {
    LeaseLostCallback lost_callback;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = leases_.find(resp.id());
      if (it == leases_.end()) return;
      Entry& e = it->second;
      if (e.last_sent == absl::InfinitePast()) return;  // an answer to a previous keeper
      if (resp.ttl() <= 0) {
        e.lost->store(true);
        lost_callback = std::move(e.on_lost);
        leases_.erase(it);
      } else {
        // The server counts the TTL from when it got the request, which is
        // after we sent it: the send time is the safe base.
        e.expires_at = e.last_sent + absl::Seconds(resp.ttl());
        e.next_send = absl::Now() + std::max(absl::Seconds(resp.ttl()) / 3, kRenewIntervalMin);
      }
    }
    if (lost_callback) {
      lost_callback(absl::NotFoundError(
          absl::StrCat("etcdserver: requested lease not found (lease ", resp.id(), ")")));
    }
  }

  void SendLoop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_) {
      const absl::Time now = absl::Now();
      absl::Time wake = now + absl::Seconds(1);
      std::vector<std::pair<int64_t, LeaseLostCallback>> lost;
      for (auto it = leases_.begin(); it != leases_.end();) {
        Entry& e = it->second;
        if (now >= e.expires_at) {
          e.lost->store(true);
          lost.emplace_back(it->first, std::move(e.on_lost));
          it = leases_.erase(it);
          continue;
        }
        if (now >= e.next_send && stream_ != nullptr) {
          pb::LeaseKeepAliveRequest req;
          req.set_id(it->first);
          // A failed write shows up as a failed read; the reader reopens.
          stream_->Write(req);
          e.last_sent = now;
          // Unanswered renewals are repeated, but not in a tight loop.
          e.next_send = now + std::max(absl::Seconds(e.ttl_s) / 6, kRenewIntervalMin);
        }
        // While the stream is down the reader reconnects; look again shortly.
        const absl::Time send_at = stream_ != nullptr ? e.next_send : now + absl::Milliseconds(100);
        wake = std::min({wake, e.expires_at, std::max(send_at, now + absl::Milliseconds(10))});
        ++it;
      }
      if (!lost.empty()) {
        lock.unlock();
        for (auto& [id, callback] : lost) {
          if (callback) {
            callback(absl::DeadlineExceededError(
                absl::StrCat("client: lease ", id, " was not renewed within its TTL")));
          }
        }
        lock.lock();
        continue;
      }
      cv_.wait_for(lock, absl::ToChronoNanoseconds(wake - absl::Now()));
    }
  }

  const std::shared_ptr<EndpointSet> endpoints_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<int64_t, Entry> leases_;               // guarded by mu_; at most kKeepAlivesMax
  std::shared_ptr<Stream> stream_;                // guarded by mu_; null while reconnecting
  std::unique_ptr<grpc::ClientContext> context_;  // guarded by mu_
  bool stop_ = false;                             // guarded by mu_
  std::thread reader_;
  std::thread sender_;
};

KeepAliveHandle::KeepAliveHandle(std::shared_ptr<KeepAliveLoop> loop, int64_t lease_id,
                                 std::shared_ptr<std::atomic<bool>> lost)
    : loop_(std::move(loop)), lease_id_(lease_id), lost_(std::move(lost)) {}

KeepAliveHandle::~KeepAliveHandle() {
  loop_->Remove(lease_id_);
}

LeaseClient::LeaseClient(std::shared_ptr<EndpointSet> endpoints)
    : endpoints_(std::move(endpoints)) {}

LeaseClient::~LeaseClient() {
  std::lock_guard<std::mutex> lock(mu_);
  if (loop_ != nullptr) loop_->Shutdown();
}

absl::StatusOr<pb::LeaseGrantResponse> LeaseClient::Grant(int64_t ttl_s, int64_t id) {
  auto req = std::make_shared<pb::LeaseGrantRequest>();
  req->set_ttl(ttl_s);
  req->set_id(id);
  return CallBlocking<pb::LeaseGrantResponse>(
      endpoints_, Idempotency::kMutation,
      [req](const Stubs& s, grpc::ClientContext* ctx, pb::LeaseGrantResponse* resp, Done d) {
        s.lease->async()->LeaseGrant(ctx, req.get(), resp, std::move(d));
      });
}

absl::StatusOr<pb::LeaseRevokeResponse> LeaseClient::Revoke(int64_t id) {
  auto req = std::make_shared<pb::LeaseRevokeRequest>();
  req->set_id(id);
  // Revoking twice ends the lease once (the second answers "not found").
  return CallBlocking<pb::LeaseRevokeResponse>(
      endpoints_, Idempotency::kIdempotent,
      [req](const Stubs& s, grpc::ClientContext* ctx, pb::LeaseRevokeResponse* resp, Done d) {
        s.lease->async()->LeaseRevoke(ctx, req.get(), resp, std::move(d));
      });
}

absl::StatusOr<pb::LeaseTimeToLiveResponse> LeaseClient::TimeToLive(int64_t id, bool keys) {
  auto req = std::make_shared<pb::LeaseTimeToLiveRequest>();
  req->set_id(id);
  req->set_keys(keys);
  return CallBlocking<pb::LeaseTimeToLiveResponse>(
      endpoints_, Idempotency::kIdempotent,
      [req](const Stubs& s, grpc::ClientContext* ctx, pb::LeaseTimeToLiveResponse* resp, Done d) {
        s.lease->async()->LeaseTimeToLive(ctx, req.get(), resp, std::move(d));
      });
}

absl::StatusOr<pb::LeaseLeasesResponse> LeaseClient::Leases() {
  auto req = std::make_shared<pb::LeaseLeasesRequest>();
  return CallBlocking<pb::LeaseLeasesResponse>(
      endpoints_, Idempotency::kIdempotent,
      [req](const Stubs& s, grpc::ClientContext* ctx, pb::LeaseLeasesResponse* resp, Done d) {
        s.lease->async()->LeaseLeases(ctx, req.get(), resp, std::move(d));
      });
}

absl::StatusOr<pb::LeaseKeepAliveResponse> LeaseClient::KeepAliveOnce(int64_t id) {
  // A renewal is idempotent: renewing twice leaves the same deadline.
  for (int attempt = 1; attempt <= kAttemptsMax; ++attempt) {
    const int i = endpoints_->Pick(absl::Now());
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + endpoints_->config().request_timeout);
    AddRequireLeader(&ctx);
    auto stream = endpoints_->stubs(i).lease->LeaseKeepAlive(&ctx);
    pb::LeaseKeepAliveRequest req;
    req.set_id(id);
    pb::LeaseKeepAliveResponse resp;
    const bool ok = stream->Write(req) && stream->Read(&resp);
    stream->WritesDone();
    ctx.TryCancel();
    grpc::Status status = stream->Finish();
    if (ok) {
      if (resp.ttl() <= 0) return absl::NotFoundError("etcdserver: requested lease not found");
      return resp;
    }
    if (!ShouldRetry(status, Idempotency::kIdempotent, true) || attempt == kAttemptsMax) {
      return ToAbsl(status);
    }
    endpoints_->MarkUnhealthy(i, absl::Now());
    absl::SleepFor(RetryPause(attempt));
  }
  return absl::UnavailableError("client: keep-alive failed");
}

absl::StatusOr<std::unique_ptr<KeepAliveHandle>> LeaseClient::KeepAlive(int64_t id,
                                                                        LeaseLostCallback on_lost) {
  absl::StatusOr<pb::LeaseTimeToLiveResponse> ttl = TimeToLive(id);
  if (!ttl.ok()) return ttl.status();
  if (ttl->ttl() <= 0) return absl::NotFoundError("etcdserver: requested lease not found");
  std::shared_ptr<KeepAliveLoop> loop;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (loop_ == nullptr) loop_ = std::make_shared<KeepAliveLoop>(endpoints_);
    loop = loop_;
  }
  auto lost = std::make_shared<std::atomic<bool>>(false);
  absl::Status added = loop->Add(id, ttl->grantedttl(), ttl->ttl(), std::move(on_lost), lost);
  if (!added.ok()) return added;
  return std::make_unique<KeepAliveHandle>(std::move(loop), id, std::move(lost));
}

}  // namespace ganglion::client
