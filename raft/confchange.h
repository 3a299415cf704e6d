// Membership changes: computes the configuration (and progress map) that
// results from a ConfChange, by joint consensus or one voter at a time, and
// rebuilds a configuration from a ConfState. Pure: the caller installs it.
#pragma once

#include <vector>

#include "absl/status/statusor.h"
#include "raft/tracker.h"

namespace ganglion::raft {

struct ConfChangeResult {
  TrackerConfig config;
  ProgressMap progress;
};

class Changer {
 public:
  // last_index: the leader's last log index, where new peers start probing.
  Changer(const ProgressTracker& tracker, Index last_index)
      : tracker_(tracker), last_index_(last_index) {}

  // Enters a joint configuration: the current voters become the outgoing half
  // and the changes are made to the incoming half.
  absl::StatusOr<ConfChangeResult> EnterJoint(bool auto_leave,
                                              const std::vector<ConfChangeSingle>& ccs) const;
  // Leaves the joint configuration: the outgoing half is dropped and pending
  // demotions (learners_next) take effect.
  absl::StatusOr<ConfChangeResult> LeaveJoint() const;
  // Applies changes directly; at most one voter may change this way.
  absl::StatusOr<ConfChangeResult> Simple(const std::vector<ConfChangeSingle>& ccs) const;

 private:
  absl::Status Apply(ConfChangeResult* r, const std::vector<ConfChangeSingle>& ccs) const;
  void MakeVoter(ConfChangeResult* r, NodeId id) const;
  void MakeLearner(ConfChangeResult* r, NodeId id) const;
  void Remove(ConfChangeResult* r, NodeId id) const;
  void InitProgress(ConfChangeResult* r, NodeId id, bool learner) const;

  const ProgressTracker& tracker_;
  Index last_index_;
};

// Checks the structural invariants of a configuration and its progress map.
absl::Status CheckConfigInvariants(const TrackerConfig& cfg, const ProgressMap& progress);

// Rebuilds the configuration a ConfState describes, starting from an empty
// tracker with the same flow-control limits.
absl::StatusOr<ConfChangeResult> RestoreConfig(const ProgressTracker& limits, Index last_index,
                                               const ConfState& cs);

}  // namespace ganglion::raft
