#include "raft/raft.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace ganglion::raft {

namespace {
constexpr const char* kProposalDropped = "raft proposal dropped";
constexpr const char* kCampaignTransfer = "CampaignTransfer";

MessageType VoteRespType(MessageType t) {
  return t == MessageType::kVote ? MessageType::kVoteResp : MessageType::kPreVoteResp;
}

uint64_t BytesOf(const std::vector<Entry>& entries) {
  uint64_t n = 0;
  for (const Entry& e : entries) n += EntrySizeBytes(e);
  return n;
}

uint64_t PayloadBytesOf(const std::vector<Entry>& entries) {
  uint64_t n = 0;
  for (const Entry& e : entries) n += PayloadSizeBytes(e);
  return n;
}
}  // namespace

const char* StateName(StateType s) {
  switch (s) {
    case StateType::kFollower:
      return "StateFollower";
    case StateType::kCandidate:
      return "StateCandidate";
    case StateType::kLeader:
      return "StateLeader";
    case StateType::kPreCandidate:
      return "StatePreCandidate";
  }
  return "?";
}

absl::Status ErrProposalDropped() {
  return absl::UnavailableError(kProposalDropped);
}
bool IsErrProposalDropped(const absl::Status& s) {
  return s.code() == absl::StatusCode::kUnavailable && s.message() == kProposalDropped;
}
absl::Status ErrStepLocalMsg() {
  return absl::InvalidArgumentError("raft: cannot step raft local message");
}
absl::Status ErrStepPeerNotFound() {
  return absl::NotFoundError("raft: cannot step as peer not found");
}

absl::Status Config::Validate() const {
  if (id == kNoNode) return absl::InvalidArgumentError("raft: cannot use none as id");
  if (heartbeat_ticks <= 0) {
    return absl::InvalidArgumentError("raft: heartbeat tick must be greater than 0");
  }
  if (election_ticks <= heartbeat_ticks) {
    return absl::InvalidArgumentError("raft: election tick must be greater than heartbeat tick");
  }
  if (storage == nullptr) return absl::InvalidArgumentError("raft: storage cannot be nil");
  if (max_inflight_msgs == 0) {
    return absl::InvalidArgumentError("raft: max inflight messages must be greater than 0");
  }
  if (max_inflight_bytes < max_msg_bytes) {
    return absl::InvalidArgumentError("raft: max inflight bytes must be >= max message size");
  }
  if (read_only_option == ReadOnlyOption::kLeaseBased && !check_quorum) {
    return absl::InvalidArgumentError(
        "raft: check quorum must be enabled when the read only option is lease based");
  }
  return absl::OkStatus();
}

Raft::Raft(const Config& c)
    : id_(c.id),
      log_(c.storage, c.max_committed_bytes_per_ready),
      trk_(c.max_inflight_msgs, c.max_inflight_bytes),
      rng_(c.random_seed ^ (c.id * 0x9e3779b97f4a7c15ULL)),
      cfg_(c) {
  if (auto s = c.Validate(); !s.ok()) Fatal(s.ToString());
  auto init = c.storage->GetInitialState();
  if (!init.ok()) Fatal("initial state: " + init.status().ToString());
  auto restored = RestoreConfig(trk_, log_.LastIndex(), init->conf_state);
  if (!restored.ok()) Fatal("restore config: " + restored.status().ToString());
  SwitchToConfig(*std::move(restored));
  if (!init->hard_state.empty()) LoadState(init->hard_state);
  if (c.applied > 0) log_.AppliedTo(c.applied);
  BecomeFollower(term_, kNoNode);
}

void Raft::Event(const std::string& what) const {
  if (cfg_.event_sink) cfg_.event_sink(absl::StrCat(id_, " ", what));
}

// ---------------------------------------------------------------------------
// Sending

void Raft::Send(Message m) {
  if (m.from == kNoNode) m.from = id_;
  bool carries_own_term = m.type == MessageType::kVote || m.type == MessageType::kVoteResp ||
                          m.type == MessageType::kPreVote || m.type == MessageType::kPreVoteResp;
  if (carries_own_term) {
    if (m.term == 0)
      Fatal(absl::StrCat("term should be set when sending ", MessageTypeName(m.type)));
  } else {
    if (m.term != 0)
      Fatal(absl::StrCat("term should not be set when sending ", MessageTypeName(m.type)));
    // Proposals and read requests forwarded to the leader are local to it.
    if (m.type != MessageType::kProp && m.type != MessageType::kReadIndex) m.term = term_;
  }
  msgs_.push_back(std::move(m));
}

