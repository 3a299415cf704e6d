// The Raft consensus algorithm as a pure, deterministic state machine.
//
// Inputs are Tick() and Step(message); outputs accumulate (messages to send,
// entries to persist, entries committed, read states) and are collected by
// RawNode as a Ready. This module must never do I/O, read a clock, start a
// thread or draw randomness from anywhere but the seed it is given: that is
// what lets the simulator replay a whole cluster from one seed.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "raft/confchange.h"
#include "raft/log.h"
#include "raft/read_only.h"
#include "raft/tracker.h"

namespace ganglion::raft {

enum class StateType { kFollower, kCandidate, kLeader, kPreCandidate };
const char* StateName(StateType s);

// Errors returned by Step and the RawNode calls built on it.
absl::Status ErrProposalDropped();
bool IsErrProposalDropped(const absl::Status& s);
absl::Status ErrStepLocalMsg();
absl::Status ErrStepPeerNotFound();

// Deliberate bugs, for proving that the simulator's checkers catch them.
// Never set outside tests.
struct TestingBugs {
  // Grant votes without checking that the candidate's log is up to date.
  bool vote_without_log_check = false;
  // Commit any entry a quorum holds, even one from an earlier term (the
  // Figure 8 mistake of the Raft paper).
  bool commit_old_term_by_counting = false;
  // Restore a snapshot even if it is not newer than the commit index.
  bool accept_stale_snapshot = false;
};

struct Config {
  NodeId id = kNoNode;
  // A follower that hears no leader for a randomized [election, 2*election)
  // ticks campaigns. The leader heartbeats every heartbeat_ticks.
  int election_ticks = 10;
  int heartbeat_ticks = 1;
  Storage* storage = nullptr;  // not owned; must outlive the node
  // The last index the application applied (when restarting).
  Index applied = 0;
  uint64_t max_msg_bytes = 1 << 20;
  uint64_t max_committed_bytes_per_ready = 8 << 20;
  // Cap on proposal payloads appended by the leader and not yet committed;
  // proposals beyond it are dropped (ErrProposalDropped). 0: no cap.
  uint64_t max_uncommitted_bytes = 64 << 20;
  size_t max_inflight_msgs = 256;
  uint64_t max_inflight_bytes = 32 << 20;
  // Linearizable reads waiting for confirmation, per leader.
  size_t max_pending_reads = 4096;
  bool check_quorum = true;
  bool pre_vote = true;
  ReadOnlyOption read_only_option = ReadOnlyOption::kSafe;
  bool disable_proposal_forwarding = false;
  // Seeds the randomized election timeout.
  uint64_t random_seed = 0;
  // Receives one line per protocol event (elections, role changes, config
  // changes, snapshots). Used by transcripts and the simulator's trace.
  std::function<void(const std::string&)> event_sink;
  TestingBugs bugs;

  absl::Status Validate() const;
};

struct SoftState {
  NodeId lead = kNoNode;
  StateType state = StateType::kFollower;
  bool operator==(const SoftState&) const = default;
};

class Raft {
 public:
  // Config must be valid (Config::Validate).
  explicit Raft(const Config& c);

  absl::Status Step(Message m);
  void Tick();

  // Applies a committed configuration change; the configuration takes effect
  // now, when it is applied, not when it was appended. Invalid changes leave
  // the configuration as it was and return the error (every member rejects
  // the same entry the same way).
  absl::StatusOr<ConfState> ApplyConfChange(const ConfChange& cc);

  // Called by RawNode::Advance.
  void Advance(const std::vector<Entry>& committed, const std::vector<Entry>& persisted_entries,
               const std::optional<Snapshot>& persisted_snapshot);

