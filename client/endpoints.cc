#include "client/endpoints.h"

#include <grpcpp/alarm.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace ganglion::client {
namespace {

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("client: cannot read ", path));
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// One unary call in flight: its attempts, their endpoints and the deadline
// they share. Owned by the callbacks gRPC holds for it.
class UnaryCall : public std::enable_shared_from_this<UnaryCall> {
 public:
  using Attempt =
      std::function<void(const Stubs&, grpc::ClientContext*, std::function<void(grpc::Status)>)>;

  UnaryCall(std::shared_ptr<EndpointSet> endpoints, Idempotency idempotency, Attempt attempt,
            std::function<void(grpc::Status)> finish, int pinned_endpoint)
      : endpoints_(std::move(endpoints)),
        idempotency_(idempotency),
        attempt_(std::move(attempt)),
        finish_(std::move(finish)),
        pinned_endpoint_(pinned_endpoint),
        deadline_(absl::Now() + absl::FromChrono(endpoints_->config().request_timeout)),
        inflight_(endpoints_->inflight()) {}  // RunUnary counted it in

  // Runs on a gRPC thread. Everything that holds a channel (the context, the
  // endpoint set) goes before the Client is told the call is over.
  ~UnaryCall() {
    context_.reset();
    endpoints_.reset();
    inflight_->End();
  }

  void Start() {
    const absl::Time now = absl::Now();
    ++attempts_;
    const int i = pinned_endpoint_ >= 0 ? pinned_endpoint_ : endpoints_->Pick(now);
    grpc::Channel* channel = endpoints_->channel(i).get();
    // READY means the request may reach the member as soon as it is sent;
    // anything else means gRPC holds it until a connection is up.
    const bool was_connected = channel->GetState(/*try_to_connect=*/true) == GRPC_CHANNEL_READY;
    absl::Time attempt_deadline = deadline_;
    bool dial_capped = false;
    if (!was_connected) {
      const absl::Time dial_deadline = now + absl::FromChrono(endpoints_->config().dial_timeout);
      if (dial_deadline < attempt_deadline) {
        attempt_deadline = dial_deadline;
        dial_capped = true;
      }
    }
    context_ = std::make_unique<grpc::ClientContext>();
    context_->set_deadline(absl::ToChronoTime(attempt_deadline));
    context_->set_wait_for_ready(false);
    AddRequireLeader(context_.get());
    attempt_(endpoints_->stubs(i), context_.get(),
             [self = shared_from_this(), i, was_connected, dial_capped](grpc::Status s) {
               self->Done(i, was_connected, dial_capped, std::move(s));
             });
  }

 private:
  void Done(int i, bool was_connected, bool dial_capped, grpc::Status status) {
    if (status.ok()) {
      if (pinned_endpoint_ < 0) endpoints_->MarkHealthy(i);
      finish_(std::move(status));
      return;
    }
    const absl::Time now = absl::Now();
    // A dial that ran out of its own (shorter) budget never sent the request.
    const bool dial_failed = dial_capped && status.error_code() == grpc::DEADLINE_EXCEEDED;
    const bool member_down = dial_failed ||
                             (status.error_code() == grpc::UNAVAILABLE && !IsLeaderError(status)) ||
                             absl::StrContains(status.error_message(), "etcdserver: no leader");
    if (member_down && pinned_endpoint_ < 0) endpoints_->MarkUnhealthy(i, now);
    const grpc::Status as_seen =
        dial_failed ? grpc::Status(grpc::UNAVAILABLE, status.error_message()) : status;
    const absl::Duration pause = RetryPause(attempts_);
    const bool retry = pinned_endpoint_ < 0 && attempts_ < kAttemptsMax &&
                       ShouldRetry(as_seen, idempotency_, was_connected && !dial_failed) &&
                       now + pause < deadline_;
    if (!retry) {
      finish_(std::move(status));
      return;
    }
    // gRPC keeps an alarm's callback until the alarm is destroyed, so the
    // callback must not own this call: `self_` holds it during the pause.
    self_ = shared_from_this();
    alarms_.push_back(std::make_unique<grpc::Alarm>());
    alarms_.back()->Set(absl::ToChronoTime(now + pause), [this](bool /*fired*/) {
      std::shared_ptr<UnaryCall> self = std::move(self_);
      Start();
    });
  }

  std::shared_ptr<EndpointSet> endpoints_;  // released first by the destructor
  const Idempotency idempotency_;
  const Attempt attempt_;
  const std::function<void(grpc::Status)> finish_;
  const int pinned_endpoint_;
  const absl::Time deadline_;
  const std::shared_ptr<InflightCalls> inflight_;
  // Touched only by the one attempt or alarm callback running at a time.
  int attempts_ = 0;  // at most kAttemptsMax
  std::unique_ptr<grpc::ClientContext> context_;
  std::vector<std::unique_ptr<grpc::Alarm>> alarms_;  // at most kAttemptsMax
  std::shared_ptr<UnaryCall> self_;
};

}  // namespace

Stubs::Stubs(const std::shared_ptr<grpc::Channel>& channel)
    : kv(etcdserverpb::KV::NewStub(channel)),
      lease(etcdserverpb::Lease::NewStub(channel)),
      watch(etcdserverpb::Watch::NewStub(channel)),
      cluster(etcdserverpb::Cluster::NewStub(channel)),
      maintenance(etcdserverpb::Maintenance::NewStub(channel)) {}

bool IsLeaderError(const grpc::Status& status) {
  return status.error_code() == grpc::UNAVAILABLE &&
         (absl::StrContains(status.error_message(), "etcdserver: leader changed") ||
          absl::StrContains(status.error_message(), "etcdserver: no leader"));
}