bool Raft::MaybeSendAppend(NodeId to, bool send_if_empty) {
  auto it = trk_.progress.find(to);
  if (it == trk_.progress.end()) return false;
  Progress& pr = it->second;
  if (pr.IsPaused()) return false;

  Message m;
  m.to = to;
  auto term = log_.TermAt(pr.next - 1);
  auto ents = log_.EntriesFrom(pr.next, cfg_.max_msg_bytes);
  if (term.ok() && ents.ok() && ents->empty() && !send_if_empty) return false;

  if (!term.ok() || !ents.ok()) {
    // The entries the peer needs were compacted: send a snapshot instead.
    if (!pr.recent_active) return false;
    auto snap = log_.GetSnapshot();
    if (!snap.ok()) {
      if (IsErrSnapshotTemporarilyUnavailable(snap.status())) return false;
      Fatal("snapshot: " + snap.status().ToString());
    }
    if (snap->empty()) Fatal("need non-empty snapshot");
    Event(absl::StrCat("[firstindex: ", log_.FirstIndex(), ", commit: ", log_.committed(),
                       "] sent snapshot[index: ", snap->metadata.index,
                       ", term: ", snap->metadata.term, "] to ", to));
    pr.BecomeSnapshot(snap->metadata.index);
    m.type = MessageType::kSnap;
    m.snapshot = *std::move(snap);
    Send(std::move(m));
    return true;
  }

  m.type = MessageType::kApp;
  m.index = pr.next - 1;
  m.log_term = *term;
  m.entries = *std::move(ents);
  m.commit = log_.committed();
  // Nothing to append to a follower known to match: its acknowledgement could
  // only repeat that match (see Message::commit_only).
  m.commit_only = m.entries.empty() && pr.state == ProgressState::kReplicate && pr.match == m.index;
  Index last = m.entries.empty() ? m.index : m.entries.back().index;
  pr.SentEntries(last, BytesOf(m.entries), !m.entries.empty());
  Send(std::move(m));
  return true;
}

void Raft::SendHeartbeat(NodeId to, const std::string& ctx) {
  // A follower may not have the leader's committed entries yet: tell it no
  // more than it is known to match, so it never commits what it lacks.
  const Progress& pr = trk_.progress.at(to);
  Message m;
  m.to = to;
  m.type = MessageType::kHeartbeat;
  m.commit = std::min(pr.match, log_.committed());
  m.context = ctx;
  Send(std::move(m));
}

void Raft::BcastAppend() {
  for (const auto& [id, pr] : trk_.progress) {
    if (id != id_) SendAppend(id);
  }
}

void Raft::BcastHeartbeat() {
  BcastHeartbeatWithCtx(read_only_.LastPendingRequestCtx());
}

void Raft::BcastHeartbeatWithCtx(const std::string& ctx) {
  for (const auto& [id, pr] : trk_.progress) {
    if (id != id_) SendHeartbeat(id, ctx);
  }
}

void Raft::SendTimeoutNow(NodeId to) {
  Message m;
  m.to = to;
  m.type = MessageType::kTimeoutNow;
  Send(std::move(m));
}

// ---------------------------------------------------------------------------
// Log

bool Raft::AppendEntry(std::vector<Entry> entries) {
  Index last = log_.LastIndex();
  for (size_t i = 0; i < entries.size(); i++) {
    entries[i].term = term_;
    entries[i].index = last + 1 + i;
  }
  if (!IncreaseUncommittedSize(entries)) {
    Event(
        "appending new entries to log would exceed uncommitted entry size limit; dropping "
        "proposal");
    return false;
  }
  log_.Append(entries);
  // The leader's own acknowledgement is counted in Advance, once the caller
  // has persisted these entries.
  return true;
}

bool Raft::MaybeCommit() {
  Index mci = trk_.Committed();
  if (cfg_.bugs.commit_old_term_by_counting) {
    mci = std::min(mci, log_.LastIndex());
    if (mci > log_.committed()) {
      log_.CommitTo(mci);
      return true;
    }
    return false;
  }
  // Only an entry of the current term is committed by counting replicas;
  // earlier ones are committed with it (Raft paper, section 5.4.2).
  return log_.MaybeCommit(mci, term_);
}

bool Raft::IncreaseUncommittedSize(const std::vector<Entry>& entries) {
  uint64_t s = PayloadBytesOf(entries);
  // An empty entry (leader's no-op, leave-joint) is never refused; a large
  // proposal is accepted when nothing is outstanding so it cannot starve.
  if (cfg_.max_uncommitted_bytes > 0 && uncommitted_bytes_ > 0 && s > 0 &&
      uncommitted_bytes_ + s > cfg_.max_uncommitted_bytes) {
    return false;
  }
  uncommitted_bytes_ += s;
  return true;
}

void Raft::ReduceUncommittedSize(const std::vector<Entry>& entries) {
  if (uncommitted_bytes_ == 0) return;  // followers, and leaders with nothing pending
  uint64_t s = PayloadBytesOf(entries);
  // Entries of earlier terms were never counted; do not underflow.
  uncommitted_bytes_ = s > uncommitted_bytes_ ? 0 : uncommitted_bytes_ - s;
}

// ---------------------------------------------------------------------------
// Roles

void Raft::Reset(Term term) {
  if (term_ != term) {
    term_ = term;
    vote_ = kNoNode;
  }
  lead_ = kNoNode;
  election_elapsed_ = 0;
  heartbeat_elapsed_ = 0;
  ResetRandomizedElectionTimeout();
  AbortLeaderTransfer();
  trk_.ResetVotes();
  Index last = log_.LastIndex();
  for (auto& [id, pr] : trk_.progress) {
    bool learner = pr.is_learner;
    pr = Progress(last + 1, trk_.inflight_count_max(), trk_.inflight_bytes_max(), learner);
    if (id == id_) {
      pr.match = log_.PersistedLastIndex();
      pr.recent_active = true;
    }
  }
  pending_conf_index_ = 0;
  uncommitted_bytes_ = 0;
  read_only_.Clear();
  pending_read_index_messages_.clear();
}

