// The lessor: every lease's TTL, the keys attached to it, and, on the leader
// only, when it expires. The replicated part (which leases exist, their TTL
// and checkpointed remaining TTL, their keys) changes only as the apply loop
// applies entries, so it is the same on every member at the same index. The
// expiry clock is the leader's alone (monotonic, passed in): a follower never
// expires anything, and a new leader gives every lease its remaining TTL plus
// an election timeout before it may expire (Promote).
//
// It never writes to the store and never proposes: the server turns what
// Expired() returns into LeaseRevoke proposals and what Checkpoints()
// returns into LeaseCheckpoint proposals, so expiry happens at one log
// position on every member.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <queue>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace ganglion::lease {

using Clock = std::chrono::steady_clock;

// etcd's limits and texts.
inline constexpr int64_t kMaxLeaseTtlSeconds = 9000000000;
inline constexpr char kErrLeaseNotFound[] = "etcdserver: requested lease not found";
inline constexpr char kErrLeaseExist[] = "etcdserver: lease already exists";
inline constexpr char kErrLeaseTtlTooLarge[] = "etcdserver: too large lease TTL";

struct LeaseInfo {
  int64_t id = 0;
  int64_t ttl_seconds = 0;            // granted
  int64_t remaining_ttl_seconds = 0;  // last checkpoint; 0: none (full TTL)
};

struct TimeToLive {
  int64_t granted_ttl_seconds = 0;
  int64_t ttl_seconds = 0;  // remaining; -1 if expired
  std::vector<std::string> keys;
};

class Lessor {
 public:
  // min_ttl_seconds: etcd's rule, ceil(1.5 election timeouts); smaller
  // requests are raised to it. checkpoint_interval: how often the leader
  // records a long lease's remaining TTL (etcd's 5 minutes by default).
  explicit Lessor(int64_t min_ttl_seconds,
                  Clock::duration checkpoint_interval = std::chrono::minutes(5))
      : min_ttl_seconds_(min_ttl_seconds), checkpoint_interval_(checkpoint_interval) {}

  // ---- the replicated state (apply thread) ----
  // Replaces everything (startup, snapshot install). Keys come separately.
  void Reset(const std::vector<LeaseInfo>& leases);
  // The TTL a grant gets, or kErrLeaseTtlTooLarge.
  absl::StatusOr<int64_t> EffectiveTtl(int64_t requested_seconds) const;
  // kErrLeaseExist if the id is taken. On the leader the lease starts
  // counting down at `now`.
  absl::Status Grant(int64_t id, int64_t ttl_seconds, Clock::time_point now);
  bool Exists(int64_t id) const;
  // Removes the lease; returns the keys that were attached (to delete).
  std::vector<std::string> Revoke(int64_t id);
  absl::Status Checkpoint(int64_t id, int64_t remaining_ttl_seconds);
  std::optional<LeaseInfo> Get(int64_t id) const;
  std::vector<std::string> Keys(int64_t id) const;
  // The lease `key` is attached to; 0 if none.
  int64_t LeaseOf(const std::string& key) const;
  // A key was written with `lease` (0: none) or deleted.
  void OnPut(const std::string& key, int64_t lease);
  void OnDelete(const std::string& key);
  std::vector<int64_t> Ids() const;
  size_t size() const;

  // ---- the leader's clock ----
  // Became leader at `now`: every lease expires at now + its remaining TTL
  // (checkpointed, else full) + extend.
  void Promote(Clock::time_point now, Clock::duration extend);
  void Demote();
  bool is_primary() const;
  // KeepAlive: restarts the countdown. kErrLeaseNotFound if unknown; fails
  // with FailedPrecondition when not primary (the caller forwards). Sets
  // *clear_checkpoint when the lease has a checkpointed remaining TTL that
  // this renewal makes stale: the caller then proposes a checkpoint of 0 so
  // that a new leader starts the lease from its full TTL. Once per
  // checkpoint, not on every renewal.
  absl::StatusOr<int64_t> Renew(int64_t id, Clock::time_point now,
                                bool* clear_checkpoint = nullptr);
  absl::StatusOr<TimeToLive> GetTimeToLive(int64_t id, bool with_keys, Clock::time_point now) const;
  // Up to `max` expired leases not handed out in the last `retry_after`
  // (their revocation is in flight). Oldest expiry first.
  std::vector<int64_t> Expired(Clock::time_point now, size_t max, Clock::duration retry_after);
  // Leases whose remaining TTL should be recorded in the log now, with that
  // TTL in seconds: those with more than the checkpoint interval left whose
  // last checkpoint (or grant, renewal or promotion, whichever started the
  // wait) is an interval old. Up to `max`; costs only the leases returned.
  std::vector<std::pair<int64_t, int64_t>> DueCheckpoints(Clock::time_point now, size_t max);

 private:
  struct Lease {
    LeaseInfo info;
    std::set<std::string> keys;
    Clock::time_point expiry = Clock::time_point::max();          // primary only
    Clock::time_point checkpoint_due = Clock::time_point::max();  // primary only; max: none
    bool clear_proposed = false;  // primary only; Renew asked for a checkpoint of 0
  };
  void ScheduleLocked(int64_t id, Clock::time_point expiry);
  // Every lease counts down from its checkpointed (else full) TTL + extend.
  void StartCountdownsLocked(Clock::time_point now, Clock::duration extend);
  // Queues the lease's next checkpoint an interval after `now`, unless one
  // is queued already (a renewal every few seconds must not keep pushing it
  // back) or the lease expires before it would matter.
  void ScheduleCheckpointLocked(int64_t id, Lease& l, Clock::time_point now);

  const int64_t min_ttl_seconds_;
  const Clock::duration checkpoint_interval_;
  mutable std::mutex mu_;
  std::unordered_map<int64_t, Lease> leases_;           // guarded by mu_
  std::unordered_map<std::string, int64_t> key_lease_;  // guarded by mu_
  bool primary_ = false;                                // guarded by mu_
  // Min-heap of (expiry, id); entries whose expiry no longer matches the
  // lease's are stale and skipped. Guarded by mu_; at most a few entries per
  // lease between compactions (rebuilt when it grows past 4x the leases).
  using HeapEntry = std::pair<Clock::time_point, int64_t>;
  std::priority_queue<HeapEntry, std::vector<HeapEntry>, std::greater<>> expiry_heap_;
  // Min-heap of (checkpoint due, id); an entry whose time no longer matches
  // the lease's checkpoint_due is stale. Guarded by mu_; primary only.
  std::priority_queue<HeapEntry, std::vector<HeapEntry>, std::greater<>> checkpoint_heap_;
  // Expired leases handed out by Expired(), by when; out of the heap until
  // their revocation applies. Guarded by mu_.
  std::map<int64_t, Clock::time_point> revoking_;
};

}  // namespace ganglion::lease
