// Randomized test: the store against a plain in-memory model of etcd's MVCC
// (key -> version history), compared with Range at random revisions and
// ranges, through compactions and partial physical removal.
#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <random>

#include "storage/state_store.h"
#include "storage/state_store_testing.h"

namespace ganglion::storage {
namespace {

using testing::Applier;
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
  auto store = OpenOrDie(dir.sub("state"), o);
  Applier a(store.get());
  Model model;
  int64_t compact = 0;
  const std::vector<std::string> keys = {"a",  std::string("a\0", 2), std::string("a\0\0", 3),
                                         "ab", "abc",                  "b",
                                         "ba", "c",                    std::string("c\xff", 2)};
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
  for (int step = 0; step < 600; step++) {
    int op = static_cast<int>(rng() % 100);
    if (op < 55) {
      std::string k = pick(), v = "v" + std::to_string(step);
      int64_t lease = static_cast<int64_t>(rng() % 3);
      auto r = a.Put(k, v, lease);
      model.Put(k, v, lease);
      ASSERT_EQ(r.header().revision(), model.rev());
    } else if (op < 75) {
      std::string k = pick(), e = pick_end();
      auto r = a.Delete(k, e);
      int64_t n = model.DeleteRange(k, e);
      ASSERT_EQ(r.deleted(), n) << step;
      ASSERT_EQ(r.header().revision(), model.rev());
    } else if (op < 85) {
      // A txn: if the key's version equals a guess, put two keys, else delete one.
      std::string k = pick();
      int64_t guess = static_cast<int64_t>(rng() % 3);
      etcdserverpb::TxnRequest t;
      auto* c = t.add_compare();
      c->set_key(k);
      c->set_target(etcdserverpb::Compare::VERSION);
      c->set_result(etcdserverpb::Compare::EQUAL);
      c->set_version(guess);
      std::string k1 = pick(), k2 = pick();
      auto* p1 = t.add_success()->mutable_request_put();
      p1->set_key(k1);
      p1->set_value("t1");
      if (k2 != k1) {
        auto* p2 = t.add_success()->mutable_request_put();
        p2->set_key(k2);
        p2->set_value("t2");
      }
      t.add_failure()->mutable_request_delete_range()->set_key(k1);
      auto r = a.Txn(t);
      ASSERT_TRUE(r.ok()) << r.status();
      auto cur = model.At(k, model.rev());
      bool ok = (cur ? cur->version : 0) == guess;
      ASSERT_EQ(r->succeeded(), ok) << step;
      if (ok) {
        std::vector<std::pair<std::string, std::string>> puts = {{k1, "t1"}};
        if (k2 != k1) puts.emplace_back(k2, "t2");
        model.PutMany(puts);
      } else {
        model.DeleteRange(k1, "");
      }
      ASSERT_EQ(r->header().revision(), model.rev());
    } else if (op < 90) {
      int64_t cur = model.rev();
      if (cur > compact) {
        int64_t target = compact + 1 + static_cast<int64_t>(rng() % (cur - compact));
        ASSERT_TRUE(a.Compact(target).ok());
        compact = target;
      }
    } else if (!o.background_compaction) {
      ASSERT_TRUE(store->CompactPhysicallyForTest(1).ok());
    }
    // Check a few random reads.
    for (int i = 0; i < 3; i++) {
      std::string k = pick(), e = pick_end();
      int64_t lo = std::max<int64_t>(compact, 1);
      int64_t rev = model.rev() < lo ? 0 : lo + static_cast<int64_t>(rng() % (model.rev() - lo + 1));
      auto got = store->Range(RangeReq(k, e, rev));
      ASSERT_TRUE(got.ok()) << got.status() << " rev " << rev << " compact " << compact;
      auto want = model.Range(k, e, rev == 0 ? model.rev() : rev);
      ASSERT_EQ(got->count(), static_cast<int64_t>(want.size())) << "step " << step << " rev " << rev;
      for (size_t j = 0; j < want.size(); j++) {
        const auto& kv = got->kvs(static_cast<int>(j));
        ASSERT_EQ(kv.key(), want[j].first);
        ASSERT_EQ(kv.value(), want[j].second.value);
        ASSERT_EQ(kv.mod_revision(), want[j].second.rev);
        ASSERT_EQ(kv.create_revision(), want[j].second.create);
        ASSERT_EQ(kv.version(), want[j].second.version);
        ASSERT_EQ(kv.lease(), want[j].second.lease);
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Seeds, ModelTest, ::testing::Range(1u, 9u));

}  // namespace
}  // namespace ganglion::storage
