// The MVCC key-value state machine on RocksDB (<data-dir>/state), with etcd v3
// semantics: one global main revision per committed write request, per-key
// create/mod revision, version and lease, history kept until compacted.
//
// The raft apply loop is the single writer (Apply); Range, HashKV, EventsSince
// and Checkpoint may run concurrently from any thread. A background thread
// physically removes compacted history in bounded batches.
//
// It must never hold raft log data (that is RaftLogStore's) and never decides
// lease existence, auth or membership: it stores what the apply loop hands it.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "etcd/etcdserver/etcdserverpb/rpc.pb.h"
#include "etcd/mvcc/mvccpb/kv.pb.h"
#include "raft/types.h"

namespace rocksdb {
class DB;
class Env;
}  // namespace rocksdb

namespace ganglion::storage {

// Error texts, word for word as etcd returns them (mvcc and etcdserver).
inline constexpr char kErrCompacted[] = "mvcc: required revision has been compacted";
inline constexpr char kErrFutureRev[] = "mvcc: required revision is a future revision";
inline constexpr char kErrEmptyKey[] = "etcdserver: key is not provided";
inline constexpr char kErrKeyNotFound[] = "etcdserver: key not found";
inline constexpr char kErrValueProvided[] = "etcdserver: value is provided";
inline constexpr char kErrLeaseProvided[] = "etcdserver: lease is provided";
inline constexpr char kErrTooManyOps[] = "etcdserver: too many operations in txn request";
inline constexpr char kErrDuplicateKey[] = "etcdserver: duplicate key given in txn request";
inline constexpr char kErrRequestTooLarge[] = "etcdserver: request is too large";

struct StateStoreOptions {
  // Null: the default Env.
  rocksdb::Env* env = nullptr;
  // etcd's --max-txn-ops.
  int64_t max_txn_ops = 128;
  // etcd's --max-request-bytes (a request's serialized size).
  uint64_t max_request_bytes = 1536 * 1024;
  // Revision-index entries examined per physical-compaction write batch.
  uint64_t compaction_batch_entries_max = 256;
  // Share of wall time the background removal may work: after each batch it
  // pauses for (100 - percent) / percent of the batch's duration, so client
  // writes keep their latency while history is removed. 1..100.
  int compaction_duty_cycle_percent = 50;
  // Run the background physical compaction thread. Tests turn it off to hold
  // a store at a given physical state; CompactPhysicallyForTest drives it.
  bool background_compaction = true;
  // The current revision of a store nothing was ever applied to. etcd's is
  // 1 (its first write is revision 2); the server passes that.
  int64_t initial_revision = 0;
  // RocksDB memtable size. Every put inserts three keys into it, two at
  // random places, so its depth is much of the apply thread's write cost:
  // 16 MiB costs the three members' apply threads 5-7 µs less per put than
  // 64 MiB under put-500 (docs/figures.md, "Smaller memtables").
  uint64_t write_buffer_bytes = 16 << 20;
  // RocksDB's write-ahead log for the state. Off (the default): an applied
  // batch becomes durable when its memtable is flushed, which saves the WAL's
  // copy and checksum of every batch (~8% of apply time; this RocksDB build
  // has only the software CRC). A crash, of the process or the machine, then
  // reopens the store at an older applied index: every batch lands whole, in
  // order, with the applied index it produced, so the state is exactly the
  // log replayed to that index, and the raft log replays the rest. The cost:
  // up to max_write_buffer_number memtables of batches to replay after any
  // crash, and the raft log must keep entries above what is durable (see
  // Flush). On: batches survive a process crash; a power loss still drops
  // what the OS had not written (the WAL is never synced).
  bool write_ahead_log = false;
  // RocksDB block cache (shared by history and live-index reads).
  uint64_t block_cache_bytes = 256 << 20;
  // Live-index records Apply keeps in memory (recently written or read
  // keys, 0 for none), so a put to a hot key skips the memtable search for
  // its live record. Up to twice this many are held (two generations);
  // about 100 bytes each with short keys.
  size_t live_cache_keys = 1 << 15;
};

// etcd's range_end for "every key starting with prefix": the first key after
// all of them, or "\0" (every key from `prefix` on) when there is none.
std::string PrefixEnd(std::string prefix);

// One committed request for Apply. `index` is its raft index.
struct ApplyOp {
  using Request = std::variant<etcdserverpb::PutRequest, etcdserverpb::DeleteRangeRequest,
                               etcdserverpb::TxnRequest, etcdserverpb::CompactionRequest>;
  Request request;
  raft::Index index = 0;
  // Generated by the server itself (a lease revocation deleting every key
  // attached to the lease): exempt from the client limits on request size
  // and txn operations, which bound what clients send, not what a lease holds.
  bool internal = false;
};

// A record of the server's own tables (members, alarms, ...), outside the
// MVCC key space, written in the same batch as the applied index so it is
// exactly as durable and as snapshotted as the key-value state.
struct MetaWrite {
  std::string key;
  std::optional<std::string> value;  // nullopt deletes the record
};

using ApplyResponse = std::variant<etcdserverpb::PutResponse, etcdserverpb::DeleteRangeResponse,
                                   etcdserverpb::TxnResponse, etcdserverpb::CompactionResponse>;
using ApplyResult = absl::StatusOr<ApplyResponse>;

// The events of one revision, in sub-revision order.
struct RevisionEvents {
  int64_t revision = 0;
  std::vector<mvccpb::Event> events;
  // False when some event's prev_kv has the previous version's metadata but
  // not its value: Apply leaves values to whoever wants them (a prev_kv
  // watcher), which calls StateStore::LoadPrevValues.
  bool prev_values = true;
};

struct HashKVResult {
  uint32_t hash = 0;
  int64_t compact_revision = 0;
  int64_t hash_revision = 0;
  int64_t current_revision = 0;
};

struct EventsPage {
  std::vector<RevisionEvents> revisions;
  // First revision not returned: pass it as the next start_rev.
  int64_t next_rev = 0;
};

class StateStore {
 public:
  static absl::StatusOr<std::unique_ptr<StateStore>> Open(const std::string& dir,
                                                          const StateStoreOptions& options);
  // Replaces state_dir (removing what is there) with the checkpoint's files.
  // The store on state_dir must be closed.
  static absl::Status RestoreFromCheckpoint(const std::string& checkpoint_dir,
                                            const std::string& state_dir);
  ~StateStore();
  StateStore(const StateStore&) = delete;
  StateStore& operator=(const StateStore&) = delete;

