// The C++ client library against a 3-member cluster of real processes, run
// identically against etcd 3.4 (the reference) and ganglion: every call of the
// API, watch resumption across a member kill, keep-alive across a leader
// kill, mutual exclusion under contention, and an Informer that stays equal
// to a fresh list through random writes, deletes and a compaction.
#include <atomic>
#include <chrono>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/client.h"
#include "client/concurrency/election.h"
#include "client/concurrency/mutex.h"
#include "client/concurrency/session.h"
#include "client/concurrency/stm.h"
#include "client/informer.h"
#include "gtest/gtest.h"
#include "tests/support/process_cluster.h"

namespace ganglion::tests {
namespace {

using client::Client;
using client::ClientConfig;
using client::GetOptions;
using client::Op;
using client::Txn;
using client::WatchBatch;
using client::WatchOptions;

std::string BackendName(const std::string& binary) {
  return binary == GANGLION_ETCD_BINARY ? "etcd" : "ganglion";
}

std::unique_ptr<Client> Connect(std::vector<std::string> endpoints) {
  ClientConfig config;
  config.endpoints = std::move(endpoints);
  config.request_timeout = std::chrono::milliseconds(10000);
  absl::StatusOr<std::unique_ptr<Client>> c = Client::Create(config);
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *std::move(c) : nullptr;
}

std::unique_ptr<ProcessCluster> StartCluster(const std::string& binary) {
  ClusterOptions options;
  options.binary = binary;
  options.members = 3;
  auto cluster = std::make_unique<ProcessCluster>(options);
  absl::Status started = cluster->Start();
  EXPECT_TRUE(started.ok()) << started;
  return started.ok() ? std::move(cluster) : nullptr;
}

std::vector<std::string> Endpoints(const ProcessCluster& cluster) {
  return absl::StrSplit(cluster.client_endpoints(), ',');
}

// Reads every batch until `count` events arrived (or the deadline passed).
std::vector<mvccpb::Event> Collect(client::Watcher& w, size_t count, absl::Duration timeout) {
  std::vector<mvccpb::Event> events;
  const absl::Time deadline = absl::Now() + timeout;
  while (events.size() < count && absl::Now() < deadline) {
    absl::StatusOr<WatchBatch> b = w.Next(deadline - absl::Now());
    if (!b.ok()) break;
    events.insert(events.end(), b->events.begin(), b->events.end());
  }
  return events;
}

// One cluster per backend, shared by every test that does not kill members;
// each test works under its own key prefix.
class ClientApi : public ::testing::TestWithParam<std::string> {
 protected:
  static void TearDownTestSuite() { clusters_.clear(); }

  void SetUp() override {
    std::unique_ptr<ProcessCluster>& cluster = clusters_[GetParam()];
    if (cluster == nullptr) cluster = StartCluster(GetParam());
    ASSERT_NE(cluster, nullptr);
    cluster_ = cluster.get();
    client_ = Connect(Endpoints(*cluster_));
    ASSERT_NE(client_, nullptr);
    prefix_ =
        absl::StrCat("/", ::testing::UnitTest::GetInstance()->current_test_info()->name(), "/");
  }

  client::KvClient& kv() { return client_->kv(); }

  static inline std::map<std::string, std::unique_ptr<ProcessCluster>> clusters_;
  ProcessCluster* cluster_ = nullptr;
  std::unique_ptr<Client> client_;
  std::string prefix_;
};

TEST_P(ClientApi, GetHonoursEveryRangeOption) {
  const std::string p = prefix_;
  int64_t first_rev = 0;
  for (const char* k : {"b", "a", "d", "c"}) {
    auto put = kv().Put(p + k, absl::StrCat("v", k));
    ASSERT_TRUE(put.ok()) << put.status();
    if (first_rev == 0) first_rev = put->header().revision();
  }
  auto overwrite = kv().Put(p + "a", "v2", {.lease = 0, .prev_kv = true});
  ASSERT_TRUE(overwrite.ok());
  EXPECT_EQ(overwrite->prev_kv().value(), "va");

  GetOptions all;
  all.prefix = true;
  auto got = kv().Get(p, all);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->kvs_size(), 4);
  EXPECT_EQ(got->kvs(0).key(), p + "a");  // key order by default
  EXPECT_EQ(got->kvs(0).value(), "v2");
  EXPECT_EQ(got->kvs(0).version(), 2);

  GetOptions limited = all;
  limited.limit = 2;
  limited.sort_order = etcdserverpb::RangeRequest::DESCEND;
  got = kv().Get(p, limited);
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->kvs_size(), 2);
  EXPECT_EQ(got->kvs(0).key(), p + "d");
  EXPECT_TRUE(got->more());
  EXPECT_EQ(got->count(), 4);

