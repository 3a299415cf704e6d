// Reads at random retained revisions while the apply thread writes and
// compacts and the background thread removes history: every read must see
// exactly the history at its revision, or fail with ErrCompacted.
#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <thread>

#include "storage/state_store.h"
#include "storage/state_store_testing.h"

namespace ganglion::storage {
namespace {

using testing::OpenOrDie;
using testing::RangeReq;
using testing::TempDir;

constexpr int kKeys = 20;

std::string Key(int j) {
  return "k" + std::string(1, static_cast<char>('a' + j));
}

TEST(StateStoreConcurrencyTest, ReadsDuringApplyAndCompactionSeeExactHistory) {
  TempDir dir;
  StateStoreOptions o;
  o.compaction_batch_entries_max = 50;
  auto store = OpenOrDie(dir.sub("state"), o);
  constexpr int kRevs = 3000;
  std::atomic<bool> done{false};
  std::atomic<int64_t> reads{0};

  auto reader = [&](uint32_t seed) {
    std::mt19937 rng(seed);
    while (!done.load()) {
      int64_t cur = store->current_revision();
      int64_t compact = store->compact_revision();
      if (cur == 0) continue;
      int64_t lo = std::max<int64_t>(compact, 1);
      int64_t rev = lo + static_cast<int64_t>(rng() % (cur - lo + 1));
      auto r = store->Range(RangeReq("k", "l", rev));
      if (!r.ok()) {
        ASSERT_EQ(r.status().message(), kErrCompacted);
        continue;
      }
      // Key j is written at revisions i with i % kKeys == j (i >= 1).
      ASSERT_EQ(r->kvs_size(), std::min<int64_t>(rev, kKeys)) << rev;
      for (const auto& kv : r->kvs()) {
        int j = kv.key()[1] - 'a';
        int64_t want = rev - ((rev - j) % kKeys + kKeys) % kKeys;
        ASSERT_EQ(kv.mod_revision(), want) << "key " << kv.key() << " rev " << rev;
        ASSERT_EQ(kv.value(), std::to_string(want));
        ASSERT_EQ(kv.version(), (want - 1) / kKeys + 1);
      }
      reads++;
    }
  };
  std::thread r1(reader, 1), r2(reader, 2);
  raft::Index index = 0;
  for (int64_t i = 1; i <= kRevs;) {
    std::vector<ApplyOp> ops;
    for (int n = 0; n < 10 && i <= kRevs; n++, i++) {
      etcdserverpb::PutRequest p;
      p.set_key(Key(static_cast<int>(i % kKeys)));
      p.set_value(std::to_string(i));
      ops.push_back(ApplyOp{p, ++index});
    }
    if (i % 200 == 1 && i > 300) {
      etcdserverpb::CompactionRequest c;
      c.set_revision(i - 250);
      ops.push_back(ApplyOp{c, ++index});
    }
    auto res = store->Apply(ops, index);
    ASSERT_TRUE(res.ok()) << res.status();
    for (const auto& r : *res) ASSERT_TRUE(r.ok()) << r.status();
  }
  store->WaitForPhysicalCompaction();
  done = true;
  r1.join();
  r2.join();
  EXPECT_GT(reads.load(), 100);
  EXPECT_GT(store->compact_revision(), 2000);
  // Only versions after the compaction (plus one per key) remain.
  EXPECT_LE(*store->CountVersionsForTest(),
            static_cast<uint64_t>(kRevs - store->compact_revision() + kKeys));
}

}  // namespace
}  // namespace ganglion::storage
