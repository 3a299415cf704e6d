// The stable part of a Raft log, as the Raft core reads it. The core never
// writes through this interface: the caller persists what a Ready hands it and
// only then calls Advance. MemoryStorage is the in-memory implementation used
// by tests and the simulator; storage/ provides the RocksDB one.
#pragma once

#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "raft/types.h"

namespace ganglion::raft {

// Errors a Storage returns, and how the core recognises them.
absl::Status ErrCompacted();      // the index is before the first index
absl::Status ErrUnavailable();    // the index is after the last index
absl::Status ErrSnapOutOfDate();  // a snapshot older than the current one
absl::Status ErrSnapshotTemporarilyUnavailable();
bool IsErrCompacted(const absl::Status& s);
bool IsErrUnavailable(const absl::Status& s);
bool IsErrSnapshotTemporarilyUnavailable(const absl::Status& s);

struct InitialState {
  HardState hard_state;
  ConfState conf_state;
};

class Storage {
 public:
  virtual ~Storage() = default;
  virtual absl::StatusOr<InitialState> GetInitialState() const = 0;
  // Entries in [lo, hi), at most max_bytes in total but always at least one.
  virtual absl::StatusOr<std::vector<Entry>> Entries(Index lo, Index hi,
                                                     uint64_t max_bytes) const = 0;
  // Term of entry i, for i in [FirstIndex()-1, LastIndex()]; the term of
  // FirstIndex()-1 is the snapshot's, kept for the log matching check.
  virtual absl::StatusOr<Term> TermAt(Index i) const = 0;
  virtual Index FirstIndex() const = 0;
  virtual Index LastIndex() const = 0;
  virtual absl::StatusOr<Snapshot> GetSnapshot() const = 0;
};

// Not thread-safe: the simulator and tests drive it from one thread.
class MemoryStorage final : public Storage {
 public:
  MemoryStorage();

  absl::StatusOr<InitialState> GetInitialState() const override;
  absl::StatusOr<std::vector<Entry>> Entries(Index lo, Index hi, uint64_t max_bytes) const override;
  absl::StatusOr<Term> TermAt(Index i) const override;
  Index FirstIndex() const override;
  Index LastIndex() const override;
  absl::StatusOr<Snapshot> GetSnapshot() const override;

  void SetHardState(const HardState& hs) { hard_state_ = hs; }
  // Bootstraps a new cluster's membership (the configuration before index 1).
  void SetConfState(const ConfState& cs) { snapshot_.metadata.conf_state = cs; }
  const HardState& hard_state() const { return hard_state_; }
  // Persists one Ready as RaftLogStore::Save does: the snapshot (replacing
  // the log), then the entries, then the hard state.
  absl::Status Save(const std::optional<HardState>& hard_state, const std::vector<Entry>& entries,
                    const std::optional<Snapshot>& snapshot);
  // Replaces everything with the snapshot; ErrSnapOutOfDate if it is older.
  absl::Status ApplySnapshot(const Snapshot& snap);
  // Makes a snapshot at applied index i (<= LastIndex) with the given state.
  absl::StatusOr<Snapshot> CreateSnapshot(Index i, const ConfState& cs, std::string data);
  // Drops entries before compact_index; the snapshot must cover them.
  absl::Status Compact(Index compact_index);
  // Appends entries, overwriting any suffix they conflict with.
  absl::Status Append(const std::vector<Entry>& entries);

  // Test-only: makes the next snapshot request fail as temporarily unavailable.
  void set_snapshot_unavailable(bool v) { snapshot_unavailable_ = v; }

 private:
  Index Offset() const { return entries_[0].index; }

  HardState hard_state_;
  Snapshot snapshot_;
  // entries_[0] is a dummy holding the index and term of the last compacted
  // entry (the snapshot's), so entries_ is never empty.
  std::vector<Entry> entries_;
  bool snapshot_unavailable_ = false;
};

}  // namespace ganglion::raft
