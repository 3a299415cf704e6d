#include "storage/state_store.h"

#include <gtest/gtest.h>

#include <set>

#include "storage/state_store_testing.h"

namespace ganglion::storage {
namespace {

using etcdserverpb::Compare;
using etcdserverpb::RangeRequest;
using etcdserverpb::RangeResponse;
using etcdserverpb::TxnRequest;
using testing::Applier;
using testing::OpenOrDie;
using testing::RangeReq;
using testing::TempDir;

std::vector<std::string> Keys(const RangeResponse& r) {
  std::vector<std::string> out;
  for (const auto& kv : r.kvs()) out.push_back(kv.key());
  return out;
}

class StateStoreTest : public ::testing::Test {
 protected:
  StateStoreTest() : store_(OpenOrDie(dir_.sub("state"))), a_(store_.get()) {}

  RangeResponse Get(const std::string& k, const std::string& end = "", int64_t rev = 0) {
    auto r = store_->Range(RangeReq(k, end, rev));
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : RangeResponse();
  }
  RangeResponse Range(const RangeRequest& req) {
    auto r = store_->Range(req);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : RangeResponse();
  }
  void Reopen(const StateStoreOptions& options = {}) {
    store_.reset();
    store_ = OpenOrDie(dir_.sub("state"), options);
    a_.Reset(store_.get());
  }

