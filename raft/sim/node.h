// A simulated cluster member: a RawNode over a MemoryStorage that plays the
// member's durable disk, plus the applied key-value state machine. Crash()
// loses everything but the storage; Restart() rebuilds from it. The node
// never talks to the network or the checker itself: HandleReady returns what
// happened and the cluster routes it.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "raft/raw_node.h"
#include "raft/storage.h"

namespace ganglion::raft::sim {

// Mixes v into h; the simulator's only hash, deterministic everywhere.
uint64_t HashMix(uint64_t h, uint64_t v);
uint64_t HashBytes(uint64_t h, const std::string& s);
uint64_t EntryHash(const Entry& e);

// Keys to values plus a running hash over every applied entry, so two nodes
// that applied different histories disagree on the hash at some index.
struct StateMachine {
  std::map<std::string, std::string> kv;
  Index applied = 0;
  uint64_t hash = 0;

  void Apply(const Entry& e);
  std::string Serialize() const;
  static StateMachine Deserialize(const std::string& data);
};

// A client write encoded as entry data.
struct Write {
  uint64_t op_id = 0;
  std::string key;
  std::string value;
};
std::string EncodeWrite(const Write& w);
std::optional<Write> DecodeWrite(const std::string& data);

struct NodeOptions {
  int election_ticks = 10;
  // Snapshot after this many applied entries; keep compact_lag entries.
  int snapshot_every_entries = 10;
  Index compact_lag_entries = 2;
  TestingBugs bugs;
  // Simulator-side bug: send a Ready's messages before its hard state is
  // durable; the hard state is written at the node's next tick, so a crash
  // in between loses it.
  bool vote_before_persist = false;
  // Simulator-side bug: a follower's append acknowledgement is among the
  // messages that leave before the Ready is persisted (see CrashMidReady).
  bool ack_before_persist = false;
  uint64_t max_msg_bytes = 4096;
  size_t max_inflight_msgs = 8;
  // Off only in tests that show the flapping check needs them.
  bool pre_vote_and_check_quorum = true;
};

// Everything one Ready did, for the cluster to route and check.
struct ReadyOutcome {
  std::optional<SoftState> soft_state;
  std::optional<HardState> hard_state_persisted;
  std::vector<Entry> entries_persisted;
  Term term_before_entries = 0;  // term of the entry before entries_persisted[0]
  std::optional<Snapshot> snapshot_restored;
  struct Applied {
    Entry entry;
    uint64_t running_hash = 0;
    std::optional<ConfState> conf_after;  // conf change entries that took effect
  };
  std::vector<Applied> applied;
  std::vector<ReadState> read_states;
  std::vector<Message> messages;
  bool snapshot_created = false;
  // The storage refused the Ready's snapshot as older than the one it holds.
  bool snapshot_refused_by_storage = false;
};

class SimNode {
 public:
  // bootstrap: the initial voters for a founding member; empty for a member
  // that joins later with empty storage.
  SimNode(NodeId id, const std::vector<NodeId>& bootstrap, NodeOptions opts);

  NodeId id() const { return id_; }
  bool up() const { return raw_ != nullptr; }
  uint64_t incarnation() const { return incarnation_; }
  RawNode* raw() { return raw_.get(); }
  const RawNode* raw() const { return raw_.get(); }
  const MemoryStorage& storage() const { return *storage_; }
  const StateMachine& state_machine() const { return sm_; }
  const ConfState& conf_state() const { return conf_; }
  bool has_deferred_hard_state() const { return deferred_hs_.has_value(); }

  // Creates a RawNode over the storage; seed feeds its election timer.
  absl::Status Start(uint64_t seed, std::function<void(const std::string&)> event_sink);
  void Crash();
  // Takes the next Ready, keeps only the messages that may leave before it is
  // persisted, and crashes without persisting anything: what a member that
  // dies during its write leaves behind. The caller sends the messages.
  std::vector<Message> CrashMidReady();
  // Called before each tick: writes a hard state deferred since the previous
  // tick (bug mode only).
  std::optional<HardState> FlushDeferred();

  // Handles one Ready; the caller loops while raw()->HasReady().
  absl::StatusOr<ReadyOutcome> HandleReady();

 private:
  const NodeId id_;
  const NodeOptions opts_;
  // unique_ptr: the RawNode keeps a pointer to it across restarts.
  std::unique_ptr<MemoryStorage> storage_;
  std::unique_ptr<RawNode> raw_;
  StateMachine sm_;
  ConfState conf_;
  uint64_t incarnation_ = 0;
  int applied_since_snapshot_ = 0;
  std::optional<HardState> deferred_hs_;
  int deferred_ticks_ = 0;
};

}  // namespace ganglion::raft::sim