void Raft::ResetRandomizedElectionTimeout() {
  randomized_election_timeout_ =
      cfg_.election_ticks + static_cast<int>(rng_() % static_cast<uint64_t>(cfg_.election_ticks));
}

void Raft::BecomeFollower(Term term, NodeId lead) {
  Reset(term);
  lead_ = lead;
  state_ = StateType::kFollower;
  Event(absl::StrCat("became follower at term ", term_));
}

void Raft::BecomeCandidate() {
  if (state_ == StateType::kLeader) Fatal("invalid transition [leader -> candidate]");
  Reset(term_ + 1);
  vote_ = id_;
  state_ = StateType::kCandidate;
  Event(absl::StrCat("became candidate at term ", term_));
}

void Raft::BecomePreCandidate() {
  if (state_ == StateType::kLeader) Fatal("invalid transition [leader -> pre-candidate]");
  // A pre-candidate changes neither its term nor its vote: a failed
  // pre-election leaves no trace on the cluster.
  trk_.ResetVotes();
  lead_ = kNoNode;
  state_ = StateType::kPreCandidate;
  Event(absl::StrCat("became pre-candidate at term ", term_));
}

void Raft::BecomeLeader() {
  if (state_ == StateType::kFollower) Fatal("invalid transition [follower -> leader]");
  Reset(term_);
  lead_ = id_;
  state_ = StateType::kLeader;
  Progress& self = trk_.progress.at(id_);
  self.BecomeReplicate();
  self.match = log_.PersistedLastIndex();
  self.next = log_.LastIndex() + 1;
  // Conf changes in the uncommitted tail may be pending: refuse new ones until
  // everything up to here is applied.
  pending_conf_index_ = log_.LastIndex();
  // The empty entry of the new term lets the leader commit earlier entries.
  if (!AppendEntry({Entry{}})) Fatal("empty entry was dropped");
  Event(absl::StrCat("became leader at term ", term_));
}

bool Raft::Promotable() const {
  auto it = trk_.progress.find(id_);
  return it != trk_.progress.end() && !it->second.is_learner && !log_.UnstableSnapshot();
}

bool Raft::HasUnappliedConfChanges() const {
  if (log_.applied() >= log_.committed()) return false;
  auto ents =
      log_.Slice(std::max(log_.applied() + 1, log_.FirstIndex()), log_.committed() + 1, kNoLimit);
  if (!ents.ok()) return false;
  for (const Entry& e : *ents) {
    if (e.type == EntryType::kConfChange) return true;
  }
  return false;
}

void Raft::Hup(CampaignType t) {
  if (state_ == StateType::kLeader) return;
  if (!Promotable()) {
    Event("is unpromotable and can not campaign");
    return;
  }
  // A configuration that is committed but not applied could change whether
  // this node may campaign at all.
  if (HasUnappliedConfChanges()) {
    Event("cannot campaign: there are unapplied conf changes");
    return;
  }
  Event(absl::StrCat("is starting a new election at term ", term_));
  Campaign(t);
}

void Raft::Campaign(CampaignType t) {
  Term term;
  MessageType vote_type;
  if (t == CampaignType::kPreElection) {
    BecomePreCandidate();
    vote_type = MessageType::kPreVote;
    term = term_ + 1;  // the term it would campaign in, without moving to it
  } else {
    BecomeCandidate();
    vote_type = MessageType::kVote;
    term = term_;
  }
  if (Poll(id_, VoteRespType(vote_type), true) == VoteResult::kWon) {
    // Single voter: the election is won by its own vote.
    if (t == CampaignType::kPreElection) {
      Campaign(CampaignType::kElection);
    } else {
      BecomeLeader();
    }
    return;
  }
  for (NodeId id : trk_.VoterNodes()) {
    if (id == id_) continue;
    Event(absl::StrCat("[logterm: ", log_.LastTerm(), ", index: ", log_.LastIndex(), "] sent ",
                       MessageTypeName(vote_type), " request to ", id, " at term ", term_));
    Message m;
    m.to = id;
    m.term = term;
    m.type = vote_type;
    m.index = log_.LastIndex();
    m.log_term = log_.LastTerm();
    if (t == CampaignType::kTransfer) m.context = kCampaignTransfer;
    Send(std::move(m));
  }
}

VoteResult Raft::Poll(NodeId id, MessageType t, bool granted) {
  Event(absl::StrCat("received ", MessageTypeName(t), (granted ? "" : " rejection"), " from ", id,
                     " at term ", term_));
  trk_.RecordVote(id, granted);
  size_t g = 0, r = 0;
  VoteResult res = trk_.TallyVotes(&g, &r);
  if (id != id_) {
    Event(absl::StrCat("has received ", g, " ", MessageTypeName(t), " votes and ", r,
                       " vote rejections"));
  }
  return res;
}

// ---------------------------------------------------------------------------
// Ticks

void Raft::Tick() {
  if (state_ == StateType::kLeader) {
    TickHeartbeat();
  } else {
    TickElection();
  }
}

void Raft::TickElection() {
  election_elapsed_++;
  if (Promotable() && PastElectionTimeout()) {
    election_elapsed_ = 0;
    Message m;
    m.from = id_;
    m.type = MessageType::kHup;
    (void)Step(std::move(m));
  }
}

