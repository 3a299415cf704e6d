#include "raft/raw_node.h"

namespace ganglion::raft {

absl::StatusOr<std::unique_ptr<RawNode>> RawNode::Create(const Config& c) {
  if (auto s = c.Validate(); !s.ok()) return s;
  return std::unique_ptr<RawNode>(new RawNode(c));
}

RawNode::RawNode(const Config& c)
    : raft_(c), prev_soft_state_(raft_.GetSoftState()), prev_hard_state_(raft_.GetHardState()) {}

absl::Status RawNode::Campaign() {
  Message m;
  m.type = MessageType::kHup;
  return raft_.Step(std::move(m));
}

absl::Status RawNode::Propose(std::string data) {
  Message m;
  m.type = MessageType::kProp;
  m.from = raft_.id();
  m.entries.push_back(Entry{0, 0, EntryType::kNormal, std::move(data)});
  return raft_.Step(std::move(m));
}

absl::Status RawNode::ProposeBatch(std::vector<std::string> data) {
  Message m;
  m.type = MessageType::kProp;
  m.from = raft_.id();
  m.entries.reserve(data.size());
  for (std::string& d : data) m.entries.push_back(Entry{0, 0, EntryType::kNormal, std::move(d)});
  return raft_.Step(std::move(m));
}

absl::Status RawNode::ProposeConfChange(const ConfChange& cc) {
  Message m;
  m.type = MessageType::kProp;
  m.entries.push_back(Entry{0, 0, EntryType::kConfChange, EncodeConfChange(cc)});
  return raft_.Step(std::move(m));
}

absl::Status RawNode::Step(Message m) {
  if (IsLocalMessage(m.type)) return ErrStepLocalMsg();
  if (raft_.tracker().progress.count(m.from) || !IsResponseMessage(m.type)) {
    return raft_.Step(std::move(m));
  }
  return ErrStepPeerNotFound();
}

void RawNode::TransferLeader(NodeId transferee) {
  Message m;
  m.type = MessageType::kTransferLeader;
  m.from = transferee;
  (void)raft_.Step(std::move(m));
}

absl::Status RawNode::ReadIndex(std::string ctx) {
  Message m;
  m.type = MessageType::kReadIndex;
  m.context = std::move(ctx);
  return raft_.Step(std::move(m));
}

void RawNode::ReportUnreachable(NodeId id) {
  Message m;
  m.type = MessageType::kUnreachable;
  m.from = id;
  (void)raft_.Step(std::move(m));
}

void RawNode::ReportSnapshot(NodeId id, bool failed) {
  Message m;
  m.type = MessageType::kSnapStatus;
  m.from = id;
  m.reject = failed;
  (void)raft_.Step(std::move(m));
}

bool RawNode::HasReady() const {
  if (raft_.GetSoftState() != prev_soft_state_) return true;
  HardState hs = raft_.GetHardState();
  if (!hs.empty() && hs != prev_hard_state_) return true;
  const RaftLog& log = raft_.log();
  if (log.UnstableSnapshot()) return true;
  if (!log.UnstableEntries().empty() || log.HasNextCommittedEntries()) return true;
  return raft_.HasPendingOutput();
}

Ready RawNode::GetReady() {
  Ready rd;
  const RaftLog& log = raft_.log();
  rd.entries = log.UnstableEntries();
  rd.committed_entries = log.NextCommittedEntries();
  if (SoftState ss = raft_.GetSoftState(); ss != prev_soft_state_) {
    rd.soft_state = ss;
    prev_soft_state_ = ss;
  }
  if (HardState hs = raft_.GetHardState(); hs != prev_hard_state_) rd.hard_state = hs;
  if (log.UnstableSnapshot()) rd.snapshot = *log.UnstableSnapshot();
  rd.messages.swap(raft_.mutable_msgs());
  rd.read_states.swap(raft_.mutable_read_states());
  rd.must_sync =
      !rd.entries.empty() || (rd.hard_state && (rd.hard_state->term != prev_hard_state_.term ||
                                                rd.hard_state->vote != prev_hard_state_.vote));
  return rd;
}

void RawNode::Advance(const Ready& rd) {
  if (rd.hard_state) prev_hard_state_ = *rd.hard_state;
  raft_.Advance(rd.committed_entries, rd.entries, rd.snapshot);
}

Status RawNode::GetStatus() const {
  Status s;
  s.id = raft_.id();
  s.hard_state = raft_.GetHardState();
  s.soft_state = raft_.GetSoftState();
  s.applied = raft_.log().applied();
  s.lead_transferee = raft_.lead_transferee();
  s.config = raft_.tracker().config;
  if (raft_.state() == StateType::kLeader) {
    for (const auto& [id, pr] : raft_.tracker().progress) {
      s.progress[id] = pr.Describe();
      s.match[id] = pr.match;
      s.recent_active[id] = pr.recent_active;
    }
  }
  return s;
}

}  // namespace ganglion::raft
