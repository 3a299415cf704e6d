// Crash safety of a member's two stores together, as the server uses them:
// requests are appended to the Raft log (one synced batch per Ready) and
// applied in batches to the state store (WAL not synced). A simulated power
// loss at a random point drops every unsynced byte of both. After reopening:
//  - the log holds every entry whose append was synced;
//  - the state equals a replay of the log up to the recovered applied index;
//  - replaying the rest of the log from there gives exactly the state of a
//    store that applied the whole log once (nothing applied twice or skipped).
#include <gtest/gtest.h>

#include <random>

#include "storage/raft_log_store.h"
#include "storage/state_store.h"
#include "storage/testing/fault_fs.h"
#include "storage/testing/temp_dir.h"

namespace ganglion::storage {
namespace {

using raft::Entry;
using raft::Index;

// A request as it travels in a log entry: its kind, then its protobuf bytes.
std::string Encode(const ApplyOp::Request& r) {
  std::string out(1, static_cast<char>(r.index()));
  std::visit([&](const auto& req) { out += req.SerializeAsString(); }, r);
  return out;
}

ApplyOp::Request Decode(const std::string& data) {
  std::string body = data.substr(1);
  switch (data[0]) {
    case 0: {
      etcdserverpb::PutRequest p;
      EXPECT_TRUE(p.ParseFromString(body));
      return p;
    }
    case 1: {
      etcdserverpb::DeleteRangeRequest d;
      EXPECT_TRUE(d.ParseFromString(body));
      return d;
    }
    default: {
      etcdserverpb::TxnRequest t;
      EXPECT_TRUE(t.ParseFromString(body));
      return t;
    }
  }
}

ApplyOp::Request RandomRequest(std::mt19937_64& rng) {
  std::string key = "k" + std::to_string(rng() % 20);
  switch (rng() % 5) {
    case 0: {
      etcdserverpb::DeleteRangeRequest d;
      d.set_key(key);
      if (rng() % 3 == 0) d.set_range_end("k5");  // sometimes a range
      return d;
    }
    case 1: {
      // Compare-and-set on the key's version: its outcome depends on every
      // earlier request, so a replay that skips or repeats one diverges.
      etcdserverpb::TxnRequest t;
      auto* c = t.add_compare();
      c->set_key(key);
      c->set_target(etcdserverpb::Compare::VERSION);
      c->set_result(etcdserverpb::Compare::LESS);
      c->set_version(3);
      auto* put = t.add_success()->mutable_request_put();
      put->set_key(key);
      put->set_value("txn");
      auto* del = t.add_failure()->mutable_request_delete_range();
      del->set_key(key);
      return t;
    }
    default: {
      etcdserverpb::PutRequest p;
      p.set_key(key);
      p.set_value(std::string(rng() % 200, static_cast<char>('a' + rng() % 26)));
      return p;
    }
  }
}

void ApplyEntries(StateStore* store, const std::vector<Entry>& entries) {
  std::vector<ApplyOp> ops;
  for (const Entry& e : entries) ops.push_back(ApplyOp{Decode(e.data), e.index});
  auto res = store->Apply(ops, entries.back().index);
  ASSERT_TRUE(res.ok()) << res.status();
}

HashKVResult Hash(StateStore* store) {
  auto h = store->HashKV(0);
  EXPECT_TRUE(h.ok()) << h.status();
  return h.ok() ? *h : HashKVResult{};
}

TEST(MemberCrash, StateEqualsReplayOfTheLogUpToTheRecoveredAppliedIndex) {
  for (uint64_t seed = 1; seed <= 12; seed++) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    testing::TempDir dir;
    testing::FaultEnv fault;  // one disk for both stores: one power loss
    std::mt19937_64 rng(seed);
    RaftLogStoreOptions log_options;
    log_options.env = fault.env.get();
    StateStoreOptions state_options;
    state_options.env = fault.env.get();
    state_options.write_buffer_bytes = 64 << 10;  // flushes happen during the run

    auto log = *RaftLogStore::Open(dir.sub("raft"), log_options);
    auto state = *StateStore::Open(dir.sub("state"), state_options);
    Index last_synced = 0, applied_before_crash = 0;
    int readies = 20 + static_cast<int>(rng() % 60);
    for (int r = 0; r < readies; r++) {
      std::vector<Entry> ents;
      int n = 1 + static_cast<int>(rng() % 30);
      for (int i = 0; i < n; i++) {
        ents.push_back(
            Entry{1, last_synced + 1 + i, raft::EntryType::kNormal, Encode(RandomRequest(rng))});
      }
      ASSERT_TRUE(log->Save(raft::HardState{1, 1, ents.back().index}, ents, std::nullopt).ok());
      last_synced = ents.back().index;
      // The apply loop lags behind the log now and then.
      if (rng() % 4 != 0) {
        auto pending = log->Entries(applied_before_crash + 1, last_synced + 1, raft::kNoLimit);
        ASSERT_TRUE(pending.ok());
        ApplyEntries(state.get(), *pending);
        applied_before_crash = last_synced;
      }
    }
    fault.fs->Crash();
    state.reset();
    log.reset();
    fault.fs->DropUnsyncedDataAndRestart();

    log = *RaftLogStore::Open(dir.sub("raft"), log_options);
    auto reopened = StateStore::Open(dir.sub("state"), state_options);
    ASSERT_TRUE(reopened.ok()) << reopened.status();
    state = *std::move(reopened);
    ASSERT_EQ(log->LastIndex(), last_synced) << "every synced append survives";
    Index recovered = state->applied_index();
    EXPECT_LE(recovered, applied_before_crash);

    // A store that never crashed, replaying the log to the recovered index.
    StateStoreOptions clean_options;
    clean_options.background_compaction = false;
    auto reference = *StateStore::Open(dir.sub("reference"), clean_options);
    std::vector<Entry> all = *log->Entries(1, last_synced + 1, raft::kNoLimit);
    if (recovered > 0) {
      ApplyEntries(reference.get(),
                   std::vector<Entry>(all.begin(), all.begin() + static_cast<long>(recovered)));
    }
    EXPECT_EQ(state->current_revision(), reference->current_revision());
    EXPECT_EQ(Hash(state.get()).hash, Hash(reference.get()).hash)
        << "the recovered state is exactly the log replayed to index " << recovered;

    // Resume as a restarted member does: apply the rest of the log.
    if (recovered < last_synced) {
      std::vector<Entry> rest(all.begin() + static_cast<long>(recovered), all.end());
      ApplyEntries(state.get(), rest);
      ApplyEntries(reference.get(), rest);
    }
    EXPECT_EQ(state->applied_index(), last_synced);
    EXPECT_EQ(state->current_revision(), reference->current_revision());
    EXPECT_EQ(Hash(state.get()).hash, Hash(reference.get()).hash)
        << "no entry applied twice or skipped";
  }
}

// The check above would prove nothing if unsynced state writes survived the
// simulated crash: here the whole applied state is lost, as it must be.
TEST(MemberCrash, UnsyncedStateIsReallyLost) {
  testing::TempDir dir;
  testing::FaultEnv fault;
  StateStoreOptions options;
  options.env = fault.env.get();
  options.background_compaction = false;
  {
    auto state = *StateStore::Open(dir.sub("state"), options);
    etcdserverpb::PutRequest p;
    p.set_key("k");
    p.set_value("v");
    ASSERT_TRUE(state->Apply({ApplyOp{p, 1}}, 1).ok());
    ASSERT_EQ(state->applied_index(), 1u);
    fault.fs->Crash();
  }
  fault.fs->DropUnsyncedDataAndRestart();
  auto state = *StateStore::Open(dir.sub("state"), options);
  EXPECT_EQ(state->applied_index(), 0u);
  EXPECT_EQ(state->current_revision(), 0);
}

// Without the WAL, Flush is what lets the raft log drop applied entries: a
// crash right after it loses nothing applied before it.
TEST(MemberCrash, FlushMakesAppliedStateDurable) {
  testing::TempDir dir;
  testing::FaultEnv fault;
  StateStoreOptions options;
  options.env = fault.env.get();
  options.background_compaction = false;
  ASSERT_FALSE(options.write_ahead_log) << "the default this test is about";
  {
    auto state = *StateStore::Open(dir.sub("state"), options);
    etcdserverpb::PutRequest p;
    p.set_key("k");
    p.set_value("v1");
    ASSERT_TRUE(state->Apply({ApplyOp{p, 1}}, 1).ok());
    ASSERT_TRUE(state->Flush().ok());
    p.set_value("v2");
    ASSERT_TRUE(state->Apply({ApplyOp{p, 2}}, 2).ok());
    fault.fs->Crash();
  }
  fault.fs->DropUnsyncedDataAndRestart();
  auto state = *StateStore::Open(dir.sub("state"), options);
  EXPECT_EQ(state->applied_index(), 1u) << "flushed, and nothing after it";
  EXPECT_EQ(state->current_revision(), 1);
  etcdserverpb::RangeRequest r;
  r.set_key("k");
  auto got = state->Range(r);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->kvs_size(), 1);
  EXPECT_EQ(got->kvs(0).value(), "v1");
}

}  // namespace
}  // namespace ganglion::storage
