// What the leader knows of each peer's log (Progress), the flow-control window
// of messages in flight to it (Inflights), and the configuration with its
// votes (ProgressTracker).
#pragma once

#include <deque>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "raft/quorum.h"
#include "raft/types.h"

namespace ganglion::raft {

// Appends sent to a peer and not yet acknowledged, bounded in count and bytes.
class Inflights {
 public:
  Inflights(size_t count_max, uint64_t bytes_max) : count_max_(count_max), bytes_max_(bytes_max) {}

  void Add(Index last_index, uint64_t bytes);
  // Frees every inflight append up to and including `to`.
  void FreeLE(Index to);
  // Frees the oldest inflight append (one may have been lost).
  void FreeFirstOne() {
    if (!queue_.empty()) FreeLE(queue_.front().index);
  }
  bool Full() const { return queue_.size() >= count_max_ || bytes_ >= bytes_max_; }
  size_t Count() const { return queue_.size(); }
  uint64_t Bytes() const { return bytes_; }
  void Reset() {
    queue_.clear();
    bytes_ = 0;
  }

 private:
  struct Inflight {
    Index index;
    uint64_t bytes;
  };
  size_t count_max_;
  uint64_t bytes_max_;
  std::deque<Inflight> queue_;  // bounded by count_max_
  uint64_t bytes_ = 0;
};

enum class ProgressState { kProbe, kReplicate, kSnapshot };
const char* ProgressStateName(ProgressState s);

// The leader's view of one peer. Invariant: match < next.
struct Progress {
  Progress(Index next_index, size_t inflight_count_max, uint64_t inflight_bytes_max, bool learner)
      : next(next_index), inflights(inflight_count_max, inflight_bytes_max), is_learner(learner) {}

  Index match = 0;
  Index next = 0;
  ProgressState state = ProgressState::kProbe;
  // In kSnapshot: the index of the snapshot being sent.
  Index pending_snapshot = 0;
  // Heard from since the last CheckQuorum round.
  bool recent_active = false;
  // In kProbe: an append was sent and no answer arrived since the last
  // heartbeat; in kReplicate: the inflight window is full.
  bool msg_app_flow_paused = false;
  Inflights inflights;
  bool is_learner = false;

  void BecomeProbe();
  void BecomeReplicate();
  void BecomeSnapshot(Index snapshot_index);
  // An append covering up to last_index was sent.
  void SentEntries(Index last_index, uint64_t bytes, bool had_entries);
  // The peer acknowledged n; false if the answer is stale.
  bool MaybeUpdate(Index n);
  // The peer rejected an append after `rejected`; match_hint is where it
  // suggests to probe. False if the rejection is stale.
  bool MaybeDecrTo(Index rejected, Index match_hint);
  bool IsPaused() const;
  std::string Describe() const;
};

struct TrackerConfig {
  JointConfig voters;
  std::set<NodeId> learners;
  // Voters of the outgoing configuration that become learners on leaving it.
  std::set<NodeId> learners_next;
  bool auto_leave = false;

  bool operator==(const TrackerConfig&) const = default;
  std::string Describe() const;
};

using ProgressMap = std::map<NodeId, Progress>;

class ProgressTracker {
 public:
  ProgressTracker(size_t inflight_count_max, uint64_t inflight_bytes_max)
      : inflight_count_max_(inflight_count_max), inflight_bytes_max_(inflight_bytes_max) {}

  ConfState GetConfState() const;
  bool IsSingleton() const {
    return config.voters.outgoing.empty() && config.voters.incoming.ids().size() == 1;
  }
  Index Committed() const;
  // Whether the voters that were heard from recently form a quorum.
  bool QuorumActive() const;
  std::vector<NodeId> VoterNodes() const;
  std::vector<NodeId> LearnerNodes() const;
  void ResetVotes() { votes.clear(); }
  void RecordVote(NodeId id, bool granted) { votes.emplace(id, granted); }
  // Counts votes: granted, rejected and the outcome.
  VoteResult TallyVotes(size_t* granted, size_t* rejected) const;

  size_t inflight_count_max() const { return inflight_count_max_; }
  uint64_t inflight_bytes_max() const { return inflight_bytes_max_; }

  TrackerConfig config;
  ProgressMap progress;
  std::map<NodeId, bool> votes;

 private:
  size_t inflight_count_max_;
  uint64_t inflight_bytes_max_;
};

}  // namespace ganglion::raft
