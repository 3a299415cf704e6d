// Quorum arithmetic: which index a configuration has committed and whether an
// election is won, for a majority configuration and a joint one.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "raft/types.h"

namespace ganglion::raft {

enum class VoteResult { kPending, kLost, kWon };
const char* VoteResultName(VoteResult r);

// Returns the acknowledged index of a voter, or nullopt if it has none.
using AckedIndexFn = std::function<std::optional<Index>(NodeId)>;

class MajorityConfig {
 public:
  MajorityConfig() = default;
  explicit MajorityConfig(std::set<NodeId> ids) : ids_(std::move(ids)) {}

  // The largest index acknowledged by a majority. An empty configuration
  // commits everything (so a joint config with an empty half is the other half).
  Index CommittedIndex(const AckedIndexFn& acked) const;
  VoteResult Vote(const std::map<NodeId, bool>& votes) const;

  const std::set<NodeId>& ids() const { return ids_; }
  std::set<NodeId>& mutable_ids() { return ids_; }
  bool empty() const { return ids_.empty(); }
  bool contains(NodeId id) const { return ids_.count(id) > 0; }
  std::string Describe() const;

  bool operator==(const MajorityConfig&) const = default;

 private:
  std::set<NodeId> ids_;
};

// Two majority configurations that must both agree. outgoing is empty unless
// the cluster is in the middle of a joint membership change.
struct JointConfig {
  MajorityConfig incoming;
  MajorityConfig outgoing;

  Index CommittedIndex(const AckedIndexFn& acked) const;
  VoteResult Vote(const std::map<NodeId, bool>& votes) const;
  std::set<NodeId> Ids() const;
  bool Contains(NodeId id) const { return incoming.contains(id) || outgoing.contains(id); }
  std::string Describe() const;

  bool operator==(const JointConfig&) const = default;
};

}  // namespace ganglion::raft
