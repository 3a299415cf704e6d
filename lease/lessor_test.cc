#include "lease/lessor.h"

#include <gtest/gtest.h>

namespace ganglion::lease {
namespace {

using std::chrono::seconds;

TEST(Lessor, GrantRaisesShortTtlsToTheMinimumAndRefusesHugeOnes) {
  Lessor l(2);
  EXPECT_EQ(*l.EffectiveTtl(1), 2);
  EXPECT_EQ(*l.EffectiveTtl(600), 600);
  EXPECT_EQ(l.EffectiveTtl(kMaxLeaseTtlSeconds + 1).status().message(), kErrLeaseTtlTooLarge);
  const auto now = Clock::now();
  ASSERT_TRUE(l.Grant(7, 10, now).ok());
  EXPECT_EQ(l.Grant(7, 10, now).message(), kErrLeaseExist);
  EXPECT_TRUE(l.Exists(7));
  EXPECT_FALSE(l.Exists(8));
}

TEST(Lessor, KeysFollowPutsDeletesAndRevocation) {
  Lessor l(2);
  const auto now = Clock::now();
  ASSERT_TRUE(l.Grant(1, 10, now).ok());
  ASSERT_TRUE(l.Grant(2, 10, now).ok());
  l.OnPut("a", 1);
  l.OnPut("b", 1);
  l.OnPut("c", 2);
  l.OnPut("b", 2);  // moves to lease 2
  l.OnPut("d", 0);
  l.OnDelete("c");
  EXPECT_EQ(l.Keys(1), (std::vector<std::string>{"a"}));
  EXPECT_EQ(l.Keys(2), (std::vector<std::string>{"b"}));
  EXPECT_EQ(l.LeaseOf("b"), 2);
  EXPECT_EQ(l.LeaseOf("d"), 0);
  EXPECT_EQ(l.Revoke(1), (std::vector<std::string>{"a"}));
  EXPECT_FALSE(l.Exists(1));
  l.OnPut("a", 2);
  EXPECT_EQ(l.Keys(2), (std::vector<std::string>{"a", "b"}));
}

TEST(Lessor, IdsListsTheLiveLeasesInOrder) {
  Lessor l(2);
  const auto now = Clock::now();
  for (int64_t id : {40, 7, 900, 3}) ASSERT_TRUE(l.Grant(id, 10, now).ok());
  l.Revoke(900);
  EXPECT_EQ(l.Ids(), (std::vector<int64_t>{3, 7, 40}));
  EXPECT_EQ(l.size(), 3u);
}

TEST(Lessor, OnlyThePrimaryExpiresAndRenews) {
  Lessor l(2);
  const auto t0 = Clock::now();
  ASSERT_TRUE(l.Grant(1, 5, t0).ok());
  EXPECT_TRUE(l.Expired(t0 + seconds(100), 10, seconds(1)).empty());
  EXPECT_FALSE(l.Renew(1, t0).ok());
  // A new leader gives the lease its TTL plus the extension.
  l.Promote(t0, seconds(1));
  EXPECT_TRUE(l.Expired(t0 + seconds(5), 10, seconds(1)).empty());
  EXPECT_EQ(l.Expired(t0 + seconds(6), 10, seconds(1)), (std::vector<int64_t>{1}));
  // In flight: not handed out again until retry_after passed.
  EXPECT_TRUE(l.Expired(t0 + seconds(6), 10, seconds(1)).empty());
  EXPECT_EQ(l.Expired(t0 + seconds(8), 10, seconds(1)), (std::vector<int64_t>{1}));
  // An expired lease cannot be renewed back to life.
  EXPECT_FALSE(l.Renew(1, t0 + seconds(8)).ok());
  l.Revoke(1);
  EXPECT_TRUE(l.Expired(t0 + seconds(100), 10, seconds(1)).empty());
}

TEST(Lessor, RenewRestartsTheCountdown) {
  Lessor l(2);
  const auto t0 = Clock::now();
  l.Promote(t0, seconds(0));
  ASSERT_TRUE(l.Grant(1, 5, t0).ok());
  for (int i = 1; i <= 10; i++) {
    EXPECT_EQ(*l.Renew(1, t0 + seconds(4 * i)), 5);
    EXPECT_TRUE(l.Expired(t0 + seconds(4 * i + 4), 10, seconds(1)).empty());
  }
  auto ttl = l.GetTimeToLive(1, false, t0 + seconds(42));
  ASSERT_TRUE(ttl.ok());
  EXPECT_EQ(ttl->granted_ttl_seconds, 5);
  EXPECT_EQ(ttl->ttl_seconds, 3);
  EXPECT_EQ(l.Expired(t0 + seconds(46), 10, seconds(1)), (std::vector<int64_t>{1}));
}

TEST(Lessor, CheckpointedRemainingTtlSurvivesAFailover) {
  Lessor l(2);
  const auto t0 = Clock::now();
  l.Promote(t0, seconds(0));
  ASSERT_TRUE(l.Grant(1, 3600, t0).ok());
  // Ten minutes later the leader records what is left.
  auto due = l.DueCheckpoints(t0 + seconds(600), 100);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].first, 1);
  EXPECT_EQ(due[0].second, 3000);
  ASSERT_TRUE(l.Checkpoint(1, due[0].second).ok());
  // Not again within the interval.
  EXPECT_TRUE(l.DueCheckpoints(t0 + seconds(700), 100).empty());
  // A new leader starts from the checkpoint, not the full hour.
  l.Demote();
  const auto t1 = t0 + seconds(610);
  l.Promote(t1, seconds(1));
  EXPECT_TRUE(l.Expired(t1 + seconds(3000), 10, seconds(1)).empty());
  EXPECT_EQ(l.Expired(t1 + seconds(3002), 10, seconds(1)), (std::vector<int64_t>{1}));
}