  TempDir dir_;
  std::unique_ptr<StateStore> store_;
  Applier a_;
};

Compare Cmp(const std::string& key, Compare::CompareTarget target, Compare::CompareResult result,
            int64_t n, const std::string& range_end = "") {
  Compare c;
  c.set_key(key);
  c.set_range_end(range_end);
  c.set_target(target);
  c.set_result(result);
  switch (target) {
    case Compare::VERSION:
      c.set_version(n);
      break;
    case Compare::CREATE:
      c.set_create_revision(n);
      break;
    case Compare::MOD:
      c.set_mod_revision(n);
      break;
    case Compare::LEASE:
      c.set_lease(n);
      break;
    default:
      break;
  }
  return c;
}

Compare CmpValue(const std::string& key, Compare::CompareResult result, const std::string& v,
                 const std::string& range_end = "") {
  Compare c;
  c.set_key(key);
  c.set_range_end(range_end);
  c.set_target(Compare::VALUE);
  c.set_result(result);
  c.set_value(v);
  return c;
}

etcdserverpb::RequestOp PutOp(const std::string& k, const std::string& v) {
  etcdserverpb::RequestOp op;
  op.mutable_request_put()->set_key(k);
  op.mutable_request_put()->set_value(v);
  return op;
}

etcdserverpb::RequestOp DeleteOp(const std::string& k, const std::string& end = "") {
  etcdserverpb::RequestOp op;
  op.mutable_request_delete_range()->set_key(k);
  op.mutable_request_delete_range()->set_range_end(end);
  return op;
}

etcdserverpb::RequestOp RangeOp(const std::string& k, const std::string& end = "",
                                int64_t rev = 0) {
  etcdserverpb::RequestOp op;
  *op.mutable_request_range() = RangeReq(k, end, rev);
  return op;
}

// ---- revisions and per-key metadata ----

TEST_F(StateStoreTest, EmptyStoreIsAtRevisionZero) {
  EXPECT_EQ(store_->current_revision(), 0);
  EXPECT_EQ(store_->applied_index(), 0u);
  RangeResponse r = Get("a");
  EXPECT_EQ(r.kvs_size(), 0);
  EXPECT_EQ(r.count(), 0);
  EXPECT_EQ(r.header().revision(), 0);
}

TEST_F(StateStoreTest, PutBumpsRevisionAndVersion) {
  EXPECT_EQ(a_.Put("a", "1").header().revision(), 1);
  EXPECT_EQ(a_.Put("a", "2").header().revision(), 2);
  EXPECT_EQ(a_.Put("b", "3").header().revision(), 3);
  RangeResponse r = Get("a");
  ASSERT_EQ(r.kvs_size(), 1);
  EXPECT_EQ(r.kvs(0).value(), "2");
  EXPECT_EQ(r.kvs(0).create_revision(), 1);
  EXPECT_EQ(r.kvs(0).mod_revision(), 2);
  EXPECT_EQ(r.kvs(0).version(), 2);
  EXPECT_EQ(r.header().revision(), 3);
  EXPECT_EQ(store_->current_revision(), 3);
  EXPECT_EQ(store_->applied_index(), 3u);
}

TEST_F(StateStoreTest, DeleteResetsVersionAndRecreateGetsNewCreateRevision) {
  a_.Put("a", "1");
  a_.Put("a", "2");
  auto d = a_.Delete("a");
  EXPECT_EQ(d.deleted(), 1);
  EXPECT_EQ(d.header().revision(), 3);
  EXPECT_EQ(Get("a").kvs_size(), 0);
  a_.Put("a", "3");
  RangeResponse r = Get("a");
  ASSERT_EQ(r.kvs_size(), 1);
  EXPECT_EQ(r.kvs(0).version(), 1);
  EXPECT_EQ(r.kvs(0).create_revision(), 4);
  EXPECT_EQ(r.kvs(0).mod_revision(), 4);
  // History stays readable.
  EXPECT_EQ(Get("a", "", 2).kvs(0).value(), "2");
  EXPECT_EQ(Get("a", "", 2).kvs(0).version(), 2);
  EXPECT_EQ(Get("a", "", 3).kvs_size(), 0);
  EXPECT_EQ(Get("a", "", 1).kvs(0).value(), "1");
}

TEST_F(StateStoreTest, DeleteOfNothingDoesNotBumpRevision) {
  a_.Put("a", "1");
  auto d = a_.Delete("zzz");
  EXPECT_EQ(d.deleted(), 0);
  EXPECT_EQ(d.header().revision(), 1);
  EXPECT_EQ(store_->current_revision(), 1);
  EXPECT_EQ(store_->applied_index(), 2u);  // the index moves even so
}

TEST_F(StateStoreTest, FutureRevisionIsAnError) {
  a_.Put("a", "1");
  auto r = store_->Range(RangeReq("a", "", 2));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(r.status().message(), kErrFutureRev);
}

TEST_F(StateStoreTest, EmptyKeyIsRejected) {
  auto r = store_->Range(RangeReq(""));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(), kErrEmptyKey);
  etcdserverpb::PutRequest p;
  auto res = a_.Apply(p);
  EXPECT_EQ(res.status().message(), kErrEmptyKey);
  etcdserverpb::DeleteRangeRequest d;
  EXPECT_EQ(a_.Apply(d).status().message(), kErrEmptyKey);
  EXPECT_EQ(store_->current_revision(), 0);
}

// ---- ranges ----

class RangeTest : public StateStoreTest {
 protected:
  void SetUp() override {
    // Keys with NUL bytes exercise the escaping of the history index.
    for (const std::string& k : {std::string("a"), std::string("a\0", 2), std::string("a\0b", 3),
                                 std::string("ab"), std::string("b"), std::string("c")}) {
      a_.Put(k, "v" + k);
    }
  }
};

TEST_F(RangeTest, PrefixFromKeyAndAllKeys) {
  for (int64_t rev : {int64_t{0}, int64_t{6}, int64_t{5}}) {
    // prefix "a": [a, b)
    auto r = Get("a", "b", rev);
    std::vector<std::string> want = {"a", std::string("a\0", 2), std::string("a\0b", 3), "ab"};
    if (rev == 5) want = {"a", std::string("a\0", 2), std::string("a\0b", 3), "ab"};
    EXPECT_EQ(Keys(r), want) << rev;
    // from key "a\0"
    r = Get(std::string("a\0", 2), std::string("\0", 1), rev);
    want = {std::string("a\0", 2), std::string("a\0b", 3), "ab", "b", "c"};
    if (rev == 5) want.pop_back();
    EXPECT_EQ(Keys(r), want) << rev;
    // all keys
    r = Get(std::string("\0", 1), std::string("\0", 1), rev);
    EXPECT_EQ(r.count(), rev == 5 ? 5 : 6) << rev;
    // prefix "a\0": [a\0, a\x01)
    r = Get(std::string("a\0", 2), std::string("a\x01", 2), rev);
    EXPECT_EQ(Keys(r), (std::vector<std::string>{std::string("a\0", 2), std::string("a\0b", 3)}));
  }
  // range_end <= key is empty.
  EXPECT_EQ(Get("b", "a").kvs_size(), 0);
  EXPECT_EQ(Get("b", "b").kvs_size(), 0);
}

TEST_F(RangeTest, OldRevisionSeesOldValuesAndSkipsDeleted) {
  a_.Put("ab", "new");  // rev 7
  a_.Delete("b");       // rev 8
  auto r = Get("a", "z", 6);
  ASSERT_EQ(r.kvs_size(), 6);
  EXPECT_EQ(r.kvs(3).value(), "vab");
  EXPECT_EQ(r.header().revision(), 8);  // the header is the current revision
  r = Get("a", "z");
  ASSERT_EQ(r.kvs_size(), 5);
  EXPECT_EQ(r.kvs(3).value(), "new");
  EXPECT_EQ(r.kvs(3).version(), 2);
  EXPECT_EQ(r.kvs(4).key(), "c");
  r = Get("a", "z", 7);
  EXPECT_EQ(Keys(r)[4], "b");
}

TEST_F(RangeTest, LimitMoreAndCount) {
  RangeRequest req = RangeReq("a", "z");
  req.set_limit(2);
  auto r = Range(req);
  EXPECT_EQ(r.kvs_size(), 2);
  EXPECT_TRUE(r.more());
  EXPECT_EQ(r.count(), 6);
  req.set_limit(6);
  r = Range(req);
  EXPECT_EQ(r.kvs_size(), 6);
  EXPECT_FALSE(r.more());
  req.set_limit(100);
  req.set_revision(3);
  r = Range(req);
  EXPECT_EQ(r.kvs_size(), 3);
  EXPECT_EQ(r.count(), 3);
  EXPECT_FALSE(r.more());
}

TEST_F(RangeTest, KeysOnlyAndCountOnly) {
  RangeRequest req = RangeReq("a", "z");
  req.set_keys_only(true);
  auto r = Range(req);
  ASSERT_EQ(r.kvs_size(), 6);
  EXPECT_EQ(r.kvs(0).value(), "");
  EXPECT_EQ(r.kvs(0).mod_revision(), 1);
  req.set_keys_only(false);
  req.set_count_only(true);
  r = Range(req);
  EXPECT_EQ(r.kvs_size(), 0);
  EXPECT_EQ(r.count(), 6);
  EXPECT_FALSE(r.more());
}

TEST_F(RangeTest, Sorting) {
  a_.Put("b", "x");   // b: version 2, mod 7
  a_.Put("b", "y");   // b: version 3, mod 8
  a_.Put("ab", "z");  // ab: version 2, mod 9
  RangeRequest req = RangeReq("a", "z");
  req.set_sort_target(RangeRequest::KEY);
  req.set_sort_order(RangeRequest::DESCEND);
  auto r = Range(req);
  EXPECT_EQ(r.kvs(0).key(), "c");
  EXPECT_EQ(r.kvs(5).key(), "a");

  req.set_sort_target(RangeRequest::VERSION);
  req.set_sort_order(RangeRequest::DESCEND);
  r = Range(req);
  EXPECT_EQ(r.kvs(0).key(), "b");
  EXPECT_EQ(r.kvs(1).key(), "ab");

  // A target other than KEY with order NONE sorts ascending.
  req.set_sort_order(RangeRequest::NONE);
  r = Range(req);
  EXPECT_EQ(r.kvs(5).key(), "b");
  EXPECT_EQ(r.kvs(0).key(), "a");

  req.set_sort_target(RangeRequest::MOD);
  req.set_sort_order(RangeRequest::DESCEND);
  req.set_limit(2);
  r = Range(req);
  EXPECT_EQ(Keys(r), (std::vector<std::string>{"ab", "b"}));
  EXPECT_TRUE(r.more());
  EXPECT_EQ(r.count(), 6);

  req.set_sort_target(RangeRequest::VALUE);
  req.set_sort_order(RangeRequest::ASCEND);
  req.set_limit(0);
  r = Range(req);
  EXPECT_EQ(r.kvs(0).value(), "va");
  EXPECT_EQ(r.kvs(5).value(), "z");

  req.set_sort_target(RangeRequest::CREATE);
  req.set_sort_order(RangeRequest::DESCEND);
  r = Range(req);
  EXPECT_EQ(r.kvs(0).key(), "c");
  EXPECT_EQ(r.kvs(5).key(), "a");
}

TEST_F(RangeTest, MinMaxRevisionFilters) {
  a_.Put("a", "again");  // a: create 1, mod 7
  RangeRequest req = RangeReq("a", "z");
  req.set_min_mod_revision(4);
  auto r = Range(req);
  EXPECT_EQ(Keys(r), (std::vector<std::string>{"a", "ab", "b", "c"}));
  EXPECT_EQ(r.count(), 6);  // count is over the range, before filters (etcd)
  req.set_max_mod_revision(5);
  r = Range(req);
  EXPECT_EQ(Keys(r), (std::vector<std::string>{"ab", "b"}));
  req = RangeReq("a", "z");
  req.set_max_create_revision(2);
  r = Range(req);
  EXPECT_EQ(Keys(r), (std::vector<std::string>{"a", std::string("a\0", 2)}));
  req.set_min_create_revision(2);
  r = Range(req);
  EXPECT_EQ(Keys(r), (std::vector<std::string>{std::string("a\0", 2)}));
  // Filters apply before the limit: more is about the filtered set.
  req = RangeReq("a", "z");
  req.set_min_create_revision(3);
  req.set_limit(3);
  r = Range(req);
  EXPECT_EQ(Keys(r), (std::vector<std::string>{std::string("a\0b", 3), "ab", "b"}));
  EXPECT_TRUE(r.more());
}

// ---- put and delete options ----

TEST_F(StateStoreTest, PutPrevKvLeaseAndIgnoreFlags) {
  a_.Put("k", "v1", 42);
  etcdserverpb::PutRequest p;
  p.set_key("k");
  p.set_value("v2");
  p.set_prev_kv(true);
  auto r = a_.Apply(p);
  ASSERT_TRUE(r.ok());
  auto put = std::get<etcdserverpb::PutResponse>(*r);
  EXPECT_EQ(put.prev_kv().value(), "v1");
  EXPECT_EQ(put.prev_kv().lease(), 42);
  EXPECT_EQ(put.prev_kv().version(), 1);
  EXPECT_EQ(Get("k").kvs(0).lease(), 0);  // a put without lease detaches it

  // ignore_value keeps the value, sets the lease.
  p = etcdserverpb::PutRequest();
  p.set_key("k");
  p.set_ignore_value(true);
  p.set_lease(7);
  ASSERT_TRUE(a_.Apply(p).ok());
  auto kv = Get("k").kvs(0);
  EXPECT_EQ(kv.value(), "v2");
  EXPECT_EQ(kv.lease(), 7);
  EXPECT_EQ(kv.version(), 3);

  // ignore_lease keeps the lease, sets the value.
  p = etcdserverpb::PutRequest();
  p.set_key("k");
  p.set_value("v3");
  p.set_ignore_lease(true);
  ASSERT_TRUE(a_.Apply(p).ok());
  kv = Get("k").kvs(0);
  EXPECT_EQ(kv.value(), "v3");
  EXPECT_EQ(kv.lease(), 7);

  int64_t rev = store_->current_revision();
  p = etcdserverpb::PutRequest();
  p.set_key("missing");
  p.set_ignore_value(true);
  auto e = a_.Apply(p);
  EXPECT_EQ(e.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(e.status().message(), kErrKeyNotFound);
  p.set_ignore_value(false);
  p.set_ignore_lease(true);
  EXPECT_EQ(a_.Apply(p).status().message(), kErrKeyNotFound);

  p = etcdserverpb::PutRequest();
  p.set_key("k");
  p.set_value("x");
  p.set_ignore_value(true);
  EXPECT_EQ(a_.Apply(p).status().message(), kErrValueProvided);
  p = etcdserverpb::PutRequest();
  p.set_key("k");
  p.set_lease(1);
  p.set_ignore_lease(true);
  EXPECT_EQ(a_.Apply(p).status().message(), kErrLeaseProvided);
  EXPECT_EQ(store_->current_revision(), rev);  // failed requests write nothing
}

TEST_F(StateStoreTest, DeleteRangePrevKvsAndCount) {
  a_.Put("a", "1");
  a_.Put("b", "2");
  a_.Put("c", "3");
  a_.Put("d", "4");
  auto d = a_.Delete("b", "d", true);
  EXPECT_EQ(d.deleted(), 2);
  ASSERT_EQ(d.prev_kvs_size(), 2);
  EXPECT_EQ(d.prev_kvs(0).key(), "b");
  EXPECT_EQ(d.prev_kvs(1).value(), "3");
  EXPECT_EQ(d.header().revision(), 5);
  EXPECT_EQ(Keys(Get("a", "z")), (std::vector<std::string>{"a", "d"}));
  d = a_.Delete("b", std::string("\0", 1));  // from key
  EXPECT_EQ(d.deleted(), 1);
  EXPECT_EQ(d.prev_kvs_size(), 0);
  EXPECT_EQ(Keys(Get("a", "z")), (std::vector<std::string>{"a"}));
  // Both deletes happened at one revision each.
  EXPECT_EQ(store_->current_revision(), 6);
  EXPECT_EQ(Keys(Get("a", "z", 4)), (std::vector<std::string>{"a", "b", "c", "d"}));
}

TEST_F(StateStoreTest, RequestTooLarge) {
  StateStoreOptions o;
  o.max_request_bytes = 100;
  Reopen(o);
  etcdserverpb::PutRequest p;
  p.set_key("k");
  p.set_value(std::string(200, 'x'));
  auto r = a_.Apply(p);
  EXPECT_EQ(r.status().message(), kErrRequestTooLarge);
  EXPECT_EQ(store_->current_revision(), 0);
}

// ---- txn ----

TEST_F(StateStoreTest, TxnComparesEveryTarget) {
  a_.Put("k", "v", 5);  // rev 1
  a_.Put("k", "w", 5);  // rev 2: version 2, create 1, mod 2, lease 5
  struct Case {
    Compare c;
    bool want;
  };
  std::vector<Case> cases = {
      {Cmp("k", Compare::VERSION, Compare::EQUAL, 2), true},
      {Cmp("k", Compare::VERSION, Compare::GREATER, 1), true},
      {Cmp("k", Compare::VERSION, Compare::LESS, 2), false},
      {Cmp("k", Compare::VERSION, Compare::NOT_EQUAL, 2), false},
      {Cmp("k", Compare::CREATE, Compare::EQUAL, 1), true},
      {Cmp("k", Compare::CREATE, Compare::LESS, 1), false},
      {Cmp("k", Compare::MOD, Compare::EQUAL, 2), true},
      {Cmp("k", Compare::MOD, Compare::GREATER, 2), false},
      {Cmp("k", Compare::LEASE, Compare::EQUAL, 5), true},
      {Cmp("k", Compare::LEASE, Compare::NOT_EQUAL, 5), false},
      {CmpValue("k", Compare::EQUAL, "w"), true},
      {CmpValue("k", Compare::GREATER, "v"), true},
      {CmpValue("k", Compare::LESS, "w"), false},
      // A missing key: version/create/mod/lease are 0; a value compare fails.
      {Cmp("nokey", Compare::VERSION, Compare::EQUAL, 0), true},
      {Cmp("nokey", Compare::CREATE, Compare::EQUAL, 0), true},
      {CmpValue("nokey", Compare::EQUAL, ""), false},
      {CmpValue("nokey", Compare::NOT_EQUAL, "x"), false},
  };
  for (size_t i = 0; i < cases.size(); i++) {
    TxnRequest t;
    *t.add_compare() = cases[i].c;
    auto r = a_.Txn(t);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->succeeded(), cases[i].want) << "case " << i;
    EXPECT_EQ(r->header().revision(), 2);  // read-only txns do not bump
  }
  EXPECT_EQ(store_->current_revision(), 2);
}

TEST_F(StateStoreTest, TxnCompareOverRange) {
  a_.Put("p/1", "x");
  a_.Put("p/2", "x");
  a_.Put("p/3", "y");
  a_.Put("q", "x");
  TxnRequest t;
  *t.add_compare() = CmpValue("p/", Compare::EQUAL, "x", "p0");
  EXPECT_FALSE(a_.Txn(t)->succeeded());  // p/3 differs
  t.clear_compare();
  *t.add_compare() = CmpValue("p/", Compare::EQUAL, "x", "p/3");
  EXPECT_TRUE(a_.Txn(t)->succeeded());
  t.clear_compare();
  *t.add_compare() = Cmp("p/", Compare::CREATE, Compare::LESS, 4, "p0");
  EXPECT_TRUE(a_.Txn(t)->succeeded());
  t.clear_compare();
  *t.add_compare() = Cmp("p/", Compare::MOD, Compare::GREATER, 1, "p0");
  EXPECT_FALSE(a_.Txn(t)->succeeded());  // p/1 has mod 1
  t.clear_compare();
  // From-key range compare: all of p/1, p/2, p/3, q.
  *t.add_compare() = Cmp("p/", Compare::VERSION, Compare::EQUAL, 1, std::string("\0", 1));
  EXPECT_TRUE(a_.Txn(t)->succeeded());
  t.clear_compare();
  // An empty range compares as one missing key.
  *t.add_compare() = Cmp("r", Compare::VERSION, Compare::EQUAL, 0, "s");
  EXPECT_TRUE(a_.Txn(t)->succeeded());
}

TEST_F(StateStoreTest, TxnIsOneRevisionWithSubRevisions) {
  a_.Put("a", "0");  // rev 1
  TxnRequest t;
  *t.add_compare() = Cmp("a", Compare::VERSION, Compare::EQUAL, 1);
  *t.add_success() = PutOp("x", "1");
  *t.add_success() = RangeOp("x");  // sees the put above
  *t.add_success() = DeleteOp("a");
  *t.add_success() = PutOp("y", "2");
  *t.add_failure() = PutOp("never", "1");
  auto r = a_.Txn(t);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->succeeded());
  EXPECT_EQ(r->header().revision(), 2);
  ASSERT_EQ(r->responses_size(), 4);
  EXPECT_EQ(r->responses(0).response_put().header().revision(), 2);
  ASSERT_EQ(r->responses(1).response_range().kvs_size(), 1);
  EXPECT_EQ(r->responses(1).response_range().kvs(0).mod_revision(), 2);
  EXPECT_EQ(r->responses(1).response_range().header().revision(), 2);
  EXPECT_EQ(r->responses(2).response_delete_range().deleted(), 1);
  EXPECT_EQ(store_->current_revision(), 2);
  EXPECT_EQ(Get("y").kvs(0).mod_revision(), 2);
  EXPECT_EQ(Get("a").kvs_size(), 0);
  EXPECT_EQ(Get("never").kvs_size(), 0);
  // Failure branch.
  r = a_.Txn(t);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->succeeded());
  EXPECT_EQ(r->header().revision(), 3);
  EXPECT_EQ(Get("never").kvs(0).mod_revision(), 3);
}