void Raft::TickHeartbeat() {
  heartbeat_elapsed_++;
  election_elapsed_++;
  if (election_elapsed_ >= cfg_.election_ticks) {
    election_elapsed_ = 0;
    if (cfg_.check_quorum) {
      Message m;
      m.from = id_;
      m.type = MessageType::kCheckQuorum;
      (void)Step(std::move(m));
    }
    // A transfer that did not finish within an election timeout is abandoned.
    if (state_ == StateType::kLeader && lead_transferee_ != kNoNode) {
      Event(absl::StrCat("aborted leadership transfer to ", lead_transferee_));
      AbortLeaderTransfer();
    }
  }
  if (state_ != StateType::kLeader) return;
  if (heartbeat_elapsed_ >= cfg_.heartbeat_ticks) {
    heartbeat_elapsed_ = 0;
    Message m;
    m.from = id_;
    m.type = MessageType::kBeat;
    (void)Step(std::move(m));
  }
}

// ---------------------------------------------------------------------------
// Step

absl::Status Raft::Step(Message m) {
  if (m.term == 0) {
    // Local message (or a forwarded proposal / read request).
  } else if (m.term > term_) {
    if (m.type == MessageType::kVote || m.type == MessageType::kPreVote) {
      bool force = m.context == kCampaignTransfer;
      bool in_lease =
          cfg_.check_quorum && lead_ != kNoNode && election_elapsed_ < cfg_.election_ticks;
      if (!force && in_lease) {
        // We heard from a leader within the minimum election timeout: this
        // candidate is disruptive (it was partitioned away); ignore it.
        Event(absl::StrCat("[logterm: ", log_.LastTerm(), ", index: ", log_.LastIndex(),
                           ", vote: ", vote_, "] ignored ", MessageTypeName(m.type), " from ",
                           m.from, " [logterm: ", m.log_term, ", index: ", m.index, "] at term ",
                           term_, ": lease is not expired"));
        return absl::OkStatus();
      }
    }
    if (m.type == MessageType::kPreVote) {
      // A pre-vote never changes our term.
    } else if (m.type == MessageType::kPreVoteResp && !m.reject) {
      // The pre-candidate moves to the new term only once it wins.
    } else {
      Event(absl::StrCat("received ", MessageTypeName(m.type), " with higher term ", m.term,
                         " from ", m.from, " at term ", term_));
      if (m.type == MessageType::kApp || m.type == MessageType::kHeartbeat ||
          m.type == MessageType::kSnap) {
        BecomeFollower(m.term, m.from);
      } else {
        BecomeFollower(m.term, kNoNode);
      }
    }
  } else if (m.term < term_) {
    if ((cfg_.check_quorum || cfg_.pre_vote) &&
        (m.type == MessageType::kHeartbeat || m.type == MessageType::kApp)) {
      // A leader of an older term, probably partitioned away while we moved
      // on. Tell it our term so it steps down; otherwise, with CheckQuorum or
      // PreVote, it could keep us from ever advancing.
      Message resp;
      resp.to = m.from;
      resp.type = MessageType::kAppResp;
      Send(std::move(resp));
    } else if (m.type == MessageType::kPreVote) {
      // Rejected with our (higher) term, so the pre-candidate catches up.
      Message resp;
      resp.to = m.from;
      resp.term = term_;
      resp.type = MessageType::kPreVoteResp;
      resp.reject = true;
      Send(std::move(resp));
    }
    return absl::OkStatus();
  }

  switch (m.type) {
    case MessageType::kHup:
      Hup(cfg_.pre_vote ? CampaignType::kPreElection : CampaignType::kElection);
      return absl::OkStatus();

    case MessageType::kVote:
    case MessageType::kPreVote: {
      // We may vote again for the same candidate (a duplicated request), vote
      // if we have not voted and know no leader in this term, or pre-vote for
      // any future term.
      bool can_vote = vote_ == m.from || (vote_ == kNoNode && lead_ == kNoNode) ||
                      (m.type == MessageType::kPreVote && m.term > term_);
      bool up_to_date = cfg_.bugs.vote_without_log_check || log_.IsUpToDate(m.index, m.log_term);
      Message resp;
      resp.to = m.from;
      resp.type = VoteRespType(m.type);
      if (can_vote && up_to_date) {
        Event(absl::StrCat("[logterm: ", log_.LastTerm(), ", index: ", log_.LastIndex(),
                           ", vote: ", vote_, "] cast ", MessageTypeName(m.type), " for ", m.from,
                           " [logterm: ", m.log_term, ", index: ", m.index, "] at term ", term_));
        // Answer with the candidate's term: a pre-vote response must carry
        // the future term the pre-candidate asked about.
        resp.term = m.term;
        Send(std::move(resp));
        if (m.type == MessageType::kVote) {
          election_elapsed_ = 0;
          vote_ = m.from;
        }
      } else {
        Event(absl::StrCat("[logterm: ", log_.LastTerm(), ", index: ", log_.LastIndex(), ", vote: ",
                           vote_, "] rejected ", MessageTypeName(m.type), " from ", m.from,
                           " [logterm: ", m.log_term, ", index: ", m.index, "] at term ", term_));
        resp.term = term_;
        resp.reject = true;
        Send(std::move(resp));
      }
      return absl::OkStatus();
    }

    default:
      switch (state_) {
        case StateType::kLeader:
          return StepLeader(m);
        case StateType::kCandidate:
        case StateType::kPreCandidate:
          return StepCandidate(m);
        case StateType::kFollower:
          return StepFollower(m);
      }
  }
  return absl::OkStatus();
}

