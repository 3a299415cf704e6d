#include "raft/tracker.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "raft/log.h"

namespace ganglion::raft {

void Inflights::Add(Index last_index, uint64_t bytes) {
  if (queue_.size() >= count_max_) Fatal("inflights: add to a full window");
  queue_.push_back({last_index, bytes});
  bytes_ += bytes;
}

void Inflights::FreeLE(Index to) {
  while (!queue_.empty() && queue_.front().index <= to) {
    bytes_ -= queue_.front().bytes;
    queue_.pop_front();
  }
}

const char* ProgressStateName(ProgressState s) {
  switch (s) {
    case ProgressState::kProbe:
      return "StateProbe";
    case ProgressState::kReplicate:
      return "StateReplicate";
    case ProgressState::kSnapshot:
      return "StateSnapshot";
  }
  return "?";
}

void Progress::BecomeProbe() {
  // After a snapshot, probe from the snapshot on: the peer has at least that.
  if (state == ProgressState::kSnapshot) {
    Index pending = pending_snapshot;
    state = ProgressState::kProbe;
    next = std::max(match + 1, pending + 1);
  } else {
    state = ProgressState::kProbe;
    next = match + 1;
  }
  pending_snapshot = 0;
  msg_app_flow_paused = false;
  inflights.Reset();
}

void Progress::BecomeReplicate() {
  state = ProgressState::kReplicate;
  next = match + 1;
  pending_snapshot = 0;
  msg_app_flow_paused = false;
  inflights.Reset();
}

void Progress::BecomeSnapshot(Index snapshot_index) {
  state = ProgressState::kSnapshot;
  pending_snapshot = snapshot_index;
  msg_app_flow_paused = false;
  inflights.Reset();
}

void Progress::SentEntries(Index last_index, uint64_t bytes, bool had_entries) {
  switch (state) {
    case ProgressState::kReplicate:
      if (had_entries) {
        // Optimistically assume delivery: pipeline the next append.
        next = last_index + 1;
        inflights.Add(last_index, bytes);
      }
      msg_app_flow_paused = inflights.Full();
      break;
    case ProgressState::kProbe:
      // One probe at a time until it is answered (or a heartbeat resets it).
      msg_app_flow_paused = true;
      break;
    case ProgressState::kSnapshot:
      Fatal("sending entries to a peer waiting for a snapshot");
  }
}

bool Progress::MaybeUpdate(Index n) {
  bool updated = false;
  if (match < n) {
    match = n;
    updated = true;
    msg_app_flow_paused = false;
  }
  next = std::max(next, n + 1);
  return updated;
}

bool Progress::MaybeDecrTo(Index rejected, Index match_hint) {
  if (state == ProgressState::kReplicate) {
    // Only a rejection of something above match can be current.
    if (rejected <= match) return false;
    next = match + 1;
    return true;
  }
  // In probe, only the rejection of the one probe in flight counts.
  if (next - 1 != rejected) return false;
  next = std::max(std::min(rejected, match_hint + 1), match + 1);
  msg_app_flow_paused = false;
  return true;
}

bool Progress::IsPaused() const {
  switch (state) {
    case ProgressState::kProbe:
      return msg_app_flow_paused;
    // A stale or partial ack can clear the flag with the window still full.
    case ProgressState::kReplicate:
      return msg_app_flow_paused || inflights.Full();
    case ProgressState::kSnapshot:
      return true;
  }
  return true;
}

std::string Progress::Describe() const {
  std::string s = absl::StrCat(ProgressStateName(state), " match=", match, " next=", next);
  if (is_learner) s += " learner";
  if (msg_app_flow_paused) s += " paused";
  if (pending_snapshot > 0) absl::StrAppend(&s, " pendingSnap=", pending_snapshot);
  if (!recent_active) s += " inactive";
  if (inflights.Count() > 0) absl::StrAppend(&s, " inflight=", inflights.Count());
  return s;
}

std::string TrackerConfig::Describe() const {
  std::string s = absl::StrCat("voters=", voters.Describe());
  if (!learners.empty()) absl::StrAppend(&s, " learners=(", absl::StrJoin(learners, " "), ")");
  if (!learners_next.empty()) {
    absl::StrAppend(&s, " learners_next=(", absl::StrJoin(learners_next, " "), ")");
  }
  if (auto_leave) s += " autoleave";
  return s;
}

ConfState ProgressTracker::GetConfState() const {
  ConfState cs;
  cs.voters.assign(config.voters.incoming.ids().begin(), config.voters.incoming.ids().end());
  cs.voters_outgoing.assign(config.voters.outgoing.ids().begin(),
                            config.voters.outgoing.ids().end());
  cs.learners.assign(config.learners.begin(), config.learners.end());
  cs.learners_next.assign(config.learners_next.begin(), config.learners_next.end());
  cs.auto_leave = config.auto_leave;
  return cs;
}

Index ProgressTracker::Committed() const {
  return config.voters.CommittedIndex([this](NodeId id) -> std::optional<Index> {
    auto it = progress.find(id);
    if (it == progress.end()) return std::nullopt;
    return it->second.match;
  });
}

bool ProgressTracker::QuorumActive() const {
  std::map<NodeId, bool> active;
  for (const auto& [id, pr] : progress) {
    if (!pr.is_learner) active[id] = pr.recent_active;
  }
  return config.voters.Vote(active) == VoteResult::kWon;
}

std::vector<NodeId> ProgressTracker::VoterNodes() const {
  auto ids = config.voters.Ids();
  return {ids.begin(), ids.end()};
}

std::vector<NodeId> ProgressTracker::LearnerNodes() const {
  return {config.learners.begin(), config.learners.end()};
}

VoteResult ProgressTracker::TallyVotes(size_t* granted, size_t* rejected) const {
  *granted = 0;
  *rejected = 0;
  for (const auto& [id, pr] : progress) {
    if (pr.is_learner) continue;
    auto it = votes.find(id);
    if (it == votes.end()) continue;
    (it->second ? *granted : *rejected) += 1;
  }
  return config.voters.Vote(votes);
}

}  // namespace ganglion::raft
