#include "storage/raft_log_store.h"

#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "storage/codec.h"
#include "storage/rocksdb_status.h"

namespace ganglion::storage {

namespace {
using raft::Entry;
using raft::Index;
using raft::Term;

constexpr char kHardStateKey[] = "h";
constexpr char kSnapshotKey[] = "s";
// Index and term of the last compacted entry (the log starts after it).
constexpr char kCompactedKey[] = "c";
constexpr char kEntryPrefix = 'e';

std::string EntryKey(Index i) {
  std::string k(1, kEntryPrefix);
  PutFixed64BE(&k, i);
  return k;
}

absl::Status FromRocks(const rocksdb::Status& s, const std::string& what) {
  return storage::FromRocks(s, "raft log store", what);
}

// RocksDB reserves its log files' space ahead with FALLOC_FL_KEEP_SIZE, so
// every append still grows the file, and every fdatasync of a grown file
// must also write its inode. Reserving the space with the size included,
// as etcd preallocates its WAL segments, leaves most syncs only the data to
// write (the first write into a reserved block still marks it written).
// RocksDB trims the unused tail when it closes the file; after a crash its
// log reader stops at the zeroed tail.
class PreallocatedLogFs : public rocksdb::FileSystemWrapper {
 public:
  explicit PreallocatedLogFs(const std::shared_ptr<rocksdb::FileSystem>& base)
      : FileSystemWrapper(base) {}
  const char* Name() const override { return "GanglionPreallocatedLogFs"; }

  rocksdb::IOStatus NewWritableFile(const std::string& fname, const rocksdb::FileOptions& opts,
                                    std::unique_ptr<rocksdb::FSWritableFile>* result,
                                    rocksdb::IODebugContext* dbg) override {
    return target()->NewWritableFile(fname, ForFile(fname, opts), result, dbg);
  }
  rocksdb::IOStatus ReuseWritableFile(const std::string& fname, const std::string& old_fname,
                                      const rocksdb::FileOptions& opts,
                                      std::unique_ptr<rocksdb::FSWritableFile>* result,
                                      rocksdb::IODebugContext* dbg) override {
    return target()->ReuseWritableFile(fname, old_fname, ForFile(fname, opts), result, dbg);
  }