TEST_F(StateStoreTest, NestedTxnComparesSeeTheStateBeforeTheTxn) {
  a_.Put("a", "1");  // rev 1
  TxnRequest inner;
  // Evaluated before the outer put of "a": version is 1, not 2.
  *inner.add_compare() = Cmp("a", Compare::VERSION, Compare::EQUAL, 1);
  *inner.add_success() = PutOp("b", "inner-ok");
  *inner.add_failure() = PutOp("b", "inner-failed");
  TxnRequest outer;
  *outer.add_success() = PutOp("a", "2");
  *outer.add_success()->mutable_request_txn() = inner;
  auto r = a_.Txn(outer);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->succeeded());
  ASSERT_EQ(r->responses_size(), 2);
  EXPECT_TRUE(r->responses(1).response_txn().succeeded());
  EXPECT_EQ(Get("b").kvs(0).value(), "inner-ok");
  EXPECT_EQ(Get("b").kvs(0).mod_revision(), 2);
  EXPECT_EQ(store_->current_revision(), 2);
}

TEST_F(StateStoreTest, TxnValidationErrors) {
  a_.Put("a", "1");
  TxnRequest t;
  *t.add_success() = PutOp("x", "1");
  *t.add_success() = PutOp("x", "2");
  EXPECT_EQ(a_.Txn(t).status().message(), kErrDuplicateKey);

  t.Clear();
  *t.add_success() = PutOp("x", "1");
  *t.add_success() = DeleteOp("w", "y");
  EXPECT_EQ(a_.Txn(t).status().message(), kErrDuplicateKey);

  // A put nested in a txn and a put outside it.
  t.Clear();
  TxnRequest inner;
  *inner.add_success() = PutOp("x", "1");
  *inner.add_failure() = PutOp("x", "2");  // then/else may share keys
  *t.add_success()->mutable_request_txn() = inner;
  EXPECT_TRUE(a_.Txn(t).ok());
  *t.add_success() = PutOp("x", "3");
  EXPECT_EQ(a_.Txn(t).status().message(), kErrDuplicateKey);

  // Success and failure branches are checked separately.
  t.Clear();
  *t.add_success() = PutOp("x", "1");
  *t.add_failure() = PutOp("x", "2");
  EXPECT_TRUE(a_.Txn(t).ok());

  t.Clear();
  for (int i = 0; i < 129; i++) *t.add_success() = RangeOp("a");
  EXPECT_EQ(a_.Txn(t).status().message(), kErrTooManyOps);
  t.Clear();
  for (int i = 0; i < 128; i++) *t.add_success() = RangeOp("a");
  EXPECT_TRUE(a_.Txn(t).ok());

  t.Clear();
  *t.add_compare() = Cmp("", Compare::VERSION, Compare::EQUAL, 0);
  EXPECT_EQ(a_.Txn(t).status().message(), kErrEmptyKey);
  t.Clear();
  t.add_success();  // an empty op
  EXPECT_EQ(a_.Txn(t).status().message(), kErrKeyNotFound);

  // ignore_value on a key missing before the txn.
  t.Clear();
  etcdserverpb::RequestOp op;
  op.mutable_request_put()->set_key("missing");
  op.mutable_request_put()->set_ignore_value(true);
  *t.add_success() = op;
  EXPECT_EQ(a_.Txn(t).status().message(), kErrKeyNotFound);

  // A range at a future revision inside a txn.
  int64_t rev = store_->current_revision();
  t.Clear();
  *t.add_success() = PutOp("z", "1");
  *t.add_success() = RangeOp("a", "", rev + 1);
  auto r = a_.Txn(t);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(r.status().message(), kErrFutureRev);
  EXPECT_EQ(Get("z").kvs_size(), 0);
  EXPECT_EQ(store_->current_revision(), rev);

  StateStoreOptions o;
  o.max_txn_ops = 2;
  Reopen(o);
  t.Clear();
  for (int i = 0; i < 3; i++) *t.add_failure() = RangeOp("a");
  EXPECT_EQ(a_.Txn(t).status().message(), kErrTooManyOps);
}

