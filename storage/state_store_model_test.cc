// Randomized test: the store against a plain in-memory model of etcd's MVCC
// (key -> version history), compared with Range at random revisions and
// ranges, through compactions and partial physical removal.
#include <gtest/gtest.h>

#include <array>
#include <functional>
#include <map>
#include <optional>
#include <random>

#include "storage/state_store.h"
#include "storage/state_store_testing.h"

namespace ganglion::storage {
namespace {

using testing::OpenOrDie;
using testing::RangeReq;
using testing::TempDir;

struct ModelVersion {
  int64_t rev = 0;
  bool tombstone = false;
  int64_t create = 0, version = 0, lease = 0;
  std::string value;
};

class Model {
 public:
  int64_t rev() const { return rev_; }

  std::optional<ModelVersion> At(const std::string& key, int64_t rev) const {
    auto it = keys_.find(key);
    if (it == keys_.end()) return std::nullopt;
    std::optional<ModelVersion> out;
    for (const ModelVersion& v : it->second) {
      if (v.rev <= rev) out = v;
    }
    if (out && out->tombstone) return std::nullopt;
    return out;
  }

  void Put(const std::string& key, const std::string& value, int64_t lease) {
    PutMany({{key, value}}, lease);
  }

  // Puts of distinct keys at one revision (a txn).
  void PutMany(const std::vector<std::pair<std::string, std::string>>& puts, int64_t lease = 0) {
    rev_++;
    for (const auto& [key, value] : puts) {
      auto cur = At(key, rev_ - 1);
      keys_[key].push_back(ModelVersion{rev_, false, cur ? cur->create : rev_,
                                        cur ? cur->version + 1 : 1, lease, value});
    }
  }

  int64_t DeleteRange(const std::string& key, const std::string& end) {
    std::vector<std::string> victims;
    for (const auto& [k, _] : keys_) {
      if (InRange(k, key, end) && At(k, rev_)) victims.push_back(k);
    }
    if (victims.empty()) return 0;
    rev_++;
    for (const auto& k : victims) keys_[k].push_back(ModelVersion{rev_, true, 0, 0, 0, ""});
    return static_cast<int64_t>(victims.size());
  }

  static bool InRange(const std::string& k, const std::string& key, const std::string& end) {
    if (end.empty()) return k == key;
    if (end == std::string("\0", 1)) return k >= key;
    return k >= key && k < end;
  }

  std::vector<std::pair<std::string, ModelVersion>> Range(const std::string& key,
                                                          const std::string& end,
                                                          int64_t rev) const {
    std::vector<std::pair<std::string, ModelVersion>> out;
    for (const auto& [k, _] : keys_) {
      if (!InRange(k, key, end)) continue;
      if (auto v = At(k, rev)) out.emplace_back(k, *v);
    }
    return out;
  }

