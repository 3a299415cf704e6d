// The Raft vocabulary: entries, messages, hard state, configurations and
// snapshots. Plain value types with no behaviour beyond encoding and printing;
// the transport (server/) maps them to its own wire format.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace ganglion::raft {

using NodeId = uint64_t;
using Term = uint64_t;
using Index = uint64_t;

inline constexpr NodeId kNoNode = 0;
// A byte limit that means "no limit".
inline constexpr uint64_t kNoLimit = UINT64_MAX;

enum class EntryType : uint8_t { kNormal = 0, kConfChange = 1 };

struct Entry {
  Term term = 0;
  Index index = 0;
  EntryType type = EntryType::kNormal;
  std::string data;

  bool operator==(const Entry&) const = default;
};

// Size of an entry as counted by every byte limit (messages, inflight,
// uncommitted proposals). Headers are counted so empty entries are not free.
uint64_t EntrySizeBytes(const Entry& e);
uint64_t PayloadSizeBytes(const Entry& e);

enum class MessageType : uint8_t {
  kHup,   // local: start an election
  kBeat,  // local: leader sends heartbeats
  kProp,  // proposal (local or forwarded from a follower)
  kApp,   // append entries
  kAppResp,
  kVote,
  kVoteResp,
  kPreVote,
  kPreVoteResp,
  kSnap,  // install snapshot
  kHeartbeat,
  kHeartbeatResp,
  kUnreachable,  // local: the transport could not reach `from`
  kSnapStatus,   // local: a snapshot send to `from` finished (reject = failed)
  kCheckQuorum,  // local: leader checks it still hears from a quorum
  kTransferLeader,
  kTimeoutNow,  // leader tells the transferee to campaign at once
  kReadIndex,
  kReadIndexResp,
};

const char* MessageTypeName(MessageType t);
bool IsLocalMessage(MessageType t);
bool IsResponseMessage(MessageType t);
// Whether a message in a Ready may leave before that Ready is persisted: the
// leader's replication messages (kApp, kSnap, kHeartbeat), so its own fsync
// and its followers' run in parallel (Raft thesis 10.2.1). Safe because the
// leader counts its own copy toward a quorum only in Advance, after the
// caller persisted it, and a receiver acts on these messages by its own
// durable state, never by the sender's. Everything else, votes and
// acknowledgements above all, promises durability and goes after the write.
bool MaySendBeforePersist(MessageType t);

// The state a node must persist before it sends any message produced with it.
struct HardState {
  Term term = 0;
  NodeId vote = kNoNode;
  Index commit = 0;

  bool operator==(const HardState&) const = default;
  bool empty() const { return term == 0 && vote == kNoNode && commit == 0; }
};

// The membership. voters_outgoing is non-empty only in a joint configuration.
// learners_next are learners that were voters in the outgoing half and become
// learners when the joint configuration is left.
struct ConfState {
  std::vector<NodeId> voters;
  std::vector<NodeId> learners;
  std::vector<NodeId> voters_outgoing;
  std::vector<NodeId> learners_next;
  bool auto_leave = false;

  bool operator==(const ConfState&) const = default;
};

struct SnapshotMetadata {
  ConfState conf_state;
  Index index = 0;
  Term term = 0;

  bool operator==(const SnapshotMetadata&) const = default;
};

struct Snapshot {
  std::string data;
  SnapshotMetadata metadata;

  bool operator==(const Snapshot&) const = default;
  bool empty() const { return metadata.index == 0; }
};

struct Message {
  MessageType type = MessageType::kHup;
  NodeId to = kNoNode;
  NodeId from = kNoNode;
  Term term = 0;
  // kApp: term of the entry at `index` (the one before `entries`).
  // kVote/kPreVote: the candidate's last log term.
  Term log_term = 0;
  Index index = 0;
  std::vector<Entry> entries;
  Index commit = 0;
  std::optional<Snapshot> snapshot;
  bool reject = false;
  // kAppResp rejections: the follower's hint of where its log may match.
  Index reject_hint = 0;
  // kApp without entries, to a follower the leader already knows matches at
  // `index`: it only carries a new commit index. An acknowledgement would
  // tell the leader nothing, so the follower answers only a rejection.
  bool commit_only = false;
  // Opaque to Raft: ReadIndex request identity, heartbeat read context,
  // kTimeoutNow campaign reason.
  std::string context;

  bool operator==(const Message&) const = default;
};

struct ConfChangeSingle {
  enum class Type : uint8_t { kAddNode = 0, kRemoveNode = 1, kAddLearnerNode = 2 };
  Type type = Type::kAddNode;
  NodeId node_id = kNoNode;

  bool operator==(const ConfChangeSingle&) const = default;
};

// One configuration change: a list of single changes applied together.
// kAuto: one voter change is applied directly; more use a joint configuration
//        that is left automatically.
// kJointImplicit: always joint, left automatically once applied.
// kJointExplicit: always joint, left only by an empty ConfChange proposed later.
// An empty change list leaves the current joint configuration.
struct ConfChange {
  enum class Transition : uint8_t { kAuto = 0, kJointImplicit = 1, kJointExplicit = 2 };
  Transition transition = Transition::kAuto;
  std::vector<ConfChangeSingle> changes;
  std::string context;

  bool operator==(const ConfChange&) const = default;
  bool LeaveJoint() const { return changes.empty(); }
  // Whether applying it enters a joint configuration, and whether that one is
  // left automatically.
  bool EntersJoint(bool* auto_leave) const;
};

std::string EncodeConfChange(const ConfChange& cc);
absl::StatusOr<ConfChange> DecodeConfChange(const std::string& data);

// Readable one-line forms, used by scenario transcripts and simulator traces.
std::string Describe(const Entry& e);
std::string Describe(const Message& m);
std::string Describe(const HardState& hs);
std::string Describe(const ConfState& cs);
std::string Describe(const ConfChange& cc);

}  // namespace ganglion::raft
