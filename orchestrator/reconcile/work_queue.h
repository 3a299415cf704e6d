// A work queue of object keys ("namespace/name", or "name" for cluster-scoped
// objects), as level-triggered reconcilers use it: a key is queued at most
// once however often it is added, is handed to one worker at a time (a key
// added while a worker holds it is queued again when the worker is Done),
// and a key whose reconcile failed comes back after a per-key exponential
// back-off. It must never hand the same key to two workers at once nor lose
// an Add made while the key was being processed.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "absl/time/time.h"

namespace ganglion::orchestrator {

struct WorkQueueOptions {
  // Back-off after the n-th consecutive failure: base * 2^(n-1), at most max.
  absl::Duration backoff_base = absl::Milliseconds(5);
  absl::Duration backoff_max = absl::Seconds(30);
  // Bound on distinct keys waiting (queued or delayed); an Add beyond it is
  // dropped and counted (a level-triggered reconciler sees the key again on
  // its next change or resync).
  size_t keys_max = 1 << 20;
};

class WorkQueue {
 public:
  explicit WorkQueue(WorkQueueOptions options = {});
  WorkQueue(const WorkQueue&) = delete;
  WorkQueue& operator=(const WorkQueue&) = delete;

  void Add(const std::string& key);
  // Adds `key` once `delay` has passed (sooner if it is added meanwhile).
  void AddAfter(const std::string& key, absl::Duration delay);
  // Adds `key` after its back-off, which doubles with each call until Forget.
  void AddRateLimited(const std::string& key);
  // Resets `key`'s back-off (its reconcile succeeded).
  void Forget(const std::string& key);
  int Failures(const std::string& key) const;

  // Blocks until a key is ready, then hands it out; nullopt once shut down.
  std::optional<std::string> Get();
  // The worker finished `key`: if it was added meanwhile it is queued again.
  void Done(const std::string& key);
  // Wakes every Get (they return nullopt); later Adds are ignored.
  void ShutDown();

  size_t Len() const;             // queued, ready now
  uint64_t dropped_total() const;  // Adds refused by keys_max

 private:
  void AddLocked(const std::string& key);

  const WorkQueueOptions options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;                  // guarded by mu_; ready, in order
  std::set<std::string> dirty_;                    // guarded by mu_; wants processing
  std::set<std::string> processing_;              // guarded by mu_; held by a worker
  std::multimap<absl::Time, std::string> waiting_;  // guarded by mu_; delayed adds
  std::map<std::string, absl::Time> waiting_at_;   // guarded by mu_; earliest per key
  std::map<std::string, int> failures_;           // guarded by mu_
  uint64_t dropped_ = 0;                           // guarded by mu_
  bool shut_down_ = false;                         // guarded by mu_
};

}  // namespace ganglion::orchestrator
