#include "raft/log_unstable.h"

#include <cassert>

namespace ganglion::raft {

std::optional<Index> Unstable::MaybeFirstIndex() const {
  if (snapshot_) return snapshot_->metadata.index + 1;
  return std::nullopt;
}

std::optional<Index> Unstable::MaybeLastIndex() const {
  if (!entries_.empty()) return offset_ + entries_.size() - 1;
  if (snapshot_) return snapshot_->metadata.index;
  return std::nullopt;
}

std::optional<Term> Unstable::MaybeTerm(Index i) const {
  if (i < offset_) {
    if (snapshot_ && snapshot_->metadata.index == i) return snapshot_->metadata.term;
    return std::nullopt;
  }
  auto last = MaybeLastIndex();
  if (!last || i > *last) return std::nullopt;
  return entries_[i - offset_].term;
}

void Unstable::StableTo(Index i, Term t) {
  auto term = MaybeTerm(i);
  if (!term) return;
  // Only entries still in the unstable part with the same term were the ones
  // persisted; a replaced suffix stays unstable.
  if (*term == t && i >= offset_) {
    entries_.erase(entries_.begin(), entries_.begin() + (i + 1 - offset_));
    offset_ = i + 1;
  }
}

void Unstable::StableSnapTo(Index i) {
  if (snapshot_ && snapshot_->metadata.index == i) snapshot_.reset();
}

void Unstable::Restore(const Snapshot& snap) {
  offset_ = snap.metadata.index + 1;
  entries_.clear();
  snapshot_ = snap;
}

void Unstable::TruncateAndAppend(const std::vector<Entry>& entries) {
  if (entries.empty()) return;
  Index after = entries.front().index;
  if (after == offset_ + entries_.size()) {
    entries_.insert(entries_.end(), entries.begin(), entries.end());
  } else if (after <= offset_) {
    // Replaces the whole unstable part (and overrides persisted entries).
    offset_ = after;
    entries_ = entries;
  } else {
    entries_.resize(after - offset_);
    entries_.insert(entries_.end(), entries.begin(), entries.end());
  }
}

std::vector<Entry> Unstable::Slice(Index lo, Index hi) const {
  assert(lo <= hi && lo >= offset_ && hi <= offset_ + entries_.size());
  return std::vector<Entry>(entries_.begin() + (lo - offset_), entries_.begin() + (hi - offset_));
}

}  // namespace ganglion::raft
