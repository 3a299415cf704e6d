// Crash safety of the Raft log store: random Ready batches, a simulated power
// loss at a random point (every unsynced byte dropped), reopen, and check that
// exactly the synced state came back.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <random>

#include "storage/raft_log_store.h"
#include "storage/testing/fault_fs.h"

namespace ganglion::storage {
namespace {

using raft::Entry;
using raft::Index;

struct Model {
  std::map<Index, Entry> entries;  // never compacted: the reference
  raft::HardState hs;
  Index last = 0;
};

TEST(RaftLogStoreCrash, RecoversExactlyTheSyncedState) {
  auto dir =
      std::filesystem::temp_directory_path() / ("ganglion-crash-" + std::to_string(::getpid()));
  for (uint64_t seed = 1; seed <= 40; seed++) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::filesystem::remove_all(dir);
    testing::FaultEnv fault;
    RaftLogStoreOptions options;
    options.env = fault.env.get();
    std::mt19937_64 rng(seed);
    Model model;
    auto store = *RaftLogStore::Open(dir.string(), options);
    Index first_after_last_save = store->FirstIndex();
    raft::Term term = 1;
    int ops = 5 + static_cast<int>(rng() % 60);
    for (int op = 0; op < ops; op++) {
      if (rng() % 6 == 0 && model.last > store->FirstIndex() + 2) {
        // A local snapshot and an (unsynced) compaction.
        Index at = store->FirstIndex() + rng() % (model.last - store->FirstIndex());
        raft::Snapshot snap{
            "s", {raft::ConfState{{1}, {}, {}, {}, false}, at, model.entries.at(at).term}};
        if (store->SetSnapshot(snap).ok()) {
          ASSERT_TRUE(store->Compact(at).ok());
        }
        continue;
      }
      // An append, sometimes overwriting a suffix with a newer term.
      Index start = model.last + 1;
      if (model.last >= store->FirstIndex() && rng() % 4 == 0) {
        start = store->FirstIndex() + rng() % (model.last - store->FirstIndex() + 1);
        term++;
      }
      std::vector<Entry> ents;
      int n = 1 + static_cast<int>(rng() % 20);
      for (int i = 0; i < n; i++) {
        ents.push_back(Entry{term, start + i, raft::EntryType::kNormal,
                             std::string(rng() % 300, static_cast<char>('a' + i % 26))});
      }
      model.hs = raft::HardState{term, 1, std::min<Index>(start - 1, model.hs.commit + 3)};
      ASSERT_TRUE(store->Save(model.hs, ents, std::nullopt).ok());
      for (auto it = model.entries.lower_bound(start); it != model.entries.end();) {
        it = model.entries.erase(it);
      }
      for (const auto& e : ents) model.entries[e.index] = e;
      model.last = ents.back().index;
      first_after_last_save = store->FirstIndex();
    }
    Index first_at_crash = store->FirstIndex();
    fault.fs->Crash();
    store.reset();
    fault.fs->DropUnsyncedDataAndRestart();

    auto reopened = RaftLogStore::Open(dir.string(), options);
    ASSERT_TRUE(reopened.ok()) << reopened.status();
    auto& s = *reopened;
    EXPECT_EQ(s->GetInitialState()->hard_state, model.hs) << "every synced hard state survives";
    EXPECT_EQ(s->LastIndex(), model.last) << "every synced entry survives, nothing more";
    // An unsynced compaction may be lost, never half-applied.
    EXPECT_GE(s->FirstIndex(), std::min(first_after_last_save, first_at_crash));
    EXPECT_LE(s->FirstIndex(), first_at_crash);
    if (s->LastIndex() >= s->FirstIndex()) {
      auto ents = s->Entries(s->FirstIndex(), s->LastIndex() + 1, raft::kNoLimit);
      ASSERT_TRUE(ents.ok()) << ents.status();
      for (const auto& e : *ents) EXPECT_EQ(e, model.entries.at(e.index));
    }
  }
  std::filesystem::remove_all(dir);
}

// The fault file system really drops data: without sync, appends are lost.
TEST(RaftLogStoreCrash, UnsyncedAppendsAreLost) {
  auto dir = std::filesystem::temp_directory_path() /
             ("ganglion-crash-unsynced-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  testing::FaultEnv fault;
  RaftLogStoreOptions options;
  options.env = fault.env.get();
  options.sync = false;
  {
    auto store = *RaftLogStore::Open(dir.string(), options);
    ASSERT_TRUE(store
                    ->Save(raft::HardState{1, 1, 0}, {Entry{1, 1, raft::EntryType::kNormal, "x"}},
                           std::nullopt)
                    .ok());
    fault.fs->Crash();
  }
  fault.fs->DropUnsyncedDataAndRestart();
  auto store = *RaftLogStore::Open(dir.string(), options);
  EXPECT_EQ(store->LastIndex(), 0u) << "the crash test would prove nothing if this survived";
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace ganglion::storage
