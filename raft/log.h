// The Raft log as the core sees it: the stable prefix in Storage, the unstable
// tail in memory, and the commit and applied indexes over both.
#pragma once

#include <optional>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "raft/log_unstable.h"
#include "raft/storage.h"

namespace ganglion::raft {

// Aborts the process: the core found its own state, or its storage, broken.
[[noreturn]] void Fatal(const std::string& what);

class RaftLog {
 public:
  // max_committed_bytes_per_ready bounds the committed entries one Ready hands out.
  RaftLog(Storage* storage, uint64_t max_committed_bytes_per_ready);

  // Appends entries sent by a leader after (index, log_term) if our log holds
  // that entry; returns the index of the last new entry, or nullopt to reject.
  std::optional<Index> MaybeAppend(Index index, Term log_term, Index committed,
                                   const std::vector<Entry>& entries);
  Index Append(const std::vector<Entry>& entries);
  // The index of the first entry whose term differs from ours (or that we do
  // not have); 0 if all of them match.
  Index FindConflict(const std::vector<Entry>& entries) const;
  // The largest (index', term') with index' <= index and term' <= term in our
  // log: where a log that holds (index, term) may match ours. Used for fast
  // backtracking of rejected appends.
  std::pair<Index, Term> FindConflictByTerm(Index index, Term term) const;

  const std::vector<Entry>& UnstableEntries() const { return unstable_.entries(); }
  const std::optional<Snapshot>& UnstableSnapshot() const { return unstable_.snapshot(); }
  // Committed entries not yet applied, bounded in bytes (at least one).
  std::vector<Entry> NextCommittedEntries() const;
  bool HasNextCommittedEntries() const;
  absl::StatusOr<Snapshot> GetSnapshot() const;

  Index FirstIndex() const;
  Index LastIndex() const;
  Term LastTerm() const;
  // The last index known to be persisted (in Storage and not since replaced).
  Index PersistedLastIndex() const;
  absl::StatusOr<Term> TermAt(Index i) const;
  // Term of i, or 0 if it is compacted or beyond the end.
  Term TermOrZero(Index i) const;
  bool MatchTerm(Index i, Term t) const;
  bool IsUpToDate(Index last_index, Term term) const;

  absl::StatusOr<std::vector<Entry>> EntriesFrom(Index i, uint64_t max_bytes) const;
  absl::StatusOr<std::vector<Entry>> Slice(Index lo, Index hi, uint64_t max_bytes) const;
  std::vector<Entry> AllEntries() const;

  void CommitTo(Index i);
  void AppliedTo(Index i);
  // A restored snapshot sets applied to its index.
  void AppliedSnapshotTo(Index i) { applied_ = i; }
  // Commits up to max_index if that entry has the given term (the leader's).
  bool MaybeCommit(Index max_index, Term term);
  void StableTo(Index i, Term t) { unstable_.StableTo(i, t); }
  void StableSnapTo(Index i) { unstable_.StableSnapTo(i); }
  void Restore(const Snapshot& snap);

  Index committed() const { return committed_; }
  Index applied() const { return applied_; }
  Storage* storage() const { return storage_; }

 private:
  Storage* storage_;  // not owned
  Unstable unstable_;
  // Invariant: applied_ <= committed_ <= LastIndex(); neither ever decreases
  // (except that applied_ jumps with a restored snapshot).
  Index committed_ = 0;
  Index applied_ = 0;
  uint64_t max_committed_bytes_per_ready_;
};

}  // namespace ganglion::raft
