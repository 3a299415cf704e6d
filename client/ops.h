// The requests a Client can make of the key space, as values: the options of
// Get, Put and Delete, and a readable builder for transactions
//   Txn().If(ModRevision("cfg") == rev).Then(Op::Put("cfg", v)).Else(Op::Get("cfg"))
// Pure data and its encoding into etcd's messages; it must never do I/O.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "etcd/etcdserver/etcdserverpb/rpc.pb.h"

namespace ganglion::client {

// The smallest key greater than every key that starts with `prefix`; "\0"
// (every key) when no such key exists, as etcd defines it.
std::string PrefixEnd(std::string_view prefix);

struct GetOptions {
  // The range is [key, range_end); empty range_end means the key alone.
  // `prefix` and `from_key` compute range_end and win over it.
  std::string range_end;
  bool prefix = false;
  bool from_key = false;
  int64_t limit = 0;     // 0: no limit
  int64_t revision = 0;  // 0: the newest
  etcdserverpb::RangeRequest::SortOrder sort_order = etcdserverpb::RangeRequest::NONE;
  etcdserverpb::RangeRequest::SortTarget sort_target = etcdserverpb::RangeRequest::KEY;
  bool serializable = false;  // read the member's local state, no quorum round
  bool keys_only = false;
  bool count_only = false;
  int64_t min_mod_revision = 0;
  int64_t max_mod_revision = 0;
  int64_t min_create_revision = 0;
  int64_t max_create_revision = 0;
};

struct PutOptions {
  int64_t lease = 0;
  bool prev_kv = false;
  bool ignore_value = false;
  bool ignore_lease = false;
};

struct DeleteOptions {
  std::string range_end;
  bool prefix = false;
  bool from_key = false;
  bool prev_kv = false;
};

etcdserverpb::RangeRequest MakeRangeRequest(std::string_view key, const GetOptions& options);
etcdserverpb::PutRequest MakePutRequest(std::string_view key, std::string_view value,
                                        const PutOptions& options);
etcdserverpb::DeleteRangeRequest MakeDeleteRequest(std::string_view key,
                                                   const DeleteOptions& options);

class Txn;

// One operation of a transaction branch.
class Op {
 public:
  static Op Get(std::string_view key, const GetOptions& options = {});
  static Op Put(std::string_view key, std::string_view value, const PutOptions& options = {});
  static Op Delete(std::string_view key, const DeleteOptions& options = {});
  static Op Nested(const Txn& txn);

  const etcdserverpb::RequestOp& proto() const { return op_; }
  bool read_only() const { return read_only_; }

 private:
  etcdserverpb::RequestOp op_;
  bool read_only_ = true;
};

// A comparison, made by the targets below: ModRevision("k") > 5.
class Compare {
 public:
  explicit Compare(etcdserverpb::Compare compare) : compare_(std::move(compare)) {}
  const etcdserverpb::Compare& proto() const { return compare_; }

 private:
  etcdserverpb::Compare compare_;
};

// A key's version, create/mod revision or lease, compared with a number.
class NumberTarget {
 public:
  NumberTarget(std::string_view key, etcdserverpb::Compare::CompareTarget target);
  // Compare every key in [key, range_end) instead of the key alone.
  NumberTarget& WithRange(std::string_view range_end);
  NumberTarget& WithPrefix();

  Compare operator==(int64_t n) const { return Make(etcdserverpb::Compare::EQUAL, n); }
  Compare operator!=(int64_t n) const { return Make(etcdserverpb::Compare::NOT_EQUAL, n); }
  Compare operator<(int64_t n) const { return Make(etcdserverpb::Compare::LESS, n); }
  Compare operator>(int64_t n) const { return Make(etcdserverpb::Compare::GREATER, n); }

 private:
  Compare Make(etcdserverpb::Compare::CompareResult result, int64_t n) const;
  etcdserverpb::Compare base_;
};

// A key's value, compared bytewise with a string.
class ValueTarget {
 public:
  explicit ValueTarget(std::string_view key);
  ValueTarget& WithRange(std::string_view range_end);
  ValueTarget& WithPrefix();

  Compare operator==(std::string_view v) const { return Make(etcdserverpb::Compare::EQUAL, v); }
  Compare operator!=(std::string_view v) const { return Make(etcdserverpb::Compare::NOT_EQUAL, v); }
  Compare operator<(std::string_view v) const { return Make(etcdserverpb::Compare::LESS, v); }
  Compare operator>(std::string_view v) const { return Make(etcdserverpb::Compare::GREATER, v); }

 private:
  Compare Make(etcdserverpb::Compare::CompareResult result, std::string_view v) const;
  etcdserverpb::Compare base_;
};

inline NumberTarget Version(std::string_view key) {
  return NumberTarget(key, etcdserverpb::Compare::VERSION);
}
inline NumberTarget CreateRevision(std::string_view key) {
  return NumberTarget(key, etcdserverpb::Compare::CREATE);
}
inline NumberTarget ModRevision(std::string_view key) {
  return NumberTarget(key, etcdserverpb::Compare::MOD);
}
inline NumberTarget LeaseOf(std::string_view key) {
  return NumberTarget(key, etcdserverpb::Compare::LEASE);
}
inline ValueTarget Value(std::string_view key) {
  return ValueTarget(key);
}

// If every comparison holds, the Then operations run, else the Else ones;
// atomically, at one revision.
class Txn {
 public:
  Txn& If(Compare compare);
  Txn& Then(Op op);
  Txn& Else(Op op);

  etcdserverpb::TxnRequest ToProto() const;
  // Only Get operations (at any depth): safe to send twice.
  bool read_only() const;

 private:
  std::vector<Compare> compares_;
  std::vector<Op> then_;
  std::vector<Op> else_;
};

}  // namespace ganglion::client
