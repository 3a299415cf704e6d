// The Raft log on RocksDB (<data-dir>/raft): entries, hard state and snapshot
// metadata of one member. Implements raft::Storage for the core to read, and
// Save() to persist one Ready in ONE synced write batch (group commit). It
// must never hold state-machine data: that lives in the state store.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "raft/storage.h"

namespace rocksdb {
class DB;
class Env;
}  // namespace rocksdb

namespace ganglion::storage {

struct RaftLogStoreOptions {
  // Sync every Save (fdatasync). Only tests turn this off.
  bool sync = true;
  // RocksDB's write-ahead log. Off only for ganglion's --unsafe-no-fsync:
  // a process killed with -9 keeps what it wrote to the page cache, so
  // turning off sync alone loses nothing; without the WAL, writes not yet
  // flushed from the memtable die with the process, as unsynced writes die
  // with a machine.
  bool write_ahead_log = true;
  // Null: the default Env. Tests pass a fault-injecting one.
  rocksdb::Env* env = nullptr;
  // The newest entries kept in memory as Save wrote them (0: none), so
  // committed entries reach the apply loop, and appends the followers need
  // next reach the transport, without reading RocksDB back.
  uint64_t tail_cache_bytes = 16 << 20;
};

// Thread-safe: the raft loop writes while the transport reads entries to send.
class RaftLogStore final : public raft::Storage {
 public:
  static absl::StatusOr<std::unique_ptr<RaftLogStore>> Open(const std::string& dir,
                                                            const RaftLogStoreOptions& options);
  ~RaftLogStore() override;

  absl::StatusOr<raft::InitialState> GetInitialState() const override;
  absl::StatusOr<std::vector<raft::Entry>> Entries(raft::Index lo, raft::Index hi,
                                                   uint64_t max_bytes) const override;
  absl::StatusOr<raft::Term> TermAt(raft::Index i) const override;
  raft::Index FirstIndex() const override;
  raft::Index LastIndex() const override;
  absl::StatusOr<raft::Snapshot> GetSnapshot() const override;

  // Persists one Ready: a snapshot (replacing the whole log), then entries
  // (overwriting any suffix they conflict with), then the hard state, in one
  // synced write batch.
  absl::Status Save(const std::optional<raft::HardState>& hard_state,
                    const std::vector<raft::Entry>& entries,
                    const std::optional<raft::Snapshot>& snapshot);
  // Records a snapshot taken locally at `index` (which must be in the log),
  // without dropping entries; Compact drops them later.
  absl::Status SetSnapshot(const raft::Snapshot& snapshot);
  // Drops entries before compact_index (which the snapshot must cover) with a
  // range deletion; reads never seek over the deleted range because the first
  // index is kept in memory.
  absl::Status Compact(raft::Index compact_index);
  // Bootstraps the membership of a new cluster (before index 1).
  absl::Status SetConfState(const raft::ConfState& cs);

  uint64_t syncs() const;

 private:
  RaftLogStore(std::unique_ptr<rocksdb::Env> env, std::unique_ptr<rocksdb::DB> db,
               const RaftLogStoreOptions& options);
  absl::Status Load();

  mutable std::mutex mu_;
  // The Env the database runs on (it writes its log files preallocated);
  // declared first, so it outlives the database.
  std::unique_ptr<rocksdb::Env> env_;
  std::unique_ptr<rocksdb::DB> db_;  // guarded by mu_ for writes
  RaftLogStoreOptions options_;
  // Guarded by mu_. The log holds entries [first_index_, last_index_]; the
  // entry before them (first_index_-1) was compacted and only its term is
  // kept (compacted_term_), for the log matching check.
  raft::Index first_index_ = 1;
  raft::Index last_index_ = 0;
  raft::Term compacted_term_ = 0;
  // terms_[i - first_index_] is the term of entry i: term lookups (the core
  // makes many) never touch RocksDB. Bounded by the log length, which
  // snapshots and compaction bound.
  std::deque<raft::Term> terms_;
  raft::HardState hard_state_;
  raft::Snapshot snapshot_;
  uint64_t syncs_ = 0;
  // Guarded by mu_. A suffix of the log (ending at last_index_ when not
  // empty) within options_.tail_cache_bytes, for Entries.
  std::deque<raft::Entry> tail_;
  uint64_t tail_bytes_ = 0;

  // Keeps tail_ a suffix of the log after an append at `start`.
  void TailAppend(const std::vector<raft::Entry>& entries, size_t skip);
  void TailDropThrough(raft::Index index);
};

}  // namespace ganglion::storage
