// Three raft loops over RocksDB log stores, wired by an in-process network:
// election, replication with follower forwarding, leader failover and the
// return of the old leader. Real threads and clocks; deadlines are generous
// (seconds) so a loaded machine slows the test down but does not fail it.
#include "server/raft_loop.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "storage/testing/fault_fs.h"
#include "storage/testing/temp_dir.h"

namespace ganglion::server {
namespace {

using namespace std::chrono_literals;

class LoopCluster {
 public:
  explicit LoopCluster(std::vector<raft::NodeId> ids) : ids_(ids) {
    for (raft::NodeId id : ids) Start(id, /*bootstrap=*/true);
  }
  ~LoopCluster() {
    for (raft::NodeId id : ids_) Stop(id);
  }

  void Start(raft::NodeId id, bool bootstrap) {
    Member& m = members_[id];
    auto store = storage::RaftLogStore::Open(dir_.sub("m" + std::to_string(id)), {});
    ASSERT_TRUE(store.ok()) << store.status();
    m.store = *std::move(store);
    if (bootstrap) {
      ASSERT_TRUE(m.store->SetConfState(raft::ConfState{ids_, {}, {}, {}, false}).ok());
    }
    {
      std::lock_guard lock(mu_);
      m.applied.clear();
    }
    RaftLoopOptions o;
    o.raft.id = id;
    o.raft.election_ticks = 10;
    o.raft.heartbeat_ticks = 1;
    o.raft.random_seed = 1000 + id;
    o.log_store = m.store.get();
    o.tick_interval = 10ms;
    o.send = [this, id](std::vector<raft::Message> msgs) { Deliver(id, std::move(msgs)); };
    o.on_committed = [this, id](Committed c) {
      std::lock_guard lock(mu_);
      for (const auto& e : c.entries) {
        if (e.type == raft::EntryType::kNormal && !e.data.empty()) {
          members_[id].applied.push_back(e.data);
        }
      }
    };
    m.loop = std::make_unique<RaftLoop>(o);
    ASSERT_TRUE(m.loop->Start().ok());
    std::lock_guard lock(mu_);
    m.up = true;
  }

  void Stop(raft::NodeId id) {
    Member& m = members_[id];
    {
      std::lock_guard lock(mu_);
      m.up = false;
    }
    if (m.loop) m.loop->Stop();
    m.loop.reset();
    m.store.reset();
  }

  // Waits for a leader among the members that are up; kNoNode on timeout.
  raft::NodeId WaitForLeader(std::chrono::milliseconds deadline = 10s) {
    auto until = std::chrono::steady_clock::now() + deadline;
    while (std::chrono::steady_clock::now() < until) {
      for (raft::NodeId id : ids_) {
        Member& m = members_[id];
        if (m.loop && m.loop->soft_state().state == raft::StateType::kLeader) return id;
      }
      std::this_thread::sleep_for(5ms);
    }
    return raft::kNoNode;
  }

  // Proposes through `via` until the proposal is accepted into a log.
  void ProposeOrDie(raft::NodeId via, const std::string& data) {
    auto until = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < until) {
      std::promise<absl::Status> done;
      members_[via].loop->Propose(data, [&](absl::Status s) { done.set_value(s); });
      if (done.get_future().get().ok()) return;
      std::this_thread::sleep_for(10ms);  // no leader yet: retry, as a client would
    }
    FAIL() << "proposal " << data << " never accepted";
  }

  bool WaitApplied(raft::NodeId id, size_t n, std::chrono::milliseconds deadline = 10s) {
    auto until = std::chrono::steady_clock::now() + deadline;
    while (std::chrono::steady_clock::now() < until) {
      {
        std::lock_guard lock(mu_);
        if (members_[id].applied.size() >= n) return true;
      }
      std::this_thread::sleep_for(5ms);
    }
    return false;
  }

  std::vector<std::string> Applied(raft::NodeId id) {
    std::lock_guard lock(mu_);
    return members_[id].applied;
  }