absl::Status Raft::StepLeader(Message& m) {
  switch (m.type) {
    case MessageType::kBeat:
      BcastHeartbeat();
      return absl::OkStatus();

    case MessageType::kCheckQuorum:
      if (!trk_.QuorumActive()) {
        Event("stepped down to follower since quorum is not active");
        BecomeFollower(term_, kNoNode);
      }
      // Everyone has to prove itself active again for the next round.
      for (auto& [id, pr] : trk_.progress) {
        if (id != id_) pr.recent_active = false;
      }
      return absl::OkStatus();

    case MessageType::kProp: {
      if (m.entries.empty()) Fatal("stepped empty MsgProp");
      if (!trk_.progress.count(id_)) {
        // Removed from the configuration while still leading: propose nothing.
        return ErrProposalDropped();
      }
      if (lead_transferee_ != kNoNode) {
        Event(absl::StrCat("[term ", term_, "] transfer leadership to ", lead_transferee_,
                           " is in progress; dropping proposal"));
        return ErrProposalDropped();
      }
      for (size_t i = 0; i < m.entries.size(); i++) {
        Entry& e = m.entries[i];
        if (e.type != EntryType::kConfChange) continue;
        auto cc = DecodeConfChange(e.data);
        if (!cc.ok()) return cc.status();
        bool already_pending = pending_conf_index_ > log_.applied();
        bool already_joint = !trk_.config.voters.outgoing.empty();
        bool wants_leave_joint = cc->LeaveJoint();
        std::string refused;
        if (already_pending) {
          refused = absl::StrCat("possible unapplied conf change at index ", pending_conf_index_,
                                 " (applied to ", log_.applied(), ")");
        } else if (already_joint && !wants_leave_joint) {
          refused = "must transition out of joint config first";
        } else if (!already_joint && wants_leave_joint) {
          refused = "not in joint state; refusing empty conf change";
        }
        if (!refused.empty()) {
          Event(absl::StrCat("ignoring conf change ", Describe(*cc), ": ", refused));
          // The slot stays, so proposal indexes the caller computed hold.
          e = Entry{};
        } else {
          pending_conf_index_ = log_.LastIndex() + i + 1;
        }
      }
      if (!AppendEntry(std::move(m.entries))) return ErrProposalDropped();
      BcastAppend();
      return absl::OkStatus();
    }

    case MessageType::kReadIndex: {
      if (trk_.IsSingleton()) {
        Message resp = ResponseToReadIndexReq(m, log_.committed());
        if (resp.to != kNoNode) Send(std::move(resp));
        return absl::OkStatus();
      }
      if (read_only_.pending() + pending_read_index_messages_.size() >= cfg_.max_pending_reads) {
        return ErrProposalDropped();
      }
      // Until an entry of its own term is committed, the leader does not know
      // the true commit index (Raft paper, section 8): hold the read.
      if (!CommittedEntryInCurrentTerm()) {
        pending_read_index_messages_.push_back(std::move(m));
        return absl::OkStatus();
      }
      SendReadIndexResponse(m);
      return absl::OkStatus();
    }

    default:
      break;
  }

  auto it = trk_.progress.find(m.from);
  if (it == trk_.progress.end()) return absl::OkStatus();
  return StepLeaderPeerMessage(m, it->second);
}