TEST_F(StateStoreTest, ManyOpsInOneApplySeeEachOther) {
  std::vector<ApplyOp> ops;
  etcdserverpb::PutRequest p;
  p.set_key("a");
  p.set_value("1");
  ops.push_back({p, 1});
  p.set_value("2");
  p.set_prev_kv(true);
  ops.push_back({p, 2});
  etcdserverpb::PutRequest bad;
  bad.set_key("b");
  bad.set_ignore_value(true);  // fails: no b
  ops.push_back({bad, 3});
  etcdserverpb::DeleteRangeRequest d;
  d.set_key("a");
  ops.push_back({d, 4});
  etcdserverpb::CompactionRequest c;
  c.set_revision(2);
  ops.push_back({c, 5});
  TxnRequest t;
  *t.add_success() = RangeOp("a", "", 1);  // compacted by the op before
  ops.push_back({t, 6});
  auto res = store_->Apply(ops, 6);
  ASSERT_TRUE(res.ok()) << res.status();
  ASSERT_EQ(res->size(), 6u);
  EXPECT_EQ(std::get<etcdserverpb::PutResponse>(*(*res)[1]).prev_kv().value(), "1");
  EXPECT_EQ(std::get<etcdserverpb::PutResponse>(*(*res)[1]).header().revision(), 2);
  EXPECT_EQ((*res)[2].status().message(), kErrKeyNotFound);
  EXPECT_EQ(std::get<etcdserverpb::DeleteRangeResponse>(*(*res)[3]).header().revision(), 3);
  EXPECT_TRUE((*res)[4].ok());
  EXPECT_EQ((*res)[5].status().message(), kErrCompacted);
  EXPECT_EQ(store_->current_revision(), 3);
  EXPECT_EQ(store_->compact_revision(), 2);
  EXPECT_EQ(store_->applied_index(), 6u);
  // Re-applying old indexes is refused.
  EXPECT_EQ(store_->Apply(ops, 6).status().code(), absl::StatusCode::kFailedPrecondition);
}