  GetOptions by_create = all;
  by_create.sort_target = etcdserverpb::RangeRequest::CREATE;
  by_create.sort_order = etcdserverpb::RangeRequest::ASCEND;
  by_create.keys_only = true;
  got = kv().Get(p, by_create);
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->kvs_size(), 4);
  EXPECT_EQ(got->kvs(0).key(), p + "b");
  EXPECT_EQ(got->kvs(0).value(), "");

  GetOptions counted = all;
  counted.count_only = true;
  got = kv().Get(p, counted);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->kvs_size(), 0);
  EXPECT_EQ(got->count(), 4);

  GetOptions range;
  range.range_end = p + "c";
  got = kv().Get(p + "b", range);
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->kvs_size(), 1);
  EXPECT_EQ(got->kvs(0).key(), p + "b");

  GetOptions at_first;
  at_first.revision = first_rev;
  at_first.serializable = true;
  got = kv().Get(p + "a", at_first);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->kvs_size(), 0);  // "a" was put after "b"

  GetOptions modified_late = all;
  modified_late.min_mod_revision = overwrite->header().revision();
  got = kv().Get(p, modified_late);
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->kvs_size(), 1);
  EXPECT_EQ(got->kvs(0).key(), p + "a");

  GetOptions created_early = all;
  created_early.max_create_revision = first_rev;
  got = kv().Get(p, created_early);
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->kvs_size(), 1);
  EXPECT_EQ(got->kvs(0).key(), p + "b");

  client::DeleteOptions del;
  del.prefix = true;
  del.prev_kv = true;
  auto deleted = kv().Delete(p, del);
  ASSERT_TRUE(deleted.ok());
  EXPECT_EQ(deleted->deleted(), 4);
  EXPECT_EQ(deleted->prev_kvs_size(), 4);
  got = kv().Get(p, counted);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->count(), 0);
}

TEST_P(ClientApi, TxnBuilderTakesTheBranchItsComparesChoose) {
  const std::string k = prefix_ + "cfg";
  auto put = kv().Put(k, "one");
  ASSERT_TRUE(put.ok());
  const int64_t rev = put->header().revision();

  Txn swap;
  swap.If(client::ModRevision(k) == rev)
      .If(client::Value(k) == "one")
      .Then(Op::Put(k, "two"))
      .Then(Op::Get(k))
      .Else(Op::Get(k));
  auto won = kv().Commit(swap);
  ASSERT_TRUE(won.ok()) << won.status();
  EXPECT_TRUE(won->succeeded());
  ASSERT_EQ(won->responses_size(), 2);
  EXPECT_EQ(won->responses(1).response_range().kvs(0).value(), "two");

  // The same compare is now stale: the else branch runs and writes nothing.
  auto lost = kv().Commit(swap);
  ASSERT_TRUE(lost.ok());
  EXPECT_FALSE(lost->succeeded());
  EXPECT_EQ(lost->responses(0).response_range().kvs(0).value(), "two");

  Txn nested;
  Txn inner;
  inner.If(client::Version(k) > 1).Then(Op::Delete(k));
  nested.If(client::CreateRevision(prefix_ + "absent") == 0).Then(Op::Nested(inner));
  auto n = kv().Commit(nested);
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_TRUE(n->succeeded());
  EXPECT_TRUE(n->responses(0).response_txn().succeeded());
  EXPECT_EQ(n->responses(0).response_txn().responses(0).response_delete_range().deleted(), 1);
}

TEST_P(ClientApi, AsyncCallsCompleteThroughFuturesAndCallbacks) {
  constexpr int kWrites = 40;
  std::vector<client::Future<etcdserverpb::PutResponse>> futures;
  for (int i = 0; i < kWrites; ++i) {
    futures.push_back(kv().PutAsync(absl::StrCat(prefix_, i), absl::StrCat(i)));
  }
  std::set<int64_t> revisions;
  for (auto& f : futures) {
    absl::StatusOr<etcdserverpb::PutResponse> r = f.get();
    ASSERT_TRUE(r.ok()) << r.status();
    revisions.insert(r->header().revision());
  }
  EXPECT_EQ(revisions.size(), static_cast<size_t>(kWrites));  // one revision per write

  std::atomic<int> answered{0};
  std::promise<void> all_done;
  for (int i = 0; i < kWrites; ++i) {
    kv().GetAsync(absl::StrCat(prefix_, i), {},
                  [&, i](absl::StatusOr<etcdserverpb::RangeResponse> r) {
                    EXPECT_TRUE(r.ok());
                    if (r.ok()) {
                      EXPECT_EQ(r->kvs(0).value(), absl::StrCat(i));
                    }
                    if (++answered == kWrites) all_done.set_value();
                  });
  }
  ASSERT_EQ(all_done.get_future().wait_for(std::chrono::seconds(20)), std::future_status::ready);

  Txn read;
  read.Then(Op::Get(prefix_ + "0"));
  auto t = kv().CommitAsync(read).get();
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->responses(0).response_range().kvs(0).value(), "0");
  client::DeleteOptions del;
  del.prefix = true;
  auto d = kv().DeleteAsync(prefix_, del).get();
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->deleted(), kWrites);
}

