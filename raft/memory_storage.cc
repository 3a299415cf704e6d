#include "raft/storage.h"

namespace ganglion::raft {

namespace {
constexpr const char* kCompacted = "requested index is unavailable due to compaction";
constexpr const char* kUnavailable = "requested entry at index is unavailable";
constexpr const char* kSnapOutOfDate = "requested index is older than the existing snapshot";
constexpr const char* kSnapTemporarilyUnavailable = "snapshot is temporarily unavailable";
}  // namespace

absl::Status ErrCompacted() {
  return absl::OutOfRangeError(kCompacted);
}
absl::Status ErrUnavailable() {
  return absl::UnavailableError(kUnavailable);
}
absl::Status ErrSnapOutOfDate() {
  return absl::FailedPreconditionError(kSnapOutOfDate);
}
absl::Status ErrSnapshotTemporarilyUnavailable() {
  return absl::UnavailableError(kSnapTemporarilyUnavailable);
}
bool IsErrCompacted(const absl::Status& s) {
  return s.code() == absl::StatusCode::kOutOfRange && s.message() == kCompacted;
}
bool IsErrUnavailable(const absl::Status& s) {
  return s.code() == absl::StatusCode::kUnavailable && s.message() == kUnavailable;
}
bool IsErrSnapshotTemporarilyUnavailable(const absl::Status& s) {
  return s.code() == absl::StatusCode::kUnavailable && s.message() == kSnapTemporarilyUnavailable;
}

MemoryStorage::MemoryStorage() : entries_(1) {}

absl::StatusOr<InitialState> MemoryStorage::GetInitialState() const {
  return InitialState{hard_state_, snapshot_.metadata.conf_state};
}

absl::StatusOr<std::vector<Entry>> MemoryStorage::Entries(Index lo, Index hi,
                                                          uint64_t max_bytes) const {
  if (lo <= Offset()) return ErrCompacted();
  if (hi > LastIndex() + 1) return ErrUnavailable();
  std::vector<Entry> out;
  uint64_t bytes = 0;
  for (Index i = lo; i < hi; i++) {
    const Entry& e = entries_[i - Offset()];
    bytes += EntrySizeBytes(e);
    if (!out.empty() && bytes > max_bytes) break;
    out.push_back(e);
  }
  return out;
}

absl::StatusOr<Term> MemoryStorage::TermAt(Index i) const {
  if (i < Offset()) return ErrCompacted();
  if (i - Offset() >= entries_.size()) return ErrUnavailable();
  return entries_[i - Offset()].term;
}

Index MemoryStorage::FirstIndex() const {
  return Offset() + 1;
}
Index MemoryStorage::LastIndex() const {
  return Offset() + entries_.size() - 1;
}

absl::StatusOr<Snapshot> MemoryStorage::GetSnapshot() const {
  if (snapshot_unavailable_) return ErrSnapshotTemporarilyUnavailable();
  return snapshot_;
}

absl::Status MemoryStorage::Save(const std::optional<HardState>& hard_state,
                                 const std::vector<Entry>& entries,
                                 const std::optional<Snapshot>& snapshot) {
  if (snapshot) {
    if (auto s = ApplySnapshot(*snapshot); !s.ok()) return s;
  }
  if (auto s = Append(entries); !s.ok()) return s;
  if (hard_state) hard_state_ = *hard_state;
  return absl::OkStatus();
}

absl::Status MemoryStorage::ApplySnapshot(const Snapshot& snap) {
  if (snapshot_.metadata.index >= snap.metadata.index) return ErrSnapOutOfDate();
  snapshot_ = snap;
  entries_.assign(1, Entry{snap.metadata.term, snap.metadata.index, EntryType::kNormal, ""});
  return absl::OkStatus();
}

absl::StatusOr<Snapshot> MemoryStorage::CreateSnapshot(Index i, const ConfState& cs,
                                                       std::string data) {
  if (i <= snapshot_.metadata.index) return ErrSnapOutOfDate();
  if (i > LastIndex()) return ErrUnavailable();
  snapshot_.metadata.index = i;
  snapshot_.metadata.term = entries_[i - Offset()].term;
  snapshot_.metadata.conf_state = cs;
  snapshot_.data = std::move(data);
  return snapshot_;
}

absl::Status MemoryStorage::Compact(Index compact_index) {
  if (compact_index <= Offset()) return ErrCompacted();
  if (compact_index > LastIndex()) return ErrUnavailable();
  entries_.erase(entries_.begin(), entries_.begin() + (compact_index - Offset()));
  // The new dummy keeps its term and index; its payload is dropped.
  entries_[0].data.clear();
  entries_[0].type = EntryType::kNormal;
  return absl::OkStatus();
}

absl::Status MemoryStorage::Append(const std::vector<Entry>& entries) {
  if (entries.empty()) return absl::OkStatus();
  Index first = FirstIndex();
  Index last = entries.back().index;
  if (last < first) return absl::OkStatus();  // all already compacted
  size_t skip = first > entries.front().index ? first - entries.front().index : 0;
  Index start = entries[skip].index;
  if (start > LastIndex() + 1) {
    return absl::InternalError("raft: missing log entries before append");
  }
  entries_.resize(start - Offset());
  entries_.insert(entries_.end(), entries.begin() + skip, entries.end());
  return absl::OkStatus();
}

}  // namespace ganglion::raft
