// The reconciler framework over an in-memory store and the real API handler:
// the work queue's guarantees, the object cache's list-then-watch and
// relist, the fenced object client, and the host starting, stopping and
// fencing reconcilers as leadership comes and goes.
#include <atomic>
#include <set>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "orchestrator/api/handler.h"
#include "orchestrator/reconcile/host.h"
#include "orchestrator/storage/memory_object_store.h"

namespace ganglion::orchestrator {
namespace {

template <typename Pred>
bool Eventually(Pred pred, absl::Duration timeout = absl::Seconds(10)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (pred()) return true;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return pred();
}

Json ConfigMap(const std::string& ns, const std::string& name, const std::string& value) {
  return {{"apiVersion", "v1"},
          {"kind", "ConfigMap"},
          {"metadata", {{"name", name}, {"namespace", ns}}},
          {"data", {{"x", value}}}};
}

TEST(WorkQueue, AddsOfAQueuedKeyCollapse) {
  WorkQueue q;
  q.Add("a");
  q.Add("a");
  q.Add("b");
  EXPECT_EQ(q.Len(), 2u);
  EXPECT_EQ(*q.Get(), "a");
  EXPECT_EQ(*q.Get(), "b");
  EXPECT_EQ(q.Len(), 0u);
}

TEST(WorkQueue, KeyAddedWhileProcessingComesBackAfterDone) {
  WorkQueue q;
  q.Add("a");
  ASSERT_EQ(*q.Get(), "a");
  q.Add("a");  // while held: not handed to a second worker
  EXPECT_EQ(q.Len(), 0u);
  q.Done("a");
  EXPECT_EQ(q.Len(), 1u);
  EXPECT_EQ(*q.Get(), "a");
  q.Done("a");
  EXPECT_EQ(q.Len(), 0u);
}

TEST(WorkQueue, NeverHandsOneKeyToTwoWorkers) {
  WorkQueue q;
  std::atomic<int> holding{0};
  std::atomic<bool> overlap{false};
  std::atomic<int> processed{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < 4; ++w) {
    workers.emplace_back([&] {
      while (auto key = q.Get()) {
        if (holding.fetch_add(1) != 0) overlap = true;
        std::this_thread::sleep_for(std::chrono::microseconds(200));
        holding.fetch_sub(1);
        processed++;
        q.Done(*key);
      }
    });
  }
  for (int i = 0; i < 2000; ++i) q.Add("same");
  EXPECT_TRUE(Eventually([&] { return q.Len() == 0 && holding.load() == 0; }));
  q.ShutDown();
  for (auto& t : workers) t.join();
  EXPECT_FALSE(overlap.load());
  EXPECT_GE(processed.load(), 1);
}

TEST(WorkQueue, RateLimitedBackOffDoublesAndForgetResets) {
  WorkQueueOptions o;
  o.backoff_base = absl::Milliseconds(20);
  o.backoff_max = absl::Milliseconds(80);
  WorkQueue q(o);
  for (int i = 1; i <= 4; ++i) {
    const absl::Time start = absl::Now();
    q.AddRateLimited("k");
    ASSERT_EQ(*q.Get(), "k");
    const absl::Duration waited = absl::Now() - start;
    const absl::Duration expected = std::min(absl::Milliseconds(20) * (1 << (i - 1)), o.backoff_max);
    EXPECT_GE(waited, expected - absl::Milliseconds(2)) << "failure " << i;
    q.Done("k");
  }
  EXPECT_EQ(q.Failures("k"), 4);
  q.Forget("k");
  EXPECT_EQ(q.Failures("k"), 0);
}

TEST(WorkQueue, AddAfterIsOvertakenByAnAdd) {
  WorkQueue q;
  q.AddAfter("k", absl::Seconds(30));
  EXPECT_EQ(q.Len(), 0u);
  q.Add("k");
  EXPECT_EQ(*q.Get(), "k");
}

TEST(WorkQueue, ShutDownWakesGet) {
  WorkQueue q;
  std::thread t([&] { EXPECT_FALSE(q.Get().has_value()); });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  q.ShutDown();
  t.join();
  q.Add("x");
  EXPECT_EQ(q.Len(), 0u);
}

class ReconcileTest : public ::testing::Test {
 protected:
  ReconcileTest() : api_(store_, "test"), client_(api_) {
    EXPECT_TRUE(api_.EnsureDefaultNamespaces().ok());
  }
  MemoryObjectStore store_;
  ApiHandler api_;
  ObjectClient client_;
  const ResourceType& configmaps_ = TypeOf("", "configmaps");
};

TEST_F(ReconcileTest, CacheListsThenFollowsEveryChangeInOrder) {
  ASSERT_TRUE(client_.Create(configmaps_, ConfigMap("default", "before", "1")).ok());
  ObjectCache cache(store_, configmaps_);
  std::vector<std::string> seen;
  std::mutex mu;
  cache.AddHandlers({[&](const ObjectPtr& o) {
                       std::lock_guard<std::mutex> l(mu);
                       seen.push_back("add " + ObjectKey(*o));
                     },
                     [&](const ObjectPtr&, const ObjectPtr& o) {
                       std::lock_guard<std::mutex> l(mu);
                       seen.push_back("update " + ObjectKey(*o) + " " +
                                      (*o)["data"]["x"].get<std::string>());
                     },
                     [&](const ObjectPtr& o) {
                       std::lock_guard<std::mutex> l(mu);
                       seen.push_back("delete " + ObjectKey(*o));
                     }});
  cache.AddIndex("x", [](const Json& o) {
    return std::vector<std::string>{o["data"].value("x", "")};
  });
  ASSERT_TRUE(cache.Start().ok());
  auto made = client_.Create(configmaps_, ConfigMap("kube-system", "after", "2"));
  ASSERT_TRUE(made.ok()) << made.status();
  Json changed = cache.Get("default/before") ? *cache.Get("default/before") : Json();
  changed["data"]["x"] = "2";
  ASSERT_TRUE(client_.Update(configmaps_, changed).ok());
  ASSERT_TRUE(client_.Delete(configmaps_, "kube-system", "after").ok());
  {
    // Not held below: the store calls the handlers (which take mu) under its
    // own lock, so taking the store's lock under mu would invert the order.
    std::lock_guard<std::mutex> l(mu);
    EXPECT_EQ(seen, (std::vector<std::string>{"add default/before", "add kube-system/after",
                                              "update default/before 2",
                                              "delete kube-system/after"}));
  }
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.ByIndex("x", "2").size(), 1u);
  EXPECT_TRUE(cache.ByIndex("x", "1").empty());
  EXPECT_EQ(cache.List("default").size(), 1u);
  EXPECT_TRUE(cache.List("kube-system").empty());
  EXPECT_GE(cache.revision(), store_.watched_revision());
}

TEST_F(ReconcileTest, StaleUpdateIsRejectedNotApplied) {
  auto made = client_.Create(configmaps_, ConfigMap("default", "cas", "1"));
  ASSERT_TRUE(made.ok());
  Json first = *made, second = *made;
  first["data"]["x"] = "first";
  second["data"]["x"] = "second";
  ASSERT_TRUE(client_.Update(configmaps_, first).ok());
  auto stale = client_.Update(configmaps_, second);
  EXPECT_TRUE(absl::IsAborted(stale.status())) << stale.status();
  auto now = client_.Get(configmaps_, "default", "cas");
  ASSERT_TRUE(now.ok());
  EXPECT_EQ((*now)["data"]["x"], "first");
}

TEST_F(ReconcileTest, FencedClientWritesNothing) {
  bool allowed = false;
  ObjectClient fenced(api_, [&] { return allowed; });
  auto refused = fenced.Create(configmaps_, ConfigMap("default", "fenced", "1"));
  EXPECT_TRUE(absl::IsFailedPrecondition(refused.status())) << refused.status();
  EXPECT_TRUE(absl::IsNotFound(client_.Get(configmaps_, "default", "fenced").status()));
  allowed = true;
  EXPECT_TRUE(fenced.Create(configmaps_, ConfigMap("default", "fenced", "1")).ok());
}

// Copies data.x into the annotation "copied" of every ConfigMap that has one.
class CopyReconciler : public Reconciler {
 public:
  explicit CopyReconciler(std::atomic<int>* calls) : calls_(calls) {}
  void Setup(ReconcileContext& ctx) override {
    ctx_ = &ctx;
    cache_ = &ctx.Cache("", "configmaps");
    cache_->AddHandlers({[&q = ctx.queue()](const ObjectPtr& o) { q.Add(ObjectKey(*o)); },
                         [&q = ctx.queue()](const ObjectPtr&, const ObjectPtr& o) {
                           q.Add(ObjectKey(*o));
                         },
                         nullptr});
  }
  absl::Status Reconcile(const std::string& key) override {
    (*calls_)++;
    ObjectPtr o = cache_->Get(key);
    if (!o || !(*o).contains("data")) return absl::OkStatus();
    const std::string want = (*o)["data"].value("x", "");
    if ((*o)["metadata"].contains("annotations") &&
        (*o)["metadata"]["annotations"].value("copied", "") == want) {
      return absl::OkStatus();  // level-triggered: nothing to do
    }
    Json next = *o;
    next["metadata"]["annotations"]["copied"] = want;
    return ctx_->client().Update(TypeOf("", "configmaps"), next).status();
  }