TEST(Lessor, RenewalsDoNotPushACheckpointBack) {
  Lessor l(2, seconds(300));
  const auto t0 = Clock::now();
  l.Promote(t0, seconds(0));
  ASSERT_TRUE(l.Grant(1, 3600, t0).ok());
  // Kept alive every 10 s: the checkpoint still comes 300 s after the grant.
  for (int s = 10; s < 300; s += 10) ASSERT_TRUE(l.Renew(1, t0 + seconds(s)).ok());
  EXPECT_TRUE(l.DueCheckpoints(t0 + seconds(299), 100).empty());
  auto due = l.DueCheckpoints(t0 + seconds(300), 100);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].second, 3590);  // renewed at 290 s for 3600 s
  // The next one an interval later, and only one per lease.
  ASSERT_TRUE(l.Renew(1, t0 + seconds(310)).ok());
  EXPECT_TRUE(l.DueCheckpoints(t0 + seconds(599), 100).empty());
  EXPECT_EQ(l.DueCheckpoints(t0 + seconds(600), 100).size(), 1u);
}

TEST(Lessor, OnlyLeasesLongerThanTheIntervalAreCheckpointedAndOnlyOnThePrimary) {
  Lessor l(2, seconds(300));
  const auto t0 = Clock::now();
  // A follower queues nothing.
  ASSERT_TRUE(l.Grant(1, 3600, t0).ok());
  EXPECT_TRUE(l.DueCheckpoints(t0 + seconds(3000), 100).empty());
  l.Promote(t0, seconds(0));
  for (int64_t id = 2; id <= 1001; id++) ASSERT_TRUE(l.Grant(id, 100, t0).ok());
  auto due = l.DueCheckpoints(t0 + seconds(300), 2000);
  ASSERT_EQ(due.size(), 1u);  // the hour-long lease; the 100 s ones never
  EXPECT_EQ(due[0].first, 1);
  // A revoked lease's queued checkpoint is dropped; a demoted lessor has none.
  ASSERT_TRUE(l.Grant(2000, 3600, t0 + seconds(300)).ok());
  l.Revoke(2000);
  EXPECT_TRUE(l.DueCheckpoints(t0 + seconds(600), 100).size() == 1u);  // lease 1 only
  l.Demote();
  EXPECT_TRUE(l.DueCheckpoints(t0 + seconds(3000), 100).empty());
}

TEST(Lessor, ARenewalAsksOnceToClearAStaleCheckpoint) {
  Lessor l(2, seconds(300));
  const auto t0 = Clock::now();
  l.Promote(t0, seconds(0));
  ASSERT_TRUE(l.Grant(1, 3600, t0).ok());
  bool clear = true;
  ASSERT_TRUE(l.Renew(1, t0 + seconds(10), &clear).ok());
  EXPECT_FALSE(clear);  // nothing recorded yet: the full TTL is what a new leader uses
  ASSERT_TRUE(l.Checkpoint(1, 3290).ok());
  ASSERT_TRUE(l.Renew(1, t0 + seconds(320), &clear).ok());
  EXPECT_TRUE(clear);
  ASSERT_TRUE(l.Renew(1, t0 + seconds(330), &clear).ok());
  EXPECT_FALSE(clear);  // already asked
  // The next recorded checkpoint makes the following renewal ask again; a
  // checkpoint of 0 (the clear itself) leaves nothing to clear.
  ASSERT_TRUE(l.Checkpoint(1, 3300).ok());
  ASSERT_TRUE(l.Renew(1, t0 + seconds(640), &clear).ok());
  EXPECT_TRUE(clear);
  ASSERT_TRUE(l.Checkpoint(1, 0).ok());
  ASSERT_TRUE(l.Renew(1, t0 + seconds(650), &clear).ok());
  EXPECT_FALSE(clear);
  // A new leader starts from the full hour again.
  l.Demote();
  l.Promote(t0 + seconds(700), seconds(0));
  EXPECT_TRUE(l.Expired(t0 + seconds(4299), 10, seconds(1)).empty());
  EXPECT_EQ(l.Expired(t0 + seconds(4300), 10, seconds(1)), (std::vector<int64_t>{1}));
}

TEST(Lessor, ManyExpiriesAreHandedOutInBoundedBatchesOldestFirst) {
  Lessor l(2);
  const auto t0 = Clock::now();
  l.Promote(t0, seconds(0));
  for (int64_t id = 1; id <= 10000; id++) ASSERT_TRUE(l.Grant(id, 2 + id % 7, t0).ok());
  auto first = l.Expired(t0 + seconds(60), 1000, seconds(10));
  ASSERT_EQ(first.size(), 1000u);
  EXPECT_EQ(first[0] % 7, 0);  // the shortest TTLs first
  size_t total = first.size();
  for (int round = 0; round < 20; round++) {
    total += l.Expired(t0 + seconds(60), 1000, seconds(10)).size();
  }
  EXPECT_EQ(total, 10000u);
}

}  // namespace
}  // namespace ganglion::lease
