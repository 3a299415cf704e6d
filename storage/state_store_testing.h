// Test helpers for the state store: a temporary directory and a fixture that
// applies one request per raft index.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "storage/state_store.h"
#include "storage/testing/temp_dir.h"

namespace ganglion::storage::testing {

inline std::unique_ptr<StateStore> OpenOrDie(const std::string& dir,
                                             const StateStoreOptions& options = {}) {
  auto s = StateStore::Open(dir, options);
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? std::move(*s) : nullptr;
}

// Applies requests one per Apply call, one raft index each.
class Applier {
 public:
  explicit Applier(StateStore* store) : store_(store), index_(store->applied_index()) {}
  void Reset(StateStore* store) {
    store_ = store;
    index_ = store->applied_index();
  }

  ApplyResult Apply(ApplyOp::Request r) {
    index_++;
    std::vector<ApplyOp> ops;
    ops.push_back(ApplyOp{std::move(r), index_});
    auto res = store_->Apply(ops, index_);
    EXPECT_TRUE(res.ok()) << res.status();
    if (!res.ok()) return res.status();
    return (*res)[0];
  }

  etcdserverpb::PutResponse Put(const std::string& k, const std::string& v, int64_t lease = 0) {
    etcdserverpb::PutRequest p;
    p.set_key(k);
    p.set_value(v);
    p.set_lease(lease);
    auto r = Apply(p);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? std::get<etcdserverpb::PutResponse>(*r) : etcdserverpb::PutResponse();
  }

  etcdserverpb::DeleteRangeResponse Delete(const std::string& k, const std::string& end = "",
                                           bool prev_kv = false) {
    etcdserverpb::DeleteRangeRequest d;
    d.set_key(k);
    d.set_range_end(end);
    d.set_prev_kv(prev_kv);
    auto r = Apply(d);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? std::get<etcdserverpb::DeleteRangeResponse>(*r)
                  : etcdserverpb::DeleteRangeResponse();
  }

  absl::StatusOr<etcdserverpb::TxnResponse> Txn(const etcdserverpb::TxnRequest& t) {
    auto r = Apply(t);
    if (!r.ok()) return r.status();
    return std::get<etcdserverpb::TxnResponse>(*r);
  }

  absl::Status Compact(int64_t rev) {
    etcdserverpb::CompactionRequest c;
    c.set_revision(rev);
    auto r = Apply(c);
    return r.status();
  }

  raft::Index index() const { return index_; }

 private:
  StateStore* store_;
  raft::Index index_;
};

inline etcdserverpb::RangeRequest RangeReq(const std::string& k, const std::string& end = "",
                                           int64_t rev = 0) {
  etcdserverpb::RangeRequest r;
  r.set_key(k);
  r.set_range_end(end);
  r.set_revision(rev);
  return r;
}

}  // namespace ganglion::storage::testing
