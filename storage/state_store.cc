// Key layout of the state RocksDB (one column family, bytewise order):
//
//   "a"                                  applied raft index            (U64)
//   "c"                                  current revision              (U64)
//   "x"                                  compact revision (logical)    (U64)
//   "p"                                  physical compaction progress:
//                                        U64 revision fully removed up to,
//                                        then the last revision-index key
//                                        processed (empty: none)
//   'k' esc(key) 00 01 BE(~main)         one version of `key` written at main
//                                        revision `main`; ~main makes the
//                                        newest version sort first, so
//                                        Seek(k esc(key) 00 01 BE(~R)) lands on
//                                        the newest version <= R. Value:
//                                        U8 tombstone, U64 sub, U64 create,
//                                        U64 version, U64 lease, value bytes.
//   'l' key                              the live (latest, non-deleted) version
//                                        of key: U64 create, U64 mod, U64
//                                        version, U64 lease. No value: it is
//                                        read from the 'k' version at mod, so
//                                        each put stores its value once.
//                                        Reads at the current revision scan
//                                        it; those that return values seek
//                                        history alongside (keys-only and
//                                        count reads, and puts that need no
//                                        previous value, never touch it).
//   'm' name                             a meta record of the server's own
//                                        tables (MetaWrite); opaque here.
//   'r' BE(main) BE(sub)                 revision index: U8 tombstone, key.
//                                        Events, compaction and HashKV walk it
//                                        in revision order.
//
// esc(key) writes 00 as 00 FF and ends with 00 01, so encoded keys sort like
// the user keys and no key's versions interleave with another key's; 00 02
// after esc(key) without the terminator seeks past all versions of key.
//
// Compaction to C is logical at once ("x" in the apply batch; reads below C
// fail). The background thread walks the revision index over (last processed,
// C] in ascending order; for each entry (r, key) it deletes the version of key
// just before r (superseded at C because r <= C), and if the entry is a
// tombstone that is still key's newest version <= C, the tombstone itself.
// Ascending order deletes older versions before the tombstone that hides them,
// so a reader at any revision >= C sees the same answer at every step.
//
// Durability: with StateStoreOptions::write_ahead_log off, every write
// (apply batches and removal batches alike) skips the WAL, so what survives
// a crash is exactly the writes up to the last memtable flush: whole batches,
// in order, each with the "a" and "c" it produced.
#include "storage/state_store.h"

#include <pthread.h>
#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/checkpoint.h>
#include <rocksdb/utilities/table_properties_collectors.h>
#include <rocksdb/utilities/write_batch_with_index.h>
#include <rocksdb/write_batch.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <optional>
#include <unordered_map>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "storage/codec.h"
#include "storage/rocksdb_status.h"

namespace ganglion::storage {

namespace {

using etcdserverpb::Compare;
using etcdserverpb::RangeRequest;
using etcdserverpb::RangeResponse;
using etcdserverpb::RequestOp;
using etcdserverpb::TxnRequest;
using etcdserverpb::TxnResponse;

constexpr char kAppliedKey[] = "a";
constexpr char kCurrentRevKey[] = "c";
constexpr char kCompactRevKey[] = "x";
constexpr char kPhysicalKey[] = "p";
constexpr char kVersionPrefix = 'k';
constexpr char kLivePrefix = 'l';
constexpr char kRevPrefix = 'r';
constexpr char kMetaPrefix = 'm';
// Bound on the versions a range read steps over with Next before it Seeks.
constexpr int kNextBeforeSeek = 4;
// The same for reading live values from history, where the versions stepped
// over are the older versions of the previous key. A Seek re-seeks every
// level (several microseconds); a Next costs a tenth of that.
constexpr int kNextBeforeSeekLiveValues = 16;

absl::Status FromRocks(const rocksdb::Status& s, std::string_view what) {
  return storage::FromRocks(s, "state store", what);
}

// ---- encodings ----

// 'k' esc(key) 00 01: the prefix of all versions of key.
std::string VersionKeyPrefix(std::string_view key) {
  std::string out;
  out.reserve(key.size() + 4 + 8);
  out.push_back(kVersionPrefix);
  for (char c : key) {
    out.push_back(c);
    if (c == '\0') out.push_back('\xff');
  }
  out.push_back('\0');
  out.push_back('\x01');
  return out;
}

std::string VersionKey(std::string_view key, int64_t main) {
  std::string out = VersionKeyPrefix(key);
  PutFixed64BE(&out, ~static_cast<uint64_t>(main));
  return out;
}

// Splits a 'k' key into its prefix (up to and including the terminator) and
// main revision. False if malformed.
bool ParseVersionKey(std::string_view k, std::string_view* prefix, int64_t* main) {
  size_t i = 1;
  while (i + 1 < k.size()) {
    if (k[i] == '\0') {
      if (k[i + 1] == '\x01') {
        if (k.size() != i + 2 + 8) return false;
        *prefix = k.substr(0, i + 2);
        *main = static_cast<int64_t>(~DecodeFixed64BE(k.substr(i + 2)));
        return true;
      }
      i += 2;
    } else {
      i++;
    }
  }
  return false;
}

std::string UnescapeKey(std::string_view prefix) {
  std::string out;
  out.reserve(prefix.size());
  // Between the leading 'k' and the 00 01 terminator.
  for (size_t i = 1; i + 2 < prefix.size(); i++) {
    out.push_back(prefix[i]);
    if (prefix[i] == '\0') i++;  // skip the FF
  }
  return out;
}

std::string LiveKey(std::string_view key) {
  std::string out(1, kLivePrefix);
  out.append(key);
  return out;
}

std::string RevKey(int64_t main, int64_t sub) {
  std::string out(1, kRevPrefix);
  PutFixed64BE(&out, static_cast<uint64_t>(main));
  PutFixed64BE(&out, static_cast<uint64_t>(sub));
  return out;
}

std::string U64Value(uint64_t v) {
  std::string out;
  PutU64(&out, v);
  return out;
}

// A decoded version or live record; string_views point into the iterator or
// the value string that produced it.
struct KvRef {
  std::string_view key;
  std::string_view value;
  int64_t create = 0, mod = 0, version = 0, lease = 0, sub = 0;
  bool tombstone = false;

  void ToProto(mvccpb::KeyValue* kv, bool with_value = true) const {
    kv->set_key(std::string(key));
    kv->set_create_revision(create);
    kv->set_mod_revision(mod);
    kv->set_version(version);
    kv->set_lease(lease);
    if (with_value) kv->set_value(std::string(value));
  }
};

std::string EncodeVersionValue(bool tombstone, int64_t sub, int64_t create, int64_t version,
                               int64_t lease, std::string_view value) {
  std::string out;
  out.reserve(33 + value.size());
  PutU8(&out, tombstone ? 1 : 0);
  PutU64(&out, static_cast<uint64_t>(sub));
  PutU64(&out, static_cast<uint64_t>(create));
  PutU64(&out, static_cast<uint64_t>(version));
  PutU64(&out, static_cast<uint64_t>(lease));
  out.append(value);
  return out;
}

bool DecodeVersionValue(std::string_view in, KvRef* kv) {
  Reader r(in);
  uint8_t tomb = 0;
  uint64_t sub = 0, create = 0, version = 0, lease = 0;
  if (!r.GetU8(&tomb) || !r.GetU64(&sub) || !r.GetU64(&create) || !r.GetU64(&version) ||
      !r.GetU64(&lease)) {
    return false;
  }
  kv->tombstone = tomb != 0;
  kv->sub = static_cast<int64_t>(sub);
  kv->create = static_cast<int64_t>(create);
  kv->version = static_cast<int64_t>(version);
  kv->lease = static_cast<int64_t>(lease);
  kv->value = r.Rest();
  return true;
}

std::string EncodeLiveValue(int64_t create, int64_t mod, int64_t version, int64_t lease) {
  std::string out;
  out.reserve(32);
  PutU64(&out, static_cast<uint64_t>(create));
  PutU64(&out, static_cast<uint64_t>(mod));
  PutU64(&out, static_cast<uint64_t>(version));
  PutU64(&out, static_cast<uint64_t>(lease));
  return out;
}

// Fills kv's metadata; kv->value is left empty (it lives in history).
bool DecodeLiveValue(std::string_view in, KvRef* kv) {
  Reader r(in);
  uint64_t create = 0, mod = 0, version = 0, lease = 0;
  if (!r.GetU64(&create) || !r.GetU64(&mod) || !r.GetU64(&version) || !r.GetU64(&lease) ||
      !r.Done()) {
    return false;
  }
  kv->create = static_cast<int64_t>(create);
  kv->mod = static_cast<int64_t>(mod);
  kv->version = static_cast<int64_t>(version);
  kv->lease = static_cast<int64_t>(lease);
  kv->value = {};
  return true;
}

// ---- readers: a RocksDB view (snapshot, batch over DB, or plain DB) ----

class ViewReader {
 public:
  virtual ~ViewReader() = default;
  // `upper` must outlive the iterator.
  virtual std::unique_ptr<rocksdb::Iterator> NewIterator(const rocksdb::Slice* upper) = 0;
  // NotFound is reported as false, not as an error.
  virtual absl::StatusOr<bool> Get(const std::string& key, std::string* value) = 0;
};

class DbReader final : public ViewReader {
 public:
  DbReader(rocksdb::DB* db, const rocksdb::Snapshot* snapshot) : db_(db) {
    ro_.snapshot = snapshot;
  }
  std::unique_ptr<rocksdb::Iterator> NewIterator(const rocksdb::Slice* upper) override {
    rocksdb::ReadOptions ro = ro_;
    ro.iterate_upper_bound = upper;
    return std::unique_ptr<rocksdb::Iterator>(db_->NewIterator(ro));
  }
  absl::StatusOr<bool> Get(const std::string& key, std::string* value) override {
    rocksdb::Status s = db_->Get(ro_, key, value);
    if (s.IsNotFound()) return false;
    if (!s.ok()) return FromRocks(s, "get");
    return true;
  }