absl::Status Raft::StepLeaderPeerMessage(Message& m, Progress& pr) {
  switch (m.type) {
    case MessageType::kAppResp: {
      pr.recent_active = true;
      if (m.reject) {
        Event(absl::StrCat("received MsgAppResp(rejected, hint: (index ", m.reject_hint, ", term ",
                           m.log_term, ")) from ", m.from, " for index ", m.index));
        Index next_probe = m.reject_hint;
        if (m.log_term > 0) {
          // Skip every entry of ours whose term is above the follower's at
          // the hint: none of them can match (fast backtracking).
          next_probe = log_.FindConflictByTerm(m.reject_hint, m.log_term).first;
        }
        if (pr.MaybeDecrTo(m.index, next_probe)) {
          if (pr.state == ProgressState::kReplicate) pr.BecomeProbe();
          SendAppend(m.from);
        }
        return absl::OkStatus();
      }
      bool was_paused = pr.IsPaused();
      if (!pr.MaybeUpdate(m.index)) return absl::OkStatus();
      switch (pr.state) {
        case ProgressState::kProbe:
          pr.BecomeReplicate();
          break;
        case ProgressState::kSnapshot:
          if (pr.match + 1 >= log_.FirstIndex()) {
            // The peer caught up (by the snapshot or otherwise): replicate.
            pr.BecomeProbe();
            pr.BecomeReplicate();
          }
          break;
        case ProgressState::kReplicate:
          pr.inflights.FreeLE(m.index);
          break;
      }
      if (MaybeCommit()) {
        ReleasePendingReadIndexMessages();
        BcastAppend();
      } else if (was_paused) {
        SendAppend(m.from);
      }
      // Fill the window while there is something to send.
      for (size_t sent = 0; sent < cfg_.max_inflight_msgs && MaybeSendAppend(m.from, false);) {
        sent++;
      }
      if (m.from == lead_transferee_ && pr.match == log_.LastIndex()) {
        Event(absl::StrCat("sent MsgTimeoutNow to ", m.from, " after received MsgAppResp"));
        SendTimeoutNow(m.from);
      }
      return absl::OkStatus();
    }

    case MessageType::kHeartbeatResp: {
      pr.recent_active = true;
      pr.msg_app_flow_paused = false;
      // An append may have been lost with the window full: free one slot so
      // the next append reveals the gap.
      if (pr.state == ProgressState::kReplicate && pr.inflights.Full()) {
        pr.inflights.FreeFirstOne();
      }
      if (pr.match < log_.LastIndex()) SendAppend(m.from);

      if (cfg_.read_only_option != ReadOnlyOption::kSafe || m.context.empty()) {
        return absl::OkStatus();
      }
      const std::set<NodeId>* acks = read_only_.RecvAck(m.from, m.context);
      if (acks == nullptr) return absl::OkStatus();
      std::map<NodeId, bool> votes;
      for (NodeId id : *acks) votes[id] = true;
      if (trk_.config.voters.Vote(votes) != VoteResult::kWon) return absl::OkStatus();
      for (const auto& rs : read_only_.Advance(m.context)) {
        Message resp = ResponseToReadIndexReq(rs.req, rs.index);
        if (resp.to != kNoNode) Send(std::move(resp));
      }
      return absl::OkStatus();
    }

    case MessageType::kSnapStatus:
      if (pr.state != ProgressState::kSnapshot) return absl::OkStatus();
      if (m.reject) {
        pr.pending_snapshot = 0;
        Event(absl::StrCat("snapshot failed, resumed sending replication messages to ", m.from));
      } else {
        Event(absl::StrCat("snapshot succeeded, resumed sending replication messages to ", m.from));
      }
      pr.BecomeProbe();
      // Wait for a heartbeat response before probing: the snapshot may still
      // be applying on the peer.
      pr.msg_app_flow_paused = true;
      return absl::OkStatus();

    case MessageType::kUnreachable:
      // Optimistic replication to an unreachable peer only loses messages.
      if (pr.state == ProgressState::kReplicate) pr.BecomeProbe();
      return absl::OkStatus();

    case MessageType::kTransferLeader: {
      if (pr.is_learner) {
        Event(absl::StrCat("ignored transferring leadership to learner ", m.from));
        return absl::OkStatus();
      }
      NodeId transferee = m.from;
      if (lead_transferee_ != kNoNode) {
        if (lead_transferee_ == transferee) return absl::OkStatus();  // already under way
        Event(absl::StrCat("aborted leadership transfer to ", lead_transferee_));
        AbortLeaderTransfer();
      }
      if (transferee == id_) return absl::OkStatus();
      Event(absl::StrCat("[term ", term_, "] starts to transfer leadership to ", transferee));
      // The transfer must finish within one election timeout.
      election_elapsed_ = 0;
      lead_transferee_ = transferee;
      if (pr.match == log_.LastIndex()) {
        SendTimeoutNow(transferee);
      } else {
        SendAppend(transferee);
      }
      return absl::OkStatus();
    }

    default:
      return absl::OkStatus();
  }
}

absl::Status Raft::StepCandidate(Message& m) {
  MessageType my_vote_resp =
      state_ == StateType::kPreCandidate ? MessageType::kPreVoteResp : MessageType::kVoteResp;
  switch (m.type) {
    case MessageType::kProp:
      return ErrProposalDropped();
    case MessageType::kApp:
      BecomeFollower(m.term, m.from);
      HandleAppendEntries(m);
      return absl::OkStatus();
    case MessageType::kHeartbeat:
      BecomeFollower(m.term, m.from);
      HandleHeartbeat(m);
      return absl::OkStatus();
    case MessageType::kSnap:
      BecomeFollower(m.term, m.from);
      HandleSnapshot(m);
      return absl::OkStatus();
    case MessageType::kTimeoutNow:
      return absl::OkStatus();
    default:
      break;
  }
  if (m.type != my_vote_resp) return absl::OkStatus();
  switch (Poll(m.from, m.type, !m.reject)) {
    case VoteResult::kWon:
      if (state_ == StateType::kPreCandidate) {
        Campaign(CampaignType::kElection);
      } else {
        BecomeLeader();
        BcastAppend();
      }
      break;
    case VoteResult::kLost:
      // A rejection at a higher term was already handled in Step.
      BecomeFollower(term_, kNoNode);
      break;
    case VoteResult::kPending:
      break;
  }
  return absl::OkStatus();
}