 private:
  static rocksdb::FileOptions ForFile(const std::string& fname, rocksdb::FileOptions opts) {
    if (absl::EndsWith(fname, ".log")) opts.fallocate_with_keep_size = false;
    return opts;
  }
};

std::string EncodeCompacted(Index i, Term t) {
  std::string out;
  PutU64(&out, i);
  PutU64(&out, t);
  return out;
}
}  // namespace

absl::StatusOr<std::unique_ptr<RaftLogStore>> RaftLogStore::Open(
    const std::string& dir, const RaftLogStoreOptions& options) {
  rocksdb::Options o;
  o.create_if_missing = true;
  rocksdb::Env* base = options.env != nullptr ? options.env : rocksdb::Env::Default();
  std::unique_ptr<rocksdb::Env> env =
      rocksdb::NewCompositeEnv(std::make_shared<PreallocatedLogFs>(base->GetFileSystem()));
  o.env = env.get();
  // An append-mostly log read near its tail: keep memtables large enough to
  // absorb a snapshot interval and let the WAL carry durability.
  o.write_buffer_size = 64 << 20;
  o.max_write_buffer_number = 3;
  // No memtable insert hint (the state store has one): RocksDB 7.8 keeps one
  // hint per prefix for both the point and the range-deletion memtables, and
  // the log's DeleteRange then fails an assertion in the skiplist.
  o.compression = rocksdb::kNoCompression;
  o.max_open_files = 256;
  o.keep_log_file_num = 4;
  rocksdb::DB* raw = nullptr;
  if (auto s = FromRocks(rocksdb::DB::Open(o, dir, &raw), "open " + dir); !s.ok()) return s;
  std::unique_ptr<RaftLogStore> store(
      new RaftLogStore(std::move(env), std::unique_ptr<rocksdb::DB>(raw), options));
  if (auto s = store->Load(); !s.ok()) return s;
  return store;
}

RaftLogStore::RaftLogStore(std::unique_ptr<rocksdb::Env> env, std::unique_ptr<rocksdb::DB> db,
                           const RaftLogStoreOptions& options)
    : env_(std::move(env)), db_(std::move(db)), options_(options) {}

RaftLogStore::~RaftLogStore() = default;

absl::Status RaftLogStore::Load() {
  std::lock_guard lock(mu_);
  std::string v;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), kHardStateKey, &v);
  if (s.ok()) {
    if (!DecodeHardState(v, &hard_state_)) return absl::DataLossError("corrupt hard state");
  } else if (!s.IsNotFound()) {
    return FromRocks(s, "read hard state");
  }
  s = db_->Get(rocksdb::ReadOptions(), kSnapshotKey, &v);
  if (s.ok()) {
    if (!DecodeSnapshot(v, &snapshot_)) return absl::DataLossError("corrupt snapshot metadata");
  } else if (!s.IsNotFound()) {
    return FromRocks(s, "read snapshot");
  }
  s = db_->Get(rocksdb::ReadOptions(), kCompactedKey, &v);
  if (s.ok()) {
    Reader r(v);
    Index ci = 0;
    if (!r.GetU64(&ci) || !r.GetU64(&compacted_term_))
      return absl::DataLossError("corrupt boundary");
    first_index_ = ci + 1;
  } else if (!s.IsNotFound()) {
    return FromRocks(s, "read compaction boundary");
  }
  // Entries are contiguous from first_index_: read their terms once.
  last_index_ = first_index_ - 1;
  std::string lower = EntryKey(first_index_);
  std::string upper(1, kEntryPrefix + 1);
  rocksdb::Slice upper_slice(upper);
  rocksdb::ReadOptions ro;
  ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
  for (it->Seek(lower); it->Valid(); it->Next()) {
    Index i = DecodeFixed64BE(it->key().ToStringView().substr(1));
    if (i != last_index_ + 1) {
      return absl::DataLossError(absl::StrCat("raft log has a gap at ", last_index_ + 1));
    }
    Reader r(it->value().ToStringView());
    Term t = 0;
    if (!r.GetU64(&t)) return absl::DataLossError(absl::StrCat("corrupt entry ", i));
    terms_.push_back(t);
    last_index_ = i;
  }
  return FromRocks(it->status(), "scan log");
}

absl::StatusOr<raft::InitialState> RaftLogStore::GetInitialState() const {
  std::lock_guard lock(mu_);
  return raft::InitialState{hard_state_, snapshot_.metadata.conf_state};
}

absl::StatusOr<std::vector<Entry>> RaftLogStore::Entries(Index lo, Index hi,
                                                         uint64_t max_bytes) const {
  std::lock_guard lock(mu_);
  if (lo < first_index_) return raft::ErrCompacted();
  if (hi > last_index_ + 1) return raft::ErrUnavailable();
  std::vector<Entry> out;
  if (lo >= hi) return out;
  uint64_t bytes = 0;
  if (!tail_.empty() && lo >= tail_.front().index) {
    for (auto it = tail_.begin() + static_cast<ptrdiff_t>(lo - tail_.front().index);
         it != tail_.end() && it->index < hi; ++it) {
      bytes += raft::EntrySizeBytes(*it);
      if (!out.empty() && bytes > max_bytes) break;
      out.push_back(*it);
    }
    return out;
  }
  std::string upper = EntryKey(hi);
  rocksdb::Slice upper_slice(upper);
  rocksdb::ReadOptions ro;
  ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
  Index want = lo;
  for (it->Seek(EntryKey(lo)); it->Valid(); it->Next(), want++) {
    Entry e;
    if (!DecodeEntryValue(it->value().ToStringView(), want, &e) ||
        DecodeFixed64BE(it->key().ToStringView().substr(1)) != want) {
      return absl::DataLossError(absl::StrCat("raft log entry ", want, " is missing or corrupt"));
    }
    bytes += raft::EntrySizeBytes(e);
    if (!out.empty() && bytes > max_bytes) break;
    out.push_back(std::move(e));
  }
  if (auto s = FromRocks(it->status(), "read entries"); !s.ok()) return s;
  if (out.empty()) return absl::DataLossError(absl::StrCat("raft log entry ", lo, " is missing"));
  return out;
}