  // Applies committed requests in ONE write batch together with the applied
  // index `last_index` (>= every op's index, > applied_index()). One result per
  // op; a failed op writes nothing and does not bump the revision.
  // Single writer: call from one thread only.
  // `meta` records are written in the same batch, after the ops.
  absl::StatusOr<std::vector<ApplyResult>> Apply(const std::vector<ApplyOp>& ops,
                                                 raft::Index last_index,
                                                 const std::vector<MetaWrite>& meta = {});

  // The meta records whose keys start with `prefix`, in key order.
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ReadMeta(
      std::string_view prefix) const;

  // Approximate bytes on disk (SST files, WAL excluded) plus memtables: what
  // the space quota is checked against.
  uint64_t SizeBytes() const;
  // Asks the background thread to compact the whole key space (etcd's
  // Defragment); returns at once. Needs options.background_compaction.
  void RequestFullCompaction();

  // etcd's Range: revision <= 0 reads the current revision; below the compact
  // revision fails with kErrCompacted, above the current with kErrFutureRev
  // (both OutOfRange). The header revision is the current revision; count is
  // the number of keys in the range before the min/max filters and the limit.
  // Cost: O(log n) per key returned or counted; reads at the current revision
  // scan the live index (values: one walk of history alongside it; a single
  // key: one more point lookup), older ones seek in the history once per key.
  absl::StatusOr<etcdserverpb::RangeResponse> Range(const etcdserverpb::RangeRequest& req) const;

