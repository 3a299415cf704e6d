// What a ReplicaSet is waiting to see in its pod cache: the creations it
// made and the pods it deleted, until the cache shows them (or a timeout
// passes, so a lost event cannot wedge it). While any are outstanding the
// ReplicaSet takes no new create/delete decision: a cache that lags its own
// writes would otherwise make it create or delete a second time.
// Thread-safe: cache handlers observe, workers expect and check.
#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace ganglion::orchestrator::workloads {

class Expectations {
 public:
  Expectations(std::function<absl::Time()> now, absl::Duration timeout)
      : now_(std::move(now)), timeout_(timeout) {}

  // True when nothing is outstanding for `owner` (or what is has timed out).
  bool Satisfied(const std::string& owner) const;
  // Replace what `owner` waits for (call before the writes: the cache may
  // report them before the write returns).
  void ExpectCreations(const std::string& owner, int count);
  void ExpectDeletions(const std::string& owner, const std::vector<std::string>& pod_keys);
  // A pod of `owner` appeared, or a create failed (it will never appear).
  void CreationObserved(const std::string& owner);
  // A pod of `owner` went (or started terminating), or its delete failed.
  void DeletionObserved(const std::string& owner, const std::string& pod_key);
  void Forget(const std::string& owner);
  // Creations and deletions still outstanding (for tests and logs).
  std::pair<int, int> Pending(const std::string& owner) const;

 private:
  struct Record {
    int creations = 0;
    std::set<std::string> deletions;  // pod keys
    absl::Time set_at;
  };
  const std::function<absl::Time()> now_;
  const absl::Duration timeout_;
  mutable std::mutex mu_;
  std::map<std::string, Record> records_;  // guarded by mu_; by owner key
};

}  // namespace ganglion::orchestrator::workloads