bool ShouldRetry(const grpc::Status& status, Idempotency idempotency, bool was_connected) {
  if (status.error_code() != grpc::UNAVAILABLE) return false;
  if (idempotency == Idempotency::kIdempotent) return true;
  // A write: only when it cannot have reached a member. A leader error came
  // from a member that did receive it, so it is never retried.
  return !was_connected && !IsLeaderError(status);
}

absl::Status ToAbsl(const grpc::Status& status) {
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

absl::Duration RetryPause(int attempt) {
  return std::min(absl::Milliseconds(100) * attempt, absl::Milliseconds(500));
}

absl::StatusOr<std::shared_ptr<EndpointSet>> EndpointSet::Create(const ClientConfig& config) {
  if (config.endpoints.empty()) return absl::InvalidArgumentError("client: no endpoints");
  if (config.channel != nullptr && config.endpoints.size() != 1) {
    return absl::InvalidArgumentError("client: a given channel takes exactly one endpoint name");
  }
  if (!config.username.empty() || !config.password.empty()) {
    return absl::UnimplementedError("client: authentication is not wired yet");
  }
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (config.use_tls) {
    grpc::SslCredentialsOptions ssl;
    if (!config.tls.ca_file.empty()) {
      absl::StatusOr<std::string> ca = ReadFile(config.tls.ca_file);
      if (!ca.ok()) return ca.status();
      ssl.pem_root_certs = *ca;
    }
    if (!config.tls.cert_file.empty()) {
      absl::StatusOr<std::string> cert = ReadFile(config.tls.cert_file);
      if (!cert.ok()) return cert.status();
      absl::StatusOr<std::string> key = ReadFile(config.tls.key_file);
      if (!key.ok()) return key.status();
      ssl.pem_cert_chain = *cert;
      ssl.pem_private_key = *key;
    }
    credentials = grpc::SslCredentials(ssl);
  }
  auto set =
      std::make_shared<EndpointSet>(config.endpoints, absl::FromChrono(config.unhealthy_backoff),
                                    absl::FromChrono(config.unhealthy_backoff_max));
  set->config_ = config;
  if (config.channel != nullptr) {
    set->channels_.push_back(config.channel);
    set->stubs_.push_back(std::make_unique<Stubs>(config.channel));
    return set;
  }
  for (const std::string& address : config.endpoints) {
    grpc::ChannelArguments args;
    // A channel of its own per Client and member: a shared subchannel pool
    // would let one Client's back-off state leak into another's.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, static_cast<int>(config.keepalive_time.count()));
    args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, static_cast<int>(config.keepalive_timeout.count()));
    // A restarted member must be dialed again within seconds, not gRPC's
    // default two minutes.
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
    args.SetMaxReceiveMessageSize(-1);
    set->channels_.push_back(grpc::CreateCustomChannel(address, credentials, args));
    set->stubs_.push_back(std::make_unique<Stubs>(set->channels_.back()));
  }
  return set;
}

EndpointSet::EndpointSet(std::vector<std::string> addresses, absl::Duration backoff,
                         absl::Duration backoff_max)
    : addresses_(std::move(addresses)),
      backoff_(backoff),
      backoff_max_(backoff_max),
      health_(addresses_.size()) {}

int EndpointSet::Pick(absl::Time now) {
  std::lock_guard<std::mutex> lock(mu_);
  const int n = size();
  for (int k = 0; k < n; ++k) {
    const int i = (pinned_ + k) % n;
    if (health_[i].unhealthy_until <= now) {
      pinned_ = i;
      return i;
    }
  }
  int soonest = 0;
  for (int i = 1; i < n; ++i) {
    if (health_[i].unhealthy_until < health_[soonest].unhealthy_until) soonest = i;
  }
  return soonest;
}

void EndpointSet::MarkUnhealthy(int i, absl::Time now) {
  std::lock_guard<std::mutex> lock(mu_);
  Health& h = health_.at(i);
  // Failures within a back-off period (other calls in flight to the same
  // dead member) count once.
  if (h.unhealthy_until > now) return;
  h.consecutive_failures = std::min(h.consecutive_failures + 1, 16);
  absl::Duration period = backoff_;
  for (int k = 1; k < h.consecutive_failures && period < backoff_max_; ++k) period *= 2;
  h.unhealthy_until = now + std::min(period, backoff_max_);
  if (pinned_ == i) pinned_ = (i + 1) % size();
}

void EndpointSet::MarkHealthy(int i) {
  std::lock_guard<std::mutex> lock(mu_);
  health_.at(i) = Health{};
  pinned_ = i;
}

bool EndpointSet::IsHealthy(int i, absl::Time now) const {
  std::lock_guard<std::mutex> lock(mu_);
  return health_.at(i).unhealthy_until <= now;
}

int EndpointSet::Find(const std::string& address) const {
  for (int i = 0; i < size(); ++i) {
    if (addresses_[i] == address) return i;
  }
  return -1;
}

void AddRequireLeader(grpc::ClientContext* context) {
  context->AddMetadata("hasleader", "true");
}

void RunUnary(
    std::shared_ptr<EndpointSet> endpoints, Idempotency idempotency,
    std::function<void(const Stubs&, grpc::ClientContext*, std::function<void(grpc::Status)>)>
        attempt,
    std::function<void(grpc::Status)> finish, int pinned_endpoint) {
  if (!endpoints->inflight()->TryBegin()) {
    finish(grpc::Status(grpc::RESOURCE_EXHAUSTED, "client: too many calls in flight"));
    return;
  }
  auto call = std::make_shared<UnaryCall>(std::move(endpoints), idempotency, std::move(attempt),
                                          std::move(finish), pinned_endpoint);
  call->Start();
}

}  // namespace ganglion::client