  // Hash of the logical key-value history up to `rev` (0: current). Equal on
  // members that applied the same log whatever their physical compaction.
  absl::StatusOr<HashKVResult> HashKV(int64_t rev) const;

  // Events of revisions in [start_rev, end_rev) (end_rev 0: up to current),
  // at most max_events (but always whole revisions, at least one), walking
  // the revision index. start_rev below the compact revision fails with
  // kErrCompacted (as etcd's watch); prev_kv is set when the previous version
  // is at or above the compact revision and was not a delete.
  absl::StatusOr<EventsPage> EventsSince(int64_t start_rev, int64_t end_rev,
                                         uint64_t max_events) const;

  // Fills in the values of `rev`'s prev_kvs from history (a no-op when
  // rev->prev_values). A previous version that compaction removed meanwhile
  // drops that event's prev_kv, as etcd's watch does. Thread-safe.
  absl::Status LoadPrevValues(RevisionEvents* rev) const;

  // Called after each Apply batch is written, with the batch's revisions in
  // order (if it made any), on the Apply thread. It must not block or call
  // Apply. Events carry prev_kv metadata; values only where the request
  // itself read them (see RevisionEvents::prev_values). The batch is the
  // subscriber's to keep (it is moved, not copied).
  using Subscriber = std::function<void(std::vector<RevisionEvents>)>;
  void Subscribe(Subscriber subscriber);

  // Makes every batch applied so far durable (flushes the memtables). With
  // write_ahead_log off, the raft log may drop entries up to applied_index()
  // only once a Flush (or a Checkpoint, which flushes) that began after they
  // were applied has returned.
  absl::Status Flush();
  // Starts flushing the memtables in the background and returns at once:
  // a Flush or Checkpoint soon after then has little left to write.
  absl::Status StartFlush();

  // A RocksDB checkpoint (hard links where possible) of the state at `dir`,
  // which must not exist. It includes every batch applied before the call.
  absl::Status Checkpoint(const std::string& dir) const;

  int64_t current_revision() const;
  int64_t compact_revision() const;
  raft::Index applied_index() const;
  // Highest revision whose superseded history is physically gone.
  int64_t physically_compacted_revision() const;

  // Runs physical compaction to the current compact revision on the calling
  // thread, or only up to `batches_max` batches. For tests and tools.
  absl::Status CompactPhysicallyForTest(uint64_t batches_max = UINT64_MAX);
  // Blocks until the background thread has caught up with compact_revision()
  // (what etcd's CompactionRequest.physical waits for). Needs
  // options.background_compaction.
  void WaitForPhysicalCompaction();
  // Raw count of stored versions (live, superseded and tombstones).
  absl::StatusOr<uint64_t> CountVersionsForTest() const;

 private:
  class ApplyTxn;
  class Snapshot;
  class LiveCache;

  StateStore(std::unique_ptr<rocksdb::DB> db, const StateStoreOptions& options);
  absl::Status Load();
  void CompactionLoop();
  // One bounded batch of physical removal towards `target`. Sets *done when
  // nothing is left below target.
  absl::Status CompactBatch(int64_t target, bool* done);

  const StateStoreOptions options_;
  std::unique_ptr<rocksdb::DB> db_;  // thread-safe itself
  // Used by Apply only (single writer).
  std::unique_ptr<LiveCache> live_cache_;

  mutable std::mutex mu_;
  std::shared_ptr<const Subscriber> subscriber_;  // guarded by mu_
  std::condition_variable cv_;
  // Guarded by mu_. Updated after each batch is written, so a reader that
  // takes a RocksDB snapshot under mu_ sees data at least this new.
  int64_t current_rev_ = 0;
  int64_t compact_rev_ = 0;
  raft::Index applied_index_ = 0;
  // Guarded by mu_. Written by the compaction thread.
  int64_t physical_rev_ = 0;
  bool stop_ = false;
  bool full_compaction_requested_ = false;
  // Serializes physical compaction batches (background thread vs tests).
  // Never taken by Apply or readers; never held while waiting on mu_'s cv.
  std::mutex compaction_mu_;
  std::thread compaction_thread_;
};

}  // namespace ganglion::storage