 private:
  rocksdb::DB* db_;
  rocksdb::ReadOptions ro_;
};

// Reads the DB through an apply batch's index, which `index` builds on first
// use (most batches are plain puts and never need one).
class BatchReader final : public ViewReader {
 public:
  BatchReader(rocksdb::DB* db, std::function<rocksdb::WriteBatchWithIndex*()> index)
      : db_(db), index_(std::move(index)) {}
  std::unique_ptr<rocksdb::Iterator> NewIterator(const rocksdb::Slice* upper) override {
    rocksdb::ReadOptions ro;
    ro.iterate_upper_bound = upper;
    rocksdb::Iterator* base = db_->NewIterator(ro);
    return std::unique_ptr<rocksdb::Iterator>(
        index_()->NewIteratorWithBase(db_->DefaultColumnFamily(), base, &ro));
  }
  absl::StatusOr<bool> Get(const std::string& key, std::string* value) override {
    rocksdb::Status s = index_()->GetFromBatchAndDB(db_, rocksdb::ReadOptions(), key, value);
    if (s.IsNotFound()) return false;
    if (!s.ok()) return FromRocks(s, "get");
    return true;
  }

 private:
  rocksdb::DB* db_;
  std::function<rocksdb::WriteBatchWithIndex*()> index_;
};

// Newest version of key with main revision <= rev (tombstones included).
// `holder` keeps the bytes kv points into.
absl::StatusOr<bool> VersionAtOrBelow(ViewReader* r, std::string_view key, int64_t rev,
                                      std::string* holder, KvRef* kv) {
  std::string prefix = VersionKeyPrefix(key);
  std::string upper = prefix;
  upper.back() = '\x02';
  rocksdb::Slice upper_slice(upper);
  auto it = r->NewIterator(&upper_slice);
  std::string seek = prefix;
  PutFixed64BE(&seek, ~static_cast<uint64_t>(rev));
  it->Seek(seek);
  if (!it->Valid()) {
    if (auto s = FromRocks(it->status(), "seek version"); !s.ok()) return s;
    return false;
  }
  std::string_view p;
  int64_t main = 0;
  if (!ParseVersionKey(it->key().ToStringView(), &p, &main) || p != prefix) return false;
  holder->assign(it->value().ToStringView());
  if (!DecodeVersionValue(*holder, kv)) return absl::DataLossError("corrupt version value");
  kv->mod = main;
  return true;
}

// The value of the live version (key, mod) read from history: a point Get
// for one key, and for a scan an iterator that walks history alongside the
// live index (a few Nexts reach the next key's newest version; past that one
// Seek), so a range costs one history pass rather than a Get per key.
class HistoryValues {
 public:
  explicit HistoryValues(ViewReader* r) : r_(r) {}

  // Sets kv->value (valid until the next call) from the version at kv->mod.
  absl::Status Get(std::string_view key, KvRef* kv) {
    target_ = VersionKey(key, kv->mod);
    auto found = r_->Get(target_, &holder_);
    if (!found.ok()) return found.status();
    return Decode(*found, holder_, kv);
  }

  // As Get, for keys visited in ascending order.
  absl::Status Next(std::string_view key, KvRef* kv) {
    target_ = VersionKey(key, kv->mod);
    if (!it_) it_ = r_->NewIterator(nullptr);
    bool at = false;
    if (it_->Valid()) {
      for (int i = 0; i < kNextBeforeSeekLiveValues && it_->Valid(); i++) {
        int cmp = it_->key().compare(target_);
        if (cmp >= 0) {
          at = cmp == 0;
          break;
        }
        it_->Next();
      }
    }
    if (!at) {
      it_->Seek(target_);
      if (!it_->Valid() && !it_->status().ok()) return FromRocks(it_->status(), "seek version");
      at = it_->Valid() && it_->key() == rocksdb::Slice(target_);
    }
    return Decode(at, at ? it_->value().ToStringView() : std::string_view(), kv);
  }

 private:
  static absl::Status Decode(bool found, std::string_view value, KvRef* kv) {
    KvRef version;
    if (!found || !DecodeVersionValue(value, &version) || version.tombstone) {
      return absl::DataLossError("live index names a missing version");
    }
    kv->value = version.value;
    return absl::OkStatus();
  }