absl::StatusOr<Term> RaftLogStore::TermAt(Index i) const {
  std::lock_guard lock(mu_);
  if (i + 1 < first_index_) return raft::ErrCompacted();
  if (i + 1 == first_index_) return compacted_term_;
  if (i > last_index_) return raft::ErrUnavailable();
  return terms_[i - first_index_];
}

Index RaftLogStore::FirstIndex() const {
  std::lock_guard lock(mu_);
  return first_index_;
}

Index RaftLogStore::LastIndex() const {
  std::lock_guard lock(mu_);
  return last_index_;
}

absl::StatusOr<raft::Snapshot> RaftLogStore::GetSnapshot() const {
  std::lock_guard lock(mu_);
  return snapshot_;
}

uint64_t RaftLogStore::syncs() const {
  std::lock_guard lock(mu_);
  return syncs_;
}

absl::Status RaftLogStore::Save(const std::optional<raft::HardState>& hard_state,
                                const std::vector<Entry>& entries,
                                const std::optional<raft::Snapshot>& snapshot) {
  std::lock_guard lock(mu_);
  rocksdb::WriteBatch batch;
  // What memory will look like once the batch is durable: the term cache is
  // cut to `keep_terms` entries (after a snapshot, none), then extended.
  Index first = first_index_, last = last_index_;
  Term compacted_term = compacted_term_;
  size_t keep_terms = terms_.size();
  std::vector<Term> new_terms;

  if (snapshot) {
    const auto& md = snapshot->metadata;
    if (md.index <= snapshot_.metadata.index) return raft::ErrSnapOutOfDate();
    if (last >= first) batch.DeleteRange(EntryKey(first), EntryKey(last + 1));
    batch.Put(kSnapshotKey, EncodeSnapshot(*snapshot));
    batch.Put(kCompactedKey, EncodeCompacted(md.index, md.term));
    first = md.index + 1;
    last = md.index;
    compacted_term = md.term;
    keep_terms = 0;
  }
  if (!entries.empty()) {
    size_t skip = 0;
    while (skip < entries.size() && entries[skip].index < first) skip++;  // already compacted
    if (skip < entries.size()) {
      Index start = entries[skip].index;
      if (start > last + 1) {
        return absl::InternalError(
            absl::StrCat("raft log store: append at ", start, " leaves a gap after ", last));
      }
      if (start <= last) {
        // A conflicting suffix: drop it whole, even past the new entries' end.
        batch.DeleteRange(EntryKey(start), EntryKey(last + 1));
        keep_terms = std::min<size_t>(keep_terms, start - first);
      }
      new_terms.reserve(entries.size() - skip);
      for (size_t i = skip; i < entries.size(); i++) {
        if (entries[i].index != start + (i - skip)) {
          return absl::InvalidArgumentError("raft log store: entries are not contiguous");
        }
        batch.Put(EntryKey(entries[i].index), EncodeEntryValue(entries[i]));
        new_terms.push_back(entries[i].term);
      }
      last = entries.back().index;
    }
  }
  if (hard_state) batch.Put(kHardStateKey, EncodeHardState(*hard_state));
  if (batch.Count() == 0) return absl::OkStatus();

  // As etcd's WAL: a Ready that only moves the commit index is written but
  // not synced. The commit index is recomputed from the leader after a crash,
  // and the next synced write (entries, a term, a vote, a snapshot) makes it
  // durable before any snapshot can depend on it, since RocksDB syncs its log
  // in order.
  const bool must_sync = snapshot || !new_terms.empty() || keep_terms < terms_.size() ||
                         (hard_state && (hard_state->term != hard_state_.term ||
                                         hard_state->vote != hard_state_.vote));
  rocksdb::WriteOptions wo;
  wo.sync = options_.sync && must_sync;
  wo.disableWAL = !options_.write_ahead_log;
  if (auto s = FromRocks(db_->Write(wo, &batch), "write"); !s.ok()) return s;
  if (wo.sync) syncs_++;
  first_index_ = first;
  last_index_ = last;
  compacted_term_ = compacted_term;
  terms_.resize(keep_terms);
  terms_.insert(terms_.end(), new_terms.begin(), new_terms.end());
  if (snapshot) {
    snapshot_ = *snapshot;
    tail_.clear();
    tail_bytes_ = 0;
  }
  if (!new_terms.empty()) TailAppend(entries, entries.size() - new_terms.size());
  if (hard_state) hard_state_ = *hard_state;
  return absl::OkStatus();
}

