#include "raft/quorum.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_join.h"

namespace ganglion::raft {

const char* VoteResultName(VoteResult r) {
  switch (r) {
    case VoteResult::kPending:
      return "VotePending";
    case VoteResult::kLost:
      return "VoteLost";
    case VoteResult::kWon:
      return "VoteWon";
  }
  return "?";
}

Index MajorityConfig::CommittedIndex(const AckedIndexFn& acked) const {
  if (ids_.empty()) return UINT64_MAX;
  std::vector<Index> indexes;
  indexes.reserve(ids_.size());
  for (NodeId id : ids_) indexes.push_back(acked(id).value_or(0));
  // The (n/2+1)-th largest index is held by a majority.
  std::sort(indexes.begin(), indexes.end());
  return indexes[indexes.size() - (indexes.size() / 2 + 1)];
}

VoteResult MajorityConfig::Vote(const std::map<NodeId, bool>& votes) const {
  if (ids_.empty()) return VoteResult::kWon;
  size_t granted = 0, missing = 0;
  for (NodeId id : ids_) {
    auto it = votes.find(id);
    if (it == votes.end()) {
      missing++;
    } else if (it->second) {
      granted++;
    }
  }
  size_t quorum = ids_.size() / 2 + 1;
  if (granted >= quorum) return VoteResult::kWon;
  if (granted + missing >= quorum) return VoteResult::kPending;
  return VoteResult::kLost;
}

std::string MajorityConfig::Describe() const {
  return "(" + absl::StrJoin(ids_, " ") + ")";
}

Index JointConfig::CommittedIndex(const AckedIndexFn& acked) const {
  return std::min(incoming.CommittedIndex(acked), outgoing.CommittedIndex(acked));
}

VoteResult JointConfig::Vote(const std::map<NodeId, bool>& votes) const {
  VoteResult a = incoming.Vote(votes);
  VoteResult b = outgoing.Vote(votes);
  if (a == b) return a;
  if (a == VoteResult::kLost || b == VoteResult::kLost) return VoteResult::kLost;
  return VoteResult::kPending;
}

std::set<NodeId> JointConfig::Ids() const {
  std::set<NodeId> ids = incoming.ids();
  ids.insert(outgoing.ids().begin(), outgoing.ids().end());
  return ids;
}

std::string JointConfig::Describe() const {
  if (outgoing.empty()) return incoming.Describe();
  return incoming.Describe() + "&&" + outgoing.Describe();
}

}  // namespace ganglion::raft
