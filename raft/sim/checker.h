// The simulator's safety checks. Each violation has a stable name; the first
// one found ends the run. Everything is incremental so that checking after
// every step stays cheap.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "raft/raw_node.h"
#include "raft/sim/node.h"

namespace ganglion::raft::sim {

struct Violation {
  std::string name;
  std::string detail;
};

class Checker {
 public:
  const std::optional<Violation>& violation() const { return violation_; }
  void Fail(const std::string& name, const std::string& detail);

  // Persisted state of node `id` (any incarnation).
  void OnHardStatePersisted(NodeId id, const HardState& hs);
  // Log matching over persisted logs, by induction: every (index, term) seen
  // anywhere maps to one entry and one previous term.
  void OnEntriesPersisted(NodeId id, const std::vector<Entry>& entries, Term term_before);
  // State-machine safety: one (term, entry, running hash) per index.
  // node_term: the applying node's term, an upper bound on the term in which
  // the entry was committed (it learned of the commit from a leader of a
  // term no later than its own).
  void OnApplied(NodeId id, const Entry& e, uint64_t running_hash, Index applied_before,
                 Term node_term);
  void OnSnapshotRestored(NodeId id, const Snapshot& snap, Index applied_before);
  // Per-step checks over the running nodes: one leader per term, leader
  // completeness for new leaders, in-memory commit never decreasing.
  void AfterStep(const std::map<NodeId, SimNode*>& up_nodes);
  // A node restarted: its in-memory commit restarts from the persisted one.
  void OnRestart(NodeId id);

  Index max_committed_index() const { return committed_.empty() ? 0 : committed_.rbegin()->first; }
  size_t committed_count() const { return committed_.size(); }
  // Term of the committed entry at i, or 0 if unknown.
  Term CommittedTerm(Index i) const;

 private:
  struct CommittedEntry {
    Term term = 0;
    uint64_t entry_hash = 0;
    uint64_t running_hash = 0;
    Term commit_term = 0;  // upper bound on the term it was committed in
  };
  struct LogRecord {
    uint64_t entry_hash = 0;
    Term prev_term = 0;
  };
  bool CheckLeaderHas(NodeId id, const RawNode& raw, Index i, const CommittedEntry& c);

  std::optional<Violation> violation_;
  std::map<Index, CommittedEntry> committed_;
  std::map<std::pair<Index, Term>, LogRecord> log_records_;
  std::map<Term, NodeId> leader_of_term_;
  std::map<NodeId, Index> persisted_commit_;
  std::map<NodeId, Index> memory_commit_;
  // Per leader: (term, committed index checked through).
  std::map<NodeId, std::pair<Term, Index>> checked_leader_;
};

}  // namespace ganglion::raft::sim