 private:
  std::atomic<int>* calls_;
  ReconcileContext* ctx_ = nullptr;
  ObjectCache* cache_ = nullptr;
};

std::string Copied(ObjectClient& client, const std::string& name) {
  auto o = client.Get(TypeOf("", "configmaps"), "default", name);
  if (!o.ok() || !(*o)["metadata"].contains("annotations")) return "";
  return (*o)["metadata"]["annotations"].value("copied", "");
}

TEST_F(ReconcileTest, HostRunsReconcilersOnlyWhileLeading) {
  std::atomic<int> calls{0};
  ReconcilerHost host(store_, api_);
  host.Register({"copy", 2, {}, [&](ReconcileContext&) {
                   return std::make_unique<CopyReconciler>(&calls);
                 }});
  ASSERT_TRUE(client_.Create(configmaps_, ConfigMap("default", "a", "1")).ok());
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_EQ(calls.load(), 0) << "reconciled without leading";
  EXPECT_FALSE(host.stats().leading);

  host.SetLeading(true, 5);
  EXPECT_TRUE(Eventually([&] { return Copied(client_, "a") == "1"; }));
  ASSERT_TRUE(client_.Create(configmaps_, ConfigMap("default", "b", "2")).ok());
  EXPECT_TRUE(Eventually([&] { return Copied(client_, "b") == "2"; }));
  HostStats s = host.stats();
  EXPECT_TRUE(s.leading);
  EXPECT_EQ(s.term, 5u);
  EXPECT_EQ(s.reconcilers_running, 1);
  EXPECT_NE(s.first_reconcile_at, absl::InfinitePast());
  // Converged: further reconciles of the same state write nothing.
  const int64_t revision = store_.watched_revision();
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_EQ(store_.watched_revision(), revision);

  host.SetLeading(false, 5);
  EXPECT_TRUE(Eventually([&] { return !host.stats().leading; }));
  const int calls_after_stop = calls.load();
  ASSERT_TRUE(client_.Create(configmaps_, ConfigMap("default", "c", "3")).ok());
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_EQ(Copied(client_, "c"), "");
  EXPECT_EQ(calls.load(), calls_after_stop);

  // The next term lists again and catches up with what it missed.
  host.SetLeading(true, 7);
  EXPECT_TRUE(Eventually([&] { return Copied(client_, "c") == "3"; }));
  EXPECT_EQ(host.stats().term, 7u);
  EXPECT_EQ(host.stats().terms_led_total, 2u);
  host.Stop();
}

// Blocks in Reconcile until released, to step down in the middle of one.
class SlowReconciler : public Reconciler {
 public:
  SlowReconciler(absl::Notification* entered, absl::Notification* release, absl::Status* result)
      : entered_(entered), release_(release), result_(result) {}
  void Setup(ReconcileContext& ctx) override {
    ctx_ = &ctx;
    ctx.Cache("", "configmaps")
        .AddHandlers({[&q = ctx.queue()](const ObjectPtr& o) { q.Add(ObjectKey(*o)); }, nullptr,
                      nullptr});
  }
  absl::Status Reconcile(const std::string& key) override {
    if (!entered_->HasBeenNotified()) entered_->Notify();
    release_->WaitForNotification();
    auto [ns, name] = SplitObjectKey(key);
    *result_ = ctx_->client().Create(TypeOf("", "configmaps"), ConfigMap(ns, name + "-child", "x"))
                   .status();
    return *result_;
  }

 private:
  absl::Notification* entered_;
  absl::Notification* release_;
  absl::Status* result_;
  ReconcileContext* ctx_ = nullptr;
};

TEST_F(ReconcileTest, StepDownFencesAReconcileInFlight) {
  absl::Notification entered, release;
  absl::Status result;
  ReconcilerHost host(store_, api_);
  host.Register({"slow", 1, {}, [&](ReconcileContext&) {
                   return std::make_unique<SlowReconciler>(&entered, &release, &result);
                 }});
  ASSERT_TRUE(client_.Create(configmaps_, ConfigMap("default", "p", "1")).ok());
  host.SetLeading(true, 3);
  ASSERT_TRUE(entered.WaitForNotificationWithTimeout(absl::Seconds(10)));
  host.SetLeading(false, 3);  // the reconcile is still running
  release.Notify();
  EXPECT_TRUE(Eventually([&] { return !host.stats().leading; }));
  EXPECT_TRUE(absl::IsFailedPrecondition(result)) << result;
  EXPECT_TRUE(absl::IsNotFound(client_.Get(configmaps_, "default", "p-child").status()));
  host.Stop();
}

}  // namespace
}  // namespace ganglion::orchestrator
