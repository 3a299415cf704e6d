#include "raft/log.h"

#include <gtest/gtest.h>

namespace ganglion::raft {
namespace {

std::vector<Entry> Ents(std::vector<std::pair<Index, Term>> it) {
  std::vector<Entry> out;
  for (auto [i, t] : it) out.push_back(Entry{t, i, EntryType::kNormal, ""});
  return out;
}

TEST(RaftLog, MaybeAppendTruncatesConflictingSuffix) {
  MemoryStorage s;
  RaftLog log(&s, kNoLimit);
  log.Append(Ents({{1, 1}, {2, 2}, {3, 3}}));
  EXPECT_FALSE(log.MaybeAppend(3, 2, 3, Ents({{4, 4}}))) << "prev entry term mismatch";
  auto last = log.MaybeAppend(1, 1, 3, Ents({{2, 4}}));
  ASSERT_TRUE(last);
  EXPECT_EQ(*last, 2u);
  EXPECT_EQ(log.LastIndex(), 2u) << "the conflicting suffix is gone";
  EXPECT_EQ(log.LastTerm(), 4u);
  EXPECT_EQ(log.committed(), 2u) << "commit is min(leader commit, last new)";
}

TEST(RaftLog, FindConflictByTermSkipsHigherTerms) {
  MemoryStorage s;
  RaftLog log(&s, kNoLimit);
  log.Append(Ents({{1, 1}, {2, 1}, {3, 2}, {4, 2}, {5, 5}, {6, 5}}));
  EXPECT_EQ(log.FindConflictByTerm(6, 3), (std::pair<Index, Term>{4, 2}));
  EXPECT_EQ(log.FindConflictByTerm(6, 1), (std::pair<Index, Term>{2, 1}));
  EXPECT_EQ(log.FindConflictByTerm(6, 0), (std::pair<Index, Term>{0, 0}));
  EXPECT_EQ(log.FindConflictByTerm(4, 9), (std::pair<Index, Term>{4, 2}));
}

TEST(RaftLog, UnstableEntriesBecomeStableOnlyWithMatchingTerm) {
  MemoryStorage s;
  RaftLog log(&s, kNoLimit);
  log.Append(Ents({{1, 1}, {2, 1}}));
  log.StableTo(2, 7);  // the wrong term: nothing becomes stable
  EXPECT_EQ(log.UnstableEntries().size(), 2u);
  ASSERT_TRUE(s.Append(log.UnstableEntries()).ok());
  log.StableTo(2, 1);
  EXPECT_TRUE(log.UnstableEntries().empty());
  EXPECT_EQ(log.PersistedLastIndex(), 2u);
}

TEST(RaftLog, CommittedEntriesAreBoundedInBytes) {
  MemoryStorage s;
  RaftLog log(&s, 100);
  std::vector<Entry> ents;
  for (Index i = 1; i <= 10; i++)
    ents.push_back(Entry{1, i, EntryType::kNormal, std::string(40, 'x')});
  log.Append(ents);
  log.CommitTo(10);
  auto next = log.NextCommittedEntries();
  EXPECT_EQ(next.size(), 1u) << "64 bytes each: the second would pass the 100-byte bound";
  log.AppliedTo(next.back().index);
  EXPECT_TRUE(log.HasNextCommittedEntries());
}

TEST(RaftLog, IsUpToDateComparesLastTermThenIndex) {
  MemoryStorage s;
  RaftLog log(&s, kNoLimit);
  log.Append(Ents({{1, 1}, {2, 2}, {3, 2}}));
  EXPECT_TRUE(log.IsUpToDate(1, 3));
  EXPECT_TRUE(log.IsUpToDate(3, 2));
  EXPECT_FALSE(log.IsUpToDate(2, 2));
  EXPECT_FALSE(log.IsUpToDate(9, 1));
}

TEST(MemoryStorage, CompactSnapshotAndErrors) {
  MemoryStorage s;
  ASSERT_TRUE(s.Append(Ents({{1, 1}, {2, 1}, {3, 2}, {4, 2}})).ok());
  ASSERT_TRUE(s.CreateSnapshot(3, ConfState{{1}, {}, {}, {}, false}, "state").ok());
  ASSERT_TRUE(s.Compact(3).ok());
  EXPECT_EQ(s.FirstIndex(), 4u);
  EXPECT_EQ(*s.TermAt(3), 2u) << "the term of the compacted boundary is kept";
  EXPECT_TRUE(IsErrCompacted(s.TermAt(2).status()));
  EXPECT_TRUE(IsErrUnavailable(s.TermAt(5).status()));
  EXPECT_TRUE(IsErrCompacted(s.Entries(3, 5, kNoLimit).status()));
  EXPECT_FALSE(s.ApplySnapshot(Snapshot{"old", {{}, 2, 1}}).ok()) << "older snapshot refused";
  // Overwriting a suffix keeps what precedes it.
  ASSERT_TRUE(s.Append(Ents({{4, 3}, {5, 3}})).ok());
  EXPECT_EQ(s.LastIndex(), 5u);
  EXPECT_EQ(*s.TermAt(4), 3u);
}

}  // namespace
}  // namespace ganglion::raft
