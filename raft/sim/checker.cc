#include "raft/sim/checker.h"

#include "absl/strings/str_cat.h"

namespace ganglion::raft::sim {

void Checker::Fail(const std::string& name, const std::string& detail) {
  if (!violation_) violation_ = Violation{name, detail};
}

Term Checker::CommittedTerm(Index i) const {
  auto it = committed_.find(i);
  return it == committed_.end() ? 0 : it->second.term;
}

void Checker::OnHardStatePersisted(NodeId id, const HardState& hs) {
  Index& prev = persisted_commit_[id];
  if (hs.commit < prev) {
    Fail("persisted-commit-decreased",
         absl::StrCat("node ", id, " persisted commit ", hs.commit, " after ", prev));
  }
  if (hs.commit > prev) prev = hs.commit;
}

void Checker::OnEntriesPersisted(NodeId id, const std::vector<Entry>& entries, Term term_before) {
  Term prev_term = term_before;
  for (const Entry& e : entries) {
    LogRecord rec{EntryHash(e), prev_term};
    auto [it, inserted] = log_records_.emplace(std::make_pair(e.index, e.term), rec);
    if (!inserted &&
        (it->second.entry_hash != rec.entry_hash || it->second.prev_term != rec.prev_term)) {
      Fail("log-matching",
           absl::StrCat("node ", id, " persisted ", Describe(e), " with previous term ", prev_term,
                        " but another log holds a different entry or previous term (",
                        it->second.prev_term, ") at the same index and term"));
    }
    prev_term = e.term;
  }
}

void Checker::OnApplied(NodeId id, const Entry& e, uint64_t running_hash, Index applied_before,
                        Term node_term) {
  if (e.index != applied_before + 1) {
    Fail("apply-out-of-order", absl::StrCat("node ", id, " applied index ", e.index,
                                            " after applied index ", applied_before));
    return;
  }
  CommittedEntry c{e.term, EntryHash(e), running_hash, node_term};
  auto [it, inserted] = committed_.emplace(e.index, c);
  if (!inserted) {
    if (it->second.term != c.term || it->second.entry_hash != c.entry_hash) {
      Fail("state-machine-safety",
           absl::StrCat("node ", id, " applied ", Describe(e), " but index ", e.index,
                        " was applied elsewhere with term ", it->second.term));
    } else if (it->second.running_hash != c.running_hash) {
      Fail("state-machine-divergence",
           absl::StrCat("node ", id, " state hash at index ", e.index, " differs"));
    }
    return;
  }
}

void Checker::OnSnapshotRestored(NodeId id, const Snapshot& snap, Index applied_before) {
  StateMachine sm = StateMachine::Deserialize(snap.data);
  // A snapshot no newer than the node's commit index carries nothing it may
  // use, and restoring it drops log entries the node has acknowledged.
  auto mc = memory_commit_.find(id);
  if (mc != memory_commit_.end() && snap.metadata.index <= mc->second) {
    Fail("stale-snapshot-restored",
         absl::StrCat("node ", id, " restored snapshot at index ", snap.metadata.index,
                      " with its commit index already at ", mc->second));
  }
  if (snap.metadata.index < applied_before) {
    Fail("applied-went-backwards",
         absl::StrCat("node ", id, " restored snapshot at index ", snap.metadata.index,
                      " after applying ", applied_before));
  }
  auto it = committed_.find(snap.metadata.index);
  if (it != committed_.end() &&
      (it->second.term != snap.metadata.term || it->second.running_hash != sm.hash)) {
    Fail("snapshot-divergence", absl::StrCat("node ", id, " restored snapshot at index ",
                                             snap.metadata.index, " whose state differs"));
  }
}

bool Checker::CheckLeaderHas(NodeId id, const RawNode& raw, Index i, const CommittedEntry& c) {
  const RaftLog& log = raw.raft().log();
  if (i < log.FirstIndex()) return true;  // compacted into a snapshot of committed state
  auto t = log.TermAt(i);
  if (!t.ok() || *t != c.term) {
    Fail("leader-completeness",
         absl::StrCat("node ", id, " is leader of term ", raw.raft().term(), " but lacks entry ", i,
                      " of term ", c.term, " committed by term ", c.commit_term,
                      (t.ok() ? absl::StrCat(" (has term ", *t, ")") : std::string(" (missing)"))));
    return false;
  }
  return true;
}

void Checker::OnRestart(NodeId id) {
  memory_commit_.erase(id);
}

void Checker::AfterStep(const std::map<NodeId, SimNode*>& up_nodes) {
  for (const auto& [id, node] : up_nodes) {
    const Raft& r = node->raw()->raft();
    Index commit = r.log().committed();
    auto pc = persisted_commit_.find(id);
    Index floor = pc == persisted_commit_.end() ? 0 : pc->second;
    auto mc = memory_commit_.find(id);
    if (mc != memory_commit_.end()) floor = std::max(floor, mc->second);
    if (commit < floor) {
      Fail("commit-decreased",
           absl::StrCat("node ", id, " commit index ", commit, " fell below ", floor));
    }
    memory_commit_[id] = commit;
    if (r.state() != StateType::kLeader) continue;
    auto [it, inserted] = leader_of_term_.emplace(r.term(), id);
    if (!inserted && it->second != id) {
      Fail("two-leaders-in-term",
           absl::StrCat("nodes ", it->second, " and ", id, " are both leader of term ", r.term()));
    }
    // A new leader is checked against every committed entry; a continuing
    // one only against entries committed since its last check.
    auto& [checked_term, checked_index] = checked_leader_[id];
    if (checked_term != r.term()) checked_index = 0;
    checked_term = r.term();
    for (auto c = committed_.upper_bound(checked_index); c != committed_.end(); ++c) {
      // Leaders of the committing term and later must hold it; an earlier
      // term's leader may legitimately hold a different entry there.
      if (c->second.commit_term <= r.term() &&
          !CheckLeaderHas(id, *node->raw(), c->first, c->second)) {
        break;
      }
      checked_index = c->first;
    }
  }
}

}  // namespace ganglion::raft::sim