absl::Status Raft::StepFollower(Message& m) {
  switch (m.type) {
    case MessageType::kProp:
      if (lead_ == kNoNode) {
        Event(absl::StrCat("no leader at term ", term_, "; dropping proposal"));
        return ErrProposalDropped();
      }
      if (cfg_.disable_proposal_forwarding) return ErrProposalDropped();
      m.to = lead_;
      Send(std::move(m));
      return absl::OkStatus();
    case MessageType::kApp:
      election_elapsed_ = 0;
      lead_ = m.from;
      HandleAppendEntries(m);
      return absl::OkStatus();
    case MessageType::kHeartbeat:
      election_elapsed_ = 0;
      lead_ = m.from;
      HandleHeartbeat(m);
      return absl::OkStatus();
    case MessageType::kSnap:
      election_elapsed_ = 0;
      lead_ = m.from;
      HandleSnapshot(m);
      return absl::OkStatus();
    case MessageType::kTransferLeader:
      if (lead_ == kNoNode) return absl::OkStatus();
      m.to = lead_;
      Send(std::move(m));
      return absl::OkStatus();
    case MessageType::kTimeoutNow:
      Event(absl::StrCat("[term ", term_, "] received MsgTimeoutNow from ", m.from,
                         " and starts an election to get leadership"));
      // Leadership transfer skips the pre-vote: the leader asked for it.
      Hup(CampaignType::kTransfer);
      return absl::OkStatus();
    case MessageType::kReadIndex:
      if (lead_ == kNoNode) return ErrProposalDropped();
      m.to = lead_;
      Send(std::move(m));
      return absl::OkStatus();
    case MessageType::kReadIndexResp:
      read_states_.push_back({m.index, m.context});
      return absl::OkStatus();
    default:
      return absl::OkStatus();
  }
}

// ---------------------------------------------------------------------------
// Follower handlers

void Raft::HandleAppendEntries(const Message& m) {
  Message resp;
  resp.to = m.from;
  resp.type = MessageType::kAppResp;
  if (m.index < log_.committed()) {
    // Already committed here: tell the leader where we are.
    resp.index = log_.committed();
    Send(std::move(resp));
    return;
  }
  if (auto last_new = log_.MaybeAppend(m.index, m.log_term, m.commit, m.entries)) {
    if (m.commit_only && m.entries.empty()) return;  // the leader knows this match
    resp.index = *last_new;
    Send(std::move(resp));
    return;
  }
  // Reject with a hint: the last entry at or below m.index whose term is at
  // most the leader's term there. The leader can skip a whole term at once.
  Index hint_index = std::min(m.index, log_.LastIndex());
  auto [hint, hint_term] = log_.FindConflictByTerm(hint_index, m.log_term);
  Event(absl::StrCat("[logterm: ", log_.TermOrZero(m.index), ", index: ", m.index,
                     "] rejected MsgApp [logterm: ", m.log_term, ", index: ", m.index, "] from ",
                     m.from));
  resp.index = m.index;
  resp.reject = true;
  resp.reject_hint = hint;
  resp.log_term = hint_term;
  Send(std::move(resp));
}

void Raft::HandleHeartbeat(const Message& m) {
  log_.CommitTo(m.commit);
  Message resp;
  resp.to = m.from;
  resp.type = MessageType::kHeartbeatResp;
  resp.context = m.context;
  Send(std::move(resp));
}

void Raft::HandleSnapshot(const Message& m) {
  const Snapshot& snap = *m.snapshot;
  Message resp;
  resp.to = m.from;
  resp.type = MessageType::kAppResp;
  if (Restore(snap)) {
    Event(absl::StrCat("[commit: ", log_.committed(), "] restored snapshot [index: ",
                       snap.metadata.index, ", term: ", snap.metadata.term, "]"));
    resp.index = log_.LastIndex();
  } else {
    Event(absl::StrCat("[commit: ", log_.committed(), "] ignored snapshot [index: ",
                       snap.metadata.index, ", term: ", snap.metadata.term, "]"));
    resp.index = log_.committed();
  }
  Send(std::move(resp));
}

bool Raft::Restore(const Snapshot& snap) {
  const auto& md = snap.metadata;
  bool stale = md.index <= log_.committed();
  if (stale && !cfg_.bugs.accept_stale_snapshot) return false;
  if (state_ != StateType::kFollower) {
    // Only a follower takes a snapshot; anything else means a second leader
    // in this term, which must never happen.
    Event("attempted to restore snapshot as leader; should never happen");
    BecomeFollower(term_ + 1, kNoNode);
    return false;
  }
  const auto& cs = md.conf_state;
  bool member = false;
  for (const auto* ids : {&cs.voters, &cs.learners, &cs.voters_outgoing}) {
    if (std::find(ids->begin(), ids->end(), id_) != ids->end()) member = true;
  }
  if (!member) {
    Event("attempted to restore snapshot but it is not in the ConfState; should never happen");
    return false;
  }
  if (!stale && log_.MatchTerm(md.index, md.term)) {
    // We already have the entry: just move the commit index.
    log_.CommitTo(md.index);
    return false;
  }
  log_.Restore(snap);
  auto restored = RestoreConfig(trk_, log_.LastIndex(), cs);
  if (!restored.ok()) Fatal("unable to restore config: " + restored.status().ToString());
  SwitchToConfig(*std::move(restored));
  return true;
}

// ---------------------------------------------------------------------------
// Configuration

absl::StatusOr<ConfState> Raft::ApplyConfChange(const ConfChange& cc) {
  Changer changer(trk_, log_.LastIndex());
  absl::StatusOr<ConfChangeResult> r;
  bool auto_leave = false;
  if (cc.LeaveJoint()) {
    r = changer.LeaveJoint();
  } else if (cc.EntersJoint(&auto_leave)) {
    r = changer.EnterJoint(auto_leave, cc.changes);
  } else {
    r = changer.Simple(cc.changes);
  }
  if (!r.ok()) {
    Event(absl::StrCat("rejected conf change ", Describe(cc), ": ", r.status().message()));
    return r.status();
  }
  return SwitchToConfig(*std::move(r));
}

