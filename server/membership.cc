#include "server/membership.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/config.h"
#include "server/errors.h"

namespace ganglion::server {

namespace {

constexpr char kMemberPrefix[] = "member/";
constexpr char kRemovedPrefix[] = "removed/";

std::string IdKey(const char* prefix, uint64_t id) {
  return absl::StrFormat("%s%016x", prefix, id);
}

}  // namespace

absl::Status Membership::Load(const storage::StateStore& store) {
  auto members = store.ReadMeta(kMemberPrefix);
  if (!members.ok()) return members.status();
  auto removed = store.ReadMeta(kRemovedPrefix);
  if (!removed.ok()) return removed.status();
  std::lock_guard lock(mu_);
  members_.clear();
  removed_.clear();
  for (const auto& [key, value] : *members) {
    peer::Member m;
    if (!m.ParseFromString(value)) return absl::DataLossError("corrupt member record " + key);
    members_[m.id()] = m;
  }
  for (const auto& [key, value] : *removed) {
    uint64_t id = 0;
    if (!absl::SimpleHexAtoi(key.substr(sizeof(kRemovedPrefix) - 1), &id)) {
      return absl::DataLossError("corrupt removed-member record " + key);
    }
    removed_.insert(id);
  }
  return absl::OkStatus();
}

std::vector<peer::Member> Membership::List() const {
  std::lock_guard lock(mu_);
  std::vector<peer::Member> out;
  out.reserve(members_.size());
  for (const auto& [id, m] : members_) out.push_back(m);
  return out;
}

std::optional<peer::Member> Membership::Get(uint64_t id) const {
  std::lock_guard lock(mu_);
  auto it = members_.find(id);
  if (it == members_.end()) return std::nullopt;
  return it->second;
}

bool Membership::IsRemoved(uint64_t id) const {
  std::lock_guard lock(mu_);
  return removed_.contains(id);
}

size_t Membership::size() const {
  std::lock_guard lock(mu_);
  return members_.size();
}

std::vector<storage::MetaWrite> Membership::Put(const peer::Member& m) {
  std::lock_guard lock(mu_);
  members_[m.id()] = m;
  return {storage::MetaWrite{IdKey(kMemberPrefix, m.id()), m.SerializeAsString()}};
}

std::vector<storage::MetaWrite> Membership::Remove(uint64_t id) {
  std::lock_guard lock(mu_);
  members_.erase(id);
  removed_.insert(id);
  return {storage::MetaWrite{IdKey(kMemberPrefix, id), std::nullopt},
          storage::MetaWrite{IdKey(kRemovedPrefix, id), std::string()}};
}

absl::Status Membership::CheckAdd(const peer::Member& m) const {
  if (m.peer_urls().empty()) return absl::InvalidArgumentError(kErrMemberBadUrls);
  for (const std::string& u : m.peer_urls()) {
    if (!ParseUrl(u).ok()) return absl::InvalidArgumentError(kErrMemberBadUrls);
  }
  std::lock_guard lock(mu_);
  if (members_.contains(m.id()) || removed_.contains(m.id())) {
    return absl::FailedPreconditionError(kErrMemberExist);
  }
  size_t learners = 0;
  for (const auto& [id, existing] : members_) {
    if (existing.is_learner()) learners++;
    for (const std::string& u : existing.peer_urls()) {
      for (const std::string& v : m.peer_urls()) {
        if (u == v) return absl::FailedPreconditionError(kErrPeerUrlExist);
      }
    }
  }
  if (m.is_learner() && learners >= kLearnersMax) {
    return absl::FailedPreconditionError(kErrTooManyLearners);
  }
  if (!m.is_learner()) {
    // etcd's strict reconfiguration check: after the add, the voters that
    // have started (published their name) must still be a quorum, or the
    // cluster stops until the new member starts. Growing one member to two
    // is allowed (it is how a restored cluster grows back).
    size_t voters = 0, started = 0;
    for (const auto& [id, existing] : members_) {
      if (existing.is_learner()) continue;
      voters++;
      if (!existing.name().empty()) started++;
    }
    const size_t voters_after = voters + 1;
    if (!(started == 1 && voters_after == 2) && started < voters_after / 2 + 1) {
      return absl::FailedPreconditionError(kErrMemberNotEnoughStarted);
    }
  }
  return absl::OkStatus();
}

absl::Status Membership::CheckRemove(uint64_t id, const std::map<uint64_t, bool>& active) const {
  std::lock_guard lock(mu_);
  auto it = members_.find(id);
  if (it == members_.end()) return absl::NotFoundError(kErrMemberNotFound);
  if (it->second.is_learner()) return absl::OkStatus();  // never part of a quorum
  // After the removal, the voters left must still have a quorum that the
  // leader heard from recently, or the cluster would stop making progress.
  size_t voters_after = 0, active_after = 0;
  for (const auto& [mid, m] : members_) {
    if (m.is_learner() || mid == id) continue;
    voters_after++;
    auto a = active.find(mid);
    if (a != active.end() && a->second) active_after++;
  }
  if (voters_after == 0 || active_after < voters_after / 2 + 1) {
    return absl::FailedPreconditionError(kErrMemberNotEnoughStarted);
  }
  return absl::OkStatus();
}

absl::Status Membership::CheckPromote(uint64_t id) const {
  std::lock_guard lock(mu_);
  auto it = members_.find(id);
  if (it == members_.end()) return absl::NotFoundError(kErrMemberNotFound);
  if (!it->second.is_learner()) return absl::FailedPreconditionError(kErrMemberNotLearner);
  return absl::OkStatus();
}

absl::Status Membership::CheckUpdate(uint64_t id, const std::vector<std::string>& peer_urls) const {
  if (peer_urls.empty()) return absl::InvalidArgumentError(kErrMemberBadUrls);
  for (const std::string& u : peer_urls) {
    if (!ParseUrl(u).ok()) return absl::InvalidArgumentError(kErrMemberBadUrls);
  }
  std::lock_guard lock(mu_);
  if (!members_.contains(id)) return absl::NotFoundError(kErrMemberNotFound);
  for (const auto& [mid, m] : members_) {
    if (mid == id) continue;
    for (const std::string& u : m.peer_urls()) {
      for (const std::string& v : peer_urls) {
        if (u == v) return absl::FailedPreconditionError(kErrPeerUrlExist);
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace ganglion::server