 private:
  int64_t rev_ = 0;
  std::map<std::string, std::vector<ModelVersion>> keys_;
};

class ModelTest : public ::testing::TestWithParam<uint32_t> {};

TEST_P(ModelTest, RandomOpsMatchModel) {
  std::mt19937 rng(GetParam());
  TempDir dir;
  StateStoreOptions o;
  o.background_compaction = GetParam() % 2 == 0;
  o.compaction_batch_entries_max = 7;
  // Apply's live-record cache: none, smaller than the key set (generations
  // roll over all the time), and the default (every key cached).
  o.live_cache_keys = std::array<size_t, 3>{0, 2, 1 << 15}[GetParam() % 3];
  auto store = OpenOrDie(dir.sub("state"), o);
  Model model;
  int64_t compact = 0;
  const std::vector<std::string> keys = {
      "a", std::string("a\0", 2),  std::string("a\0\0", 3), "ab", "abc", "b", "ba",
      "c", std::string("c\xff", 2)};
  auto pick = [&] { return keys[rng() % keys.size()]; };
  auto pick_end = [&]() -> std::string {
    switch (rng() % 4) {
      case 0:
        return "";
      case 1:
        return std::string("\0", 1);
      default:
        return pick();
    }
  };
  // Ops are applied in batches (one Apply, one RocksDB write batch) of 1-6;
  // each op's expected response is computed from the model when generated,
  // since later ops in a batch see the earlier ones.
  std::vector<ApplyOp> batch;
  std::vector<std::function<void(const ApplyResult&)>> checks;
  raft::Index index = 0;
  size_t batch_size = 1;
  auto expect_range = [&](const etcdserverpb::RangeResponse& got,
                          const std::vector<std::pair<std::string, ModelVersion>>& want,
                          const std::string& what) {
    ASSERT_EQ(got.count(), static_cast<int64_t>(want.size())) << what;
    ASSERT_EQ(got.kvs_size(), static_cast<int>(want.size())) << what;
    for (size_t j = 0; j < want.size(); j++) {
      const auto& kv = got.kvs(static_cast<int>(j));
      ASSERT_EQ(kv.key(), want[j].first) << what;
      ASSERT_EQ(kv.value(), want[j].second.value) << what;
      ASSERT_EQ(kv.mod_revision(), want[j].second.rev) << what;
      ASSERT_EQ(kv.create_revision(), want[j].second.create) << what;
      ASSERT_EQ(kv.version(), want[j].second.version) << what;
      ASSERT_EQ(kv.lease(), want[j].second.lease) << what;
    }
  };
  for (int step = 0; step < 600; step++) {
    int op = static_cast<int>(rng() % 100);
    const std::string what = "step " + std::to_string(step);
    if (op < 55) {
      std::string k = pick(), v = "v" + std::to_string(step);
      int64_t lease = static_cast<int64_t>(rng() % 3);
      etcdserverpb::PutRequest p;
      p.set_key(k);
      p.set_value(v);
      p.set_lease(lease);
      batch.push_back(ApplyOp{p, ++index});
      model.Put(k, v, lease);
      checks.push_back([rev = model.rev(), what](const ApplyResult& r) {
        ASSERT_TRUE(r.ok()) << r.status();
        ASSERT_EQ(std::get<etcdserverpb::PutResponse>(*r).header().revision(), rev) << what;
      });
    } else if (op < 75) {
      std::string k = pick(), e = pick_end();
      etcdserverpb::DeleteRangeRequest d;
      d.set_key(k);
      d.set_range_end(e);
      batch.push_back(ApplyOp{d, ++index});
      int64_t n = model.DeleteRange(k, e);
      checks.push_back([n, rev = model.rev(), what](const ApplyResult& r) {
        ASSERT_TRUE(r.ok()) << r.status();
        const auto& resp = std::get<etcdserverpb::DeleteRangeResponse>(*r);
        ASSERT_EQ(resp.deleted(), n) << what;
        ASSERT_EQ(resp.header().revision(), rev) << what;
      });
    } else if (op < 85) {
      // If the key's version equals a guess, put one or two keys, else delete
      // one; either way then read a range inside the txn.
      std::string k = pick();
      int64_t guess = static_cast<int64_t>(rng() % 3);
      etcdserverpb::TxnRequest t;
      auto* c = t.add_compare();
      c->set_key(k);
      c->set_target(etcdserverpb::Compare::VERSION);
      c->set_result(etcdserverpb::Compare::EQUAL);
      c->set_version(guess);
      std::string k1 = pick(), k2 = pick(), rk = pick(), re = pick_end();
      auto* p1 = t.add_success()->mutable_request_put();
      p1->set_key(k1);
      p1->set_value("t1");
      if (k2 != k1) {
        auto* p2 = t.add_success()->mutable_request_put();
        p2->set_key(k2);
        p2->set_value("t2");
      }
      *t.add_success()->mutable_request_range() = RangeReq(rk, re);
      t.add_failure()->mutable_request_delete_range()->set_key(k1);
      *t.add_failure()->mutable_request_range() = RangeReq(rk, re);
      batch.push_back(ApplyOp{t, ++index});
      auto cur = model.At(k, model.rev());
      bool ok = (cur ? cur->version : 0) == guess;
      if (ok) {
        std::vector<std::pair<std::string, std::string>> puts = {{k1, "t1"}};
        if (k2 != k1) puts.emplace_back(k2, "t2");
        model.PutMany(puts);
      } else {
        model.DeleteRange(k1, "");
      }
      auto want = model.Range(rk, re, model.rev());
      checks.push_back([ok, want, rev = model.rev(), what, &expect_range](const ApplyResult& r) {
        ASSERT_TRUE(r.ok()) << r.status();
        const auto& resp = std::get<etcdserverpb::TxnResponse>(*r);
        ASSERT_EQ(resp.succeeded(), ok) << what;
        ASSERT_EQ(resp.header().revision(), rev) << what;
        const auto& ops = resp.responses();
        expect_range(ops[ops.size() - 1].response_range(), want, what + " txn range");
      });
    } else if (op < 90) {
      int64_t cur = model.rev();
      if (cur > compact) {
        int64_t target = compact + 1 + static_cast<int64_t>(rng() % (cur - compact));
        etcdserverpb::CompactionRequest cr;
        cr.set_revision(target);
        batch.push_back(ApplyOp{cr, ++index});
        checks.push_back([](const ApplyResult& r) { ASSERT_TRUE(r.ok()) << r.status(); });
        compact = target;
      }
    } else if (!o.background_compaction) {
      ASSERT_TRUE(store->CompactPhysicallyForTest(1).ok());
    }
    if (batch.size() < batch_size) continue;
    auto results = store->Apply(batch, index);
    ASSERT_TRUE(results.ok()) << results.status();
    ASSERT_EQ(results->size(), checks.size());
    for (size_t i = 0; i < checks.size(); i++) {
      checks[i]((*results)[i]);
      if (::testing::Test::HasFatalFailure()) return;
    }
    batch.clear();
    checks.clear();
    batch_size = 1 + rng() % 6;
    ASSERT_EQ(store->current_revision(), model.rev());
    ASSERT_EQ(store->compact_revision(), compact);
    if (compact > 1) {
      auto r = store->Range(RangeReq("a", "", compact - 1));
      ASSERT_EQ(r.status().message(), kErrCompacted);
    }
    // Check a few random reads.
    for (int i = 0; i < 3; i++) {
      std::string k = pick(), e = pick_end();
      int64_t lo = std::max<int64_t>(compact, 1);
      int64_t rev =
          model.rev() < lo ? 0 : lo + static_cast<int64_t>(rng() % (model.rev() - lo + 1));
      auto got = store->Range(RangeReq(k, e, rev));
      ASSERT_TRUE(got.ok()) << got.status() << " rev " << rev << " compact " << compact;
      auto want = model.Range(k, e, rev == 0 ? model.rev() : rev);
      expect_range(*got, want, what + " rev " + std::to_string(rev));
      if (::testing::Test::HasFatalFailure()) return;
      // The same read with a limit: a prefix of it, `more` and the full count.
      int64_t limit = 1 + static_cast<int64_t>(rng() % 3);
      auto req = RangeReq(k, e, rev);
      req.set_limit(limit);
      auto limited = store->Range(req);
      ASSERT_TRUE(limited.ok()) << limited.status();
      ASSERT_EQ(limited->count(), static_cast<int64_t>(want.size())) << what;
      ASSERT_EQ(limited->more(), static_cast<int64_t>(want.size()) > limit) << what;
      ASSERT_EQ(limited->kvs_size(), std::min<int64_t>(limit, want.size())) << what;
      for (int j = 0; j < limited->kvs_size(); j++) {
        ASSERT_EQ(limited->kvs(j).key(), want[j].first) << what;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Seeds, ModelTest, ::testing::Range(1u, 17u));

}  // namespace
}  // namespace ganglion::storage
