// A cluster of RawNodes over MemoryStorage with an in-process, lossless
// network, for unit tests and the benchmark. Messages wait in an outbox until
// delivered, so a test can inspect, drop or reorder them.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <utility>
#include <vector>

#include "raft/raw_node.h"

namespace ganglion::raft::testing {

struct TestMember {
  std::unique_ptr<MemoryStorage> storage;
  std::unique_ptr<RawNode> node;
  std::vector<Entry> applied;  // normal entries applied, in order
  std::vector<ReadState> read_states;
  ConfState conf_state;
};

class TestCluster {
 public:
  using Tweak = std::function<void(Config&)>;

  TestCluster(std::vector<NodeId> voters, std::vector<NodeId> learners = {}, Tweak tweak = {});

  // Adds a member that starts with no configuration (it learns it from the
  // leader's appends or snapshot), e.g. before a conf change adds it.
  void AddEmptyMember(NodeId id);
  // Recreates a member's RawNode over its storage, losing volatile state.
  void Restart(NodeId id);

  RawNode& node(NodeId id) { return *members_.at(id).node; }
  MemoryStorage& storage(NodeId id) { return *members_.at(id).storage; }
  TestMember& member(NodeId id) { return members_.at(id); }
  const Raft& raft(NodeId id) { return members_.at(id).node->raft(); }
  std::vector<NodeId> ids() const;

  void Tick(NodeId id, int ticks = 1);
  // Ticks a follower until its election timeout fires.
  void TickElection(NodeId id);
  // Persists, applies and advances every Ready of the node; outgoing
  // messages go to the outbox.
  void ProcessReady(NodeId id);
  // Delivers every message in the outbox (dropping those across a cut link),
  // repeatedly with ProcessReady, until the cluster is quiet.
  void Stabilize(size_t rounds_max = 10000);
  // Takes the pending messages (after processing Readies) without delivering.
  std::vector<Message> TakeMessages();
  void Deliver(const Message& m);

  void Cut(NodeId a, NodeId b);
  void Isolate(NodeId id);
  void Heal() { cut_.clear(); }
  // Whether a message type is delivered at all (default: everything).
  void SetFilter(std::function<bool(const Message&)> keep) { filter_ = std::move(keep); }

  // Snapshots the node's state at its applied index and compacts its log.
  void CompactTo(NodeId id, Index index);

  NodeId Leader() const;
  uint64_t dropped() const { return dropped_; }

 private:
  bool Linked(NodeId a, NodeId b) const;
  Config MakeConfig(NodeId id, Index applied) const;

  std::map<NodeId, TestMember> members_;
  std::vector<Message> outbox_;
  std::set<std::pair<NodeId, NodeId>> cut_;
  std::function<bool(const Message&)> filter_;
  Tweak tweak_;
  uint64_t dropped_ = 0;
};

// A single RawNode over its own storage, to step messages into directly.
struct Solo {
  explicit Solo(NodeId id, std::vector<NodeId> voters, TestCluster::Tweak tweak = {});
  // Returns and clears the messages of the pending Ready (persisting first).
  std::vector<Message> Drain();
  MemoryStorage storage;
  std::unique_ptr<RawNode> node;
};

}  // namespace ganglion::raft::testing