 private:
  struct Member {
    std::unique_ptr<storage::RaftLogStore> store;
    std::unique_ptr<RaftLoop> loop;
    std::vector<std::string> applied;  // guarded by mu_
    bool up = false;                   // guarded by mu_
  };

  void Deliver(raft::NodeId from, std::vector<raft::Message> msgs) {
    std::map<raft::NodeId, std::vector<raft::Message>> by_peer;
    for (auto& m : msgs) by_peer[m.to].push_back(std::move(m));
    std::lock_guard lock(mu_);
    if (!members_[from].up) return;
    for (auto& [to, batch] : by_peer) {
      auto it = members_.find(to);
      if (it == members_.end() || !it->second.up || !it->second.loop) continue;
      (void)it->second.loop->Step(std::move(batch));
    }
  }

  storage::testing::TempDir dir_;
  std::vector<raft::NodeId> ids_;
  std::mutex mu_;
  std::map<raft::NodeId, Member> members_;
};

TEST(RaftLoop, ElectsALeaderAndReplicatesInOrder) {
  LoopCluster c({1, 2, 3});
  raft::NodeId leader = c.WaitForLeader();
  ASSERT_NE(leader, raft::kNoNode);
  raft::NodeId follower = leader == 1 ? 2 : 1;
  for (int i = 0; i < 100; i++) c.ProposeOrDie(follower, "e" + std::to_string(i));
  for (raft::NodeId id : {1, 2, 3}) {
    ASSERT_TRUE(c.WaitApplied(id, 100)) << "member " << id;
  }
  auto want = c.Applied(leader);
  ASSERT_EQ(want.size(), 100u);
  EXPECT_EQ(want.front(), "e0");
  EXPECT_EQ(want.back(), "e99") << "a follower's proposals keep their order";
  for (raft::NodeId id : {1, 2, 3}) EXPECT_EQ(c.Applied(id), want);
}

TEST(RaftLoop, NewLeaderAfterTheLeaderStopsAndTheOldOneCatchesUp) {
  LoopCluster c({1, 2, 3});
  raft::NodeId old_leader = c.WaitForLeader();
  ASSERT_NE(old_leader, raft::kNoNode);
  for (int i = 0; i < 20; i++) c.ProposeOrDie(old_leader, "before" + std::to_string(i));
  for (raft::NodeId id : {1, 2, 3}) ASSERT_TRUE(c.WaitApplied(id, 20));

  c.Stop(old_leader);
  raft::NodeId new_leader = c.WaitForLeader();
  ASSERT_NE(new_leader, raft::kNoNode);
  EXPECT_NE(new_leader, old_leader);
  for (int i = 0; i < 20; i++) c.ProposeOrDie(new_leader, "after" + std::to_string(i));
  for (raft::NodeId id : {1, 2, 3}) {
    if (id == old_leader) continue;
    ASSERT_TRUE(c.WaitApplied(id, 40)) << "member " << id;
  }

  // The old leader comes back with its log and learns the rest.
  c.Start(old_leader, /*bootstrap=*/false);
  ASSERT_TRUE(c.WaitApplied(old_leader, 40));
  EXPECT_EQ(c.Applied(old_leader), c.Applied(new_leader));
}

// A follower gets, in one append, a new entry and the commit index of two
// entries it saved earlier. It applies those two while the new entry's write
// is still syncing: a slow sync holds back only what it writes.
// An on_committed that appends each committed normal entry's data to
// `applied` (under `mu`) and wakes whoever waits on `changed`.
std::function<void(Committed)> RecordApplied(std::mutex& mu, std::condition_variable& changed,
                                             std::vector<std::string>& applied) {
  return [&mu, &changed, &applied](Committed c) {
    std::lock_guard lock(mu);
    for (const raft::Entry& e : c.entries) {
      if (e.type == raft::EntryType::kNormal && !e.data.empty()) applied.push_back(e.data);
    }
    changed.notify_all();
  };
}

TEST(RaftLoop, EntriesSavedEarlierAreAppliedWhileTheNextWriteSyncs) {
  storage::testing::TempDir dir;
  storage::testing::FaultEnv disk;
  storage::RaftLogStoreOptions so;
  so.env = disk.env.get();
  auto store = *storage::RaftLogStore::Open(dir.sub("follower"), so);
  ASSERT_TRUE(store->SetConfState(raft::ConfState{{1, 2}, {}, {}, {}, false}).ok());

  std::mutex mu;
  std::condition_variable changed;
  std::vector<std::string> applied;  // guarded by mu
  raft::Index acknowledged = 0;      // guarded by mu
  RaftLoopOptions o;
  o.raft.id = 1;
  o.raft.election_ticks = 100000;  // the test is the leader (2); member 1 never campaigns
  o.raft.heartbeat_ticks = 1;
  o.log_store = store.get();
  o.tick_interval = 10ms;
  o.send = [&](std::vector<raft::Message> msgs) {
    std::lock_guard lock(mu);
    for (const raft::Message& m : msgs) {
      if (m.type == raft::MessageType::kAppResp && !m.reject) {
        acknowledged = std::max(acknowledged, m.index);
      }
    }
    changed.notify_all();
  };
  o.on_committed = RecordApplied(mu, changed, applied);
  RaftLoop loop(o);
  ASSERT_TRUE(loop.Start().ok());
  auto append = [](raft::Index prev, std::vector<std::string> data, raft::Index commit) {
    raft::Message m;
    m.type = raft::MessageType::kApp;
    m.from = 2;
    m.to = 1;
    m.term = 1;
    m.index = prev;
    m.log_term = prev == 0 ? 0 : 1;
    m.commit = commit;
    for (std::string& d : data) {
      m.entries.push_back(
          raft::Entry{1, prev + 1 + m.entries.size(), raft::EntryType::kNormal, std::move(d)});
    }
    return std::vector<raft::Message>{std::move(m)};
  };
  auto wait = [&](auto done) {
    std::unique_lock lock(mu);
    return changed.wait_for(lock, 10s, done);
  };

  // Entries 1 and 2 are saved and acknowledged; nothing is committed yet.
  ASSERT_TRUE(loop.Step(append(0, {"a", "b"}, 0)).ok());
  ASSERT_TRUE(wait([&] { return acknowledged >= 2; }));
  {
    std::lock_guard lock(mu);
    EXPECT_TRUE(applied.empty());
  }

  // The disk stalls. Entry 3 arrives with commit index 2.
  disk.fs->HoldSyncs();
  ASSERT_TRUE(loop.Step(append(2, {"c"}, 2)).ok());
  auto until = std::chrono::steady_clock::now() + 10s;
  while (disk.fs->syncs_waiting() == 0 && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(1ms);
  }
  const bool write_stalled = disk.fs->syncs_waiting() > 0;
  bool acknowledged_meanwhile = false;
  const bool applied_meanwhile = wait([&] {
    acknowledged_meanwhile = acknowledged >= 3;
    return applied.size() >= 2;
  });
  disk.fs->ReleaseSyncs();

  EXPECT_TRUE(write_stalled) << "entry 3's write never reached the disk's sync";
  EXPECT_TRUE(applied_meanwhile) << "entries 1 and 2 waited for entry 3's sync";
  EXPECT_FALSE(acknowledged_meanwhile) << "entry 3 was acknowledged before it was durable";
  ASSERT_TRUE(wait([&] { return acknowledged >= 3; }));
  std::lock_guard lock(mu);
  EXPECT_EQ(applied, (std::vector<std::string>{"a", "b"})) << "entry 3 is not committed";
  loop.Stop();
}

// The leader of {1, 2}, with the test as member 2. Once member 2's
// acknowledgement commits a proposal, the Ready that carries the commit
// also carries the appends that tell member 2 about it; the committed entry
// must reach the apply loop before those are sent, not after (with one put
// in flight, the sends would otherwise sit between its commit and its
// answer).
TEST(RaftLoop, LeaderHandsOverACommitBeforeSendingItToFollowers) {
  storage::testing::TempDir dir;
  auto store = *storage::RaftLogStore::Open(dir.sub("leader"), {});
  ASSERT_TRUE(store->SetConfState(raft::ConfState{{1, 2}, {}, {}, {}, false}).ok());

  std::mutex mu;
  std::condition_variable changed;
  std::vector<std::string> applied;  // guarded by mu
  raft::Index x_index = 0;           // guarded by mu: the proposal's index, once appended
  std::optional<bool> applied_when_commit_sent;  // guarded by mu
  RaftLoop* loop_ptr = nullptr;
  RaftLoopOptions o;
  o.raft.id = 1;
  o.raft.election_ticks = 2;
  o.raft.heartbeat_ticks = 1;
  o.log_store = store.get();
  o.tick_interval = 10ms;
  // Member 2 grants every vote and acknowledges every append.
  o.send = [&](std::vector<raft::Message> msgs) {
    std::vector<raft::Message> replies;
    {
      std::lock_guard lock(mu);
      for (const raft::Message& m : msgs) {
        raft::Message r;
        r.from = 2;
        r.to = 1;
        r.term = m.term;
        switch (m.type) {
          case raft::MessageType::kPreVote:
            r.type = raft::MessageType::kPreVoteResp;
            break;
          case raft::MessageType::kVote:
            r.type = raft::MessageType::kVoteResp;
            break;
          case raft::MessageType::kHeartbeat:
            r.type = raft::MessageType::kHeartbeatResp;
            break;
          case raft::MessageType::kApp:
            for (const raft::Entry& e : m.entries) {
              if (e.data == "x") x_index = e.index;
            }
            if (x_index != 0 && m.commit >= x_index && !applied_when_commit_sent) {
              applied_when_commit_sent =
                  std::find(applied.begin(), applied.end(), "x") != applied.end();
            }
            r.type = raft::MessageType::kAppResp;
            r.index = m.entries.empty() ? m.index : m.entries.back().index;
            break;
          default:
            continue;
        }
        replies.push_back(r);
      }
      changed.notify_all();
    }
    if (!replies.empty()) (void)loop_ptr->Step(std::move(replies));
  };
  o.on_committed = RecordApplied(mu, changed, applied);
  RaftLoop loop(o);
  loop_ptr = &loop;
  ASSERT_TRUE(loop.Start().ok());
  auto until = std::chrono::steady_clock::now() + 10s;
  while (loop.soft_state().state != raft::StateType::kLeader &&
         std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(1ms);
  }
  ASSERT_EQ(loop.soft_state().state, raft::StateType::kLeader);

  std::promise<absl::Status> proposed;
  loop.Propose("x", [&](absl::Status s) { proposed.set_value(s); });
  ASSERT_TRUE(proposed.get_future().get().ok());
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(changed.wait_for(lock, 10s, [&] { return applied_when_commit_sent.has_value(); }))
        << "the leader never sent the commit of x";
    EXPECT_TRUE(*applied_when_commit_sent)
        << "the commit went to member 2 before x went to the apply loop";
  }
  loop.Stop();
}

TEST(RaftLoop, ProposalWithoutLeaderFailsAtOnce) {
  storage::testing::TempDir dir;
  auto store = *storage::RaftLogStore::Open(dir.sub("solo"), {});
  ASSERT_TRUE(store->SetConfState(raft::ConfState{{1, 2, 3}, {}, {}, {}, false}).ok());
  RaftLoopOptions o;
  o.raft.id = 1;
  o.log_store = store.get();
  o.tick_interval = 10ms;
  o.send = [](std::vector<raft::Message>) {};  // peers unreachable
  o.on_committed = [](Committed) {};
  RaftLoop loop(o);
  ASSERT_TRUE(loop.Start().ok());
  std::promise<absl::Status> done;
  loop.Propose("x", [&](absl::Status s) { done.set_value(s); });
  absl::Status s = done.get_future().get();
  EXPECT_TRUE(raft::IsErrProposalDropped(s)) << s;
  loop.Stop();
  std::promise<absl::Status> after;
  loop.Propose("y", [&](absl::Status s) { after.set_value(s); });
  EXPECT_FALSE(after.get_future().get().ok()) << "a stopped loop refuses at once";
}

}  // namespace
}  // namespace ganglion::server
