// The unstable tail of the Raft log: entries (and possibly a snapshot) the
// core has accepted but the caller has not yet confirmed as persisted.
#pragma once

#include <optional>
#include <vector>

#include "raft/types.h"

namespace ganglion::raft {

class Unstable {
 public:
  // Index of the first entry that may be in the unstable part, if a pending
  // snapshot determines it.
  std::optional<Index> MaybeFirstIndex() const;
  std::optional<Index> MaybeLastIndex() const;
  std::optional<Term> MaybeTerm(Index i) const;

  // Entries up to (i, t) were persisted; they leave the unstable part unless
  // they were since replaced by entries of another term.
  void StableTo(Index i, Term t);
  void StableSnapTo(Index i);
  void Restore(const Snapshot& snap);
  void TruncateAndAppend(const std::vector<Entry>& entries);
  // Entries in [lo, hi); the range must lie within the unstable part.
  std::vector<Entry> Slice(Index lo, Index hi) const;

  const std::optional<Snapshot>& snapshot() const { return snapshot_; }
  const std::vector<Entry>& entries() const { return entries_; }
  Index offset() const { return offset_; }
  void set_offset(Index offset) { offset_ = offset; }

 private:
  std::optional<Snapshot> snapshot_;
  std::vector<Entry> entries_;
  // Index of entries_[0]. Invariant: offset_ == snapshot_->metadata.index + 1
  // when a snapshot is pending.
  Index offset_ = 0;
};

}  // namespace ganglion::raft