// ---- compaction ----

TEST_F(StateStoreTest, CompactionErrorsAndVisibility) {
  a_.Put("a", "1");  // 1
  a_.Put("a", "2");  // 2
  a_.Put("b", "1");  // 3
  a_.Delete("b");    // 4
  a_.Put("c", "1");  // 5
  a_.Put("a", "3");  // 6
  auto s = a_.Compact(7);
  EXPECT_EQ(s.code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(s.message(), kErrFutureRev);
  ASSERT_TRUE(a_.Compact(5).ok());
  EXPECT_EQ(store_->compact_revision(), 5);
  EXPECT_EQ(store_->current_revision(), 6);  // compaction is not a write
  s = a_.Compact(5);
  EXPECT_EQ(s.code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(s.message(), kErrCompacted);
  EXPECT_EQ(a_.Compact(3).message(), kErrCompacted);

  auto r = store_->Range(RangeReq("a", "", 4));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(r.status().message(), kErrCompacted);
  // At the compact revision itself (etcd allows it) and above.
  store_->WaitForPhysicalCompaction();
  EXPECT_EQ(Keys(Get("a", "z", 5)), (std::vector<std::string>{"a", "c"}));
  EXPECT_EQ(Get("a", "", 5).kvs(0).value(), "2");
  EXPECT_EQ(Get("a", "", 5).kvs(0).version(), 2);
  EXPECT_EQ(Get("a", "", 6).kvs(0).value(), "3");
  EXPECT_EQ(Get("a", "", 6).kvs(0).create_revision(), 1);
  EXPECT_EQ(Get("c", "", 5).kvs(0).value(), "1");
  // History after the compaction is untouched.
  a_.Put("a", "4");
  EXPECT_EQ(Get("a", "", 6).kvs(0).value(), "3");
}

TEST_F(StateStoreTest, BackgroundCompactionRemovesSupersededVersions) {
  for (int i = 0; i < 50; i++) {
    for (int k = 0; k < 10; k++) a_.Put("key" + std::to_string(k), "v" + std::to_string(i));
  }
  for (int k = 0; k < 5; k++) a_.Delete("key" + std::to_string(k));
  EXPECT_EQ(*store_->CountVersionsForTest(), 505u);
  int64_t rev = store_->current_revision();
  ASSERT_TRUE(a_.Compact(rev).ok());
  store_->WaitForPhysicalCompaction();
  // Five live keys keep one version each; deleted keys leave nothing.
  EXPECT_EQ(*store_->CountVersionsForTest(), 5u);
  EXPECT_EQ(store_->physically_compacted_revision(), rev);
  auto r = Get("key", "kez");
  EXPECT_EQ(r.kvs_size(), 5);
  EXPECT_EQ(r.kvs(0).key(), "key5");
  EXPECT_EQ(r.kvs(0).version(), 50);
  EXPECT_EQ(r.kvs(0).value(), "v49");
  EXPECT_EQ(Get("key", "kez", rev).kvs_size(), 5);
  // Re-created keys start over.
  a_.Put("key0", "again");
  EXPECT_EQ(Get("key0").kvs(0).version(), 1);
  // Survives a reopen and a second compaction.
  Reopen();
  a_.Put("key5", "x");
  ASSERT_TRUE(a_.Compact(store_->current_revision()).ok());
  store_->WaitForPhysicalCompaction();
  EXPECT_EQ(*store_->CountVersionsForTest(), 6u);
  EXPECT_EQ(Get("key5").kvs(0).version(), 51);
}

TEST_F(StateStoreTest, PartialPhysicalCompactionNeverChangesReads) {
  StateStoreOptions o;
  o.background_compaction = false;
  o.compaction_batch_entries_max = 3;
  Reopen(o);
  for (int i = 0; i < 20; i++) {
    a_.Put("k" + std::to_string(i % 4), std::to_string(i));
    if (i % 7 == 6) a_.Delete("k" + std::to_string(i % 4));
  }
  int64_t compact = 12;
  ASSERT_TRUE(a_.Compact(compact).ok());
  std::vector<RangeResponse> want;
  for (int64_t rev = compact; rev <= store_->current_revision(); rev++) {
    want.push_back(Get("k", "l", rev));
  }
  uint64_t before = *store_->CountVersionsForTest();
  for (int step = 0; step < 20; step++) {
    ASSERT_TRUE(store_->CompactPhysicallyForTest(1).ok());
    for (int64_t rev = compact; rev <= store_->current_revision(); rev++) {
      auto got = Get("k", "l", rev);
      ASSERT_EQ(got.SerializeAsString(), want[rev - compact].SerializeAsString())
          << "step " << step << " rev " << rev;
    }
  }
  EXPECT_LT(*store_->CountVersionsForTest(), before);
  EXPECT_EQ(store_->physically_compacted_revision(), compact);
}

// ---- hash ----

TEST_F(StateStoreTest, HashKVIsIndependentOfPhysicalCompaction) {
  TempDir other_dir;
  StateStoreOptions o;
  o.background_compaction = false;
  o.compaction_batch_entries_max = 2;
  auto other = OpenOrDie(other_dir.sub("state"), o);
  Applier b(other.get());
  auto both = [&](auto f) {
    f(a_);
    f(b);
  };
  for (int i = 0; i < 30; i++) {
    both([&](Applier& x) { x.Put("k" + std::to_string(i % 5), std::to_string(i)); });
    if (i % 4 == 3) both([&](Applier& x) { x.Delete("k" + std::to_string(i % 5)); });
  }
  both([&](Applier& x) { ASSERT_TRUE(x.Compact(20).ok()); });
  store_->WaitForPhysicalCompaction();
  ASSERT_TRUE(other->CompactPhysicallyForTest(1).ok());  // only partly
  EXPECT_GT(*other->CountVersionsForTest(), *store_->CountVersionsForTest());
  for (int64_t rev : {int64_t{0}, int64_t{20}, int64_t{21}, int64_t{30}}) {
    auto h1 = store_->HashKV(rev);
    auto h2 = other->HashKV(rev);
    ASSERT_TRUE(h1.ok() && h2.ok());
    EXPECT_EQ(h1->hash, h2->hash) << rev;
    EXPECT_EQ(h1->compact_revision, 20);
    EXPECT_EQ(h1->hash_revision, rev == 0 ? store_->current_revision() : rev);
  }
  EXPECT_NE(store_->HashKV(21)->hash, store_->HashKV(22)->hash);
  EXPECT_EQ(store_->HashKV(19).status().message(), kErrCompacted);
  EXPECT_EQ(store_->HashKV(1000).status().message(), kErrFutureRev);
  // A diverging write changes the hash.
  a_.Put("k1", "diverge");
  b.Put("k1", "other");
  EXPECT_NE(store_->HashKV(0)->hash, other->HashKV(0)->hash);
}

// ---- durability ----

TEST_F(StateStoreTest, RestartResumesAfterAppliedIndex) {
  a_.Put("a", "1");
  a_.Put("b", "2");
  ASSERT_TRUE(a_.Compact(1).ok());
  Reopen();
  EXPECT_EQ(store_->applied_index(), 3u);
  EXPECT_EQ(store_->current_revision(), 2);
  EXPECT_EQ(store_->compact_revision(), 1);
  EXPECT_EQ(a_.Put("a", "3").header().revision(), 3);
  EXPECT_EQ(store_->applied_index(), 4u);
  EXPECT_EQ(Get("a").kvs(0).version(), 2);
}

TEST_F(StateStoreTest, CheckpointRestore) {
  a_.Put("a", "1");
  a_.Put("a", "2");
  const std::string cp = dir_.sub("checkpoint");
  ASSERT_TRUE(store_->Checkpoint(cp).ok());
  a_.Put("a", "after-checkpoint");
  auto hash = store_->HashKV(2)->hash;
  // Restore into a fresh directory (a follower receiving a snapshot).
  const std::string restored = dir_.sub("restored");
  ASSERT_TRUE(StateStore::RestoreFromCheckpoint(cp, restored).ok());
  auto copy = OpenOrDie(restored);
  EXPECT_EQ(copy->applied_index(), 2u);
  EXPECT_EQ(copy->current_revision(), 2);
  EXPECT_EQ(copy->HashKV(2)->hash, hash);
  auto r = copy->Range(RangeReq("a"));
  EXPECT_EQ(r->kvs(0).value(), "2");
  // Replacing the live state: close, restore over it, reopen.
  store_.reset();
  ASSERT_TRUE(StateStore::RestoreFromCheckpoint(cp, dir_.sub("state")).ok());
  store_ = OpenOrDie(dir_.sub("state"));
  a_.Reset(store_.get());
  EXPECT_EQ(store_->current_revision(), 2);
  EXPECT_EQ(a_.Put("a", "3").header().revision(), 3);
  EXPECT_EQ(store_->applied_index(), 3u);
}

// ---- events ----

TEST_F(StateStoreTest, SubscriberGetsEventsPerRevisionAndHistoryMatches) {
  std::vector<RevisionEvents> got;
  store_->Subscribe([&](const std::vector<RevisionEvents>& batch) {
    got.insert(got.end(), batch.begin(), batch.end());
  });
  a_.Put("a", "1");  // 1
  a_.Put("a", "2");  // 2
  a_.Delete("zz");   // no revision
  TxnRequest t;
  *t.add_success() = PutOp("b", "1");
  *t.add_success() = DeleteOp("a");
  ASSERT_TRUE(a_.Txn(t).ok());  // 3
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].revision, 1);
  EXPECT_FALSE(got[0].events[0].has_prev_kv());
  EXPECT_EQ(got[1].events[0].kv().version(), 2);
  // Apply leaves previous values out (no request read them); the metadata
  // is there, and LoadPrevValues reads the values from history.
  EXPECT_FALSE(got[1].prev_values);
  EXPECT_EQ(got[1].events[0].prev_kv().mod_revision(), 1);
  EXPECT_EQ(got[1].events[0].prev_kv().value(), "");
  for (RevisionEvents& rev : got) ASSERT_TRUE(store_->LoadPrevValues(&rev).ok());
  EXPECT_TRUE(got[1].prev_values);
  EXPECT_EQ(got[1].events[0].prev_kv().value(), "1");
  ASSERT_EQ(got[2].events.size(), 2u);
  EXPECT_EQ(got[2].events[0].type(), mvccpb::Event::PUT);
  EXPECT_EQ(got[2].events[0].kv().key(), "b");
  EXPECT_EQ(got[2].events[1].type(), mvccpb::Event::DELETE);
  EXPECT_EQ(got[2].events[1].kv().key(), "a");
  EXPECT_EQ(got[2].events[1].kv().mod_revision(), 3);
  EXPECT_EQ(got[2].events[1].prev_kv().value(), "2");

  auto page = store_->EventsSince(1, 0, 100);
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->revisions.size(), 3u);
  EXPECT_EQ(page->next_rev, 4);
  for (size_t i = 0; i < 3; i++) {
    ASSERT_EQ(page->revisions[i].revision, got[i].revision);
    ASSERT_EQ(page->revisions[i].events.size(), got[i].events.size());
    for (size_t j = 0; j < got[i].events.size(); j++) {
      EXPECT_EQ(page->revisions[i].events[j].SerializeAsString(),
                got[i].events[j].SerializeAsString())
          << i << "/" << j;
    }
  }
  // Bounded: whole revisions, at least one.
  page = store_->EventsSince(2, 0, 1);
  ASSERT_EQ(page->revisions.size(), 1u);
  EXPECT_EQ(page->next_rev, 3);
  page = store_->EventsSince(3, 0, 1);
  ASSERT_EQ(page->revisions.size(), 1u);
  EXPECT_EQ(page->revisions[0].events.size(), 2u);
  EXPECT_EQ(page->next_rev, 4);
  page = store_->EventsSince(1, 3, 100);
  EXPECT_EQ(page->revisions.size(), 2u);
  ASSERT_TRUE(a_.Compact(2).ok());
  EXPECT_EQ(store_->EventsSince(1, 0, 100).status().message(), kErrCompacted);
  EXPECT_TRUE(store_->EventsSince(2, 0, 100).ok());
  store_->Subscribe(nullptr);
  a_.Put("c", "1");
  EXPECT_EQ(got.size(), 3u);
}