  ViewReader* r_;
  std::unique_ptr<rocksdb::Iterator> it_;
  std::string target_, holder_;
};

// Visits the live key-values in [key, end) at revision rev (end empty: only
// key; end "\0" handled by the caller as empty-upper = unbounded via
// `unbounded`). `at_current` reads the live index instead of history; there
// kv.value is only read (from history) when `with_values`. The visitor
// returns false to stop.
using Visitor = std::function<bool(const KvRef&)>;

absl::Status VisitRange(ViewReader* r, const std::string& key, const std::string& end, bool single,
                        bool unbounded, int64_t rev, bool at_current, bool with_values,
                        const Visitor& visit) {
  if (single) {
    std::string holder;
    HistoryValues values(r);  // kv.value may point into it
    KvRef kv;
    if (at_current) {
      auto found = r->Get(LiveKey(key), &holder);
      if (!found.ok()) return found.status();
      if (!*found) return absl::OkStatus();
      if (!DecodeLiveValue(holder, &kv)) return absl::DataLossError("corrupt live value");
      if (with_values) {
        if (auto s = values.Get(key, &kv); !s.ok()) return s;
      }
    } else {
      auto found = VersionAtOrBelow(r, key, rev, &holder, &kv);
      if (!found.ok()) return found.status();
      if (!*found || kv.tombstone) return absl::OkStatus();
    }
    kv.key = key;
    visit(kv);
    return absl::OkStatus();
  }
  if (at_current) {
    std::string lower = LiveKey(key);
    std::string upper = unbounded ? std::string(1, kLivePrefix + 1) : LiveKey(end);
    if (!unbounded && end <= key) return absl::OkStatus();
    rocksdb::Slice upper_slice(upper);
    auto it = r->NewIterator(&upper_slice);
    HistoryValues values(r);
    for (it->Seek(lower); it->Valid(); it->Next()) {
      std::string_view k = it->key().ToStringView();
      if (k >= upper) break;  // batch entries are not bounded by RocksDB
      KvRef kv;
      if (!DecodeLiveValue(it->value().ToStringView(), &kv)) {
        return absl::DataLossError("corrupt live value");
      }
      kv.key = k.substr(1);
      if (with_values) {
        if (auto s = values.Next(kv.key, &kv); !s.ok()) return s;
      }
      if (!visit(kv)) return absl::OkStatus();
    }
    return FromRocks(it->status(), "scan live keys");
  }
  std::string lower = VersionKeyPrefix(key);
  std::string upper;
  if (unbounded) {
    upper.assign(1, kVersionPrefix + 1);
  } else {
    if (end <= key) return absl::OkStatus();
    upper = VersionKeyPrefix(end);
  }
  rocksdb::Slice upper_slice(upper);
  auto it = r->NewIterator(&upper_slice);
  const uint64_t inv_rev = ~static_cast<uint64_t>(rev);
  it->Seek(lower);
  while (it->Valid()) {
    std::string_view k = it->key().ToStringView();
    if (k >= upper) break;
    std::string_view prefix_view;
    int64_t main = 0;
    if (!ParseVersionKey(k, &prefix_view, &main)) {
      return absl::DataLossError("corrupt version key");
    }
    // A copy: the iterator's key bytes change when it moves.
    std::string prefix(prefix_view);
    if (main > rev) {
      // Newer than wanted: jump to the newest version <= rev of this key.
      std::string seek = prefix;
      PutFixed64BE(&seek, inv_rev);
      it->Seek(seek);
      if (!it->Valid()) break;
      k = it->key().ToStringView();
      if (k >= upper) break;
      if (!ParseVersionKey(k, &prefix_view, &main)) {
        return absl::DataLossError("corrupt version key");
      }
      if (prefix_view != prefix) continue;  // no version <= rev; now at the next key
    }
    KvRef kv;
    if (!DecodeVersionValue(it->value().ToStringView(), &kv)) {
      return absl::DataLossError("corrupt version value");
    }
    std::string user_key;
    if (!kv.tombstone) {
      user_key = UnescapeKey(prefix);
      kv.key = user_key;
      kv.mod = main;
      if (!visit(kv)) return absl::OkStatus();
    }
    // Skip the older versions of this key: a few Nexts, then one Seek.
    std::string& skip = prefix;
    bool moved = false;
    for (int i = 0; i < kNextBeforeSeek; i++) {
      it->Next();
      if (!it->Valid() || !it->key().starts_with(skip)) {
        moved = true;
        break;
      }
    }
    if (!moved) {
      skip.back() = '\x02';
      it->Seek(skip);
    }
  }
  return FromRocks(it->status(), "scan versions");
}

// ---- etcd request checks (etcd's v3rpc validation and apply checks) ----

std::string MkGteRangeEnd(const std::string& end, bool* single, bool* unbounded) {
  *single = end.empty();
  *unbounded = end.size() == 1 && end[0] == '\0';
  return end;
}

absl::Status CheckTxnRequest(const TxnRequest& r, int64_t max_txn_ops);

absl::Status CheckPutRequest(const etcdserverpb::PutRequest& r) {
  if (r.key().empty()) return absl::InvalidArgumentError(kErrEmptyKey);
  if (r.ignore_value() && !r.value().empty()) return absl::InvalidArgumentError(kErrValueProvided);
  if (r.ignore_lease() && r.lease() != 0) return absl::InvalidArgumentError(kErrLeaseProvided);
  return absl::OkStatus();
}

absl::Status CheckRequestOp(const RequestOp& op, int64_t max_txn_ops) {
  switch (op.request_case()) {
    case RequestOp::kRequestRange:
      if (op.request_range().key().empty()) return absl::InvalidArgumentError(kErrEmptyKey);
      return absl::OkStatus();
    case RequestOp::kRequestPut:
      return CheckPutRequest(op.request_put());
    case RequestOp::kRequestDeleteRange:
      if (op.request_delete_range().key().empty()) {
        return absl::InvalidArgumentError(kErrEmptyKey);
      }
      return absl::OkStatus();
    case RequestOp::kRequestTxn:
      return CheckTxnRequest(op.request_txn(), max_txn_ops);
    default:
      return absl::InvalidArgumentError(kErrKeyNotFound);
  }
}

absl::Status CheckTxnRequest(const TxnRequest& r, int64_t max_txn_ops) {
  int64_t opc = std::max<int64_t>({r.compare_size(), r.success_size(), r.failure_size()});
  if (opc > max_txn_ops) return absl::InvalidArgumentError(kErrTooManyOps);
  for (const Compare& c : r.compare()) {
    if (c.key().empty()) return absl::InvalidArgumentError(kErrEmptyKey);
  }
  for (const RequestOp& op : r.success()) {
    if (auto s = CheckRequestOp(op, max_txn_ops - opc); !s.ok()) return s;
  }
  for (const RequestOp& op : r.failure()) {
    if (auto s = CheckRequestOp(op, max_txn_ops - opc); !s.ok()) return s;
  }
  return absl::OkStatus();
}

// A delete's key interval. A "\0" range end is treated as unbounded (etcd's
// interval tree reads it literally, which lets a txn put and delete the same
// key in one revision; this store keeps one version per key per revision).
struct Interval {
  std::string begin, end;
  bool point = false, unbounded = false;
  bool Contains(const std::string& k) const {
    if (point) return k == begin;
    if (unbounded) return k >= begin;
    return begin <= k && k < end;
  }
};

bool AnyContains(const std::vector<Interval>& dels, const std::string& k) {
  for (const Interval& iv : dels) {
    if (iv.Contains(k)) return true;
  }
  return false;
}

// etcd's checkIntervals: no key is put twice, or put and deleted, by one txn.
absl::Status CheckIntervals(const google::protobuf::RepeatedPtrField<RequestOp>& reqs,
                            std::vector<std::string>* puts, std::vector<Interval>* dels) {
  for (const RequestOp& op : reqs) {
    if (!op.has_request_delete_range()) continue;
    const auto& d = op.request_delete_range();
    Interval iv;
    iv.begin = d.key();
    iv.end = d.range_end();
    iv.point = d.range_end().empty();
    iv.unbounded = d.range_end().size() == 1 && d.range_end()[0] == '\0';
    dels->push_back(std::move(iv));
  }
  auto has_put = [&](const std::string& k) {
    return std::find(puts->begin(), puts->end(), k) != puts->end();
  };
  for (const RequestOp& op : reqs) {
    if (!op.has_request_txn()) continue;
    std::vector<std::string> puts_then, puts_else;
    std::vector<Interval> dels_then, dels_else;
    if (auto s = CheckIntervals(op.request_txn().success(), &puts_then, &dels_then); !s.ok()) {
      return s;
    }
    if (auto s = CheckIntervals(op.request_txn().failure(), &puts_else, &dels_else); !s.ok()) {
      return s;
    }
    for (const std::string& k : puts_then) {
      if (has_put(k) || AnyContains(*dels, k)) return absl::InvalidArgumentError(kErrDuplicateKey);
      puts->push_back(k);
    }
    for (const std::string& k : puts_else) {
      // then and else are exclusive: the same key in both is fine.
      if (has_put(k) && std::find(puts_then.begin(), puts_then.end(), k) == puts_then.end()) {
        return absl::InvalidArgumentError(kErrDuplicateKey);
      }
      if (AnyContains(*dels, k)) return absl::InvalidArgumentError(kErrDuplicateKey);
      if (!has_put(k)) puts->push_back(k);
    }
    dels->insert(dels->end(), dels_then.begin(), dels_then.end());
    dels->insert(dels->end(), dels_else.begin(), dels_else.end());
  }
  for (const RequestOp& op : reqs) {
    if (!op.has_request_put()) continue;
    const std::string& k = op.request_put().key();
    if (has_put(k) || AnyContains(*dels, k)) return absl::InvalidArgumentError(kErrDuplicateKey);
    puts->push_back(k);
  }
  return absl::OkStatus();
}

bool IsTxnReadOnly(const TxnRequest& r) {
  for (const auto* ops : {&r.success(), &r.failure()}) {
    for (const RequestOp& op : *ops) {
      if (op.has_request_put() || op.has_request_delete_range()) return false;
      if (op.has_request_txn() && !IsTxnReadOnly(op.request_txn())) return false;
    }
  }
  return true;
}

int CompareInt(int64_t a, int64_t b) {
  return a < b ? -1 : (a > b ? 1 : 0);
}

bool CompareKv(const Compare& c, const KvRef& kv) {
  int result = 0;
  switch (c.target()) {
    case Compare::VALUE: {
      std::string_view want = c.target_union_case() == Compare::kValue ? std::string_view(c.value())
                                                                       : std::string_view();
      int cmp = kv.value.compare(want);
      result = cmp < 0 ? -1 : (cmp > 0 ? 1 : 0);
      break;
    }
    case Compare::CREATE:
      result = CompareInt(
          kv.create, c.target_union_case() == Compare::kCreateRevision ? c.create_revision() : 0);
      break;
    case Compare::MOD:
      result =
          CompareInt(kv.mod, c.target_union_case() == Compare::kModRevision ? c.mod_revision() : 0);
      break;
    case Compare::VERSION:
      result = CompareInt(kv.version, c.target_union_case() == Compare::kVersion ? c.version() : 0);
      break;
    case Compare::LEASE:
      result = CompareInt(kv.lease, c.target_union_case() == Compare::kLease ? c.lease() : 0);
      break;
    default:
      break;
  }
  switch (c.result()) {
    case Compare::EQUAL:
      return result == 0;
    case Compare::NOT_EQUAL:
      return result != 0;
    case Compare::GREATER:
      return result > 0;
    case Compare::LESS:
      return result < 0;
    default:
      return true;
  }
}

// etcd's Range, over a view whose current revision is cur.
absl::StatusOr<RangeResponse> RangeAt(ViewReader* r, const RangeRequest& req, int64_t cur,
                                      int64_t compact) {
  if (req.key().empty()) return absl::InvalidArgumentError(kErrEmptyKey);
  int64_t limit = req.limit();
  if (req.sort_order() != RangeRequest::NONE || req.min_mod_revision() != 0 ||
      req.max_mod_revision() != 0 || req.min_create_revision() != 0 ||
      req.max_create_revision() != 0) {
    limit = 0;  // fetch everything; filter, sort and truncate afterwards
  }
  if (limit > 0) limit++;  // one extra tells `more`
  int64_t rev = req.revision();
  if (rev > cur) return absl::OutOfRangeError(kErrFutureRev);
  if (rev <= 0) rev = cur;
  if (rev < compact) return absl::OutOfRangeError(kErrCompacted);

  RangeResponse resp;
  int64_t count = 0;
  std::vector<mvccpb::KeyValue> kvs;
  bool single = false, unbounded = false;
  MkGteRangeEnd(req.range_end(), &single, &unbounded);
  // keys_only and count_only replies carry no values: skip reading them.
  const bool with_values = !req.count_only() && !req.keys_only();
  auto s = VisitRange(
      r, req.key(), req.range_end(), single, unbounded, rev, rev == cur, with_values,
      [&](const KvRef& kv) {
        count++;
        if (!req.count_only() && (limit <= 0 || static_cast<int64_t>(kvs.size()) < limit)) {
          kv.ToProto(&kvs.emplace_back(), !req.keys_only());
        }
        return true;
      });
  if (!s.ok()) return s;

  auto prune = [&](auto drop) { std::erase_if(kvs, drop); };
  if (req.max_mod_revision() != 0) {
    prune([&](const mvccpb::KeyValue& kv) { return kv.mod_revision() > req.max_mod_revision(); });
  }
  if (req.min_mod_revision() != 0) {
    prune([&](const mvccpb::KeyValue& kv) { return kv.mod_revision() < req.min_mod_revision(); });
  }
  if (req.max_create_revision() != 0) {
    prune([&](const mvccpb::KeyValue& kv) {
      return kv.create_revision() > req.max_create_revision();
    });
  }
  if (req.min_create_revision() != 0) {
    prune([&](const mvccpb::KeyValue& kv) {
      return kv.create_revision() < req.min_create_revision();
    });
  }
  auto order = req.sort_order();
  // Results come in ascending key order: only another target needs a default sort.
  if (req.sort_target() != RangeRequest::KEY && order == RangeRequest::NONE) {
    order = RangeRequest::ASCEND;
  }
  if (order != RangeRequest::NONE &&
      !(req.sort_target() == RangeRequest::KEY && order == RangeRequest::ASCEND)) {
    auto field = [&](const mvccpb::KeyValue& kv) -> int64_t {
      switch (req.sort_target()) {
        case RangeRequest::VERSION:
          return kv.version();
        case RangeRequest::CREATE:
          return kv.create_revision();
        case RangeRequest::MOD:
          return kv.mod_revision();
        default:
          return 0;
      }
    };
    auto less = [&](const mvccpb::KeyValue& a, const mvccpb::KeyValue& b) {
      if (req.sort_target() == RangeRequest::KEY) return a.key() < b.key();
      if (req.sort_target() == RangeRequest::VALUE) return a.value() < b.value();
      return field(a) < field(b);
    };
    if (order == RangeRequest::ASCEND) {
      std::stable_sort(kvs.begin(), kvs.end(), less);
    } else {
      std::stable_sort(
          kvs.begin(), kvs.end(),
          [&](const mvccpb::KeyValue& a, const mvccpb::KeyValue& b) { return less(b, a); });
    }
  }
  if (req.limit() > 0 && static_cast<int64_t>(kvs.size()) > req.limit()) {
    kvs.resize(req.limit());
    resp.set_more(true);
  }
  resp.mutable_header()->set_revision(cur);
  resp.set_count(count);
  for (auto& kv : kvs) *resp.add_kvs() = std::move(kv);
  return resp;
}

bool ApplyCompare(ViewReader* r, const Compare& c, int64_t cur) {
  bool single = false, unbounded = false;
  MkGteRangeEnd(c.range_end(), &single, &unbounded);
  bool any = false, all = true;
  auto s = VisitRange(r, c.key(), c.range_end(), single, unbounded, cur, true,
                      c.target() == Compare::VALUE, [&](const KvRef& kv) {
                        any = true;
                        if (!CompareKv(c, kv)) {
                          all = false;
                          return false;
                        }
                        return true;
                      });
  if (!s.ok()) return false;
  if (!any) {
    // A missing key has no value to compare: nil and "" are the same on the wire.
    if (c.target() == Compare::VALUE) return false;
    return CompareKv(c, KvRef{});
  }
  return all;
}

bool ApplyCompares(ViewReader* r, const TxnRequest& t, int64_t cur) {
  for (const Compare& c : t.compare()) {
    if (!ApplyCompare(r, c, cur)) return false;
  }
  return true;
}

// Pre-order outcomes of the txn and every nested txn on the chosen path, all
// evaluated against the state before the txn (as etcd does).
void CompareToPath(ViewReader* r, const TxnRequest& t, int64_t cur, std::vector<bool>* path) {
  bool ok = ApplyCompares(r, t, cur);
  path->push_back(ok);
  for (const RequestOp& op : ok ? t.success() : t.failure()) {
    if (op.has_request_txn()) CompareToPath(r, op.request_txn(), cur, path);
  }
}

// etcd's checkRequests on the chosen path, against the pre-txn state.
absl::Status CheckPath(ViewReader* r, const TxnRequest& t, const std::vector<bool>& path,
                       size_t* pos, int64_t cur, int64_t compact) {
  bool ok = path[(*pos)++];
  for (const RequestOp& op : ok ? t.success() : t.failure()) {
    if (op.has_request_put()) {
      const auto& p = op.request_put();
      if (p.ignore_value() || p.ignore_lease()) {
        std::string v;
        auto found = r->Get(LiveKey(p.key()), &v);
        if (!found.ok()) return found.status();
        if (!*found) return absl::InvalidArgumentError(kErrKeyNotFound);
      }
    } else if (op.has_request_range()) {
      int64_t rev = op.request_range().revision();
      if (rev == 0) continue;
      if (rev > cur) return absl::OutOfRangeError(kErrFutureRev);
      if (rev < compact) return absl::OutOfRangeError(kErrCompacted);
    } else if (op.has_request_txn()) {
      if (auto s = CheckPath(r, op.request_txn(), path, pos, cur, compact); !s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

// CRC-32C (Castagnoli), as etcd uses for HashKV.
uint32_t Crc32c(uint32_t crc, std::string_view data) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; i++) {
      uint32_t c = i;
      for (int j = 0; j < 8; j++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  crc = ~crc;
  for (char ch : data) crc = table[(crc ^ static_cast<uint8_t>(ch)) & 0xff] ^ (crc >> 8);
  return ~crc;
}

}  // namespace

// ---- the live-record cache ----

// Live records of the keys Apply touched lately: what the DB holds for them
// as of the last written batch (nullopt: no live record). Two generations:
// lookups promote from the old one, and when the current one fills up it
// becomes the old one, so hot keys stay and the size stays bounded without
// per-entry bookkeeping. Apply's thread only.
class StateStore::LiveCache {
 public:
  struct Rec {
    int64_t create = 0, mod = 0, version = 0, lease = 0;
  };
  explicit LiveCache(size_t generation_max) : generation_max_(generation_max) {}

  // True if the key is known; *out is its record (nullopt: none).
  bool Find(const std::string& live_key, std::optional<Rec>* out) {
    if (auto it = current_.find(live_key); it != current_.end()) {
      *out = it->second;
      return true;
    }
    auto it = old_.find(live_key);
    if (it == old_.end()) return false;
    *out = it->second;
    Put(live_key, *out);
    return true;
  }

  void Put(const std::string& live_key, const std::optional<Rec>& rec) {
    if (generation_max_ == 0) return;
    if (current_.size() >= generation_max_) {
      old_ = std::move(current_);
      current_ = {};
    }
    current_.insert_or_assign(live_key, rec);
  }

 private:
  const size_t generation_max_;
  absl::flat_hash_map<std::string, std::optional<Rec>> current_, old_;
};

// ---- the apply batch ----

// One Apply call: a write batch that later ops read through, plus the
// revision bookkeeping of the request being applied.
class StateStore::ApplyTxn {
  // A live record in the apply overlay, and where its value can be read.
  struct LiveRecord {
    int64_t create = 0, mod = 0, version = 0, lease = 0;
    // Index in writes_ of the 'k' write that holds the value when this batch
    // wrote the version; -1 when the version is in the DB.
    int64_t version_write = -1;
    // The DB version's value, once read.
    std::optional<std::string> db_value;

    static LiveRecord From(const KvRef& kv) {
      return LiveRecord{kv.create, kv.mod, kv.version, kv.lease, -1, {}};
    }
    static LiveRecord From(const LiveCache::Rec& r) {
      return LiveRecord{r.create, r.mod, r.version, r.lease, -1, {}};
    }
    LiveCache::Rec ToCached() const { return LiveCache::Rec{create, mod, version, lease}; }
    KvRef ToKvRef() const {
      KvRef kv;
      kv.create = create;
      kv.mod = mod;
      kv.version = version;
      kv.lease = lease;
      return kv;
    }
  };

 public:
  ApplyTxn(StateStore* store, int64_t cur, int64_t compact, bool want_events)
      : store_(store),
        reader_(store->db_.get(), [this] { return Index(); }),
        cur_rev_(cur),
        compact_rev_(compact),
        want_events_(want_events) {}

  ApplyResult Apply(const ApplyOp::Request& req, bool internal = false) {
    internal_ = internal;
    savepoint_ = writes_.size();
    index_built_by_request_ = false;
    if (index_) index_->SetSavePoint();
    begin_rev_ = cur_rev_;
    sub_ = 0;
    pending_.clear();
    ApplyResult result = std::visit([&](const auto& r) { return ApplyOne(r); }, req);
    if (!result.ok()) {
      // Nothing of a failed request stays in the batch or the live overlay.
      writes_.resize(savepoint_);
      if (index_built_by_request_) {
        index_.reset();  // rebuilt from writes_ when next needed
      } else if (index_) {
        if (auto s = index_->RollbackToSavePoint(); !s.ok()) return FromRocks(s, "rollback");
      }
      for (auto it = undo_.rbegin(); it != undo_.rend(); ++it) {
        if (it->second.has_value()) {
          live_[it->first] = std::move(*it->second);
        } else {
          live_.erase(it->first);
        }
      }
      undo_.clear();
      pending_.clear();
      pending_prev_missing_ = false;
      sub_ = 0;
      return result;
    }
    undo_.clear();
    if (index_ && !index_built_by_request_) (void)index_->PopSavePoint();
    if (sub_ > 0) {
      cur_rev_ = begin_rev_ + 1;
      if (want_events_) {
        events_.push_back(RevisionEvents{cur_rev_, std::move(pending_), !pending_prev_missing_});
      }
    }
    pending_.clear();
    pending_prev_missing_ = false;
    return result;
  }

  // Reads the live records of the keys the batch's plain puts will touch in
  // one MultiGet, which batches the memtable and table lookups. (Their
  // values are not read: events leave them to LoadPrevValues.)
  absl::Status Prefetch(const std::vector<ApplyOp>& ops) {
    std::vector<std::string> keys;
    for (const ApplyOp& op : ops) {
      if (const auto* p = std::get_if<etcdserverpb::PutRequest>(&op.request)) {
        keys.push_back(LiveKey(p->key()));
      }
    }
    if (keys.empty()) return absl::OkStatus();
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    live_.reserve(keys.size() * 2);
    // Keys the cache knows skip the DB.
    keys.erase(std::remove_if(keys.begin(), keys.end(),
                              [&](std::string& k) { return FromCache(k) != live_.end(); }),
               keys.end());
    if (keys.empty()) return absl::OkStatus();
    std::vector<rocksdb::Slice> slices(keys.begin(), keys.end());
    std::vector<rocksdb::PinnableSlice> values(keys.size());
    std::vector<rocksdb::Status> statuses(keys.size());
    store_->db_->MultiGet(rocksdb::ReadOptions(), store_->db_->DefaultColumnFamily(), keys.size(),
                          slices.data(), values.data(), statuses.data(), /*sorted_input=*/true);
    for (size_t i = 0; i < keys.size(); i++) {
      if (statuses[i].IsNotFound()) {
        live_.emplace(std::move(keys[i]), std::nullopt);
      } else if (statuses[i].ok()) {
        KvRef kv;
        if (!DecodeLiveValue(values[i].ToStringView(), &kv))
          return absl::DataLossError("corrupt live value");
        live_.emplace(std::move(keys[i]), LiveRecord::From(kv));
      } else {
        return FromRocks(statuses[i], "prefetch live keys");
      }
    }
    return absl::OkStatus();
  }

  absl::Status Commit(raft::Index last_index) {
    BatchPut(kAppliedKey, U64Value(last_index));
    BatchPut(kCurrentRevKey, U64Value(static_cast<uint64_t>(cur_rev_)));
    // Write the batch in key order (equal keys stay in write order, so the
    // last write wins as before): each memtable insert then starts from where
    // the previous one of its prefix ended instead of from the top.
    std::vector<uint32_t> order(writes_.size());
    size_t bytes = 0;
    for (uint32_t i = 0; i < order.size(); i++) {
      order[i] = i;
      bytes += writes_[i].key.size() + writes_[i].value.size() + 8;
    }
    std::stable_sort(order.begin(), order.end(),
                     [&](uint32_t a, uint32_t b) { return writes_[a].key < writes_[b].key; });
    rocksdb::WriteBatch sorted(bytes + 64);
    for (uint32_t i : order) {
      const PendingWrite& w = writes_[i];
      rocksdb::Status s = w.del ? sorted.Delete(w.key) : sorted.Put(w.key, w.value);
      if (!s.ok()) return FromRocks(s, "build apply batch");
    }
    rocksdb::WriteOptions wo;
    wo.sync = false;  // the raft log replays what a crash loses
    wo.disableWAL = !store_->options_.write_ahead_log;
    if (auto s = FromRocks(store_->db_->Write(wo, &sorted), "write apply batch"); !s.ok()) {
      return s;
    }
    // live_ is exact for every key it holds (failed requests were undone),
    // and now it is what the DB holds.
    for (const auto& [key, rec] : live_) {
      store_->live_cache_->Put(key, rec ? std::optional(rec->ToCached()) : std::nullopt);
    }
    return absl::OkStatus();
  }

  void WriteMeta(const MetaWrite& m) {
    std::string key = std::string(1, kMetaPrefix) + m.key;
    if (m.value) {
      BatchPut(std::move(key), *m.value);
    } else {
      BatchDelete(std::move(key));
    }
  }

  int64_t cur_rev() const { return cur_rev_; }
  int64_t compact_rev() const { return compact_rev_; }
  std::vector<RevisionEvents>& events() { return events_; }

 private:
  int64_t rev_in_txn() const { return begin_rev_ + (sub_ > 0 ? 1 : 0); }

  absl::Status CheckSize(const google::protobuf::Message& m) {
    if (m.ByteSizeLong() > store_->options_.max_request_bytes) {
      return absl::InvalidArgumentError(kErrRequestTooLarge);
    }
    return absl::OkStatus();
  }

  ApplyResult ApplyOne(const etcdserverpb::PutRequest& p) {
    if (auto s = CheckSize(p); !s.ok()) return s;
    if (auto s = CheckPutRequest(p); !s.ok()) return s;
    auto r = Put(p);
    if (!r.ok()) return r.status();
    return ApplyResponse(std::move(*r));
  }
  ApplyResult ApplyOne(const etcdserverpb::DeleteRangeRequest& d) {
    if (auto s = CheckSize(d); !s.ok()) return s;
    if (d.key().empty()) return absl::InvalidArgumentError(kErrEmptyKey);
    auto r = DeleteRange(d);
    if (!r.ok()) return r.status();
    return ApplyResponse(std::move(*r));
  }
  ApplyResult ApplyOne(const TxnRequest& t) {
    if (!internal_) {
      if (auto s = CheckSize(t); !s.ok()) return s;
    }
    if (auto s = CheckTxnRequest(t, internal_ ? INT64_MAX : store_->options_.max_txn_ops);
        !s.ok()) {
      return s;
    }
    {
      std::vector<std::string> puts;
      std::vector<Interval> dels;
      if (auto s = CheckIntervals(t.success(), &puts, &dels); !s.ok()) return s;
      puts.clear();
      dels.clear();
      if (auto s = CheckIntervals(t.failure(), &puts, &dels); !s.ok()) return s;
    }
    std::vector<bool> path;
    CompareToPath(&reader_, t, cur_rev_, &path);
    size_t pos = 0;
    if (auto s = CheckPath(&reader_, t, path, &pos, cur_rev_, compact_rev_); !s.ok()) return s;
    TxnResponse resp;
    pos = 0;
    if (auto s = ApplyTxnOps(t, path, &pos, &resp); !s.ok()) return s;
    resp.mutable_header()->set_revision(rev_in_txn());
    return ApplyResponse(std::move(resp));
  }
  ApplyResult ApplyOne(const etcdserverpb::CompactionRequest& c) {
    if (c.revision() <= compact_rev_) return absl::OutOfRangeError(kErrCompacted);
    if (c.revision() > cur_rev_) return absl::OutOfRangeError(kErrFutureRev);
    compact_rev_ = c.revision();
    BatchPut(kCompactRevKey, U64Value(static_cast<uint64_t>(compact_rev_)));
    etcdserverpb::CompactionResponse resp;
    resp.mutable_header()->set_revision(cur_rev_);
    return ApplyResponse(std::move(resp));
  }

  absl::Status ApplyTxnOps(const TxnRequest& t, const std::vector<bool>& path, size_t* pos,
                           TxnResponse* resp) {
    bool ok = path[(*pos)++];
    resp->set_succeeded(ok);
    resp->mutable_header();
    for (const RequestOp& op : ok ? t.success() : t.failure()) {
      etcdserverpb::ResponseOp* out = resp->add_responses();
      if (op.has_request_range()) {
        auto r = RangeAt(&reader_, op.request_range(), rev_in_txn(), compact_rev_);
        if (!r.ok()) return r.status();
        *out->mutable_response_range() = std::move(*r);
      } else if (op.has_request_put()) {
        auto r = Put(op.request_put());
        if (!r.ok()) return r.status();
        *out->mutable_response_put() = std::move(*r);
      } else if (op.has_request_delete_range()) {
        auto r = DeleteRange(op.request_delete_range());
        if (!r.ok()) return r.status();
        *out->mutable_response_delete_range() = std::move(*r);
      } else if (op.has_request_txn()) {
        if (auto s = ApplyTxnOps(op.request_txn(), path, pos, out->mutable_response_txn());
            !s.ok()) {
          return s;
        }
      }
    }
    return absl::OkStatus();
  }

  absl::StatusOr<etcdserverpb::PutResponse> Put(const etcdserverpb::PutRequest& p) {
    std::string live_key = LiveKey(p.key());
    auto rec = GetLive(live_key);
    if (!rec.ok()) return rec.status();
    const bool found = *rec != nullptr;
    if ((p.ignore_value() || p.ignore_lease()) && !found) {
      return absl::InvalidArgumentError(kErrKeyNotFound);
    }
    KvRef prev;
    if (found) {
      prev = (*rec)->ToKvRef();
      // Events leave the previous value to the watchers that want it
      // (LoadPrevValues): most puts never read it.
      if (p.prev_kv() || p.ignore_value()) {
        auto v = LiveValue(p.key(), *rec);
        if (!v.ok()) return v.status();
        prev.value = *v;
      }
    }
    prev.key = p.key();
    etcdserverpb::PutResponse resp;
    if (p.prev_kv() && found) prev.ToProto(resp.mutable_prev_kv());
    std::string_view value = p.ignore_value() ? prev.value : std::string_view(p.value());
    int64_t lease = p.ignore_lease() ? prev.lease : p.lease();
    const int64_t rev = begin_rev_ + 1;
    const int64_t sub = sub_++;
    const int64_t create = found ? prev.create : rev;
    const int64_t version = found ? prev.version + 1 : 1;
    if (want_events_) {
      mvccpb::Event& ev = pending_.emplace_back();
      ev.set_type(mvccpb::Event::PUT);
      KvRef kv{p.key(), value, create, rev, version, lease};
      kv.ToProto(ev.mutable_kv());
      if (found) {
        prev.ToProto(ev.mutable_prev_kv());
        if (!p.prev_kv() && !p.ignore_value()) pending_prev_missing_ = true;
      }
    }
    // `value` may point into the overlay or writes_: encode before writing.
    std::string version_value = EncodeVersionValue(false, sub, create, version, lease, value);
    std::string rev_value;
    PutU8(&rev_value, 0);
    rev_value.append(p.key());
    LiveRecord next{create, rev, version, lease, static_cast<int64_t>(writes_.size()), {}};
    BatchPut(VersionKey(p.key(), rev), std::move(version_value));
    SetLive(std::move(live_key), std::move(next));
    BatchPut(RevKey(rev, sub), std::move(rev_value));
    resp.mutable_header()->set_revision(rev);
    return resp;
  }

  absl::StatusOr<etcdserverpb::DeleteRangeResponse> DeleteRange(
      const etcdserverpb::DeleteRangeRequest& d) {
    bool single = false, unbounded = false;
    MkGteRangeEnd(d.range_end(), &single, &unbounded);
    std::vector<mvccpb::KeyValue> victims;
    // The deleted values only go out as prev_kv; events leave them to
    // watchers that want them (LoadPrevValues).
    const bool with_values = d.prev_kv();
    if (single) {
      auto rec = GetLive(LiveKey(d.key()));
      if (!rec.ok()) return rec.status();
      if (*rec != nullptr) {
        KvRef kv = (*rec)->ToKvRef();
        if (with_values) {
          auto v = LiveValue(d.key(), *rec);
          if (!v.ok()) return v.status();
          kv.value = *v;
        }
        kv.key = d.key();
        kv.ToProto(&victims.emplace_back());
      }
    } else {
      auto s = VisitRange(&reader_, d.key(), d.range_end(), single, unbounded, rev_in_txn(), true,
                          with_values, [&](const KvRef& kv) {
                            kv.ToProto(&victims.emplace_back());
                            return true;
                          });
      if (!s.ok()) return s;
    }
    etcdserverpb::DeleteRangeResponse resp;
    const int64_t rev = begin_rev_ + 1;
    for (const mvccpb::KeyValue& kv : victims) {
      const int64_t sub = sub_++;
      BatchPut(VersionKey(kv.key(), rev), EncodeVersionValue(true, sub, 0, 0, 0, ""));
      SetLive(LiveKey(kv.key()), std::nullopt);
      std::string rev_value;
      PutU8(&rev_value, 1);
      rev_value.append(kv.key());
      BatchPut(RevKey(rev, sub), std::move(rev_value));
      if (want_events_) {
        mvccpb::Event& ev = pending_.emplace_back();
        ev.set_type(mvccpb::Event::DELETE);
        ev.mutable_kv()->set_key(kv.key());
        ev.mutable_kv()->set_mod_revision(rev);
        *ev.mutable_prev_kv() = kv;
        if (!with_values) pending_prev_missing_ = true;
      }
      if (d.prev_kv()) *resp.add_prev_kvs() = kv;
    }
    resp.set_deleted(static_cast<int64_t>(victims.size()));
    resp.mutable_header()->set_revision(rev_in_txn());
    return resp;
  }

  struct PendingWrite {
    std::string key, value;
    bool del = false;
  };

  StateStore* store_;
  // Every write of the batch in order: the source of the committed batch.
  std::vector<PendingWrite> writes_;
  // The request being applied is the server's own (ApplyOp::internal).
  bool internal_ = false;
  // The same writes indexed, for reads other than live-key lookups; built
  // only when a request needs one.
  std::unique_ptr<rocksdb::WriteBatchWithIndex> index_;
  BatchReader reader_;
  // The current request's start in writes_, and whether it built index_.
  size_t savepoint_ = 0;
  bool index_built_by_request_ = false;
  int64_t cur_rev_;
  int64_t compact_rev_;
  const bool want_events_;
  // The request being applied: its base revision, next sub-revision, events.
  int64_t begin_rev_ = 0;
  int64_t sub_ = 0;
  std::vector<mvccpb::Event> pending_;
  // Some event in pending_ has a prev_kv without its value.
  bool pending_prev_missing_ = false;
  std::vector<RevisionEvents> events_;
  // Live records ('l' keys) as of the batch so far: exact for every key it
  // holds (read from the DB, or written by this batch, which writes them all
  // through SetLive). Lets puts skip the batch index and the DB.
  std::unordered_map<std::string, std::optional<LiveRecord>> live_;
  // The current request's changes to live_: key and previous entry (none:
  // absent from the map), undone if the request fails.
  std::vector<std::pair<std::string, std::optional<std::optional<LiveRecord>>>> undo_;

  // Copies the cache's record of live_key into live_ and returns it; end()
  // if the cache does not know the key.
  decltype(live_)::iterator FromCache(const std::string& live_key) {
    std::optional<LiveCache::Rec> cached;
    if (!store_->live_cache_->Find(live_key, &cached)) return live_.end();
    std::optional<LiveRecord> rec;
    if (cached) rec = LiveRecord::From(*cached);
    return live_.emplace(live_key, std::move(rec)).first;
  }

  // Live record of a live key ('l' prefix), through the overlay; null if the
  // key has none. The pointer is valid until the key's next SetLive.
  absl::StatusOr<LiveRecord*> GetLive(const std::string& live_key) {
    auto it = live_.find(live_key);
    if (it == live_.end()) {
      // Not written by this batch (those are all in live_): the DB has it,
      // and it stays exact until the batch writes the key.
      if (it = FromCache(live_key); it != live_.end()) return it->second ? &*it->second : nullptr;
      std::string value;
      rocksdb::Status s = store_->db_->Get(rocksdb::ReadOptions(), live_key, &value);
      std::optional<LiveRecord> rec;
      if (s.ok()) {
        KvRef kv;
        if (!DecodeLiveValue(value, &kv)) return absl::DataLossError("corrupt live value");
        rec = LiveRecord::From(kv);
      } else if (!s.IsNotFound()) {
        return FromRocks(s, "get live key");
      }
      it = live_.emplace(live_key, std::move(rec)).first;
    }
    return it->second ? &*it->second : nullptr;
  }

  // The value of a live record, from this batch's writes or the DB. Valid
  // until the next write to the batch or to the record.
  absl::StatusOr<std::string_view> LiveValue(std::string_view key, LiveRecord* rec) {
    KvRef version;
    if (rec->version_write >= 0) {
      // Version values are longer than any small-string buffer, so the
      // bytes stay put when writes_ grows.
      if (!DecodeVersionValue(writes_[static_cast<size_t>(rec->version_write)].value, &version)) {
        return absl::DataLossError("corrupt version value");
      }
      return version.value;
    }
    if (!rec->db_value) {
      std::string value;
      rocksdb::Status s =
          store_->db_->Get(rocksdb::ReadOptions(), VersionKey(key, rec->mod), &value);
      if (!s.ok() && !s.IsNotFound()) return FromRocks(s, "get live value");
      if (s.IsNotFound() || !DecodeVersionValue(value, &version) || version.tombstone) {
        return absl::DataLossError("live index names a missing version");
      }
      rec->db_value = std::string(version.value);
    }
    return std::string_view(*rec->db_value);
  }

  void BatchPut(std::string key, std::string value) {
    if (index_) index_->Put(key, value);
    writes_.push_back(PendingWrite{std::move(key), std::move(value), false});
  }
  void BatchDelete(std::string key) {
    if (index_) index_->Delete(key);
    writes_.push_back(PendingWrite{std::move(key), std::string(), true});
  }

  // The batch's writes indexed for reads, built on first use.
  rocksdb::WriteBatchWithIndex* Index() {
    if (!index_) {
      index_ = std::make_unique<rocksdb::WriteBatchWithIndex>(rocksdb::BytewiseComparator(), 0,
                                                              /*overwrite_key=*/false);
      for (const PendingWrite& w : writes_) {
        if (w.del) {
          index_->Delete(w.key);
        } else {
          index_->Put(w.key, w.value);
        }
      }
      index_built_by_request_ = true;
    }
    return index_.get();
  }

  void SetLive(std::string live_key, std::optional<LiveRecord> rec) {
    auto it = live_.find(live_key);
    if (it == live_.end()) {
      undo_.emplace_back(live_key, std::nullopt);
    } else {
      undo_.emplace_back(live_key, std::move(it->second));
    }
    if (rec) {
      BatchPut(live_key, EncodeLiveValue(rec->create, rec->mod, rec->version, rec->lease));
    } else {
      BatchDelete(live_key);
    }
    live_[std::move(live_key)] = std::move(rec);
  }
};

// ---- StateStore ----

absl::StatusOr<std::unique_ptr<StateStore>> StateStore::Open(const std::string& dir,
                                                             const StateStoreOptions& options) {
  rocksdb::Options o;
  o.create_if_missing = true;
  if (options.env != nullptr) o.env = options.env;
  o.write_buffer_size = options.write_buffer_bytes;
  o.max_write_buffer_number = 3;
  // Flushed memtables overlap each other and all of level 1 (every key kind
  // in each): merging eight at a time instead of four halves how often
  // level 1 is rewritten. Reads check up to eight more files, each with its
  // bloom filter.
  o.level0_file_num_compaction_trigger = 8;
  // Without the WAL, a clean close must flush the memtables (RocksDB does
  // when there are unpersisted writes unless told to avoid it).
  o.avoid_flush_during_shutdown = false;
  // Revision-index keys arrive in order: insert them at the last position.
  o.memtable_insert_with_hint_prefix_extractor.reset(rocksdb::NewFixedPrefixTransform(1));
  // Point lookups of live keys (every put) skip the memtable when absent.
  o.memtable_whole_key_filtering = true;
  o.memtable_prefix_bloom_size_ratio = 0.05;
  o.max_open_files = 512;
  o.keep_log_file_num = 4;
  o.compression = rocksdb::kLZ4Compression;
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = rocksdb::NewLRUCache(options.block_cache_bytes);
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  // Physical compaction leaves runs of deletions: compact files dense in them.
  o.table_properties_collector_factories.push_back(
      rocksdb::NewCompactOnDeletionCollectorFactory(128, 64));
  rocksdb::DB* raw = nullptr;
  auto s = rocksdb::DB::Open(o, dir, &raw);
  if (!s.ok() && s.IsInvalidArgument()) {
    o.compression = rocksdb::kNoCompression;  // no LZ4 in this build
    s = rocksdb::DB::Open(o, dir, &raw);
  }
  if (auto st = FromRocks(s, "open " + dir); !st.ok()) return st;
  std::unique_ptr<StateStore> store(new StateStore(std::unique_ptr<rocksdb::DB>(raw), options));
  if (auto st = store->Load(); !st.ok()) return st;
  if (options.background_compaction) {
    store->compaction_thread_ = std::thread([p = store.get()] {
      pthread_setname_np(pthread_self(), "mvcc-compact");
      p->CompactionLoop();
    });
  }
  return store;
}

StateStore::StateStore(std::unique_ptr<rocksdb::DB> db, const StateStoreOptions& options)
    : options_(options),
      db_(std::move(db)),
      live_cache_(std::make_unique<LiveCache>(options.live_cache_keys)) {}

StateStore::~StateStore() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (compaction_thread_.joinable()) compaction_thread_.join();
}

absl::Status StateStore::Load() {
  std::lock_guard lock(mu_);
  auto read_u64 = [&](const char* key, uint64_t* out) -> absl::Status {
    std::string v;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), key, &v);
    if (s.IsNotFound()) return absl::OkStatus();
    if (!s.ok()) return FromRocks(s, key);
    Reader r(v);
    if (!r.GetU64(out)) return absl::DataLossError(absl::StrCat("corrupt meta key ", key));
    return absl::OkStatus();
  };
  uint64_t applied = 0, compact = 0, physical = 0;
  uint64_t cur = static_cast<uint64_t>(std::max<int64_t>(0, options_.initial_revision));
  if (auto s = read_u64(kAppliedKey, &applied); !s.ok()) return s;
  if (auto s = read_u64(kCurrentRevKey, &cur); !s.ok()) return s;
  if (auto s = read_u64(kCompactRevKey, &compact); !s.ok()) return s;
  if (auto s = read_u64(kPhysicalKey, &physical); !s.ok()) return s;
  applied_index_ = applied;
  current_rev_ = static_cast<int64_t>(cur);
  compact_rev_ = static_cast<int64_t>(compact);
  physical_rev_ = static_cast<int64_t>(physical);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<ApplyResult>> StateStore::Apply(const std::vector<ApplyOp>& ops,
                                                           raft::Index last_index,
                                                           const std::vector<MetaWrite>& meta) {
  int64_t cur = 0, compact = 0;
  std::shared_ptr<const Subscriber> subscriber;
  {
    std::lock_guard lock(mu_);
    if (last_index <= applied_index_) {
      return absl::FailedPreconditionError(absl::StrCat("state store: index ", last_index,
                                                        " already applied (applied index ",
                                                        applied_index_, ")"));
    }
    cur = current_rev_;
    compact = compact_rev_;
    subscriber = subscriber_;
  }
  ApplyTxn txn(this, cur, compact, subscriber != nullptr);
  if (auto s = txn.Prefetch(ops); !s.ok()) return s;
  std::vector<ApplyResult> results;
  results.reserve(ops.size());
  for (const ApplyOp& op : ops) {
    if (op.index > last_index) {
      return absl::InvalidArgumentError(
          absl::StrCat("state store: op index ", op.index, " beyond last index ", last_index));
    }
    results.push_back(txn.Apply(op.request, op.internal));
  }
  for (const MetaWrite& m : meta) txn.WriteMeta(m);
  if (auto s = txn.Commit(last_index); !s.ok()) return s;
  bool compacted = false;
  {
    std::lock_guard lock(mu_);
    current_rev_ = txn.cur_rev();
    compacted = txn.compact_rev() != compact_rev_;
    compact_rev_ = txn.compact_rev();
    applied_index_ = last_index;
  }
  if (compacted) cv_.notify_all();
  if (subscriber && !txn.events().empty()) (*subscriber)(std::move(txn.events()));
  return results;
}

absl::Status StateStore::LoadPrevValues(RevisionEvents* rev) const {
  if (rev->prev_values) return absl::OkStatus();
  std::vector<std::string> keys;
  std::vector<size_t> at;  // event index of each key
  for (size_t i = 0; i < rev->events.size(); i++) {
    const mvccpb::Event& ev = rev->events[i];
    if (!ev.has_prev_kv()) continue;
    keys.push_back(VersionKey(ev.prev_kv().key(), ev.prev_kv().mod_revision()));
    at.push_back(i);
  }
  std::vector<rocksdb::Slice> slices(keys.begin(), keys.end());
  std::vector<rocksdb::PinnableSlice> values(keys.size());
  std::vector<rocksdb::Status> statuses(keys.size());
  if (!keys.empty()) {
    db_->MultiGet(rocksdb::ReadOptions(), db_->DefaultColumnFamily(), keys.size(), slices.data(),
                  values.data(), statuses.data());
  }
  for (size_t j = 0; j < keys.size(); j++) {
    if (!statuses[j].ok() && !statuses[j].IsNotFound()) {
      return FromRocks(statuses[j], "load previous values");
    }
    mvccpb::Event& ev = rev->events[at[j]];
    KvRef version;
    if (statuses[j].ok() && DecodeVersionValue(values[j].ToStringView(), &version) &&
        !version.tombstone) {
      ev.mutable_prev_kv()->set_value(version.value.data(), version.value.size());
    } else {
      ev.clear_prev_kv();  // compacted away since
    }
  }
  rev->prev_values = true;
  return absl::OkStatus();
}

void StateStore::Subscribe(Subscriber subscriber) {
  std::lock_guard lock(mu_);
  subscriber_ = subscriber ? std::make_shared<const Subscriber>(std::move(subscriber)) : nullptr;
}

// A RocksDB snapshot and the revisions it is at. Apply publishes the new
// current revision only after its batch is written, so a snapshot may hold a
// batch newer than current_rev_: the current revision is read from the
// snapshot itself (the live index is only valid at exactly that revision).
// The in-memory compact revision is safe to use: physical removal only
// starts after it is published.
class StateStore::Snapshot {
 public:
  explicit Snapshot(const StateStore* store) : db_(store->db_.get()) {
    {
      std::lock_guard lock(store->mu_);
      snap_ = db_->GetSnapshot();
      cur_ = store->current_rev_;
      compact_ = store->compact_rev_;
    }
    rocksdb::ReadOptions ro;
    ro.snapshot = snap_;
    std::string v;
    rocksdb::Status got = db_->Get(ro, kCurrentRevKey, &v);
    // Not found: nothing applied yet; the in-memory (initial) revision holds.
    status_ = got.IsNotFound() ? absl::OkStatus() : FromRocks(got, "read current revision");
    if (got.ok()) {
      Reader r(v);
      uint64_t cur = 0;
      if (!r.GetU64(&cur)) status_ = absl::DataLossError("corrupt current revision");
      cur_ = std::max(cur_, static_cast<int64_t>(cur));
    }
  }
  ~Snapshot() { db_->ReleaseSnapshot(snap_); }
  Snapshot(const Snapshot&) = delete;
  Snapshot& operator=(const Snapshot&) = delete;
  const rocksdb::Snapshot* get() const { return snap_; }
  const absl::Status& status() const { return status_; }
  int64_t cur() const { return cur_; }
  int64_t compact() const { return compact_; }

 private:
  rocksdb::DB* db_;
  const rocksdb::Snapshot* snap_;
  absl::Status status_;
  int64_t cur_ = 0, compact_ = 0;
};

absl::StatusOr<RangeResponse> StateStore::Range(const RangeRequest& req) const {
  Snapshot snap(this);
  if (!snap.status().ok()) return snap.status();
  DbReader reader(db_.get(), snap.get());
  return RangeAt(&reader, req, snap.cur(), snap.compact());
}

absl::StatusOr<HashKVResult> StateStore::HashKV(int64_t rev) const {
  Snapshot snap(this);
  if (!snap.status().ok()) return snap.status();
  // As etcd: the compact revision itself can still be hashed.
  if (rev > 0 && rev < snap.compact()) return absl::OutOfRangeError(kErrCompacted);
  if (rev > snap.cur()) return absl::OutOfRangeError(kErrFutureRev);
  if (rev <= 0) rev = snap.cur();
  DbReader reader(db_.get(), snap.get());
  HashKVResult out;
  out.compact_revision = snap.compact();
  out.hash_revision = rev;
  out.current_revision = snap.cur();
  uint32_t crc = Crc32c(0, "key");
  std::string upper = RevKey(rev + 1, 0);
  rocksdb::Slice upper_slice(upper);
  auto it = reader.NewIterator(&upper_slice);
  std::string holder;
  for (it->Seek(std::string(1, kRevPrefix)); it->Valid(); it->Next()) {
    std::string_view k = it->key().ToStringView();
    std::string_view v = it->value().ToStringView();
    if (k.size() != 17 || v.empty()) return absl::DataLossError("corrupt revision index");
    int64_t main = static_cast<int64_t>(DecodeFixed64BE(k.substr(1)));
    std::string key(v.substr(1));
    bool tomb = v[0] != 0;
    std::string version_value;
    if (main <= snap.compact()) {
      // Only the newest live version <= compact survives logically.
      if (tomb) continue;
      KvRef kv;
      auto found = VersionAtOrBelow(&reader, key, snap.compact(), &holder, &kv);
      if (!found.ok()) return found.status();
      if (!*found || kv.mod != main) continue;
    }
    auto found = reader.Get(VersionKey(key, main), &version_value);
    if (!found.ok()) return found.status();
    if (!*found) return absl::DataLossError("revision index names a missing version");
    crc = Crc32c(crc, k);
    crc = Crc32c(crc, v);
    crc = Crc32c(crc, version_value);
  }
  if (auto s = FromRocks(it->status(), "hash scan"); !s.ok()) return s;
  out.hash = crc;
  return out;
}

absl::StatusOr<EventsPage> StateStore::EventsSince(int64_t start_rev, int64_t end_rev,
                                                   uint64_t max_events) const {
  Snapshot snap(this);
  if (!snap.status().ok()) return snap.status();
  if (start_rev < snap.compact()) return absl::OutOfRangeError(kErrCompacted);
  if (start_rev <= 0) start_rev = 1;
  if (end_rev <= 0 || end_rev > snap.cur() + 1) end_rev = snap.cur() + 1;
  EventsPage page;
  page.next_rev = start_rev;
  if (start_rev >= end_rev) return page;
  DbReader reader(db_.get(), snap.get());
  std::string upper = RevKey(end_rev, 0);
  rocksdb::Slice upper_slice(upper);
  auto it = reader.NewIterator(&upper_slice);
  uint64_t events = 0;
  std::string holder;
  for (it->Seek(RevKey(start_rev, 0)); it->Valid(); it->Next()) {
    std::string_view k = it->key().ToStringView();
    std::string_view v = it->value().ToStringView();
    if (k.size() != 17 || v.empty()) return absl::DataLossError("corrupt revision index");
    int64_t main = static_cast<int64_t>(DecodeFixed64BE(k.substr(1)));
    if (page.revisions.empty() || page.revisions.back().revision != main) {
      // Whole revisions only; at least one.
      if (!page.revisions.empty() && events >= max_events) {
        page.next_rev = main;
        return page;
      }
      page.revisions.push_back(RevisionEvents{main, {}});
    }
    std::string key(v.substr(1));
    mvccpb::Event& ev = page.revisions.back().events.emplace_back();
    events++;
    if (v[0] != 0) {
      ev.set_type(mvccpb::Event::DELETE);
      ev.mutable_kv()->set_key(key);
      ev.mutable_kv()->set_mod_revision(main);
    } else {
      std::string value;
      auto found = reader.Get(VersionKey(key, main), &value);
      if (!found.ok()) return found.status();
      KvRef kv;
      if (!*found || !DecodeVersionValue(value, &kv)) {
        return absl::DataLossError("revision index names a missing version");
      }
      kv.key = key;
      kv.mod = main;
      ev.set_type(mvccpb::Event::PUT);
      kv.ToProto(ev.mutable_kv());
    }
    // The previous version is only part of the logical history if main - 1
    // is not compacted; below that it may or may not be physically present.
    KvRef prev;
    absl::StatusOr<bool> found = false;
    if (main - 1 >= snap.compact())
      found = VersionAtOrBelow(&reader, key, main - 1, &holder, &prev);
    if (!found.ok()) return found.status();
    if (*found && !prev.tombstone) {
      prev.key = key;
      prev.ToProto(ev.mutable_prev_kv());
    }
  }
  if (auto s = FromRocks(it->status(), "events scan"); !s.ok()) return s;
  page.next_rev = end_rev;
  return page;
}

absl::Status StateStore::Flush() {
  rocksdb::FlushOptions fo;
  fo.wait = true;
  return FromRocks(db_->Flush(fo), "flush");
}

absl::Status StateStore::StartFlush() {
  rocksdb::FlushOptions fo;
  fo.wait = false;
  fo.allow_write_stall = true;  // never wait for room: a later Flush waits
  return FromRocks(db_->Flush(fo), "start flush");
}

absl::Status StateStore::Checkpoint(const std::string& dir) const {
  rocksdb::Checkpoint* raw = nullptr;
  if (auto s = FromRocks(rocksdb::Checkpoint::Create(db_.get(), &raw), "checkpoint"); !s.ok()) {
    return s;
  }
  std::unique_ptr<rocksdb::Checkpoint> cp(raw);
  return FromRocks(cp->CreateCheckpoint(dir), "create checkpoint " + dir);
}

absl::Status StateStore::RestoreFromCheckpoint(const std::string& checkpoint_dir,
                                               const std::string& state_dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(checkpoint_dir, ec)) {
    return absl::NotFoundError(absl::StrCat("no checkpoint at ", checkpoint_dir));
  }
  const std::string tmp = state_dir + ".restoring";
  fs::remove_all(tmp, ec);
  if (ec) return absl::InternalError(absl::StrCat("remove ", tmp, ": ", ec.message()));
  fs::create_directories(tmp, ec);
  if (ec) return absl::InternalError(absl::StrCat("create ", tmp, ": ", ec.message()));
  for (const auto& entry : fs::directory_iterator(checkpoint_dir)) {
    fs::path to = fs::path(tmp) / entry.path().filename();
    // SST files are immutable: link them; copy what RocksDB may rewrite.
    std::error_code link_ec;
    if (entry.path().extension() == ".sst") fs::create_hard_link(entry.path(), to, link_ec);
    if (entry.path().extension() != ".sst" || link_ec) {
      fs::copy_file(entry.path(), to, fs::copy_options::overwrite_existing, ec);
      if (ec)
        return absl::InternalError(
            absl::StrCat("copy ", entry.path().string(), ": ", ec.message()));
    }
  }
  fs::remove_all(state_dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("remove ", state_dir, ": ", ec.message()));
  fs::rename(tmp, state_dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("rename to ", state_dir, ": ", ec.message()));
  return absl::OkStatus();
}

int64_t StateStore::current_revision() const {
  std::lock_guard lock(mu_);
  return current_rev_;
}

int64_t StateStore::compact_revision() const {
  std::lock_guard lock(mu_);
  return compact_rev_;
}

raft::Index StateStore::applied_index() const {
  std::lock_guard lock(mu_);
  return applied_index_;
}

int64_t StateStore::physically_compacted_revision() const {
  std::lock_guard lock(mu_);
  return physical_rev_;
}

// ---- physical compaction ----

absl::Status StateStore::CompactBatch(int64_t target, bool* done) {
  *done = false;
  DbReader reader(db_.get(), nullptr);
  std::string progress_value;
  auto found = reader.Get(kPhysicalKey, &progress_value);
  if (!found.ok()) return found.status();
  std::string start(1, kRevPrefix);
  uint64_t physical = 0;
  if (*found) {
    Reader r(progress_value);
    if (!r.GetU64(&physical)) return absl::DataLossError("corrupt compaction progress");
    if (!r.Done()) {
      start.assign(r.Rest());
      start.push_back('\0');  // just after the last processed entry
    }
  }
  std::string upper = RevKey(target + 1, 0);
  rocksdb::Slice upper_slice(upper);
  auto it = reader.NewIterator(&upper_slice);
  rocksdb::WriteBatch batch;
  std::string last_processed;
  std::string holder;
  uint64_t examined = 0;
  it->Seek(start);
  for (; it->Valid() && examined < options_.compaction_batch_entries_max; it->Next()) {
    examined++;
    std::string_view k = it->key().ToStringView();
    std::string_view v = it->value().ToStringView();
    if (k.size() != 17 || v.empty()) return absl::DataLossError("corrupt revision index");
    int64_t main = static_cast<int64_t>(DecodeFixed64BE(k.substr(1)));
    std::string key(v.substr(1));
    // The version just before this one is superseded at target.
    KvRef prev;
    auto f = VersionAtOrBelow(&reader, key, main - 1, &holder, &prev);
    if (!f.ok()) return f.status();
    if (*f) {
      batch.Delete(VersionKey(key, prev.mod));
      batch.Delete(RevKey(prev.mod, prev.sub));
    }
    // A tombstone that is still the newest version <= target goes too (its
    // older versions were deleted above or by earlier batches).
    if (v[0] != 0) {
      KvRef newest;
      auto g = VersionAtOrBelow(&reader, key, target, &holder, &newest);
      if (!g.ok()) return g.status();
      if (*g && newest.mod == main) {
        batch.Delete(VersionKey(key, main));
        batch.Delete(std::string(k));
      }
    }
    last_processed.assign(k);
  }
  if (auto s = FromRocks(it->status(), "compaction scan"); !s.ok()) return s;
  bool finished = !it->Valid();
  it.reset();
  std::string progress;
  PutU64(&progress, finished ? static_cast<uint64_t>(target) : physical);
  if (!last_processed.empty()) {
    progress.append(last_processed);
  } else if (*found) {
    Reader r(progress_value);
    uint64_t ignored = 0;
    r.GetU64(&ignored);
    progress.append(r.Rest());
  }
  batch.Put(kPhysicalKey, progress);
  rocksdb::WriteOptions wo;
  wo.low_pri = true;  // RocksDB throttles it, not client writes, when flushes lag
  // As Apply's writes: if only some writes went to the WAL, recovery could
  // replay a removal on top of a state older than the compaction it follows.
  wo.disableWAL = !options_.write_ahead_log;
  if (auto s = FromRocks(db_->Write(wo, &batch), "compaction write"); !s.ok()) {
    return s;
  }
  if (finished) {
    // Give the space of the removed revision-index span back now; version
    // keys are spread over the key space and are left to RocksDB's
    // deletion-triggered compaction.
    std::string begin(1, kRevPrefix);
    rocksdb::Slice b(begin), e(upper);
    rocksdb::CompactRangeOptions cro;
    cro.exclusive_manual_compaction = false;  // never hold up automatic compactions
    (void)db_->CompactRange(cro, &b, &e);
    std::lock_guard lock(mu_);
    physical_rev_ = std::max(physical_rev_, target);
    *done = true;
  }
  cv_.notify_all();
  return absl::OkStatus();
}

absl::Status StateStore::CompactPhysicallyForTest(uint64_t batches_max) {
  std::lock_guard guard(compaction_mu_);
  int64_t target = compact_revision();
  for (uint64_t i = 0; i < batches_max; i++) {
    bool done = false;
    if (auto s = CompactBatch(target, &done); !s.ok()) return s;
    if (done) break;
  }
  return absl::OkStatus();
}

void StateStore::CompactionLoop() {
  // Removal is background work: let the scheduler favour the apply thread.
  ::setpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)), 10);
  const int duty = std::clamp(options_.compaction_duty_cycle_percent, 1, 100);
  for (;;) {
    int64_t target = 0;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock,
               [&] { return stop_ || compact_rev_ > physical_rev_ || full_compaction_requested_; });
      if (stop_) return;
      if (full_compaction_requested_) {
        full_compaction_requested_ = false;
        lock.unlock();
        rocksdb::CompactRangeOptions cro;
        cro.exclusive_manual_compaction = false;  // never stall automatic compactions
        // A hint: on failure RocksDB's own compactions still reclaim space.
        (void)db_->CompactRange(cro, nullptr, nullptr);
        continue;
      }
      target = compact_rev_;
    }
    bool done = false;
    absl::Status s;
    auto batch_start = std::chrono::steady_clock::now();
    {
      std::lock_guard guard(compaction_mu_);
      s = CompactBatch(target, &done);
    }
    if (s.ok() && duty < 100) {
      auto worked = std::chrono::steady_clock::now() - batch_start;
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, worked * (100 - duty) / duty, [&] { return stop_; });
    }
    if (!s.ok()) {
      // Retry later rather than spin; reads stay correct without removal.
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, std::chrono::seconds(1), [&] { return stop_; });
    }
  }
}

