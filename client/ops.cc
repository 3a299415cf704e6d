#include "client/ops.h"

namespace ganglion::client {
namespace {

// Resolves the range-end conventions shared by Get, Delete and comparisons.
std::string RangeEnd(std::string_view key, const std::string& range_end, bool prefix,
                     bool from_key) {
  if (prefix) return PrefixEnd(key);
  if (from_key) return std::string(1, '\0');
  return range_end;
}

}  // namespace

std::string PrefixEnd(std::string_view prefix) {
  std::string end(prefix);
  // Drop trailing 0xff bytes, then increment the last remaining byte.
  while (!end.empty()) {
    unsigned char last = static_cast<unsigned char>(end.back());
    if (last < 0xff) {
      end.back() = static_cast<char>(last + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');
}

etcdserverpb::RangeRequest MakeRangeRequest(std::string_view key, const GetOptions& o) {
  etcdserverpb::RangeRequest req;
  req.set_key(std::string(key));
  req.set_range_end(RangeEnd(key, o.range_end, o.prefix, o.from_key));
  req.set_limit(o.limit);
  req.set_revision(o.revision);
  req.set_sort_order(o.sort_order);
  req.set_sort_target(o.sort_target);
  req.set_serializable(o.serializable);
  req.set_keys_only(o.keys_only);
  req.set_count_only(o.count_only);
  req.set_min_mod_revision(o.min_mod_revision);
  req.set_max_mod_revision(o.max_mod_revision);
  req.set_min_create_revision(o.min_create_revision);
  req.set_max_create_revision(o.max_create_revision);
  return req;
}

etcdserverpb::PutRequest MakePutRequest(std::string_view key, std::string_view value,
                                        const PutOptions& o) {
  etcdserverpb::PutRequest req;
  req.set_key(std::string(key));
  req.set_value(std::string(value));
  req.set_lease(o.lease);
  req.set_prev_kv(o.prev_kv);
  req.set_ignore_value(o.ignore_value);
  req.set_ignore_lease(o.ignore_lease);
  return req;
}

etcdserverpb::DeleteRangeRequest MakeDeleteRequest(std::string_view key, const DeleteOptions& o) {
  etcdserverpb::DeleteRangeRequest req;
  req.set_key(std::string(key));
  req.set_range_end(RangeEnd(key, o.range_end, o.prefix, o.from_key));
  req.set_prev_kv(o.prev_kv);
  return req;
}

Op Op::Get(std::string_view key, const GetOptions& options) {
  Op op;
  *op.op_.mutable_request_range() = MakeRangeRequest(key, options);
  return op;
}

Op Op::Put(std::string_view key, std::string_view value, const PutOptions& options) {
  Op op;
  *op.op_.mutable_request_put() = MakePutRequest(key, value, options);
  op.read_only_ = false;
  return op;
}

Op Op::Delete(std::string_view key, const DeleteOptions& options) {
  Op op;
  *op.op_.mutable_request_delete_range() = MakeDeleteRequest(key, options);
  op.read_only_ = false;
  return op;
}

Op Op::Nested(const Txn& txn) {
  Op op;
  *op.op_.mutable_request_txn() = txn.ToProto();
  op.read_only_ = txn.read_only();
  return op;
}

NumberTarget::NumberTarget(std::string_view key, etcdserverpb::Compare::CompareTarget target) {
  base_.set_key(std::string(key));
  base_.set_target(target);
}

NumberTarget& NumberTarget::WithRange(std::string_view range_end) {
  base_.set_range_end(std::string(range_end));
  return *this;
}

NumberTarget& NumberTarget::WithPrefix() {
  base_.set_range_end(PrefixEnd(base_.key()));
  return *this;
}

Compare NumberTarget::Make(etcdserverpb::Compare::CompareResult result, int64_t n) const {
  etcdserverpb::Compare c = base_;
  c.set_result(result);
  switch (c.target()) {
    case etcdserverpb::Compare::VERSION:
      c.set_version(n);
      break;
    case etcdserverpb::Compare::CREATE:
      c.set_create_revision(n);
      break;
    case etcdserverpb::Compare::MOD:
      c.set_mod_revision(n);
      break;
    case etcdserverpb::Compare::LEASE:
      c.set_lease(n);
      break;
    default:
      break;  // VALUE is a ValueTarget; the constructor never sees it
  }
  return Compare(std::move(c));
}

ValueTarget::ValueTarget(std::string_view key) {
  base_.set_key(std::string(key));
  base_.set_target(etcdserverpb::Compare::VALUE);
}

ValueTarget& ValueTarget::WithRange(std::string_view range_end) {
  base_.set_range_end(std::string(range_end));
  return *this;
}

ValueTarget& ValueTarget::WithPrefix() {
  base_.set_range_end(PrefixEnd(base_.key()));
  return *this;
}

Compare ValueTarget::Make(etcdserverpb::Compare::CompareResult result, std::string_view v) const {
  etcdserverpb::Compare c = base_;
  c.set_result(result);
  c.set_value(std::string(v));
  return Compare(std::move(c));
}

Txn& Txn::If(Compare compare) {
  compares_.push_back(std::move(compare));
  return *this;
}

Txn& Txn::Then(Op op) {
  then_.push_back(std::move(op));
  return *this;
}

Txn& Txn::Else(Op op) {
  else_.push_back(std::move(op));
  return *this;
}

etcdserverpb::TxnRequest Txn::ToProto() const {
  etcdserverpb::TxnRequest req;
  for (const Compare& c : compares_) *req.add_compare() = c.proto();
  for (const Op& op : then_) *req.add_success() = op.proto();
  for (const Op& op : else_) *req.add_failure() = op.proto();
  return req;
}

bool Txn::read_only() const {
  for (const Op& op : then_) {
    if (!op.read_only()) return false;
  }
  for (const Op& op : else_) {
    if (!op.read_only()) return false;
  }
  return true;
}

}  // namespace ganglion::client
