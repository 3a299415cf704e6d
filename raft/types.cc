#include "raft/types.h"

#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace ganglion::raft {

namespace {
constexpr uint64_t kEntryHeaderBytes = 24;  // term + index + type, as a peer encodes them
constexpr uint8_t kConfChangeVersion = 1;
constexpr size_t kConfChangesMax = 64;
constexpr size_t kConfChangeContextBytesMax = 1 << 20;

void PutU64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; i++) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

bool GetU64(const std::string& in, size_t* pos, uint64_t* v) {
  if (in.size() - *pos < 8) return false;
  *v = 0;
  for (int i = 0; i < 8; i++) {
    *v |= static_cast<uint64_t>(static_cast<uint8_t>(in[*pos + i])) << (8 * i);
  }
  *pos += 8;
  return true;
}

std::string Ids(const std::vector<NodeId>& ids) {
  return absl::StrJoin(ids, ",");
}
}  // namespace

uint64_t PayloadSizeBytes(const Entry& e) {
  return e.data.size();
}
uint64_t EntrySizeBytes(const Entry& e) {
  return kEntryHeaderBytes + e.data.size();
}

const char* MessageTypeName(MessageType t) {
  switch (t) {
    case MessageType::kHup:
      return "MsgHup";
    case MessageType::kBeat:
      return "MsgBeat";
    case MessageType::kProp:
      return "MsgProp";
    case MessageType::kApp:
      return "MsgApp";
    case MessageType::kAppResp:
      return "MsgAppResp";
    case MessageType::kVote:
      return "MsgVote";
    case MessageType::kVoteResp:
      return "MsgVoteResp";
    case MessageType::kPreVote:
      return "MsgPreVote";
    case MessageType::kPreVoteResp:
      return "MsgPreVoteResp";
    case MessageType::kSnap:
      return "MsgSnap";
    case MessageType::kHeartbeat:
      return "MsgHeartbeat";
    case MessageType::kHeartbeatResp:
      return "MsgHeartbeatResp";
    case MessageType::kUnreachable:
      return "MsgUnreachable";
    case MessageType::kSnapStatus:
      return "MsgSnapStatus";
    case MessageType::kCheckQuorum:
      return "MsgCheckQuorum";
    case MessageType::kTransferLeader:
      return "MsgTransferLeader";
    case MessageType::kTimeoutNow:
      return "MsgTimeoutNow";
    case MessageType::kReadIndex:
      return "MsgReadIndex";
    case MessageType::kReadIndexResp:
      return "MsgReadIndexResp";
  }
  return "MsgUnknown";
}

bool IsLocalMessage(MessageType t) {
  return t == MessageType::kHup || t == MessageType::kBeat || t == MessageType::kUnreachable ||
         t == MessageType::kSnapStatus || t == MessageType::kCheckQuorum;
}

bool IsResponseMessage(MessageType t) {
  return t == MessageType::kAppResp || t == MessageType::kVoteResp ||
         t == MessageType::kHeartbeatResp || t == MessageType::kUnreachable ||
         t == MessageType::kPreVoteResp;
}

bool MaySendBeforePersist(MessageType t) {
  return t == MessageType::kApp || t == MessageType::kSnap || t == MessageType::kHeartbeat;
}

bool ConfChange::EntersJoint(bool* auto_leave) const {
  // A single change can be applied directly (one-at-a-time), so kAuto only
  // uses a joint configuration when several changes are made at once.
  if (transition != Transition::kAuto || changes.size() > 1) {
    *auto_leave = transition != Transition::kJointExplicit;
    return true;
  }
  *auto_leave = false;
  return false;
}

std::string EncodeConfChange(const ConfChange& cc) {
  std::string out;
  out.push_back(static_cast<char>(kConfChangeVersion));
  out.push_back(static_cast<char>(cc.transition));
  PutU64(&out, cc.changes.size());
  for (const auto& c : cc.changes) {
    out.push_back(static_cast<char>(c.type));
    PutU64(&out, c.node_id);
  }
  PutU64(&out, cc.context.size());
  out += cc.context;
  return out;
}