TEST_P(ClientApi, WatchDeliversInOrderWithFiltersProgressAndCancel) {
  WatchOptions all;
  all.prefix = true;
  all.prev_kv = true;
  auto w = client_->watch().Watch(prefix_, all);
  ASSERT_TRUE(w.ok()) << w.status();
  WatchOptions puts_only = all;
  puts_only.no_delete = true;
  auto w_puts = client_->watch().Watch(prefix_, puts_only);  // same stream
  ASSERT_TRUE(w_puts.ok());

  ASSERT_TRUE(kv().Put(prefix_ + "x", "1").ok());
  ASSERT_TRUE(kv().Put(prefix_ + "x", "2").ok());
  ASSERT_TRUE(kv().Delete(prefix_ + "x").ok());
  std::vector<mvccpb::Event> events = Collect(**w, 3, absl::Seconds(10));
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].kv().value(), "1");
  EXPECT_EQ(events[1].kv().value(), "2");
  EXPECT_EQ(events[1].prev_kv().value(), "1");
  EXPECT_EQ(events[2].type(), mvccpb::Event::DELETE);
  EXPECT_EQ(events[2].prev_kv().value(), "2");
  EXPECT_LT(events[0].kv().mod_revision(), events[1].kv().mod_revision());
  const int64_t last = events[2].kv().mod_revision();
  EXPECT_EQ((*w)->next_revision(), last + 1);

  std::vector<mvccpb::Event> puts = Collect(**w_puts, 2, absl::Seconds(10));
  ASSERT_EQ(puts.size(), 2u);
  EXPECT_EQ(puts[1].kv().value(), "2");

  // A progress notification says everything up to its revision was sent.
  ASSERT_TRUE(client_->watch().RequestProgress().ok());
  absl::StatusOr<WatchBatch> progress = (*w)->Next(absl::Seconds(10));
  ASSERT_TRUE(progress.ok()) << progress.status();
  EXPECT_TRUE(progress->progress_notify);
  EXPECT_GE(progress->revision, last);

  // A watch from a past revision replays history.
  WatchOptions replay = all;
  replay.start_revision = events[0].kv().mod_revision();
  auto w_replay = client_->watch().Watch(prefix_, replay);
  ASSERT_TRUE(w_replay.ok());
  std::vector<mvccpb::Event> replayed = Collect(**w_replay, 3, absl::Seconds(10));
  ASSERT_EQ(replayed.size(), 3u);
  EXPECT_EQ(replayed[0].kv().value(), "1");

  (*w)->Cancel();
  EXPECT_EQ((*w)->Next(absl::Seconds(1)).status().code(), absl::StatusCode::kCancelled);
  ASSERT_TRUE(kv().Put(prefix_ + "y", "after").ok());
  std::vector<mvccpb::Event> still = Collect(**w_puts, 1, absl::Seconds(10));
  ASSERT_EQ(still.size(), 1u);
  EXPECT_EQ(still[0].kv().value(), "after");
}

TEST_P(ClientApi, SlowWatcherIsPausedAndResumedWithoutLossOrRepeats) {
  WatchOptions small;
  small.prefix = true;
  small.queue_responses_max = 3;
  auto slow = client_->watch().Watch(prefix_, small);
  ASSERT_TRUE(slow.ok());
  WatchOptions normal;
  normal.prefix = true;
  auto fast = client_->watch().Watch(prefix_, normal);
  ASSERT_TRUE(fast.ok());
  constexpr int kWrites = 60;
  for (int i = 0; i < kWrites; ++i) {
    ASSERT_TRUE(kv().Put(absl::StrCat(prefix_, "k", i % 7), absl::StrCat(i)).ok());
  }
  // The fast watcher is not held up by the slow one's full queue.
  std::vector<mvccpb::Event> fast_events = Collect(**fast, kWrites, absl::Seconds(20));
  ASSERT_EQ(fast_events.size(), static_cast<size_t>(kWrites));
  std::vector<mvccpb::Event> slow_events = Collect(**slow, kWrites, absl::Seconds(20));
  ASSERT_EQ(slow_events.size(), static_cast<size_t>(kWrites));
  for (int i = 0; i < kWrites; ++i) {
    EXPECT_EQ(slow_events[i].kv().value(), absl::StrCat(i));
    EXPECT_EQ(slow_events[i].kv().mod_revision(), fast_events[i].kv().mod_revision());
  }
}

