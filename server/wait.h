// Request waiters: the proposer registers a callback under the request id it
// put in the log entry; the apply loop triggers it with the outcome once the
// entry is applied on this member. Every waiter has a deadline, and all can
// be failed at once (leader change, shutdown), so no client waits forever.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "storage/state_store.h"

namespace ganglion::server {

// What applying one request produced, as its waiter sees it.
struct Applied {
  std::optional<storage::ApplyResponse> kv;  // for KV requests
  int64_t revision = 0;                      // the store's revision after the batch
  std::optional<int64_t> lease_ttl;          // for LeaseGrant: the TTL granted
};
using Outcome = absl::StatusOr<Applied>;
using Done = std::function<void(Outcome)>;

class Waiters {
 public:
  using Clock = std::chrono::steady_clock;

  explicit Waiters(size_t waiters_max) : waiters_max_(waiters_max) {}

  // False when waiters_max are already waiting; `done` is then left with the
  // caller (moved from only on success).
  bool Register(uint64_t id, Clock::time_point deadline, Done&& done) {
    std::lock_guard lock(mu_);
    if (waiters_.size() >= waiters_max_) return false;
    waiters_.emplace(id, Entry{deadline, std::move(done)});
    return true;
  }
  bool Contains(uint64_t id) const {
    std::lock_guard lock(mu_);
    return waiters_.contains(id);
  }
  // Runs the waiter's callback (outside the lock). False if nobody waits.
  bool Trigger(uint64_t id, Outcome outcome) {
    Done done;
    {
      std::lock_guard lock(mu_);
      auto it = waiters_.find(id);
      if (it == waiters_.end()) return false;
      done = std::move(it->second.done);
      waiters_.erase(it);
    }
    done(std::move(outcome));
    return true;
  }
  void FailAll(const absl::Status& status) {
    std::unordered_map<uint64_t, Entry> all;
    {
      std::lock_guard lock(mu_);
      all.swap(waiters_);
    }
    for (auto& [id, e] : all) e.done(status);
  }
  // Fails every waiter whose deadline is before `now`.
  void Expire(Clock::time_point now, const absl::Status& status) {
    std::vector<Done> expired;
    {
      std::lock_guard lock(mu_);
      for (auto it = waiters_.begin(); it != waiters_.end();) {
        if (it->second.deadline <= now) {
          expired.push_back(std::move(it->second.done));
          it = waiters_.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (Done& d : expired) d(status);
  }
  size_t size() const {
    std::lock_guard lock(mu_);
    return waiters_.size();
  }

 private:
  struct Entry {
    Clock::time_point deadline;
    Done done;
  };
  const size_t waiters_max_;
  mutable std::mutex mu_;
  std::unordered_map<uint64_t, Entry> waiters_;  // guarded by mu_; <= waiters_max_
};

}  // namespace ganglion::server
