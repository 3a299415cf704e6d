#include "lease/lessor.h"

#include <algorithm>

namespace ganglion::lease {

namespace {

Clock::time_point ExpiryAfter(Clock::time_point now, int64_t seconds, Clock::duration extend) {
  return now + std::chrono::seconds(seconds) + extend;
}

}  // namespace

void Lessor::Reset(const std::vector<LeaseInfo>& leases) {
  std::lock_guard lock(mu_);
  leases_.clear();
  key_lease_.clear();
  expiry_heap_ = {};
  checkpoint_heap_ = {};
  revoking_.clear();
  for (const LeaseInfo& l : leases) leases_[l.id].info = l;
  // A reset on the leader (snapshot install) restarts every countdown from
  // the recorded remaining TTL, as a promotion would.
  if (primary_) StartCountdownsLocked(Clock::now(), {});
}

absl::StatusOr<int64_t> Lessor::EffectiveTtl(int64_t requested_seconds) const {
  if (requested_seconds > kMaxLeaseTtlSeconds) {
    return absl::OutOfRangeError(kErrLeaseTtlTooLarge);
  }
  return std::max(requested_seconds, min_ttl_seconds_);
}

absl::Status Lessor::Grant(int64_t id, int64_t ttl_seconds, Clock::time_point now) {
  std::lock_guard lock(mu_);
  if (leases_.contains(id)) return absl::FailedPreconditionError(kErrLeaseExist);
  Lease& l = leases_[id];
  l.info.id = id;
  l.info.ttl_seconds = ttl_seconds;
  if (primary_) {
    ScheduleLocked(id, ExpiryAfter(now, ttl_seconds, {}));
    ScheduleCheckpointLocked(id, l, now);
  }
  return absl::OkStatus();
}

bool Lessor::Exists(int64_t id) const {
  std::lock_guard lock(mu_);
  return leases_.contains(id);
}

std::vector<std::string> Lessor::Revoke(int64_t id) {
  std::lock_guard lock(mu_);
  auto it = leases_.find(id);
  if (it == leases_.end()) return {};
  std::vector<std::string> keys(it->second.keys.begin(), it->second.keys.end());
  for (const std::string& k : keys) key_lease_.erase(k);
  leases_.erase(it);
  revoking_.erase(id);
  return keys;
}

absl::Status Lessor::Checkpoint(int64_t id, int64_t remaining_ttl_seconds) {
  std::lock_guard lock(mu_);
  auto it = leases_.find(id);
  if (it == leases_.end()) return absl::NotFoundError(kErrLeaseNotFound);
  it->second.info.remaining_ttl_seconds = remaining_ttl_seconds;
  it->second.clear_proposed = false;
  return absl::OkStatus();
}

std::optional<LeaseInfo> Lessor::Get(int64_t id) const {
  std::lock_guard lock(mu_);
  auto it = leases_.find(id);
  if (it == leases_.end()) return std::nullopt;
  return it->second.info;
}

std::vector<std::string> Lessor::Keys(int64_t id) const {
  std::lock_guard lock(mu_);
  auto it = leases_.find(id);
  if (it == leases_.end()) return {};
  return {it->second.keys.begin(), it->second.keys.end()};
}

int64_t Lessor::LeaseOf(const std::string& key) const {
  std::lock_guard lock(mu_);
  auto it = key_lease_.find(key);
  return it == key_lease_.end() ? 0 : it->second;
}

void Lessor::OnPut(const std::string& key, int64_t lease) {
  std::lock_guard lock(mu_);
  auto old = key_lease_.find(key);
  if (old != key_lease_.end()) {
    if (old->second == lease) return;
    if (auto l = leases_.find(old->second); l != leases_.end()) l->second.keys.erase(key);
    key_lease_.erase(old);
  }
  if (lease == 0) return;
  auto l = leases_.find(lease);
  // The server refuses a put with an unknown lease before it applies, so
  // this only misses for a lease revoked in the same batch.
  if (l == leases_.end()) return;
  l->second.keys.insert(key);
  key_lease_[key] = lease;
}

void Lessor::OnDelete(const std::string& key) {
  std::lock_guard lock(mu_);
  auto old = key_lease_.find(key);
  if (old == key_lease_.end()) return;
  if (auto l = leases_.find(old->second); l != leases_.end()) l->second.keys.erase(key);
  key_lease_.erase(old);
}

std::vector<int64_t> Lessor::Ids() const {
  std::vector<int64_t> ids;
  {
    // The apply loop waits on this lock: only the copy is done under it.
    std::lock_guard lock(mu_);
    ids.reserve(leases_.size());
    for (const auto& [id, l] : leases_) ids.push_back(id);
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

size_t Lessor::size() const {
  std::lock_guard lock(mu_);
  return leases_.size();
}

void Lessor::Promote(Clock::time_point now, Clock::duration extend) {
  std::lock_guard lock(mu_);
  primary_ = true;
  expiry_heap_ = {};
  checkpoint_heap_ = {};
  revoking_.clear();
  StartCountdownsLocked(now, extend);
}

void Lessor::StartCountdownsLocked(Clock::time_point now, Clock::duration extend) {
  for (auto& [id, l] : leases_) {
    const int64_t left =
        l.info.remaining_ttl_seconds > 0 ? l.info.remaining_ttl_seconds : l.info.ttl_seconds;
    l.checkpoint_due = Clock::time_point::max();
    l.clear_proposed = false;
    ScheduleLocked(id, ExpiryAfter(now, left, extend));
    ScheduleCheckpointLocked(id, l, now);
  }
}

void Lessor::Demote() {
  std::lock_guard lock(mu_);
  primary_ = false;
  expiry_heap_ = {};
  checkpoint_heap_ = {};
  revoking_.clear();
  for (auto& [id, l] : leases_) {
    l.expiry = Clock::time_point::max();
    l.checkpoint_due = Clock::time_point::max();
    l.clear_proposed = false;
  }
}

bool Lessor::is_primary() const {
  std::lock_guard lock(mu_);
  return primary_;
}

absl::StatusOr<int64_t> Lessor::Renew(int64_t id, Clock::time_point now, bool* clear_checkpoint) {
  std::lock_guard lock(mu_);
  if (!primary_) return absl::FailedPreconditionError("not the primary lessor");
  auto it = leases_.find(id);
  if (it == leases_.end()) return absl::NotFoundError(kErrLeaseNotFound);
  // An expired lease whose revocation is in flight cannot be saved.
  if (it->second.expiry <= now) return absl::NotFoundError(kErrLeaseNotFound);
  Lease& l = it->second;
  ScheduleLocked(id, ExpiryAfter(now, l.info.ttl_seconds, {}));
  ScheduleCheckpointLocked(id, l, now);
  if (clear_checkpoint != nullptr) {
    *clear_checkpoint = l.info.remaining_ttl_seconds > 0 && !l.clear_proposed;
    if (*clear_checkpoint) l.clear_proposed = true;
  }
  return l.info.ttl_seconds;
}

absl::StatusOr<TimeToLive> Lessor::GetTimeToLive(int64_t id, bool with_keys,
                                                 Clock::time_point now) const {
  std::lock_guard lock(mu_);
  auto it = leases_.find(id);
  if (it == leases_.end()) return absl::NotFoundError(kErrLeaseNotFound);
  const Lease& l = it->second;
  TimeToLive t;
  t.granted_ttl_seconds = l.info.ttl_seconds;
  if (primary_) {
    const auto left = std::chrono::duration_cast<std::chrono::seconds>(l.expiry - now).count();
    t.ttl_seconds = l.expiry <= now ? -1 : left;
  } else {
    t.ttl_seconds =
        l.info.remaining_ttl_seconds > 0 ? l.info.remaining_ttl_seconds : l.info.ttl_seconds;
  }
  if (with_keys) t.keys.assign(l.keys.begin(), l.keys.end());
  return t;
}

std::vector<int64_t> Lessor::Expired(Clock::time_point now, size_t max,
                                     Clock::duration retry_after) {
  std::lock_guard lock(mu_);
  std::vector<int64_t> out;
  if (!primary_) return out;
  // Revocations proposed earlier that have not applied yet (a lost
  // proposal, a leader change): propose again once retry_after passed.
  for (auto& [id, sent] : revoking_) {
    if (out.size() >= max) return out;
    if (now - sent >= retry_after) {
      sent = now;
      out.push_back(id);
    }
  }
  while (!expiry_heap_.empty() && out.size() < max) {
    auto [expiry, id] = expiry_heap_.top();
    if (expiry > now) break;
    expiry_heap_.pop();
    auto it = leases_.find(id);
    if (it == leases_.end() || it->second.expiry != expiry) continue;  // stale entry
    revoking_[id] = now;
    out.push_back(id);
  }
  return out;
}

std::vector<std::pair<int64_t, int64_t>> Lessor::DueCheckpoints(Clock::time_point now, size_t max) {
  std::lock_guard lock(mu_);
  std::vector<std::pair<int64_t, int64_t>> out;
  while (!checkpoint_heap_.empty() && out.size() < max) {
    auto [due, id] = checkpoint_heap_.top();
    if (due > now) break;
    checkpoint_heap_.pop();
    auto it = leases_.find(id);
    if (it == leases_.end() || it->second.checkpoint_due != due) continue;  // stale entry
    Lease& l = it->second;
    l.checkpoint_due = Clock::time_point::max();
    const auto left = l.expiry - now;
    if (left <= checkpoint_interval_) continue;  // a renewal queues the next one
    out.emplace_back(id, std::chrono::duration_cast<std::chrono::seconds>(left).count());
    ScheduleCheckpointLocked(id, l, now);
  }
  return out;
}

void Lessor::ScheduleCheckpointLocked(int64_t id, Lease& l, Clock::time_point now) {
  if (l.checkpoint_due != Clock::time_point::max()) return;
  if (l.expiry == Clock::time_point::max() || l.expiry - now <= checkpoint_interval_) return;
  l.checkpoint_due = now + checkpoint_interval_;
  checkpoint_heap_.push({l.checkpoint_due, id});
}

void Lessor::ScheduleLocked(int64_t id, Clock::time_point expiry) {
  leases_[id].expiry = expiry;
  expiry_heap_.push({expiry, id});
  if (expiry_heap_.size() > 4 * leases_.size() + 64) {
    // Renewals leave stale entries behind: rebuild from the live expiries.
    std::vector<HeapEntry> live;
    live.reserve(leases_.size());
    for (const auto& [lid, l] : leases_) {
      if (l.expiry != Clock::time_point::max()) live.push_back({l.expiry, lid});
    }
    expiry_heap_ = decltype(expiry_heap_)(std::greater<>(), std::move(live));
  }
}

}  // namespace ganglion::lease