TEST_P(ClientApi, CompactionIsAnExplicitWatchErrorAndFailsOldReads) {
  auto first = kv().Put(prefix_ + "k", "1");
  ASSERT_TRUE(first.ok());
  auto second = kv().Put(prefix_ + "k", "2");
  ASSERT_TRUE(second.ok());
  const int64_t compacted = second->header().revision();
  auto c = kv().Compact(compacted, /*physical=*/true);
  ASSERT_TRUE(c.ok()) << c.status();

  GetOptions old;
  old.revision = first->header().revision();
  auto got = kv().Get(prefix_ + "k", old);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(got.status().message(), "etcdserver: mvcc: required revision has been compacted");

  WatchOptions from_old;
  from_old.start_revision = first->header().revision();
  auto w = client_->watch().Watch(prefix_ + "k", from_old);
  absl::Status error = w.ok() ? (*w)->Next(absl::Seconds(10)).status() : w.status();
  EXPECT_TRUE(client::IsCompacted(error)) << error;
  EXPECT_EQ(client::CompactRevision(error), compacted);
}

TEST_P(ClientApi, LeasesGrantListRenewExpireAndReportLoss) {
  auto granted = client_->lease().Grant(30);
  ASSERT_TRUE(granted.ok()) << granted.status();
  const int64_t id = granted->id();
  ASSERT_TRUE(kv().Put(prefix_ + "owned", "x", {.lease = id}).ok());
  auto ttl = client_->lease().TimeToLive(id, /*keys=*/true);
  ASSERT_TRUE(ttl.ok());
  EXPECT_EQ(ttl->grantedttl(), 30);
  EXPECT_GT(ttl->ttl(), 25);
  ASSERT_EQ(ttl->keys_size(), 1);
  EXPECT_EQ(ttl->keys(0), prefix_ + "owned");
  auto leases = client_->lease().Leases();
  ASSERT_TRUE(leases.ok());
  bool listed = false;
  for (const auto& l : leases->leases()) listed |= l.id() == id;
  EXPECT_TRUE(listed);
  auto once = client_->lease().KeepAliveOnce(id);
  ASSERT_TRUE(once.ok()) << once.status();
  EXPECT_EQ(once->ttl(), 30);
  ASSERT_TRUE(client_->lease().Revoke(id).ok());
  auto gone = kv().Get(prefix_ + "owned");
  ASSERT_TRUE(gone.ok());
  EXPECT_EQ(gone->kvs_size(), 0);
  EXPECT_FALSE(client_->lease().KeepAliveOnce(id).ok());

  // A 2 s lease kept alive outlives its TTL several times over.
  auto short_lease = client_->lease().Grant(2);
  ASSERT_TRUE(short_lease.ok());
  std::promise<absl::Status> lost;
  auto handle = client_->lease().KeepAlive(
      short_lease->id(), [&](absl::Status why) { lost.set_value(std::move(why)); });
  ASSERT_TRUE(handle.ok()) << handle.status();
  auto lost_future = lost.get_future();
  EXPECT_EQ(lost_future.wait_for(std::chrono::seconds(5)), std::future_status::timeout);
  auto alive = client_->lease().TimeToLive(short_lease->id());
  ASSERT_TRUE(alive.ok());
  EXPECT_GT(alive->ttl(), 0);
  // Revoked behind its back: the loss is reported.
  ASSERT_TRUE(client_->lease().Revoke(short_lease->id()).ok());
  ASSERT_EQ(lost_future.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_FALSE(lost_future.get().ok());
  EXPECT_TRUE((*handle)->lost());
}

// Read-your-writes for leases through a follower: a lease whose grant the
// follower acknowledged is known to the leader, which answers TimeToLive and
// renewals (etcd makes its leader apply what it committed before answering).
TEST_P(ClientApi, LeaseIsKnownRightAfterItsGrantThroughAFollower) {
  absl::StatusOr<int> leader = cluster_->LeaderIndex();
  ASSERT_TRUE(leader.ok()) << leader.status();
  auto follower = Connect({cluster_->client_endpoint((*leader + 1) % cluster_->size())});
  ASSERT_NE(follower, nullptr);
  int unknown_ttl = 0;
  int unknown_renew = 0;
  for (int i = 0; i < 100; ++i) {
    auto granted = follower->lease().Grant(10);
    ASSERT_TRUE(granted.ok()) << granted.status();
    auto ttl = follower->lease().TimeToLive(granted->id());
    ASSERT_TRUE(ttl.ok()) << ttl.status();
    if (ttl->ttl() <= 0) ++unknown_ttl;
    auto granted_again = follower->lease().Grant(10);
    ASSERT_TRUE(granted_again.ok());
    if (!follower->lease().KeepAliveOnce(granted_again->id()).ok()) ++unknown_renew;
    ASSERT_TRUE(follower->lease().Revoke(granted->id()).ok());
    ASSERT_TRUE(follower->lease().Revoke(granted_again->id()).ok());
  }
  EXPECT_EQ(unknown_ttl, 0);
  EXPECT_EQ(unknown_renew, 0);
}

TEST_P(ClientApi, ClusterAndMaintenanceCalls) {
  auto members = client_->cluster().MemberList();
  ASSERT_TRUE(members.ok()) << members.status();
  EXPECT_EQ(members->members_size(), 3);

  uint64_t leader = 0;
  for (int i = 0; i < cluster_->size(); ++i) {
    auto status = client_->maintenance().Status(cluster_->client_endpoint(i));
    ASSERT_TRUE(status.ok()) << status.status();
    EXPECT_NE(status->leader(), 0u);
    if (leader != 0) {
      EXPECT_EQ(status->leader(), leader);
    }
    leader = status->leader();
    auto hash = client_->maintenance().HashKV(cluster_->client_endpoint(i), 0);
    ASSERT_TRUE(hash.ok()) << hash.status();
    EXPECT_GT(hash->header().revision(), 0);
  }
  auto defrag = client_->maintenance().Defragment(cluster_->client_endpoint(0));
  EXPECT_TRUE(defrag.ok()) << defrag.status();
  auto alarms = client_->maintenance().AlarmList();
  ASSERT_TRUE(alarms.ok()) << alarms.status();
  EXPECT_EQ(alarms->alarms_size(), 0);
  EXPECT_FALSE(client_->maintenance().Status("127.0.0.1:1").ok());  // not an endpoint
  size_t snapshot_bytes = 0;
  absl::Status snapshot =
      client_->maintenance().Snapshot(cluster_->client_endpoint(1), [&](std::string_view chunk) {
        snapshot_bytes += chunk.size();
        return absl::OkStatus();
      });
  ASSERT_TRUE(snapshot.ok()) << snapshot;
  EXPECT_GT(snapshot_bytes, 0u);

  // Leadership moves to a follower on request.
  uint64_t target = 0;
  for (const auto& m : members->members()) {
    if (m.id() != leader) target = m.id();
  }
  auto moved = client_->maintenance().MoveLeader(target);
  ASSERT_TRUE(moved.ok()) << moved.status();
  auto after = client_->maintenance().Status(cluster_->client_endpoint(0));
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->leader(), target);

  // A learner is added, its peer URL updated, refused promotion (it never
  // started, so it cannot be in sync), and removed.
  // etcd refuses membership changes ("unhealthy cluster") until the member
  // serving the request has been connected to every voter for 5 s; that
  // refusal comes before any proposal, so asking again is safe.
  absl::StatusOr<etcdserverpb::MemberAddResponse> added;
  for (int attempt = 0; attempt < 40; ++attempt) {
    added = client_->cluster().MemberAdd({"http://127.0.0.1:1"}, /*is_learner=*/true);
    if (added.ok() || added.status().message() != "etcdserver: unhealthy cluster") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  ASSERT_TRUE(added.ok()) << added.status();
  const uint64_t learner = added->member().id();
  EXPECT_TRUE(added->member().islearner());
  auto updated = client_->cluster().MemberUpdate(learner, {"http://127.0.0.1:2"});
  EXPECT_TRUE(updated.ok()) << updated.status();
  EXPECT_FALSE(client_->cluster().MemberPromote(learner).ok());
  auto removed = client_->cluster().MemberRemove(learner);
  ASSERT_TRUE(removed.ok()) << removed.status();
  members = client_->cluster().MemberList();
  ASSERT_TRUE(members.ok());
  EXPECT_EQ(members->members_size(), 3);
}

TEST_P(ClientApi, MutexHoldersNeverOverlapAndTokensFenceStaleHolders) {
  constexpr int kThreads = 4;
  constexpr int kRounds = 3;
  std::atomic<int> inside{0};
  std::atomic<int> overlaps{0};
  std::vector<std::thread> threads;
  std::mutex tokens_mu;
  std::vector<int64_t> tokens;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      auto c = Connect(Endpoints(*cluster_));
      client::SessionOptions so;
      so.ttl_s = 10;
      auto session = client::Session::Create(*c, so);
      ASSERT_TRUE(session.ok()) << session.status();
      for (int r = 0; r < kRounds; ++r) {
        client::Mutex m(**session, prefix_ + "lock");
        absl::Status locked = m.Lock(absl::Seconds(60));
        ASSERT_TRUE(locked.ok()) << locked;
        if (inside.fetch_add(1) != 0) overlaps++;
        // The counter is read and written under the lock, fenced by the token.
        auto got = c->kv().Get(prefix_ + "counter");
        ASSERT_TRUE(got.ok());
        const int n = got->kvs().empty() ? 0 : std::stoi(got->kvs(0).value());
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        Txn guarded;
        guarded.If(m.IsOwner()).Then(Op::Put(prefix_ + "counter", absl::StrCat(n + 1)));
        auto put = c->kv().Commit(guarded);
        ASSERT_TRUE(put.ok());
        EXPECT_TRUE(put->succeeded());
        {
          std::lock_guard<std::mutex> lock(tokens_mu);
          tokens.push_back(m.fencing_token());
        }
        inside.fetch_sub(1);
        const std::string key = m.key();
        const int64_t token = m.fencing_token();
        ASSERT_TRUE(m.Unlock().ok());
        // After unlocking, the old token no longer fences anything in.
        Txn stale;
        stale.If(client::CreateRevision(key) == token).Then(Op::Put(prefix_ + "counter", "stale"));
        auto refused = c->kv().Commit(stale);
        ASSERT_TRUE(refused.ok());
        EXPECT_FALSE(refused->succeeded());
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(overlaps.load(), 0);
  auto counter = kv().Get(prefix_ + "counter");
  ASSERT_TRUE(counter.ok());
  ASSERT_EQ(counter->kvs_size(), 1);
  EXPECT_EQ(counter->kvs(0).value(), absl::StrCat(kThreads * kRounds));
  std::set<int64_t> distinct(tokens.begin(), tokens.end());
  EXPECT_EQ(distinct.size(), tokens.size());

  // TryLock refuses while another session holds it.
  auto s1 = client::Session::Create(*client_);
  auto s2 = client::Session::Create(*client_);
  ASSERT_TRUE(s1.ok() && s2.ok());
  client::Mutex m1(**s1, prefix_ + "try");
  client::Mutex m2(**s2, prefix_ + "try");
  ASSERT_TRUE(m1.TryLock().ok());
  EXPECT_EQ(m2.TryLock().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(m2.Lock(absl::Milliseconds(500)).code(), absl::StatusCode::kDeadlineExceeded);
  // Closing the holder's session releases the lock.
  ASSERT_TRUE((*s1)->Close().ok());
  EXPECT_TRUE(m2.Lock(absl::Seconds(10)).ok());
  EXPECT_GT(m2.fencing_token(), m1.fencing_token());
}

TEST_P(ClientApi, ElectionCampaignProclaimObserveResign) {
  auto sa = client::Session::Create(*client_);
  auto sb = client::Session::Create(*client_);
  ASSERT_TRUE(sa.ok() && sb.ok());
  client::Election a(**sa, prefix_ + "e");
  client::Election b(**sb, prefix_ + "e");
  EXPECT_EQ(a.Leader().status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(a.Campaign("a1", absl::Seconds(10)).ok());
  auto observer = a.Observe();
  auto seen = observer->Next(absl::Seconds(10));
  ASSERT_TRUE(seen.ok()) << seen.status();
  EXPECT_EQ(seen->value(), "a1");

  auto b_won = std::async(std::launch::async, [&] { return b.Campaign("b1", absl::Seconds(30)); });
  EXPECT_EQ(b_won.wait_for(std::chrono::milliseconds(1000)), std::future_status::timeout);
  ASSERT_TRUE(a.Proclaim("a2").ok());
  seen = observer->Next(absl::Seconds(10));
  ASSERT_TRUE(seen.ok());
  EXPECT_EQ(seen->value(), "a2");
  auto leader = b.Leader();
  ASSERT_TRUE(leader.ok());
  EXPECT_EQ(leader->value(), "a2");

  ASSERT_TRUE(a.Resign().ok());
  ASSERT_EQ(b_won.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  ASSERT_TRUE(b_won.get().ok());
  seen = observer->Next(absl::Seconds(10));
  ASSERT_TRUE(seen.ok());
  EXPECT_EQ(seen->value(), "b1");
  EXPECT_EQ(seen->key(), b.key());
  EXPECT_EQ(a.Proclaim("a3").message(), "election: not leader");
  EXPECT_TRUE(b.Proclaim("b2").ok());
}

TEST_P(ClientApi, StmRetriesConflictingReadModifyWrites) {
  constexpr int kThreads = 4;
  constexpr int kIncrements = 10;
  std::atomic<int> attempts{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kIncrements; ++i) {
        auto done = client::RunStm(
            *client_,
            [&](client::StmTxn& txn) -> absl::Status {
              attempts++;
              auto a = txn.Get(prefix_ + "a");
              if (!a.ok()) return a.status();
              const int n = a->has_value() ? std::stoi(**a) : 0;
              // Two keys move together: b always equals a.
              txn.Put(prefix_ + "a", absl::StrCat(n + 1));
              txn.Put(prefix_ + "b", absl::StrCat(n + 1));
              return absl::OkStatus();
            },
            /*attempts_max=*/200);
        ASSERT_TRUE(done.ok()) << done.status();
      }
    });
  }
  for (auto& t : threads) t.join();
  auto a = kv().Get(prefix_ + "a");
  auto b = kv().Get(prefix_ + "b");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->kvs(0).value(), absl::StrCat(kThreads * kIncrements));
  EXPECT_EQ(b->kvs(0).value(), a->kvs(0).value());
  EXPECT_GE(attempts.load(), kThreads * kIncrements);
}

TEST_P(ClientApi, InformerEqualsAFreshListThroughWritesDeletesAndCompaction) {
  // The handlers keep their own copy; it must end equal to the cache.
  std::map<std::string, std::string> mirror;
  std::mutex gate;  // held by the test to stall the handlers
  client::InformerHandlers handlers;
  handlers.on_add = [&](const mvccpb::KeyValue& kv) {
    std::lock_guard<std::mutex> hold(gate);
    EXPECT_FALSE(mirror.contains(kv.key()));
    mirror[kv.key()] = kv.value();
  };
  handlers.on_update = [&](const mvccpb::KeyValue& before, const mvccpb::KeyValue& after) {
    std::lock_guard<std::mutex> hold(gate);
    EXPECT_EQ(mirror[before.key()], before.value());
    mirror[after.key()] = after.value();
  };
  handlers.on_delete = [&](const mvccpb::KeyValue& kv) {
    std::lock_guard<std::mutex> hold(gate);
    EXPECT_EQ(mirror.erase(kv.key()), 1u);
  };
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(kv().Put(absl::StrCat(prefix_, i), "initial").ok());
  client::Informer informer(*client_, prefix_, handlers, /*queue_responses_max=*/4);
  ASSERT_TRUE(informer.Start().ok());
  EXPECT_EQ(informer.Snapshot().size(), 5u);

  std::mt19937 rng(20261124);
  auto random_ops = [&](int n) {
    for (int i = 0; i < n; ++i) {
      const std::string key = absl::StrCat(prefix_, rng() % 12);
      if (rng() % 3 == 0) {
        ASSERT_TRUE(kv().Delete(key).ok());
      } else {
        ASSERT_TRUE(kv().Put(key, absl::StrCat("v", i)).ok());
      }
    }
  };
  auto expect_equal_to_list = [&] {
    GetOptions all;
    all.prefix = true;
    auto listed = kv().Get(prefix_, all);
    ASSERT_TRUE(listed.ok());
    ASSERT_TRUE(informer.WaitForRevision(listed->header().revision(), absl::Seconds(20)));
    std::map<std::string, mvccpb::KeyValue> cache = informer.Snapshot();
    ASSERT_EQ(cache.size(), static_cast<size_t>(listed->kvs_size()));
    for (const mvccpb::KeyValue& kv : listed->kvs()) {
      ASSERT_TRUE(cache.contains(kv.key())) << kv.key();
      EXPECT_EQ(cache[kv.key()].value(), kv.value());
      EXPECT_EQ(cache[kv.key()].mod_revision(), kv.mod_revision());
    }
    std::lock_guard<std::mutex> hold(gate);
    ASSERT_EQ(mirror.size(), cache.size());
    for (const auto& [k, v] : cache) EXPECT_EQ(mirror[k], v.value());
  };

  random_ops(60);
  expect_equal_to_list();
  EXPECT_EQ(informer.relists(), 0);

  // Stall the handlers so the watch falls behind and pauses, then compact
  // past it: the informer must relist and emit the difference.
  int64_t compact_at = 0;
  {
    std::lock_guard<std::mutex> hold(gate);
    ASSERT_TRUE(kv().Put(prefix_ + "stall", "x").ok());  // blocks the informer thread
    random_ops(40);
    auto last = kv().Put(prefix_ + "last", "x");
    ASSERT_TRUE(last.ok());
    compact_at = last->header().revision();
    ASSERT_TRUE(kv().Compact(compact_at, true).ok());
  }
  expect_equal_to_list();
  EXPECT_GE(informer.relists(), 1);
  EXPECT_GE(informer.synced_revision(), compact_at);
  random_ops(30);
  expect_equal_to_list();
}

INSTANTIATE_TEST_SUITE_P(EtcdAndGanglion, ClientApi,
                         ::testing::Values(std::string(GANGLION_ETCD_BINARY),
                                           std::string(GANGLION_BINARY)),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return BackendName(info.param);
                         });

