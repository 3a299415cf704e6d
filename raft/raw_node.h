// RawNode: the Raft state machine with its output gathered into Ready batches.
//
// The caller's loop: feed Tick/Step/Propose; when HasReady(), take a Ready,
// persist its hard state, entries and snapshot (one sync), send its messages,
// apply its snapshot and committed entries (ApplyConfChange for conf change
// entries), then Advance. Messages must not leave before the hard state and
// entries they were produced with are durable.
#pragma once

#include <memory>
#include <optional>
#include <vector>

#include "raft/raft.h"

namespace ganglion::raft {

struct Ready {
  std::optional<SoftState> soft_state;  // set only when it changed
  std::optional<HardState> hard_state;  // set only when it changed
  std::vector<ReadState> read_states;
  std::vector<Entry> entries;            // to persist
  std::optional<Snapshot> snapshot;      // to persist and apply
  std::vector<Entry> committed_entries;  // to apply
  std::vector<Message> messages;         // to send once persisted
  bool must_sync = false;
};

struct Status {
  NodeId id = kNoNode;
  HardState hard_state;
  SoftState soft_state;
  Index applied = 0;
  NodeId lead_transferee = kNoNode;
  TrackerConfig config;
  std::map<NodeId, std::string> progress;  // leader only
  std::map<NodeId, Index> match;           // leader only: each member's matched index
  std::map<NodeId, bool> recent_active;    // leader only: heard from this quorum round
};

class RawNode {
 public:
  static absl::StatusOr<std::unique_ptr<RawNode>> Create(const Config& c);

  void Tick() { raft_.Tick(); }
  absl::Status Campaign();
  absl::Status Propose(std::string data);
  // Proposes several normal entries as one proposal: they are appended
  // together, in order, and go to each follower in one append (a follower
  // forwards them to the leader in one message). All are accepted or all
  // are dropped.
  absl::Status ProposeBatch(std::vector<std::string> data);
  absl::Status ProposeConfChange(const ConfChange& cc);
  absl::StatusOr<ConfState> ApplyConfChange(const ConfChange& cc) {
    return raft_.ApplyConfChange(cc);
  }
  // Steps a message from a peer; local message types are refused.
  absl::Status Step(Message m);
  void TransferLeader(NodeId transferee);
  // Requests a linearizable read; the answer arrives as a ReadState with ctx.
  absl::Status ReadIndex(std::string ctx);
  void ReportUnreachable(NodeId id);
  void ReportSnapshot(NodeId id, bool failed);

  bool HasReady() const;
  Ready GetReady();
  void Advance(const Ready& rd);

  Status GetStatus() const;
  const Raft& raft() const { return raft_; }

 private:
  explicit RawNode(const Config& c);

  Raft raft_;
  SoftState prev_soft_state_;
  HardState prev_hard_state_;
};

}  // namespace ganglion::raft