void RaftLogStore::TailAppend(const std::vector<Entry>& entries, size_t skip) {
  if (options_.tail_cache_bytes == 0) return;
  const Index start = entries[skip].index;
  // A conflicting suffix goes; what is left must end right before `start`.
  while (!tail_.empty() && tail_.back().index >= start) {
    tail_bytes_ -= raft::EntrySizeBytes(tail_.back());
    tail_.pop_back();
  }
  if (!tail_.empty() && tail_.back().index + 1 != start) {
    tail_.clear();
    tail_bytes_ = 0;
  }
  for (size_t i = skip; i < entries.size(); i++) {
    tail_.push_back(entries[i]);
    tail_bytes_ += raft::EntrySizeBytes(entries[i]);
  }
  while (!tail_.empty() && tail_bytes_ > options_.tail_cache_bytes) {
    tail_bytes_ -= raft::EntrySizeBytes(tail_.front());
    tail_.pop_front();
  }
}

void RaftLogStore::TailDropThrough(Index index) {
  while (!tail_.empty() && tail_.front().index <= index) {
    tail_bytes_ -= raft::EntrySizeBytes(tail_.front());
    tail_.pop_front();
  }
}

absl::Status RaftLogStore::SetSnapshot(const raft::Snapshot& snapshot) {
  std::lock_guard lock(mu_);
  const auto& md = snapshot.metadata;
  if (md.index <= snapshot_.metadata.index) return raft::ErrSnapOutOfDate();
  if (md.index > last_index_) return raft::ErrUnavailable();
  if (md.index >= first_index_ && terms_[md.index - first_index_] != md.term) {
    return absl::InvalidArgumentError("raft log store: snapshot term does not match the log");
  }
  rocksdb::WriteOptions wo;
  wo.sync = options_.sync;
  wo.disableWAL = !options_.write_ahead_log;
  auto s = FromRocks(db_->Put(wo, kSnapshotKey, EncodeSnapshot(snapshot)), "write snapshot");
  if (s.ok()) snapshot_ = snapshot;
  return s;
}

absl::Status RaftLogStore::Compact(Index compact_index) {
  std::lock_guard lock(mu_);
  if (compact_index < first_index_) return raft::ErrCompacted();
  if (compact_index > last_index_) return raft::ErrUnavailable();
  if (compact_index > snapshot_.metadata.index) {
    return absl::FailedPreconditionError("raft log store: compaction past the snapshot");
  }
  Term term = terms_[compact_index - first_index_];
  rocksdb::WriteBatch batch;
  batch.DeleteRange(EntryKey(first_index_), EntryKey(compact_index + 1));
  batch.Put(kCompactedKey, EncodeCompacted(compact_index, term));
  // Not synced: the boundary and the deletion land together or not at all,
  // and losing a compaction only keeps entries a while longer.
  if (auto s = FromRocks(db_->Write(rocksdb::WriteOptions(), &batch), "compact"); !s.ok()) {
    return s;
  }
  terms_.erase(terms_.begin(), terms_.begin() + (compact_index + 1 - first_index_));
  TailDropThrough(compact_index);
  first_index_ = compact_index + 1;
  compacted_term_ = term;
  return absl::OkStatus();
}

absl::Status RaftLogStore::SetConfState(const raft::ConfState& cs) {
  std::lock_guard lock(mu_);
  raft::Snapshot snap = snapshot_;
  snap.metadata.conf_state = cs;
  rocksdb::WriteOptions wo;
  wo.sync = options_.sync;
  wo.disableWAL = !options_.write_ahead_log;
  auto s = FromRocks(db_->Put(wo, kSnapshotKey, EncodeSnapshot(snap)), "write conf state");
  if (s.ok()) snapshot_ = std::move(snap);
  return s;
}

}  // namespace ganglion::storage
