// The watch, lock and lease checkers on hand-written observations: each
// violation they exist to catch, and the valid cases next to it.
#include "jepsen/check/events.h"

#include <gtest/gtest.h>

namespace ganglion::jepsen {
namespace {

WatcherLog Log(int w, std::vector<WatchEvent> events) {
  return WatcherLog{w, std::move(events), true, ""};
}

TEST(WatchCheckerTest, IdenticalCompleteSequencesAreValid) {
  std::vector<WatchEvent> seq = {{2, "w/a", "1"}, {3, "w/b", "2"}, {5, "w/a", "3"}};
  auto r = CheckWatch({Log(0, seq), Log(1, seq)}, {{7, 3, "w/b", "2"}});
  EXPECT_EQ(r.verdict, Verdict::kValid);
}

TEST(WatchCheckerTest, GapDuplicateDisagreementAndLostWrite) {
  std::vector<WatchEvent> full = {{2, "w/a", "1"}, {3, "w/b", "2"}, {5, "w/a", "3"}};
  std::vector<WatchEvent> gap = {{2, "w/a", "1"}, {5, "w/a", "3"}};
  auto r = CheckWatch({Log(0, full), Log(1, gap)}, {});
  EXPECT_EQ(r.verdict, Verdict::kInvalid);
  EXPECT_NE(r.problems.at(0).find("gap"), std::string::npos) << r.problems.at(0);

  std::vector<WatchEvent> dup = {{2, "w/a", "1"}, {2, "w/a", "1"}};
  EXPECT_EQ(CheckWatch({Log(0, dup)}, {}).verdict, Verdict::kInvalid);

  std::vector<WatchEvent> other = {{2, "w/a", "X"}};
  EXPECT_EQ(CheckWatch({Log(0, {{2, "w/a", "1"}}), Log(1, other)}, {}).verdict, Verdict::kInvalid);

  auto lost = CheckWatch({Log(0, full)}, {{9, 4, "w/c", "7"}});
  EXPECT_EQ(lost.verdict, Verdict::kInvalid);
  EXPECT_EQ(lost.ops, std::vector<int64_t>{9});

  WatcherLog stuck = Log(0, full);
  stuck.complete = false;
  EXPECT_EQ(CheckWatch({stuck}, {}).verdict, Verdict::kInvalid);
}

TEST(LockCheckerTest, ContiguousIncreasingHoldersAreValid) {
  auto r = CheckFencedWrites(
      {{1, 0, 10, 11}, {2, 0, 10, 12}, {3, 1, 20, 21}, {4, 1, 20, 22}, {5, 0, 30, 31}});
  EXPECT_EQ(r.verdict, Verdict::kValid);
}

TEST(LockCheckerTest, InterleavedHoldersAreInvalid) {
  // Holder 10 writes, holder 20 writes, holder 10 writes again.
  auto r = CheckFencedWrites({{1, 0, 10, 11}, {2, 1, 20, 12}, {3, 0, 10, 13}});
  EXPECT_EQ(r.verdict, Verdict::kInvalid);
  EXPECT_NE(r.problems.at(0).find("interleave"), std::string::npos) << r.problems.at(0);
}

TEST(LeaseCheckerTest, VanishedWhileKeptAliveAndPresentAfterExpiry) {
  LeaseLife l;
  l.lease_id = 1;
  l.key = "ls/0-0";
  l.ttl_s = 3;
  l.put_end_ns = 100;
  l.renewal_start_ns = {1'000'000'000, 2'000'000'000};
  l.last_renewal_end_ns = 2'100'000'000;
  l.stopped_ns = 3'000'000'000;
  l.reads = {{1, 200, 300, true}, {2, 1'500'000'000, 1'600'000'000, true}};
  EXPECT_EQ(CheckLeases({l}, 1'000'000'000).verdict, Verdict::kValid);

  LeaseLife vanished = l;
  vanished.reads.push_back({3, 1'200'000'000, 1'300'000'000, false});  // before renewal at 2 s
  EXPECT_EQ(CheckLeases({vanished}, 1'000'000'000).verdict, Verdict::kInvalid);

  LeaseLife gone_later = l;  // absent after the last renewal's proof: allowed
  gone_later.reads.push_back({3, 2'500'000'000, 2'600'000'000, false});
  EXPECT_EQ(CheckLeases({gone_later}, 1'000'000'000).verdict, Verdict::kValid);

  LeaseLife immortal = l;  // still there 10 s after the last renewal
  immortal.reads.push_back({4, 12'100'000'000, 12'200'000'000, true});
  EXPECT_EQ(CheckLeases({immortal}, 1'000'000'000).verdict, Verdict::kInvalid);
}

}  // namespace
}  // namespace ganglion::jepsen