std::string PrefixEnd(std::string prefix) {
  while (!prefix.empty() && static_cast<unsigned char>(prefix.back()) == 0xff) prefix.pop_back();
  if (prefix.empty()) return std::string(1, '\0');
  prefix.back() = static_cast<char>(prefix.back() + 1);
  return prefix;
}

absl::StatusOr<std::vector<std::pair<std::string, std::string>>> StateStore::ReadMeta(
    std::string_view prefix) const {
  const std::string lower = std::string(1, kMetaPrefix) + std::string(prefix);
  // `lower` starts with the meta byte, so it always has a real end.
  const std::string upper = PrefixEnd(lower);
  rocksdb::ReadOptions ro;
  rocksdb::Slice upper_slice(upper);
  ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
  std::vector<std::pair<std::string, std::string>> out;
  for (it->Seek(lower); it->Valid(); it->Next()) {
    out.emplace_back(it->key().ToString().substr(1), it->value().ToString());
  }
  if (auto s = FromRocks(it->status(), "read meta"); !s.ok()) return s;
  return out;
}

uint64_t StateStore::SizeBytes() const {
  uint64_t sst = 0, mem = 0;
  db_->GetIntProperty("rocksdb.total-sst-files-size", &sst);
  db_->GetIntProperty("rocksdb.cur-size-all-mem-tables", &mem);
  return sst + mem;
}

void StateStore::RequestFullCompaction() {
  {
    std::lock_guard lock(mu_);
    full_compaction_requested_ = true;
  }
  cv_.notify_all();
}

void StateStore::WaitForPhysicalCompaction() {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return stop_ || physical_rev_ >= compact_rev_; });
}

absl::StatusOr<uint64_t> StateStore::CountVersionsForTest() const {
  DbReader reader(db_.get(), nullptr);
  std::string upper(1, kVersionPrefix + 1);
  rocksdb::Slice upper_slice(upper);
  auto it = reader.NewIterator(&upper_slice);
  uint64_t n = 0;
  for (it->Seek(std::string(1, kVersionPrefix)); it->Valid(); it->Next()) n++;
  if (auto s = FromRocks(it->status(), "count"); !s.ok()) return s;
  return n;
}

}  // namespace ganglion::storage
