#include "jepsen/workload/common.h"

#include <thread>

#include "absl/strings/str_cat.h"

namespace ganglion::jepsen {

int64_t Recorder::NowNs() const {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() -
                                                              origin_)
      .count();
}

int64_t Recorder::Add(Operation op) {
  std::lock_guard lock(mu_);
  op.index = static_cast<int64_t>(ops_.size());
  ops_.push_back(std::move(op));
  return ops_.back().index;
}

std::vector<Operation> Recorder::Operations() const {
  std::lock_guard lock(mu_);
  return ops_;
}

OpType ClassifyWriteError(const absl::Status& status) {
  switch (status.code()) {
    // Refused before anything was proposed: the request was malformed or
    // over a limit, or a compare could not be evaluated.
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kFailedPrecondition:
      return OpType::kFail;
    default:
      // Unavailable, deadline, cancelled, unknown: the proposal may have
      // been made and may still commit.
      return OpType::kInfo;
  }
}

absl::StatusOr<std::unique_ptr<client::Client>> MakeClient(const WorkloadOptions& options,
                                                           int rotate) {
  client::ClientConfig config;
  const int n = static_cast<int>(options.endpoints.size());
  for (int i = 0; i < n; i++) config.endpoints.push_back(options.endpoints[(i + rotate) % n]);
  config.request_timeout = options.request_timeout;
  config.dial_timeout = std::min(options.request_timeout, std::chrono::milliseconds(1000));
  // Faults end streams often; notice a dead member within a few seconds.
  config.keepalive_time = std::chrono::milliseconds(5000);
  config.keepalive_timeout = std::chrono::milliseconds(2000);
  return client::Client::Create(config);
}

absl::StatusOr<std::vector<std::unique_ptr<client::Client>>> MakeClients(
    const WorkloadOptions& options, int count) {
  std::vector<std::unique_ptr<client::Client>> clients;
  for (int t = 0; t < count; t++) {
    auto c = MakeClient(options, t);
    if (!c.ok()) return c.status();
    clients.push_back(*std::move(c));
  }
  return clients;
}

void Pace::Wait() {
  if (interval_.count() <= 0) return;
  next_ += interval_;
  auto now = std::chrono::steady_clock::now();
  if (next_ < now) next_ = now;  // no catch-up burst after a slow operation
  std::this_thread::sleep_until(next_);
}

void WorkerPool::Start(int threads,
                       std::function<void(int thread, const std::atomic<bool>& stop)> body) {
  for (int t = 0; t < threads; t++) {
    threads_.emplace_back([this, t, body] { body(t, stop_); });
  }
}

void WorkerPool::Stop() {
  stop_ = true;
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

std::vector<std::string> WorkloadNames() {
  return {"register", "list-append", "watch", "lock", "lease"};
}

std::unique_ptr<Workload> MakeWorkload(const std::string& name, Recorder& recorder,
                                       const WorkloadOptions& options) {
  if (name == "register") return MakeRegisterWorkload(recorder, options);
  if (name == "list-append") return MakeListAppendWorkload(recorder, options);
  if (name == "watch") return MakeWatchWorkload(recorder, options);
  if (name == "lock") return MakeLockWorkload(recorder, options);
  if (name == "lease") return MakeLeaseWorkload(recorder, options);
  return nullptr;
}

nlohmann::json OpsJson(const std::vector<Operation>& history, const std::vector<int64_t>& indexes) {
  nlohmann::json out = nlohmann::json::array();
  for (int64_t i : indexes) {
    if (i >= 0 && i < static_cast<int64_t>(history.size())) {
      out.push_back(nlohmann::json::parse(FormatOperation(history[i])));
    }
  }
  return out;
}

}  // namespace ganglion::jepsen
