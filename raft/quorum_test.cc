#include "raft/quorum.h"

#include <gtest/gtest.h>

namespace ganglion::raft {
namespace {

AckedIndexFn Acks(std::map<NodeId, Index> m) {
  return [m](NodeId id) -> std::optional<Index> {
    auto it = m.find(id);
    if (it == m.end()) return std::nullopt;
    return it->second;
  };
}

TEST(MajorityConfig, CommittedIndexIsHeldByAMajority) {
  MajorityConfig c({1, 2, 3});
  EXPECT_EQ(c.CommittedIndex(Acks({{1, 10}, {2, 5}, {3, 1}})), 5u);
  EXPECT_EQ(c.CommittedIndex(Acks({{1, 10}})), 0u) << "missing acks count as zero";
  MajorityConfig four({1, 2, 3, 4});
  EXPECT_EQ(four.CommittedIndex(Acks({{1, 10}, {2, 9}, {3, 8}, {4, 1}})), 8u);
  EXPECT_EQ(MajorityConfig().CommittedIndex(Acks({})), UINT64_MAX);
}

TEST(MajorityConfig, Vote) {
  MajorityConfig c({1, 2, 3});
  EXPECT_EQ(c.Vote({{1, true}}), VoteResult::kPending);
  EXPECT_EQ(c.Vote({{1, true}, {2, true}}), VoteResult::kWon);
  EXPECT_EQ(c.Vote({{1, true}, {2, false}}), VoteResult::kPending);
  EXPECT_EQ(c.Vote({{1, false}, {2, false}}), VoteResult::kLost);
  EXPECT_EQ(c.Vote({{9, true}, {8, true}}), VoteResult::kPending) << "non-members do not count";
  EXPECT_EQ(MajorityConfig().Vote({}), VoteResult::kWon);
}

TEST(JointConfig, BothHalvesMustAgree) {
  JointConfig j{MajorityConfig({1, 4, 5}), MajorityConfig({1, 2, 3})};
  EXPECT_EQ(j.CommittedIndex(Acks({{1, 9}, {2, 9}, {3, 9}, {4, 1}, {5, 1}})), 1u);
  EXPECT_EQ(j.CommittedIndex(Acks({{1, 9}, {2, 9}, {3, 9}, {4, 7}, {5, 1}})), 7u);
  EXPECT_EQ(j.Vote({{1, true}, {2, true}}), VoteResult::kPending);
  EXPECT_EQ(j.Vote({{1, true}, {2, true}, {4, true}}), VoteResult::kWon);
  EXPECT_EQ(j.Vote({{2, false}, {3, false}}), VoteResult::kLost);
  EXPECT_EQ(j.Describe(), "(1 4 5)&&(1 2 3)");
}

}  // namespace
}  // namespace ganglion::raft