TEST_F(StateStoreTest, PrevValuesComeWithEventsOnlyWhereTheRequestReadThem) {
  std::vector<RevisionEvents> got;
  store_->Subscribe([&](const std::vector<RevisionEvents>& batch) {
    got.insert(got.end(), batch.begin(), batch.end());
  });
  a_.Put("a", "1");  // 1
  etcdserverpb::PutRequest p;
  p.set_key("a");
  p.set_value("2");
  p.set_prev_kv(true);
  ASSERT_TRUE(a_.Apply(p).ok());  // 2: the put read its previous value
  a_.Put("a", "3");               // 3
  a_.Put("b", "1");               // 4
  a_.Put("b", "2");               // 5
  ASSERT_EQ(got.size(), 5u);
  EXPECT_TRUE(got[1].prev_values);
  EXPECT_EQ(got[1].events[0].prev_kv().value(), "1");
  EXPECT_FALSE(got[2].prev_values);

  // Compacted and physically removed before a watcher asked: the event
  // loses its prev_kv (as etcd's watch), the rest of it stays.
  ASSERT_TRUE(a_.Compact(5).ok());
  ASSERT_TRUE(store_->CompactPhysicallyForTest().ok());
  ASSERT_TRUE(store_->LoadPrevValues(&got[2]).ok());
  EXPECT_TRUE(got[2].prev_values);
  EXPECT_FALSE(got[2].events[0].has_prev_kv());
  EXPECT_EQ(got[2].events[0].kv().value(), "3");
  // b's version at 4 was superseded at 5 <= 5: removed as well.
  ASSERT_TRUE(store_->LoadPrevValues(&got[4]).ok());
  EXPECT_FALSE(got[4].events[0].has_prev_kv());
}