// Tests that kill members: a fresh cluster each.
class ClientFailover : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    cluster_ = StartCluster(GetParam());
    ASSERT_NE(cluster_, nullptr);
  }
  std::unique_ptr<ProcessCluster> cluster_;
};

TEST_P(ClientFailover, WatchResumesOnAnotherMemberWithoutLossOrRepeats) {
  // The watching client prefers member 0, which will die; the writer never
  // talks to it.
  auto watching = Connect(Endpoints(*cluster_));
  auto writer = Connect({cluster_->client_endpoint(1), cluster_->client_endpoint(2)});
  ASSERT_NE(watching, nullptr);
  ASSERT_NE(writer, nullptr);
  WatchOptions options;
  options.prefix = true;
  auto w = watching->watch().Watch("/w/", options);
  ASSERT_TRUE(w.ok()) << w.status();

  constexpr int kKeys = 60;
  std::thread writes([&] {
    for (int i = 0; i < kKeys; ++i) {
      if (i == kKeys / 3) {
        EXPECT_TRUE(cluster_->Kill(0).ok());
      }
      // Create-once, so a retried write cannot produce a second event.
      const std::string key = absl::StrCat("/w/", 1000 + i);
      Txn once;
      once.If(client::CreateRevision(key) == 0).Then(Op::Put(key, absl::StrCat(i)));
      bool done = false;
      for (int attempt = 0; attempt < 50 && !done; ++attempt) {
        done = writer->kv().Commit(once).ok();
        if (!done) std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      EXPECT_TRUE(done) << key;
    }
  });
  std::vector<mvccpb::Event> events = Collect(**w, kKeys, absl::Seconds(60));
  writes.join();
  ASSERT_EQ(events.size(), static_cast<size_t>(kKeys));
  int64_t prev = 0;
  for (int i = 0; i < kKeys; ++i) {
    EXPECT_EQ(events[i].kv().key(), absl::StrCat("/w/", 1000 + i));
    EXPECT_GT(events[i].kv().mod_revision(), prev);
    prev = events[i].kv().mod_revision();
  }
  // Nothing more arrives: no event was repeated after the reconnect.
  EXPECT_EQ((*w)->Next(absl::Milliseconds(500)).status().code(),
            absl::StatusCode::kDeadlineExceeded);
}

TEST_P(ClientFailover, KeepAliveAndCallsSurviveALeaderKill) {
  absl::StatusOr<int> leader = cluster_->LeaderIndex();
  ASSERT_TRUE(leader.ok()) << leader.status();
  // The leader first, so every stream and call starts on the member that dies.
  std::vector<std::string> endpoints = {cluster_->client_endpoint(*leader)};
  for (int i = 0; i < cluster_->size(); ++i) {
    if (i != *leader) endpoints.push_back(cluster_->client_endpoint(i));
  }
  auto c = Connect(endpoints);
  ASSERT_NE(c, nullptr);
  auto granted = c->lease().Grant(4);
  ASSERT_TRUE(granted.ok()) << granted.status();
  std::atomic<bool> lost{false};
  auto handle = c->lease().KeepAlive(granted->id(), [&](absl::Status) { lost = true; });
  ASSERT_TRUE(handle.ok());
  ASSERT_TRUE(c->kv().Put("/ka/key", "v", {.lease = granted->id()}).ok());

  ASSERT_TRUE(cluster_->Kill(*leader).ok());
  // Reads fail over at once; twice the TTL later the lease is still alive.
  auto got = c->kv().Get("/ka/key");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->kvs_size(), 1);
  std::this_thread::sleep_for(std::chrono::seconds(8));
  EXPECT_FALSE(lost.load());
  auto ttl = c->lease().TimeToLive(granted->id());
  ASSERT_TRUE(ttl.ok()) << ttl.status();
  EXPECT_GT(ttl->ttl(), 0);
  got = c->kv().Get("/ka/key");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->kvs_size(), 1);
  // Writes work again on the new leader.
  EXPECT_TRUE(c->kv().Put("/ka/after", "v").ok());
}

INSTANTIATE_TEST_SUITE_P(EtcdAndGanglion, ClientFailover,
                         ::testing::Values(std::string(GANGLION_ETCD_BINARY),
                                           std::string(GANGLION_BINARY)),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return BackendName(info.param);
                         });

}  // namespace
}  // namespace ganglion::tests