ConfState Raft::SwitchToConfig(ConfChangeResult r) {
  trk_.config = std::move(r.config);
  trk_.progress = std::move(r.progress);
  Event(absl::StrCat("switched to configuration ", trk_.config.Describe()));
  ConfState cs = trk_.GetConfState();
  auto it = trk_.progress.find(id_);
  is_learner_ = it != trk_.progress.end() && it->second.is_learner;

  if ((it == trk_.progress.end() || is_learner_) && state_ == StateType::kLeader) {
    // The leader was removed or demoted, and the change is committed (it is
    // being applied): step down so the remaining voters elect a leader.
    Event("stepping down: removed from the configuration");
    BecomeFollower(term_, kNoNode);
    return cs;
  }
  if (state_ != StateType::kLeader || cs.voters.empty()) return cs;
  // The quorum changed: a new commit index, and new peers need probing.
  if (MaybeCommit()) {
    BcastAppend();
  } else {
    for (const auto& [id, pr] : trk_.progress) {
      if (id != id_) MaybeSendAppend(id, false);
    }
  }
  if (lead_transferee_ != kNoNode && !trk_.config.voters.Contains(lead_transferee_)) {
    AbortLeaderTransfer();
  }
  return cs;
}

void Raft::LoadState(const HardState& hs) {
  if (hs.commit > log_.LastIndex()) {
    Fatal(absl::StrCat(id_, " state.commit ", hs.commit, " is beyond the last index ",
                       log_.LastIndex()));
  }
  // A saved commit index below the snapshot's is not an error: the server
  // applies entries it saved earlier while the write carrying their commit
  // index is still syncing, and may snapshot them before it lands. Whatever
  // a snapshot covers is committed.
  log_.CommitTo(hs.commit);  // never lowers it
  term_ = hs.term;
  vote_ = hs.vote;
}

// ---------------------------------------------------------------------------
// Reads

bool Raft::CommittedEntryInCurrentTerm() const {
  return log_.TermOrZero(log_.committed()) == term_;
}

void Raft::SendReadIndexResponse(const Message& m) {
  switch (cfg_.read_only_option) {
    case ReadOnlyOption::kSafe:
      read_only_.AddRequest(log_.committed(), m);
      read_only_.RecvAck(id_, m.context);
      BcastHeartbeatWithCtx(m.context);
      break;
    case ReadOnlyOption::kLeaseBased: {
      Message resp = ResponseToReadIndexReq(m, log_.committed());
      if (resp.to != kNoNode) Send(std::move(resp));
      break;
    }
  }
}

Message Raft::ResponseToReadIndexReq(const Message& req, Index read_index) {
  if (req.from == kNoNode || req.from == id_) {
    read_states_.push_back({read_index, req.context});
    return Message{};
  }
  Message resp;
  resp.type = MessageType::kReadIndexResp;
  resp.to = req.from;
  resp.index = read_index;
  resp.context = req.context;
  return resp;
}

void Raft::ReleasePendingReadIndexMessages() {
  if (pending_read_index_messages_.empty() || !CommittedEntryInCurrentTerm()) return;
  std::vector<Message> held;
  held.swap(pending_read_index_messages_);
  for (const Message& m : held) SendReadIndexResponse(m);
}

// ---------------------------------------------------------------------------
// Advance

void Raft::Advance(const std::vector<Entry>& committed, const std::vector<Entry>& persisted_entries,
                   const std::optional<Snapshot>& persisted_snapshot) {
  if (state_ == StateType::kLeader) ReduceUncommittedSize(committed);
  // A snapshot is applied before the entries that follow it. It moves applied
  // directly (even backwards, under the accept_stale_snapshot testing bug,
  // which the simulator must catch).
  if (persisted_snapshot) log_.AppliedSnapshotTo(persisted_snapshot->metadata.index);
  if (!committed.empty()) log_.AppliedTo(committed.back().index);
  if ((persisted_snapshot || !committed.empty()) && state_ == StateType::kLeader &&
      trk_.config.auto_leave && log_.applied() >= pending_conf_index_) {
    // The joint configuration is applied: propose leaving it.
    Message m;
    m.from = id_;
    m.type = MessageType::kProp;
    m.entries.push_back(Entry{0, 0, EntryType::kConfChange, EncodeConfChange(ConfChange{})});
    if (auto s = Step(std::move(m)); !s.ok()) {
      Event("not initiating automatic transition out of joint configuration: " +
            std::string(s.message()));
    } else {
      Event("initiating automatic transition out of joint configuration");
    }
  }
  if (persisted_snapshot) log_.StableSnapTo(persisted_snapshot->metadata.index);
  if (!persisted_entries.empty()) {
    const Entry& last = persisted_entries.back();
    log_.StableTo(last.index, last.term);
    if (state_ == StateType::kLeader) {
      // The leader's own copy is durable now: it counts toward the quorum.
      auto self = trk_.progress.find(id_);
      if (self != trk_.progress.end() && log_.MatchTerm(last.index, last.term) &&
          self->second.MaybeUpdate(last.index) && MaybeCommit()) {
        ReleasePendingReadIndexMessages();
        BcastAppend();
      }
    }
  }
}

}  // namespace ganglion::raft
