// One-shot waits on the applied key space: "call me when any key in
// [key, range_end) changes". The Lock and Election services build on it
// (wait for a predecessor's key to go, observe a leader change) without a
// client-style watch. The apply loop hands every applied revision to
// TakeMatching (on its thread) and runs the matching waiters' callbacks
// outside the lock; a waiter fires once and is gone.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "storage/state_store.h"

namespace ganglion::server {

class KeyWaiters {
 public:
  static constexpr size_t kWaitersMax = 100000;

  // range_end as etcd: empty is the key alone, "\0" everything from key.
  // Returns 0 (and keeps nothing) when kWaitersMax are waiting.
  uint64_t Add(std::string key, std::string range_end, std::function<void()> fn) {
    std::lock_guard lock(mu_);
    if (waiters_.size() >= kWaitersMax) return 0;
    const uint64_t token = ++next_;
    waiters_.emplace(token, Waiter{std::move(key), std::move(range_end), std::move(fn)});
    return token;
  }
  void Remove(uint64_t token) {
    std::lock_guard lock(mu_);
    waiters_.erase(token);
  }
  // Removes the waiters an applied revision concerns and appends their
  // callbacks to `fire`, for the caller to run outside the lock.
  void TakeMatching(const storage::RevisionEvents& rev, std::vector<std::function<void()>>* fire) {
    std::lock_guard lock(mu_);
    for (auto it = waiters_.begin(); it != waiters_.end();) {
      bool hit = false;
      for (const mvccpb::Event& e : rev.events) {
        if (Matches(it->second, e.kv().key())) {
          hit = true;
          break;
        }
      }
      if (hit) {
        fire->push_back(std::move(it->second.fn));
        it = waiters_.erase(it);
      } else {
        ++it;
      }
    }
  }
  size_t size() const {
    std::lock_guard lock(mu_);
    return waiters_.size();
  }

 private:
  struct Waiter {
    std::string key;
    std::string range_end;
    std::function<void()> fn;
  };
  static bool Matches(const Waiter& w, const std::string& k) {
    if (w.range_end.empty()) return k == w.key;
    if (w.range_end == std::string(1, '\0')) return k >= w.key;
    return k >= w.key && k < w.range_end;
  }

  mutable std::mutex mu_;
  std::map<uint64_t, Waiter> waiters_;  // guarded by mu_; <= kWaitersMax
  uint64_t next_ = 0;                   // guarded by mu_
};

}  // namespace ganglion::server
