// The members a Client talks to: one gRPC channel per endpoint, which of them
// is healthy, and the retry rules every unary call follows. It must never
// retry a request that may have changed the store unless the request is known
// not to have left the client; a write is retried only then.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/async.h"
#include "client/config.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"

namespace ganglion::client {

// Whether a request may be sent twice: a read, or a request whose repeat is
// harmless (revoking a lease, listing members).
enum class Idempotency { kIdempotent, kMutation };

// etcd's messages for a member that has no leader or lost it mid-request.
// They arrive as UNAVAILABLE, but the member itself is up.
bool IsLeaderError(const grpc::Status& status);

// Whether a failed attempt may be retried on another (or the same) member.
// `was_connected`: the attempt's channel was READY when the request started,
// so the request may have reached the member.
bool ShouldRetry(const grpc::Status& status, Idempotency idempotency, bool was_connected);

// gRPC status -> absl::Status, keeping etcd's message (callers match on it).
absl::Status ToAbsl(const grpc::Status& status);

// The pause before attempt `attempt` (1-based retries): grows linearly with
// the attempt so a leader election (about one election timeout) is waited
// out, capped so the overall deadline still leaves room for a few attempts.
absl::Duration RetryPause(int attempt);

// The etcd services of one member, over its channel.
struct Stubs {
  explicit Stubs(const std::shared_ptr<grpc::Channel>& channel);
  std::unique_ptr<etcdserverpb::KV::Stub> kv;
  std::unique_ptr<etcdserverpb::Lease::Stub> lease;
  std::unique_ptr<etcdserverpb::Watch::Stub> watch;
  std::unique_ptr<etcdserverpb::Cluster::Stub> cluster;
  std::unique_ptr<etcdserverpb::Maintenance::Stub> maintenance;
};

// Counts the unary calls in flight, so the Client can wait for them before
// it lets its channels go: a channel whose last reference dies on one of
// gRPC's callback threads makes gRPC join that very thread (a known gRPC
// crash at shutdown).
class InflightCalls {
 public:
  // More unary calls in flight than this per Client is a runaway caller;
  // further calls fail at once with RESOURCE_EXHAUSTED.
  static constexpr int64_t kCallsMax = 100000;

  bool TryBegin() {
    std::lock_guard<std::mutex> lock(mu_);
    if (count_ >= kCallsMax) return false;
    ++count_;
    return true;
  }
  void End() {
    std::lock_guard<std::mutex> lock(mu_);
    if (--count_ == 0) idle_.notify_all();
  }
  void WaitIdle() {
    std::unique_lock<std::mutex> lock(mu_);
    idle_.wait(lock, [this] { return count_ == 0; });
  }

 private:
  std::mutex mu_;
  std::condition_variable idle_;
  int64_t count_ = 0;  // guarded by mu_; at most kCallsMax
};

class EndpointSet {
 public:
  // Creates one channel per endpoint (nothing is dialed yet).
  static absl::StatusOr<std::shared_ptr<EndpointSet>> Create(const ClientConfig& config);

  // For tests of the health bookkeeping: no channels.
  explicit EndpointSet(std::vector<std::string> addresses, absl::Duration backoff,
                       absl::Duration backoff_max);

  // The endpoint to try next: the pinned one while it is healthy, else the
  // next healthy one after it, else the one whose back-off ends first.
  int Pick(absl::Time now);
  // Takes endpoint i out of rotation for its back-off period (doubling per
  // consecutive failure) and moves the pin past it.
  void MarkUnhealthy(int i, absl::Time now);
  // A success resets i's back-off and pins it.
  void MarkHealthy(int i);
  bool IsHealthy(int i, absl::Time now) const;

  int size() const { return static_cast<int>(addresses_.size()); }
  const std::string& address(int i) const { return addresses_.at(i); }
  // Null for an EndpointSet built for tests.
  std::shared_ptr<grpc::Channel> channel(int i) const {
    return channels_.empty() ? nullptr : channels_.at(i);
  }
  const Stubs& stubs(int i) const { return *stubs_.at(i); }
  // The index of `address`, or -1.
  int Find(const std::string& address) const;

  const ClientConfig& config() const { return config_; }
  const std::shared_ptr<InflightCalls>& inflight() const { return inflight_; }

 private:
  struct Health {
    absl::Time unhealthy_until = absl::InfinitePast();
    int consecutive_failures = 0;
  };

  ClientConfig config_;
  const std::vector<std::string> addresses_;
  std::vector<std::shared_ptr<grpc::Channel>> channels_;  // immutable after Create
  std::vector<std::unique_ptr<Stubs>> stubs_;             // immutable after Create
  const absl::Duration backoff_;
  const absl::Duration backoff_max_;

  const std::shared_ptr<InflightCalls> inflight_ = std::make_shared<InflightCalls>();

  mutable std::mutex mu_;
  std::vector<Health> health_;  // guarded by mu_
  int pinned_ = 0;              // guarded by mu_
};

// Client-side metadata every call carries: etcd's "require leader" flag, so a
// member cut off from its leader refuses instead of serving stale state.
void AddRequireLeader(grpc::ClientContext* context);

// One unary call with failover, asynchronous: `start(channel, context,
// response, done)` issues a single attempt on gRPC's callback API; `finish`
// runs once with the final outcome, on a gRPC thread (it must not block), or
// at once on the caller's thread when InflightCalls::kCallsMax are in flight.
// Attempts are bounded (kAttemptsMax) and share the request timeout.
template <typename Response>
using StartAttempt = std::function<void(const Stubs&, grpc::ClientContext*, Response*,
                                        std::function<void(grpc::Status)>)>;

inline constexpr int kAttemptsMax = 8;

// The engine behind every unary call (see CallUnary below).
void RunUnary(
    std::shared_ptr<EndpointSet> endpoints, Idempotency idempotency,
    std::function<void(const Stubs&, grpc::ClientContext*, std::function<void(grpc::Status)>)>
        attempt,
    std::function<void(grpc::Status)> finish, int pinned_endpoint = -1);

template <typename Response>
void CallUnary(std::shared_ptr<EndpointSet> endpoints, Idempotency idempotency,
               StartAttempt<Response> start, std::function<void(absl::StatusOr<Response>)> finish,
               int pinned_endpoint = -1) {
  auto response = std::make_shared<Response>();
  RunUnary(
      std::move(endpoints), idempotency,
      [response, start = std::move(start)](const Stubs& stubs, grpc::ClientContext* ctx,
                                           std::function<void(grpc::Status)> done) {
        response->Clear();
        start(stubs, ctx, response.get(), std::move(done));
      },
      [response, finish = std::move(finish)](grpc::Status s) {
        if (s.ok()) {
          finish(std::move(*response));
        } else {
          finish(ToAbsl(s));
        }
      },
      pinned_endpoint);
}

// CallUnary, waited for.
template <typename Response>
absl::StatusOr<Response> CallBlocking(std::shared_ptr<EndpointSet> endpoints,
                                      Idempotency idempotency, StartAttempt<Response> start,
                                      int pinned_endpoint = -1) {
  auto [callback, future] = MakeFutureCallback<Response>();
  CallUnary<Response>(std::move(endpoints), idempotency, std::move(start), std::move(callback),
                      pinned_endpoint);
  return future.get();
}

}  // namespace ganglion::client