// ---- server tables and etcd's starting revision ----

TEST(StateStoreMetaTest, MetaRecordsAreWrittenWithTheBatchAndSurviveReopen) {
  TempDir dir;
  {
    auto store = StateStore::Open(dir.sub("s"), StateStoreOptions{});
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE(
        (*store)->Apply({}, 1, {{"member/1", "a"}, {"member/2", "b"}, {"alarm/1", "x"}}).ok());
    ASSERT_TRUE((*store)->Apply({}, 2, {{"member/1", std::nullopt}}).ok());
  }
  auto store = StateStore::Open(dir.sub("s"), StateStoreOptions{});
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->applied_index(), 2u);
  auto members = (*store)->ReadMeta("member/");
  ASSERT_TRUE(members.ok()) << members.status();
  ASSERT_EQ(members->size(), 1u);
  EXPECT_EQ((*members)[0].first, "member/2");
  EXPECT_EQ((*members)[0].second, "b");
  auto all = (*store)->ReadMeta("");
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 2u);
  // Meta records are not keys.
  EXPECT_EQ((*store)->current_revision(), 0);
}

TEST(StateStoreMetaTest, InitialRevisionMakesTheFirstWriteRevisionTwoAsInEtcd) {
  TempDir dir;
  StateStoreOptions options;
  options.initial_revision = 1;
  auto store = StateStore::Open(dir.sub("s"), options);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->current_revision(), 1);
  RangeRequest get;
  get.set_key("a");
  auto empty = (*store)->Range(get);
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ(empty->header().revision(), 1);
  etcdserverpb::PutRequest put;
  put.set_key("a");
  put.set_value("1");
  auto results = (*store)->Apply({ApplyOp{put, 1}}, 1);
  ASSERT_TRUE(results.ok()) << results.status();
  ASSERT_TRUE((*results)[0].ok());
  EXPECT_EQ(std::get<etcdserverpb::PutResponse>(*(*results)[0]).header().revision(), 2);
}

}  // namespace
}  // namespace ganglion::storage
