// The hub against a real StateStore in a temp dir: each test names the etcd
// watch guarantee it checks.
#include "watch/hub.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "storage/state_store_testing.h"

namespace ganglion::watch {
namespace {

using etcdserverpb::WatchResponse;
using storage::StateStore;
using storage::testing::Applier;
using storage::testing::OpenOrDie;
using storage::testing::TempDir;
using namespace std::chrono_literals;

// Bounded waits: every wait in these tests gives up after `timeout`.
template <typename Pred>
bool WaitFor(Pred pred, std::chrono::milliseconds timeout = 10s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

// A client stream: collects what the hub queues, when told to read.
class Client {
 public:
  explicit Client(Hub* hub) : hub_(hub) {
    auto ref = hub->OpenStream([] {});
    EXPECT_TRUE(ref.ok()) << ref.status();
    ref_ = *ref;
  }
  ~Client() { hub_->CloseStream(ref_.id); }

  Hub::StreamId id() const { return ref_.id; }
  // Pops whatever is queued now.
  void Read() {
    WatchResponse r;
    while (ref_.queue->Pop(&r)) got_.push_back(r);
  }
  // Reads until `n` responses arrived in total (bounded).
  bool ReadUntil(size_t n, std::chrono::milliseconds timeout = 10s) {
    return WaitFor(
        [&] {
          Read();
          return got_.size() >= n;
        },
        timeout);
  }
  std::vector<WatchResponse>& got() { return got_; }
  uint64_t pending_bytes() const { return ref_.queue->pending_bytes(); }

  void Watch(const std::string& key, const std::string& end = "", int64_t start = 0,
             int64_t id = 0) {
    WatchSpec spec;
    spec.key = key;
    spec.range_end = end;
    spec.start_revision = start;
    spec.watch_id = id;
    ASSERT_TRUE(hub_->Create(ref_.id, spec).ok());
  }

 private:
  Hub* hub_;
  Hub::StreamRef ref_;
  std::vector<WatchResponse> got_;
};

// (revision, key, type) of every event received by watch `id`, in order.
struct Seen {
  int64_t rev;
  std::string key;
  int type;
  bool operator==(const Seen&) const = default;
};
std::vector<Seen> EventsOf(const std::vector<WatchResponse>& rs, int64_t id) {
  std::vector<Seen> out;
  for (const auto& r : rs) {
    if (r.watch_id() != id) continue;
    for (const auto& ev : r.events())
      out.push_back({ev.kv().mod_revision(), ev.kv().key(), ev.type()});
  }
  return out;
}

class HubTest : public ::testing::Test {
 protected:
  HubTest() : store_(OpenOrDie(dir_.sub("state"))), a_(store_.get()) {}
  ~HubTest() override {
    if (hub_) hub_->Stop();
  }
  void StartHub(HubOptions o = {}) {
    hub_ = std::make_unique<Hub>(store_, o);
    Connect(store_.get());
  }
  // What the server's subscriber does: hand every applied revision to the hub.
  void Connect(StateStore* store) {
    store->Subscribe(
        [h = hub_.get()](const std::vector<storage::RevisionEvents>& b) { h->Publish(b); });
  }
  etcdserverpb::TxnRequest PutsTxn(const std::vector<std::pair<std::string, std::string>>& kvs) {
    etcdserverpb::TxnRequest t;
    for (const auto& [k, v] : kvs) {
      auto* p = t.add_success()->mutable_request_put();
      p->set_key(k);
      p->set_value(v);
    }
    return t;
  }

  TempDir dir_;
  std::shared_ptr<StateStore> store_;
  Applier a_;
  std::unique_ptr<Hub> hub_;
};

TEST_F(HubTest, CreatedThenLiveEventsWithHeaderRevision) {
  StartHub();
  Client c(hub_.get());
  c.Watch("foo");
  ASSERT_TRUE(c.ReadUntil(1));
  EXPECT_TRUE(c.got()[0].created());
  EXPECT_EQ(c.got()[0].watch_id(), 0);  // etcd: auto ids start at 0 per stream
  a_.Put("foo", "1");
  a_.Put("bar", "x");  // not watched
  a_.Put("foo", "2");
  ASSERT_TRUE(c.ReadUntil(3));
  EXPECT_EQ(c.got().size(), 3u);
  EXPECT_EQ(c.got()[1].header().revision(), 1);
  EXPECT_EQ(c.got()[1].events(0).kv().value(), "1");
  EXPECT_EQ(c.got()[2].header().revision(), 3);
  EXPECT_EQ(c.got()[2].events(0).kv().value(), "2");
  EXPECT_FALSE(c.got()[2].events(0).has_prev_kv());  // not asked for
}

TEST_F(HubTest, AutoIdsSkipClientIdsAndDuplicatesAreRefusedAsEtcdDoes) {
  StartHub();
  Client c(hub_.get());
  c.Watch("a", "", 0, 1);  // client-chosen 1
  c.Watch("a");            // auto: 0
  c.Watch("a");            // auto: 2 (1 is taken)
  c.Watch("a", "", 0, 2);  // duplicate
  c.Watch("b", "a");       // empty range
  ASSERT_TRUE(c.ReadUntil(5));
  EXPECT_EQ(c.got()[0].watch_id(), 1);
  EXPECT_EQ(c.got()[1].watch_id(), 0);
  EXPECT_EQ(c.got()[2].watch_id(), 2);
  EXPECT_TRUE(c.got()[3].created());
  EXPECT_TRUE(c.got()[3].canceled());
  EXPECT_EQ(c.got()[3].watch_id(), -1);
  EXPECT_EQ(c.got()[3].cancel_reason(), kErrDuplicateWatchId);
  EXPECT_EQ(c.got()[4].cancel_reason(), kErrEmptyWatcherRange);
  EXPECT_EQ(hub_->Stats().watchers, 3u);
  ASSERT_TRUE(hub_->Cancel(c.id(), 2).ok());
  ASSERT_TRUE(c.ReadUntil(6));
  EXPECT_TRUE(c.got()[5].canceled());
  EXPECT_EQ(c.got()[5].watch_id(), 2);
  EXPECT_EQ(hub_->Stats().watchers, 2u);
}

// Canceling watchers from the middle of a key's list and of the range list,
// and closing a stream that shares a key with another, leaves exactly the
// others receiving, each once.
TEST_F(HubTest, CancelsAndClosedStreamsLeaveExactlyTheOthersWatching) {
  StartHub();
  Client c(hub_.get());
  for (int i = 0; i < 5; i++) c.Watch("k");                        // ids 0-4
  for (int i = 0; i < 3; i++) c.Watch("j", std::string(1, '\0'));  // ids 5-7: ranges
  c.Watch("other");                                                // id 8
  ASSERT_TRUE(c.ReadUntil(9));
  {
    Client gone(hub_.get());
    gone.Watch("k");
    gone.Watch("j", "l");
    ASSERT_TRUE(gone.ReadUntil(2));
  }  // closed: its watchers leave the same key list and the range list
  for (int64_t id : {1, 3, 6}) ASSERT_TRUE(hub_->Cancel(c.id(), id).ok());
  ASSERT_TRUE(c.ReadUntil(12));
  EXPECT_EQ(hub_->Stats().watchers, 6u);
  a_.Put("k", "v");  // rev 1: k's 0, 2, 4 and ranges 5, 7 ("k" >= "j")
  a_.Put("other", "o");  // rev 2: 8, and ranges 5, 7
  ASSERT_TRUE(c.ReadUntil(12 + 8));
  std::map<int64_t, std::vector<int64_t>> revs;
  for (size_t i = 12; i < c.got().size(); i++) {
    for (const auto& ev : c.got()[i].events()) revs[c.got()[i].watch_id()].push_back(ev.kv().mod_revision());
  }
  std::map<int64_t, std::vector<int64_t>> want = {
      {0, {1}}, {2, {1}}, {4, {1}}, {5, {1, 2}}, {7, {1, 2}}, {8, {2}}};
  EXPECT_EQ(revs, want);
}

TEST_F(HubTest, AtomicTxnEventsInOneResponse) {
  StartHub();
  Client c(hub_.get());
  c.Watch("k", std::string(1, '\0'));  // every key >= "k"
  ASSERT_TRUE(c.ReadUntil(1));
  ASSERT_TRUE(a_.Txn(PutsTxn({{"k1", "a"}, {"k2", "b"}, {"k3", "c"}})).ok());
  ASSERT_TRUE(c.ReadUntil(2));
  ASSERT_EQ(c.got()[1].events_size(), 3);
  for (const auto& ev : c.got()[1].events()) EXPECT_EQ(ev.kv().mod_revision(), 1);
}

TEST_F(HubTest, ResumesFromLastPlusOneAcrossHistoryAndLive) {
  for (int i = 0; i < 20; ++i) a_.Put("k", std::to_string(i));  // revs 1..20
  StartHub();
  Client c(hub_.get());
  c.Watch("k", "", 8);
  ASSERT_TRUE(WaitFor([&] {
    c.Read();
    return EventsOf(c.got(), 0).size() >= 13;
  }));
  for (int i = 20; i < 25; ++i) a_.Put("k", std::to_string(i));  // revs 21..25 live
  ASSERT_TRUE(WaitFor([&] {
    c.Read();
    return EventsOf(c.got(), 0).size() >= 18;
  }));
  auto seen = EventsOf(c.got(), 0);
  ASSERT_EQ(seen.size(), 18u);
  for (size_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i].rev, 8 + static_cast<int64_t>(i));
}

TEST_F(HubTest, CompactedStartRevisionCancelsWithCompactRevision) {
  for (int i = 0; i < 10; ++i) a_.Put("k", std::to_string(i));
  ASSERT_TRUE(a_.Compact(6).ok());
  StartHub();
  Client c(hub_.get());
  c.Watch("k", "", 3);
  c.Watch("k", "", 6);  // the compact revision itself is still watchable
  ASSERT_TRUE(WaitFor([&] {
    c.Read();
    return c.got().size() >= 4;
  }));
  const WatchResponse* cancel = nullptr;
  for (const auto& r : c.got()) {
    if (r.canceled()) cancel = &r;
  }
  ASSERT_NE(cancel, nullptr);
  EXPECT_EQ(cancel->watch_id(), 0);
  EXPECT_EQ(cancel->compact_revision(), 6);
  auto seen = EventsOf(c.got(), 1);
  ASSERT_EQ(seen.size(), 5u);
  EXPECT_EQ(seen.front().rev, 6);
  EXPECT_EQ(hub_->Stats().watchers, 1u);
}

TEST_F(HubTest, FiltersAndPrevKv) {
  StartHub();
  Client c(hub_.get());
  WatchSpec noput;
  noput.key = "k";
  noput.filter_put = true;
  WatchSpec nodel;
  nodel.key = "k";
  nodel.watch_id = 5;
  nodel.filter_delete = true;
  nodel.prev_kv = true;
  ASSERT_TRUE(hub_->Create(c.id(), noput).ok());
  ASSERT_TRUE(hub_->Create(c.id(), nodel).ok());
  a_.Put("k", "1");
  a_.Put("k", "2");
  a_.Delete("k");
  ASSERT_TRUE(WaitFor([&] {
    c.Read();
    return EventsOf(c.got(), 0).size() == 1 && EventsOf(c.got(), 5).size() == 2;
  }));
  EXPECT_EQ(EventsOf(c.got(), 0)[0].type, mvccpb::Event::DELETE);
  std::vector<WatchResponse> puts;
  for (const auto& r : c.got()) {
    if (r.watch_id() == 5 && r.events_size() > 0) puts.push_back(r);
  }
  ASSERT_EQ(puts.size(), 2u);
  EXPECT_FALSE(puts[0].events(0).has_prev_kv());  // first version: nothing before
  EXPECT_EQ(puts[1].events(0).prev_kv().value(), "1");
  for (const auto& r : c.got()) {
    if (r.watch_id() == 0) {
      for (const auto& ev : r.events()) EXPECT_FALSE(ev.has_prev_kv());
    }
  }
}

TEST_F(HubTest, ProgressNotifyAndProgressRequest) {
  HubOptions o;
  o.progress_notify_interval = 50ms;
  StartHub(o);
  a_.Put("x", "1");
  Client c(hub_.get());
  WatchSpec spec;
  spec.key = "k";
  spec.progress_notify = true;
  ASSERT_TRUE(hub_->Create(c.id(), spec).ok());
  ASSERT_TRUE(c.ReadUntil(2));
  EXPECT_EQ(c.got()[1].watch_id(), 0);
  EXPECT_EQ(c.got()[1].events_size(), 0);
  EXPECT_EQ(c.got()[1].header().revision(), 1);

  Client d(hub_.get());
  d.Watch("k");
  ASSERT_TRUE(hub_->RequestProgress(d.id()).ok());
  ASSERT_TRUE(d.ReadUntil(2));
  EXPECT_EQ(d.got()[1].watch_id(), -1);
  EXPECT_EQ(d.got()[1].header().revision(), 1);
}

TEST_F(HubTest, ProgressRequestWaitsUntilWatchersAreSynced) {
  for (int i = 0; i < 50; ++i) a_.Put("k", std::to_string(i));
  HubOptions o;
  o.catchup_events_max = 1;
  o.catchup_pages_per_round_max = 1;
  o.tick = 5ms;
  StartHub(o);
  Client c(hub_.get());
  c.Watch("k", "", 1);
  ASSERT_TRUE(hub_->RequestProgress(c.id()).ok());
  ASSERT_TRUE(WaitFor([&] {
    c.Read();
    return !c.got().empty() && c.got().back().watch_id() == -1;
  }));
  // The progress response comes after every event up to its revision.
  EXPECT_EQ(EventsOf(c.got(), 0).size(), 50u);
  EXPECT_EQ(c.got().back().header().revision(), 50);
}

TEST_F(HubTest, FragmentSplitsLargeResponsesOnlyWhenAsked) {
  HubOptions o;
  o.max_request_bytes = 1000;
  StartHub(o);
  Client c(hub_.get());
  WatchSpec frag;
  frag.key = "k";
  frag.range_end = "l";
  frag.fragment = true;
  WatchSpec whole;
  whole.key = "k";
  whole.range_end = "l";
  whole.watch_id = 7;
  ASSERT_TRUE(hub_->Create(c.id(), frag).ok());
  ASSERT_TRUE(hub_->Create(c.id(), whole).ok());
  std::vector<std::pair<std::string, std::string>> kvs;
  for (int i = 0; i < 10; ++i) kvs.push_back({"k" + std::to_string(i), std::string(300, 'v')});
  ASSERT_TRUE(a_.Txn(PutsTxn(kvs)).ok());
  ASSERT_TRUE(WaitFor([&] {
    c.Read();
    return EventsOf(c.got(), 0).size() == 10 && EventsOf(c.got(), 7).size() == 10;
  }));
  std::vector<WatchResponse> pieces;
  int whole_responses = 0;
  for (const auto& r : c.got()) {
    if (r.watch_id() == 0 && r.events_size() > 0) pieces.push_back(r);
    if (r.watch_id() == 7 && r.events_size() > 0) whole_responses++;
  }
  EXPECT_EQ(whole_responses, 1);
  ASSERT_GT(pieces.size(), 2u);
  for (size_t i = 0; i < pieces.size(); ++i) {
    EXPECT_EQ(pieces[i].fragment(), i + 1 < pieces.size()) << i;
    EXPECT_LT(pieces[i].ByteSizeLong(), 1000u);
  }
}

// Reliable, ordered, unique for a consumer that does not read for a while:
// its watcher is moved to the unsynced set and catches up from history in
// small pages, while another stream keeps getting live events.
TEST_F(HubTest, SlowConsumerCatchesUpWithoutGapsOrRepeats) {
  HubOptions o;
  o.stream_pending_bytes_max = 2048;
  o.catchup_events_max = 7;
  o.tick = 5ms;
  StartHub(o);
  Client slow(hub_.get());
  Client fast(hub_.get());
  slow.Watch("k", "l");
  fast.Watch("k", "l");
  uint64_t max_slow = 0;
  int64_t last = 0;
  for (int i = 0; i < 300; ++i) {
    if (i % 10 == 0) {
      auto r =
          a_.Txn(PutsTxn({{"k" + std::to_string(i), "a"}, {"k" + std::to_string(i + 1), "b"}}));
      ASSERT_TRUE(r.ok());
      last = r->header().revision();
    } else {
      last = a_.Put("k" + std::to_string(i % 13), std::string(50, 'x')).header().revision();
    }
    a_.Put("other", "y");  // not watched
    fast.Read();
    max_slow = std::max(max_slow, hub_->Stats().slow_watchers);
  }
  // The dispatcher runs behind the writes (on a loaded machine, possibly
  // all of them): the slow stream, which has read nothing, must be aside
  // once it has seen them.
  EXPECT_TRUE(WaitFor([&] {
    max_slow = std::max(max_slow, hub_->Stats().slow_watchers);
    return max_slow >= 1;
  })) << "the slow stream was never moved aside";
  EXPECT_GT(slow.pending_bytes(), 0u);
  ASSERT_TRUE(WaitFor([&] {
    slow.Read();
    fast.Read();
    auto s = EventsOf(slow.got(), 0);
    return !s.empty() && s.back().rev == last && EventsOf(fast.got(), 0).size() == s.size();
  }));
  EXPECT_EQ(EventsOf(slow.got(), 0), EventsOf(fast.got(), 0));
  // Every watched revision exactly once, in order, each revision in one response.
  std::vector<int64_t> revs;
  for (const auto& r : slow.got()) {
    std::set<int64_t> in_response;
    for (const auto& ev : r.events()) in_response.insert(ev.kv().mod_revision());
    for (int64_t rev : in_response) revs.push_back(rev);
  }
  for (size_t i = 1; i < revs.size(); ++i) ASSERT_LT(revs[i - 1], revs[i]) << "repeat or reorder";
  EXPECT_EQ(revs.size(), 300u);
  ASSERT_TRUE(WaitFor([&] { return hub_->Stats().slow_watchers == 0; }));
}

// The incoming queue from the apply loop is bounded: when it overflows,
// revisions are recovered from history instead of blocking Apply.
TEST_F(HubTest, IncomingOverflowIsRecoveredFromHistory) {
  HubOptions o;
  o.incoming_revisions_max = 0;  // every revision overflows
  StartHub(o);
  Client c(hub_.get());
  c.Watch("k");
  for (int i = 0; i < 200; ++i) a_.Put("k", std::to_string(i));
  ASSERT_TRUE(WaitFor([&] {
    c.Read();
    return EventsOf(c.got(), 0).size() >= 200;
  }));
  auto seen = EventsOf(c.got(), 0);
  ASSERT_EQ(seen.size(), 200u);
  for (size_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i].rev, static_cast<int64_t>(i) + 1);
  EXPECT_GE(hub_->Stats().incoming_dropped_revisions_total, 200u);
}

TEST_F(HubTest, ManyWatchersEachGetExactlyTheirKeys) {
  StartHub();
  std::vector<std::unique_ptr<Client>> clients;
  for (int s = 0; s < 20; ++s) {
    clients.push_back(std::make_unique<Client>(hub_.get()));
    for (int w = 0; w < 100; ++w) clients.back()->Watch("key" + std::to_string(w));
  }
  EXPECT_EQ(hub_->Stats().watchers, 2000u);
  EXPECT_EQ(hub_->Stats().streams, 20u);
  for (int i = 0; i < 300; ++i) a_.Put("key" + std::to_string(i % 100), std::to_string(i));
  for (auto& c : clients) {
    ASSERT_TRUE(WaitFor([&] {
      c->Read();
      size_t n = 0;
      for (const auto& r : c->got()) n += r.events_size();
      return n >= 300;
    }));
    for (int w = 0; w < 100; ++w) {
      auto seen = EventsOf(c->got(), w);
      ASSERT_EQ(seen.size(), 3u);
      for (const auto& e : seen) EXPECT_EQ(e.key, "key" + std::to_string(w));
    }
  }
  EXPECT_GE(hub_->Stats().events_sent_total, 6000u);
}

// The server installs a leader's snapshot by reopening the state store:
// watchers continue from the new store's history, or are canceled when
// their next revision is compacted there.
TEST_F(HubTest, ResetStoreResumesFromNewHistoryOrCancels) {
  StartHub();
  Client c(hub_.get());
  c.Watch("k");
  c.Watch("j", "", 0, 9);
  for (int i = 0; i < 5; ++i) a_.Put("k", std::to_string(i));  // revs 1..5
  ASSERT_TRUE(WaitFor([&] {
    c.Read();
    return EventsOf(c.got(), 0).size() == 5;
  }));
  // The "leader's" store: the same history, further on, compacted at 4 for
  // "j" (whose watcher needs revision 1) but not for "k" (needs 6).
  std::shared_ptr<StateStore> other = OpenOrDie(dir_.sub("other"));
  Applier b(other.get());
  for (int i = 0; i < 12; ++i) b.Put("k", std::to_string(i));  // revs 1..12
  Connect(other.get());
  hub_->ResetStore(other);
  auto seen_k = [&] { return EventsOf(c.got(), 0); };
  ASSERT_TRUE(WaitFor([&] {
    c.Read();
    return seen_k().size() == 12;
  }));
  for (size_t i = 0; i < 12; ++i) EXPECT_EQ(seen_k()[i].rev, static_cast<int64_t>(i) + 1);
  b.Put("k", "live");  // rev 13 arrives live from the new store
  ASSERT_TRUE(WaitFor([&] {
    c.Read();
    return seen_k().size() == 13;
  }));

  // Now a reset to a store compacted past what both watchers need (rev 14).
  std::shared_ptr<StateStore> third = OpenOrDie(dir_.sub("third"));
  Applier t(third.get());
  for (int i = 0; i < 20; ++i) t.Put("k", std::to_string(i));
  ASSERT_TRUE(t.Compact(18).ok());
  Connect(third.get());
  hub_->ResetStore(third);
  ASSERT_TRUE(WaitFor([&] {
    c.Read();
    int canceled = 0;
    for (const auto& r : c.got()) canceled += r.canceled() && r.compact_revision() == 18;
    return canceled == 2;
  }));
  EXPECT_EQ(hub_->Stats().watchers, 0u);
}

}  // namespace
}  // namespace ganglion::watch