absl::StatusOr<ConfChange> DecodeConfChange(const std::string& data) {
  auto corrupt = [] { return absl::InvalidArgumentError("raft: malformed conf change"); };
  if (data.size() < 2 || static_cast<uint8_t>(data[0]) != kConfChangeVersion) return corrupt();
  ConfChange cc;
  uint8_t transition = static_cast<uint8_t>(data[1]);
  if (transition > 2) return corrupt();
  cc.transition = static_cast<ConfChange::Transition>(transition);
  size_t pos = 2;
  uint64_t n = 0;
  if (!GetU64(data, &pos, &n) || n > kConfChangesMax) return corrupt();
  for (uint64_t i = 0; i < n; i++) {
    if (pos >= data.size()) return corrupt();
    uint8_t type = static_cast<uint8_t>(data[pos++]);
    if (type > 2) return corrupt();
    ConfChangeSingle c;
    c.type = static_cast<ConfChangeSingle::Type>(type);
    if (!GetU64(data, &pos, &c.node_id)) return corrupt();
    cc.changes.push_back(c);
  }
  uint64_t context_bytes = 0;
  if (!GetU64(data, &pos, &context_bytes) || context_bytes > kConfChangeContextBytesMax ||
      data.size() - pos != context_bytes) {
    return corrupt();
  }
  cc.context = data.substr(pos);
  return cc;
}

std::string Describe(const Entry& e) {
  std::string s = absl::StrCat(e.term, "/", e.index);
  if (e.type == EntryType::kConfChange) {
    auto cc = DecodeConfChange(e.data);
    absl::StrAppend(&s, " EntryConfChange ", cc.ok() ? Describe(*cc) : "<malformed>");
  } else if (e.data.empty()) {
    absl::StrAppend(&s, " EntryNormal \"\"");
  } else {
    absl::StrAppend(&s, " EntryNormal \"", e.data, "\"");
  }
  return s;
}

std::string Describe(const Message& m) {
  std::string s = absl::StrCat(m.from, "->", m.to, " ", MessageTypeName(m.type), " Term:", m.term,
                               " Log:", m.log_term, "/", m.index);
  if (m.reject) absl::StrAppend(&s, " Rejected (Hint: ", m.reject_hint, ")");
  if (m.commit_only) absl::StrAppend(&s, " CommitOnly");
  if (m.commit != 0) absl::StrAppend(&s, " Commit:", m.commit);
  if (!m.context.empty()) absl::StrAppend(&s, " Context:", m.context);
  if (!m.entries.empty()) {
    absl::StrAppend(&s, " Entries:[");
    for (size_t i = 0; i < m.entries.size(); i++) {
      absl::StrAppend(&s, i ? ", " : "", Describe(m.entries[i]));
    }
    absl::StrAppend(&s, "]");
  }
  if (m.snapshot.has_value()) {
    absl::StrAppend(&s, " Snapshot: Index:", m.snapshot->metadata.index,
                    " Term:", m.snapshot->metadata.term, " ",
                    Describe(m.snapshot->metadata.conf_state));
  }
  return s;
}

std::string Describe(const HardState& hs) {
  return absl::StrCat("Term:", hs.term, " Vote:", hs.vote, " Commit:", hs.commit);
}

std::string Describe(const ConfState& cs) {
  std::string s = absl::StrCat("Voters:[", Ids(cs.voters), "]");
  if (!cs.voters_outgoing.empty()) absl::StrAppend(&s, "&&[", Ids(cs.voters_outgoing), "]");
  absl::StrAppend(&s, " Learners:[", Ids(cs.learners), "]");
  if (!cs.learners_next.empty()) absl::StrAppend(&s, " LearnersNext:[", Ids(cs.learners_next), "]");
  if (cs.auto_leave) absl::StrAppend(&s, " AutoLeave");
  return s;
}

std::string Describe(const ConfChange& cc) {
  if (cc.changes.empty()) return "leave-joint";
  std::vector<std::string> parts;
  for (const auto& c : cc.changes) {
    const char* prefix = c.type == ConfChangeSingle::Type::kAddNode      ? "v"
                         : c.type == ConfChangeSingle::Type::kRemoveNode ? "r"
                                                                         : "l";
    parts.push_back(absl::StrCat(prefix, c.node_id));
  }
  std::string s = absl::StrJoin(parts, " ");
  if (cc.transition == ConfChange::Transition::kJointImplicit) s += " (joint-implicit)";
  if (cc.transition == ConfChange::Transition::kJointExplicit) s += " (joint-explicit)";
  return s;
}

}  // namespace ganglion::raft
