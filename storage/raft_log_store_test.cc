#include "storage/raft_log_store.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "raft/testing/test_cluster.h"
#include "storage/testing/temp_dir.h"

namespace ganglion::storage {
namespace {

using raft::Entry;
using raft::EntryType;

using testing::TempDir;

std::vector<Entry> Ents(raft::Index from, raft::Index to, raft::Term term) {
  std::vector<Entry> out;
  for (raft::Index i = from; i <= to; i++) {
    out.push_back(Entry{term, i, EntryType::kNormal, "data" + std::to_string(i)});
  }
  return out;
}

std::unique_ptr<RaftLogStore> OpenStore(const std::string& dir) {
  auto s = RaftLogStore::Open(dir, RaftLogStoreOptions{});
  EXPECT_TRUE(s.ok()) << s.status();
  return *std::move(s);
}

TEST(RaftLogStore, AppendReadAndReopen) {
  TempDir dir;
  {
    auto s = OpenStore(dir.path());
    EXPECT_EQ(s->FirstIndex(), 1u);
    EXPECT_EQ(s->LastIndex(), 0u);
    ASSERT_TRUE(s->Save(raft::HardState{2, 1, 5}, Ents(1, 10, 2), std::nullopt).ok());
    EXPECT_EQ(s->syncs(), 1u) << "one Ready, one fsync";
    auto ents = s->Entries(3, 6, raft::kNoLimit);
    ASSERT_TRUE(ents.ok());
    ASSERT_EQ(ents->size(), 3u);
    EXPECT_EQ((*ents)[0].data, "data3");
    EXPECT_EQ(*s->TermAt(10), 2u);
  }
  auto s = OpenStore(dir.path());
  EXPECT_EQ(s->LastIndex(), 10u);
  auto init = s->GetInitialState();
  EXPECT_EQ(init->hard_state, (raft::HardState{2, 1, 5}));
  EXPECT_EQ(s->Entries(1, 11, raft::kNoLimit)->size(), 10u);
}

// The log file is preallocated with its size (syncs then need not write the
// inode), so a member killed mid-run leaves a file whose end is zeros. A
// copy of the open store's folder is what such a crash leaves on disk: it
// reopens with every saved entry and the hard state.
TEST(RaftLogStore, ReopensAfterACrashThatLeftThePreallocatedLogTail) {
  TempDir dir;
  const std::filesystem::path live = std::filesystem::path(dir.path()) / "live";
  const std::filesystem::path crashed = std::filesystem::path(dir.path()) / "crashed";
  auto s = OpenStore(live.string());
  for (raft::Index i = 1; i <= 200; i += 10) {
    ASSERT_TRUE(s->Save(raft::HardState{3, 1, i}, Ents(i, i + 9, 3), std::nullopt).ok());
  }
  uint64_t log_bytes = 0, written = 0;
  for (const auto& f : std::filesystem::directory_iterator(live)) {
    if (f.path().extension() == ".log") log_bytes += f.file_size();
  }
  for (const Entry& e : Ents(1, 200, 3)) written += e.data.size();
  EXPECT_GT(log_bytes, 100 * written) << "the log file is not preallocated";
  std::filesystem::copy(live, crashed, std::filesystem::copy_options::recursive);

  auto r = OpenStore(crashed.string());
  EXPECT_EQ(r->LastIndex(), 200u);
  EXPECT_EQ(r->GetInitialState()->hard_state, (raft::HardState{3, 1, 191}));
  EXPECT_EQ(*r->Entries(1, 201, raft::kNoLimit), Ents(1, 200, 3));
  // And it takes appends after the recovered ones.
  ASSERT_TRUE(r->Save(raft::HardState{3, 1, 200}, Ents(201, 210, 3), std::nullopt).ok());
  r.reset();
  EXPECT_EQ(OpenStore(crashed.string())->LastIndex(), 210u);
}

// As etcd: moving only the commit index writes without an fsync; entries, a
// new term or a vote sync. The commit index still reads back after a reopen
// (a process crash keeps RocksDB's unsynced log; only a power loss can undo
// it, and the leader tells the member its commit index again).
TEST(RaftLogStore, OnlyCommitIndexChangesSkipTheSync) {
  TempDir dir;
  {
    auto s = OpenStore(dir.path());
    ASSERT_TRUE(s->Save(raft::HardState{2, 1, 0}, Ents(1, 10, 2), std::nullopt).ok());
    ASSERT_EQ(s->syncs(), 1u);
    ASSERT_TRUE(s->Save(raft::HardState{2, 1, 7}, {}, std::nullopt).ok());
    EXPECT_EQ(s->syncs(), 1u) << "a commit-only Ready needs no fsync";
    ASSERT_TRUE(s->Save(raft::HardState{3, 1, 7}, {}, std::nullopt).ok());
    EXPECT_EQ(s->syncs(), 2u) << "a new term is synced";
    ASSERT_TRUE(s->Save(raft::HardState{3, 2, 7}, {}, std::nullopt).ok());
    EXPECT_EQ(s->syncs(), 3u) << "a vote is synced";
    ASSERT_TRUE(s->Save(raft::HardState{3, 2, 8}, Ents(11, 11, 3), std::nullopt).ok());
    EXPECT_EQ(s->syncs(), 4u) << "entries are synced";
    ASSERT_TRUE(s->Save(raft::HardState{3, 2, 11}, {}, std::nullopt).ok());
    EXPECT_EQ(s->syncs(), 4u);
  }
  auto s = OpenStore(dir.path());
  EXPECT_EQ(s->GetInitialState()->hard_state, (raft::HardState{3, 2, 11}));
}

TEST(RaftLogStore, ConflictingSuffixIsReplacedWhole) {
  TempDir dir;
  auto s = OpenStore(dir.path());
  ASSERT_TRUE(s->Save(std::nullopt, Ents(1, 10, 1), std::nullopt).ok());
  ASSERT_TRUE(s->Save(std::nullopt, Ents(5, 6, 2), std::nullopt).ok());
  EXPECT_EQ(s->LastIndex(), 6u) << "entries 7..10 of the old term are gone";
  EXPECT_EQ(*s->TermAt(6), 2u);
  EXPECT_TRUE(raft::IsErrUnavailable(s->TermAt(7).status()));
  s.reset();
  s = OpenStore(dir.path());
  EXPECT_EQ(s->LastIndex(), 6u) << "also after reopening";
  EXPECT_EQ(*s->TermAt(5), 2u);
}

TEST(RaftLogStore, MaxBytesLimitsButReturnsAtLeastOne) {
  TempDir dir;
  auto s = OpenStore(dir.path());
  ASSERT_TRUE(s->Save(std::nullopt, Ents(1, 10, 1), std::nullopt).ok());
  EXPECT_EQ(s->Entries(1, 11, 1)->size(), 1u);
  uint64_t two = 2 * raft::EntrySizeBytes(Ents(1, 1, 1)[0]);
  EXPECT_EQ(s->Entries(1, 11, two)->size(), 2u);
}

// The in-memory tail answers exactly what RocksDB would: a cache of a few
// entries, appends, a conflicting suffix, compaction, each read checked
// against the same store reopened (which starts with an empty tail).
TEST(RaftLogStore, TailCacheAnswersAsTheDiskDoes) {
  TempDir dir;
  RaftLogStoreOptions o;
  o.tail_cache_bytes = 4 * raft::EntrySizeBytes(Ents(1, 1, 1)[0]);
  auto open = [&] {
    auto s = RaftLogStore::Open(dir.path(), o);
    EXPECT_TRUE(s.ok()) << s.status();
    return *std::move(s);
  };
  auto s = open();
  auto all = [](RaftLogStore& st) {
    std::vector<std::string> out;
    for (raft::Index lo = st.FirstIndex(); lo <= st.LastIndex(); lo++) {
      for (raft::Index hi = lo + 1; hi <= st.LastIndex() + 1; hi++) {
        auto ents = st.Entries(lo, hi, raft::kNoLimit);
        EXPECT_TRUE(ents.ok()) << lo << ".." << hi << ": " << ents.status();
        if (!ents.ok()) continue;
        std::string row;
        for (const Entry& e : *ents)
          row += std::to_string(e.index) + "/" + std::to_string(e.term) + ":" + e.data + " ";
        out.push_back(row);
      }
    }
    return out;
  };
  auto check = [&](const char* what) {
    const auto cached = all(*s);
    s.reset();
    s = open();
    EXPECT_EQ(cached, all(*s)) << what;
  };
  ASSERT_TRUE(s->Save(std::nullopt, Ents(1, 10, 1), std::nullopt).ok());
  ASSERT_TRUE(s->Save(std::nullopt, Ents(11, 12, 1), std::nullopt).ok());
  check("appends");
  ASSERT_TRUE(s->Save(std::nullopt, Ents(9, 10, 1), std::nullopt).ok());
  ASSERT_TRUE(s->Save(std::nullopt, Ents(11, 13, 1), std::nullopt).ok());
  ASSERT_TRUE(s->Save(std::nullopt, Ents(12, 12, 2), std::nullopt).ok());  // cuts 13
  EXPECT_EQ(s->LastIndex(), 12u);
  EXPECT_EQ(s->Entries(12, 13, raft::kNoLimit)->at(0).term, 2u);
  check("a conflicting suffix");
  ASSERT_TRUE(s->Save(std::nullopt, Ents(13, 14, 2), std::nullopt).ok());
  ASSERT_TRUE(s->SetSnapshot({"state", {raft::ConfState{{1}, {}, {}, {}, false}, 12, 2}}).ok());
  ASSERT_TRUE(s->Compact(12).ok());
  EXPECT_EQ(s->Entries(13, 15, raft::kNoLimit)->size(), 2u);
  check("compaction into the tail");
  EXPECT_EQ(s->Entries(13, 15, raft::EntrySizeBytes(Ents(1, 1, 1)[0]))->size(), 1u);
}

TEST(RaftLogStore, CompactionKeepsBoundaryTermAndSurvivesReopen) {
  TempDir dir;
  auto s = OpenStore(dir.path());
  ASSERT_TRUE(s->Save(std::nullopt, Ents(1, 20, 3), std::nullopt).ok());
  raft::Snapshot snap{"state", {raft::ConfState{{1, 2, 3}, {}, {}, {}, false}, 12, 3}};
  EXPECT_FALSE(s->Compact(12).ok()) << "no snapshot covers it yet";
  ASSERT_TRUE(s->SetSnapshot(snap).ok());
  ASSERT_TRUE(s->Compact(12).ok());
  EXPECT_EQ(s->FirstIndex(), 13u);
  EXPECT_EQ(*s->TermAt(12), 3u);
  EXPECT_TRUE(raft::IsErrCompacted(s->TermAt(11).status()));
  EXPECT_TRUE(raft::IsErrCompacted(s->Entries(12, 14, raft::kNoLimit).status()));
  s.reset();
  s = OpenStore(dir.path());
  EXPECT_EQ(s->FirstIndex(), 13u);
  EXPECT_EQ(s->LastIndex(), 20u);
  EXPECT_EQ(s->GetSnapshot()->metadata.index, 12u);
  EXPECT_EQ(s->GetInitialState()->conf_state.voters, (std::vector<uint64_t>{1, 2, 3}));
}

TEST(RaftLogStore, ReceivedSnapshotReplacesTheLog) {
  TempDir dir;
  auto s = OpenStore(dir.path());
  ASSERT_TRUE(s->Save(std::nullopt, Ents(1, 5, 1), std::nullopt).ok());
  raft::Snapshot snap{"state", {raft::ConfState{{1}, {}, {}, {}, false}, 100, 7}};
  ASSERT_TRUE(s->Save(raft::HardState{7, 0, 100}, {}, snap).ok());
  EXPECT_EQ(s->FirstIndex(), 101u);
  EXPECT_EQ(s->LastIndex(), 100u);
  EXPECT_EQ(*s->TermAt(100), 7u);
  ASSERT_TRUE(s->Save(std::nullopt, Ents(101, 102, 7), std::nullopt).ok());
  EXPECT_FALSE(s->Save(std::nullopt, {}, snap).ok()) << "an older or equal snapshot is refused";
  EXPECT_FALSE(s->Save(std::nullopt, Ents(200, 201, 7), std::nullopt).ok()) << "no gaps";
}

// The RocksDB store drives a real Raft cluster exactly as MemoryStorage does.
TEST(RaftLogStore, BacksARaftNodeAcrossRestarts) {
  TempDir dir;
  auto store = OpenStore(dir.path());
  ASSERT_TRUE(store->SetConfState(raft::ConfState{{1}, {}, {}, {}, false}).ok());
  auto run = [&](int proposals) {
    raft::Config c;
    c.id = 1;
    c.storage = store.get();
    c.applied = 0;
    auto node = *raft::RawNode::Create(c);
    std::vector<std::string> applied;
    for (int tick = 0; tick < 30 && node->raft().state() != raft::StateType::kLeader; tick++) {
      node->Tick();
      while (node->HasReady()) {
        raft::Ready rd = node->GetReady();
        EXPECT_TRUE(store->Save(rd.hard_state, rd.entries, rd.snapshot).ok());
        for (const auto& e : rd.committed_entries) {
          if (!e.data.empty()) applied.push_back(e.data);
        }
        node->Advance(rd);
      }
    }
    for (int i = 0; i < proposals; i++) EXPECT_TRUE(node->Propose("p" + std::to_string(i)).ok());
    for (int round = 0; round < 10 && node->HasReady(); round++) {
      raft::Ready rd = node->GetReady();
      EXPECT_TRUE(store->Save(rd.hard_state, rd.entries, rd.snapshot).ok());
      for (const auto& e : rd.committed_entries) {
        if (!e.data.empty()) applied.push_back(e.data);
      }
      node->Advance(rd);
    }
    return applied;
  };
  auto first = run(5);
  EXPECT_EQ(first.size(), 5u);
  store.reset();
  store = OpenStore(dir.path());
  auto second = run(1);
  // After a restart everything committed is applied again (applied=0), then
  // the new proposal.
  ASSERT_EQ(second.size(), 6u);
  EXPECT_EQ(second[4], "p4");
  EXPECT_EQ(second[5], "p0");
}

}  // namespace
}  // namespace ganglion::storage