  NodeId id() const { return id_; }
  Term term() const { return term_; }
  NodeId vote() const { return vote_; }
  NodeId lead() const { return lead_; }
  StateType state() const { return state_; }
  bool is_learner() const { return is_learner_; }
  NodeId lead_transferee() const { return lead_transferee_; }
  HardState GetHardState() const { return {term_, vote_, log_.committed()}; }
  SoftState GetSoftState() const { return {lead_, state_}; }
  const RaftLog& log() const { return log_; }
  const ProgressTracker& tracker() const { return trk_; }
  int randomized_election_timeout() const { return randomized_election_timeout_; }
  uint64_t uncommitted_bytes() const { return uncommitted_bytes_; }

  std::vector<Message>& mutable_msgs() { return msgs_; }
  std::vector<ReadState>& mutable_read_states() { return read_states_; }
  bool HasPendingOutput() const { return !msgs_.empty() || !read_states_.empty(); }

 private:
  enum class CampaignType { kPreElection, kElection, kTransfer };

  // Per-role message handling; Step does the term bookkeeping first.
  absl::Status StepLeader(Message& m);
  absl::Status StepCandidate(Message& m);
  absl::Status StepFollower(Message& m);
  absl::Status StepLeaderPeerMessage(Message& m, Progress& pr);

  void TickElection();
  void TickHeartbeat();

  void BecomeFollower(Term term, NodeId lead);
  void BecomeCandidate();
  void BecomePreCandidate();
  void BecomeLeader();
  void Reset(Term term);
  void Hup(CampaignType t);
  void Campaign(CampaignType t);
  VoteResult Poll(NodeId id, MessageType t, bool granted);
  bool Promotable() const;
  bool HasUnappliedConfChanges() const;
  bool PastElectionTimeout() const { return election_elapsed_ >= randomized_election_timeout_; }
  void ResetRandomizedElectionTimeout();

  void Send(Message m);
  void SendAppend(NodeId to) { MaybeSendAppend(to, true); }
  bool MaybeSendAppend(NodeId to, bool send_if_empty);
  void SendHeartbeat(NodeId to, const std::string& ctx);
  void BcastAppend();
  void BcastHeartbeat();
  void BcastHeartbeatWithCtx(const std::string& ctx);
  void SendTimeoutNow(NodeId to);
  void AbortLeaderTransfer() { lead_transferee_ = kNoNode; }

  bool AppendEntry(std::vector<Entry> entries);
  bool MaybeCommit();
  void HandleAppendEntries(const Message& m);
  void HandleHeartbeat(const Message& m);
  void HandleSnapshot(const Message& m);
  bool Restore(const Snapshot& snap);
  ConfState SwitchToConfig(ConfChangeResult r);
  void LoadState(const HardState& hs);

  bool CommittedEntryInCurrentTerm() const;
  void SendReadIndexResponse(const Message& m);
  Message ResponseToReadIndexReq(const Message& req, Index read_index);
  void ReleasePendingReadIndexMessages();

  bool IncreaseUncommittedSize(const std::vector<Entry>& entries);
  void ReduceUncommittedSize(const std::vector<Entry>& entries);
  void Event(const std::string& what) const;

  const NodeId id_;
  // Invariant: term_ never decreases; vote_ is kNoNode or the one candidate
  // voted for in term_ (never changes within a term once set).
  Term term_ = 0;
  NodeId vote_ = kNoNode;
  std::vector<ReadState> read_states_;
  RaftLog log_;
  ProgressTracker trk_;
  StateType state_ = StateType::kFollower;
  bool is_learner_ = false;
  std::vector<Message> msgs_;
  NodeId lead_ = kNoNode;
  NodeId lead_transferee_ = kNoNode;
  // Index of the latest conf change the leader appended; no new one is
  // accepted until it is applied.
  Index pending_conf_index_ = 0;
  uint64_t uncommitted_bytes_ = 0;
  ReadOnly read_only_;
  // Reads that arrived before the leader committed an entry of its term.
  std::vector<Message> pending_read_index_messages_;
  int election_elapsed_ = 0;
  int heartbeat_elapsed_ = 0;
  int randomized_election_timeout_ = 0;
  std::mt19937_64 rng_;
  Config cfg_;
};

}  // namespace ganglion::raft
