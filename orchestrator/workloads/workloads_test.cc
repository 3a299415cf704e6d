// The ReplicaSet and Deployment reconcilers under a real ReconcilerHost, over
// the in-memory store and the real API handler, with a fake kubelet in the
// test that marks pods Running and Ready through the status subresource.
// A census follows every pod change synchronously (the in-memory store
// delivers events in the writer's thread), so the rollout bounds are checked
// after every single change, not by sampling.
#include "orchestrator/workloads/workloads.h"

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "orchestrator/api/handler.h"
#include "orchestrator/reconcile/host.h"
#include "orchestrator/storage/memory_object_store.h"
#include "orchestrator/types/validation.h"
#include "orchestrator/workloads/objects.h"
#include "orchestrator/workloads/revision.h"
#include "orchestrator/workloads/rollout.h"

namespace ganglion::orchestrator::workloads {
namespace {

constexpr char kNamespace[] = "default";

template <typename Pred>
bool Eventually(Pred pred, absl::Duration timeout = absl::Seconds(30)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (pred()) return true;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return pred();
}

const ResourceType& Pods() {
  return TypeOf("", "pods");
}
const ResourceType& ReplicaSets() {
  return TypeOf("apps", "replicasets");
}
const ResourceType& Deployments() {
  return TypeOf("apps", "deployments");
}

Json PodTemplate(const std::string& app, const std::string& image) {
  return {{"metadata", {{"labels", {{"app", app}}}}},
          {"spec", {{"containers", Json::array({{{"name", "main"}, {"image", image}}})}}}};
}

Json ReplicaSetObject(const std::string& name, int replicas) {
  return {{"apiVersion", "apps/v1"},
          {"kind", "ReplicaSet"},
          {"metadata", {{"name", name}, {"namespace", kNamespace}}},
          {"spec",
           {{"replicas", replicas},
            {"selector", {{"matchLabels", {{"app", name}}}}},
            {"template", PodTemplate(name, "nginx:1.25")}}}};
}

Json DeploymentObject(const std::string& name, int replicas, const std::string& image,
                      Json strategy = Json()) {
  Json d = {{"apiVersion", "apps/v1"},
            {"kind", "Deployment"},
            {"metadata", {{"name", name}, {"namespace", kNamespace}}},
            {"spec",
             {{"replicas", replicas},
              {"selector", {{"matchLabels", {{"app", name}}}}},
              {"template", PodTemplate(name, image)}}}};
  if (!strategy.is_null()) d["spec"]["strategy"] = strategy;
  return d;
}

// Every pod in the store, kept up to date synchronously with each change,
// and the extremes seen since Arm().
class PodCensus {
 public:
  explicit PodCensus(MemoryObjectStore& store) {
    auto page = store.List("/registry/pods/", "", 0, 0);
    EXPECT_TRUE(page.ok());
    for (const StoredObject& o : page->items) {
      pods_[o.key] = ParseStoredObject(o.value, o.mod_revision);
    }
    auto sub = store.Watch(
        "/registry/pods/", page->revision,
        [this](const std::vector<ObjectEvent>& events) {
          std::lock_guard<std::mutex> lock(mu_);
          for (const ObjectEvent& e : events) {
            if (e.type == ObjectEvent::Type::kDelete) {
              pods_.erase(e.object.key);
            } else {
              pods_[e.object.key] = ParseStoredObject(e.object.value, e.revision);
            }
          }
          CheckLocked();
        },
        nullptr);
    EXPECT_TRUE(sub.ok());
    subscription_ = std::move(*sub);
  }
  ~PodCensus() { subscription_->Cancel(); }

  // From now on record the most pods and the fewest available ones among
  // pods whose labels include `app`.
  void Arm(const std::string& app) {
    std::lock_guard<std::mutex> lock(mu_);
    app_ = app;
    armed_ = true;
    most_ = 0;
    fewest_available_ = INT64_MAX;
    mixed_ = false;
    CheckLocked();
  }
  int64_t most() const {
    std::lock_guard<std::mutex> lock(mu_);
    return most_;
  }
  int64_t fewest_available() const {
    std::lock_guard<std::mutex> lock(mu_);
    return fewest_available_;
  }
  // Pods of two templates (pod-template-hash values) existed at once.
  bool mixed() const {
    std::lock_guard<std::mutex> lock(mu_);
    return mixed_;
  }
  std::vector<Json> Of(const std::string& app) const {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<Json> out;
    for (const auto& [key, pod] : pods_) {
      const Json* labels = Find(pod, {"metadata", "labels"});
      if (labels && StringAt(*labels, "app") == app) out.push_back(pod);
    }
    return out;
  }

 private:
  void CheckLocked() {
    if (!armed_) return;
    int64_t count = 0, available = 0;
    std::set<std::string> hashes;
    for (const auto& [key, pod] : pods_) {
      const Json* labels = Find(pod, {"metadata", "labels"});
      if (!labels || StringAt(*labels, "app") != app_) continue;
      ++count;
      if (IsPodActive(pod) && IsPodReady(pod)) ++available;
      hashes.insert(StringAt(*labels, kPodTemplateHashLabel));
    }
    most_ = std::max(most_, count);
    fewest_available_ = std::min(fewest_available_, available);
    if (hashes.size() > 1) mixed_ = true;
  }

  mutable std::mutex mu_;
  std::map<std::string, Json> pods_;      // guarded by mu_
  std::string app_;                       // guarded by mu_
  bool armed_ = false;                    // guarded by mu_
  int64_t most_ = 0;                      // guarded by mu_
  int64_t fewest_available_ = INT64_MAX;  // guarded by mu_
  bool mixed_ = false;                    // guarded by mu_
  std::unique_ptr<Subscription> subscription_;
};

// Marks every pod Running and Ready, except those whose image it is told
// never becomes ready.
class FakeKubelet {
 public:
  explicit FakeKubelet(ApiHandler& api) : client_(api) {
    thread_ = std::thread([this] { Run(); });
  }
  ~FakeKubelet() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  void NeverReady(const std::string& image) {
    std::lock_guard<std::mutex> lock(mu_);
    never_ready_.insert(image);
  }

 private:
  void Run() {
    while (!stop_) {
      auto list = client_.Get(Pods(), kNamespace, "");
      if (list.ok()) {
        for (Json pod : (*list)["items"]) {
          if (IsPodReady(pod) || IsTerminating(pod)) continue;
          const std::string image = pod["spec"]["containers"][0].value("image", "");
          {
            std::lock_guard<std::mutex> lock(mu_);
            if (never_ready_.count(image)) continue;
          }
          const std::string now = Rfc3339(absl::Now());
          pod["status"]["phase"] = "Running";
          pod["status"]["conditions"] = Json::array(
              {{{"type", "Ready"}, {"status", "True"}, {"lastTransitionTime", now}},
               {{"type", "ContainersReady"}, {"status", "True"}, {"lastTransitionTime", now}}});
          pod["status"]["containerStatuses"] = Json::array(
              {{{"name", "main"}, {"ready", true}, {"restartCount", 0}, {"image", image}}});
          (void)client_.Update(Pods(), pod, "status");  // a conflict: next round
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  ObjectClient client_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::set<std::string> never_ready_;  // guarded by mu_
  std::thread thread_;
};

// An ObjectStore whose watches deliver each event `delay` late: a cache
// that lags the writes its own reconciler just made.
class DelayingStore : public ObjectStore {
 public:
  DelayingStore(ObjectStore& inner, absl::Duration delay) : inner_(inner), delay_(delay) {
    thread_ = std::thread([this] { Deliver(); });
  }
  ~DelayingStore() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
      cv_.notify_all();
    }
    thread_.join();
  }
  absl::StatusOr<StoredObject> Get(std::string_view key) override { return inner_.Get(key); }
  absl::StatusOr<ListPage> List(std::string_view prefix, std::string_view start, int64_t limit,
                                int64_t revision) override {
    return inner_.List(prefix, start, limit, revision);
  }
  absl::StatusOr<int64_t> Create(std::string_view key, std::string_view value) override {
    return inner_.Create(key, value);
  }
  absl::StatusOr<int64_t> Update(std::string_view key, std::string_view value,
                                 int64_t expected) override {
    return inner_.Update(key, value, expected);
  }
  absl::StatusOr<int64_t> Delete(std::string_view key, int64_t expected) override {
    return inner_.Delete(key, expected);
  }
  absl::StatusOr<std::unique_ptr<Subscription>> Watch(std::string_view prefix, int64_t after,
                                                      EventSink on_events,
                                                      EndSink on_end) override {
    auto target = std::make_shared<Target>();
    target->sink = std::move(on_events);
    auto sub = inner_.Watch(
        prefix, after,
        [this, target](const std::vector<ObjectEvent>& events) {
          std::lock_guard<std::mutex> lock(mu_);
          pending_.push_back({absl::Now() + delay_, target, events});
          cv_.notify_all();
        },
        std::move(on_end));
    if (!sub.ok()) return sub.status();
    return std::unique_ptr<Subscription>(new Sub(target, std::move(*sub)));
  }
  int64_t watched_revision() const override {
    // Asked before taking mu_: the inner store calls our sink with its lock held.
    const int64_t inner = inner_.watched_revision();
    std::lock_guard<std::mutex> lock(mu_);
    // Only what has been delivered counts as seen.
    return pending_.empty() && !delivering_ ? std::max(delivered_revision_, inner)
                                            : delivered_revision_;
  }

 private:
  struct Target {
    std::mutex mu;
    bool active = true;  // guarded by mu
    EventSink sink;
  };
  struct Sub : Subscription {
    Sub(std::shared_ptr<Target> t, std::unique_ptr<Subscription> inner)
        : target(std::move(t)), inner(std::move(inner)) {}
    ~Sub() override { Cancel(); }
    void Cancel() override {
      inner->Cancel();
      std::lock_guard<std::mutex> lock(target->mu);
      target->active = false;
    }
    std::shared_ptr<Target> target;
    std::unique_ptr<Subscription> inner;
  };
  struct Batch {
    absl::Time due;
    std::shared_ptr<Target> target;
    std::vector<ObjectEvent> events;
  };
  void Deliver() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_) {
      if (pending_.empty()) {
        cv_.wait(lock);
        continue;
      }
      const absl::Time due = pending_.front().due;
      if (absl::Now() < due) {
        cv_.wait_for(lock, absl::ToChronoNanoseconds(due - absl::Now()));
        continue;
      }
      Batch b = std::move(pending_.front());
      pending_.pop_front();
      delivering_ = true;
      lock.unlock();
      {
        std::lock_guard<std::mutex> target_lock(b.target->mu);
        if (b.target->active) b.target->sink(b.events);
      }
      lock.lock();
      for (const ObjectEvent& e : b.events) {
        delivered_revision_ = std::max(delivered_revision_, e.revision);
      }
      delivering_ = false;
    }
  }

  ObjectStore& inner_;
  const absl::Duration delay_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Batch> pending_;       // guarded by mu_
  int64_t delivered_revision_ = 0;  // guarded by mu_
  bool delivering_ = false;         // guarded by mu_; a batch is in a sink
  bool stop_ = false;               // guarded by mu_
  std::thread thread_;
};

class WorkloadsTest : public ::testing::Test {
 protected:
  WorkloadsTest() : api_(store_, "test"), client_(api_) {
    EXPECT_TRUE(api_.EnsureDefaultNamespaces().ok());
  }
  ~WorkloadsTest() override {
    if (host_) host_->Stop();
    host_.reset();
    kubelet_.reset();
    delayed_.reset();
  }

  void StartKubelet() { kubelet_ = std::make_unique<FakeKubelet>(api_); }

  // Caches that see every change `delay` late (they outlive the host).
  ObjectStore* Delayed(absl::Duration delay) {
    delayed_ = std::make_unique<DelayingStore>(store_, delay);
    return delayed_.get();
  }

  // The reconcilers as the leader runs them; their caches read `cache_store`.
  void StartHost(ObjectStore* cache_store = nullptr) {
    host_ = std::make_unique<ReconcilerHost>(cache_store ? *cache_store : store_, api_);
    host_->Register(ReplicaSetReconcilerSpec());
    host_->Register(DeploymentReconcilerSpec());
    host_->SetLeading(true, 1);
  }

  Json Read(const ResourceType& type, const std::string& name) {
    auto o = client_.Get(type, kNamespace, name);
    EXPECT_TRUE(o.ok()) << o.status();
    return o.ok() ? *o : Json::object();
  }

  std::vector<Json> ListOf(const ResourceType& type) {
    auto list = client_.Get(type, kNamespace, "");
    EXPECT_TRUE(list.ok()) << list.status();
    std::vector<Json> out;
    if (list.ok()) {
      for (const Json& o : (*list)["items"]) out.push_back(o);
    }
    return out;
  }

  // Read-modify-write as a user would, retried on conflict.
  void Mutate(const ResourceType& type, const std::string& name,
              const std::function<void(Json&)>& change) {
    for (int attempt = 0; attempt < 20; ++attempt) {
      Json o = Read(type, name);
      change(o);
      auto w = client_.Update(type, o);
      if (w.ok()) return;
      ASSERT_TRUE(absl::IsAborted(w.status())) << w.status();
    }
    FAIL() << "kept conflicting";
  }

  void ScaleTo(const ResourceType& type, const std::string& name, int replicas) {
    auto w = client_.Patch(type, kNamespace, name, PatchType::kMerge,
                           {{"spec", {{"replicas", replicas}}}}, "scale");
    ASSERT_TRUE(w.ok()) << w.status();
  }

  // What `kubectl rollout status` waits for.
  bool RolledOut(const std::string& name) {
    Json d = Read(Deployments(), name);
    const Json& s = d.value("status", Json::object());
    const int64_t replicas = SpecReplicas(d);
    return GenerationOf(d) <= IntAt(s, "observedGeneration") &&
           IntAt(s, "updatedReplicas") == replicas && IntAt(s, "replicas") == replicas &&
           IntAt(s, "availableReplicas") == replicas;
  }

  Json Condition(const std::string& deployment, const std::string& type) {
    Json d = Read(Deployments(), deployment);
    for (const Json& c : d["status"].value("conditions", Json::array())) {
      if (c["type"] == type) return c;
    }
    return Json();
  }

  std::vector<Json> ReplicaSetsOf(const std::string& deployment) {
    std::vector<Json> out;
    for (const Json& rs : ListOf(ReplicaSets())) {
      if (absl::StartsWith(NameOf(rs), deployment + "-")) out.push_back(rs);
    }
    return out;
  }

  Json ReplicaSetWithRevision(const std::string& deployment, int64_t revision) {
    for (const Json& rs : ReplicaSetsOf(deployment)) {
      if (RevisionOf(rs) == revision) return rs;
    }
    return Json();
  }

  void SetImage(const std::string& name, const std::string& image) {
    Mutate(Deployments(), name,
           [&](Json& d) { d["spec"]["template"]["spec"]["containers"][0]["image"] = image; });
  }

  // What `kubectl rollout undo --to-revision` sends: the chosen replica set's
  // template (without its hash label) as a JSON patch.
  void Undo(const std::string& name, int64_t to_revision) {
    Json rs = ReplicaSetWithRevision(name, to_revision);
    ASSERT_TRUE(rs.is_object()) << "no replica set with revision " << to_revision;
    Json tmpl = rs["spec"]["template"];
    tmpl["metadata"]["labels"].erase(kPodTemplateHashLabel);
    Json patch = Json::array({{{"op", "replace"}, {"path", "/spec/template"}, {"value", tmpl}}});
    auto w = client_.Patch(Deployments(), kNamespace, name, PatchType::kJson, patch);
    ASSERT_TRUE(w.ok()) << w.status();
  }

  std::string ImageOf(const Json& workload) {
    return workload["spec"]["template"]["spec"]["containers"][0].value("image", "");
  }

  MemoryObjectStore store_;
  ApiHandler api_;
  ObjectClient client_;
  std::unique_ptr<FakeKubelet> kubelet_;
  std::unique_ptr<DelayingStore> delayed_;
  std::unique_ptr<ReconcilerHost> host_;
};

// --- pure pieces ---

TEST(WorkloadsUnit, PodTemplateHashIsStableAndSafeAlphabet) {
  Json t = PodTemplate("web", "nginx:1.25");
  const std::string a = PodTemplateHash(t, std::nullopt);
  EXPECT_EQ(a, PodTemplateHash(t, std::nullopt));
  EXPECT_FALSE(a.empty());
  for (char c : a) EXPECT_NE(std::string("bcdfghjklmnpqrstvwxz2456789").find(c), std::string::npos);
  EXPECT_NE(a, PodTemplateHash(t, 1)) << "collisionCount must change the hash";
  EXPECT_NE(PodTemplateHash(t, 1), PodTemplateHash(t, 2));
  // What a typed client adds when it round-trips a template changes nothing.
  Json round_tripped = t;
  round_tripped["metadata"]["creationTimestamp"] = nullptr;
  round_tripped["spec"]["containers"][0]["resources"] = Json::object();
  EXPECT_EQ(a, PodTemplateHash(round_tripped, std::nullopt));
  EXPECT_TRUE(TemplatesEqualIgnoringHash(t, round_tripped));
  t["spec"]["containers"][0]["image"] = "nginx:1.26";
  EXPECT_NE(a, PodTemplateHash(t, std::nullopt));
  EXPECT_FALSE(TemplatesEqualIgnoringHash(t, round_tripped));
  // The safe encoding maps each byte: '0' is 48, 48 % 27 = 21 -> '4'.
  EXPECT_EQ(SafeEncode("0"), "4");
  EXPECT_EQ(SafeEncode("09"), "4f");  // 57 % 27 = 3 -> 'f'
}

TEST(WorkloadsUnit, SurgeRoundsUpUnavailableRoundsDown) {
  Json d = DeploymentObject("x", 10, "i",
                            {{"type", "RollingUpdate"},
                             {"rollingUpdate", {{"maxSurge", "25%"}, {"maxUnavailable", "25%"}}}});
  EXPECT_EQ(MaxSurge(d), 3);        // 2.5 up
  EXPECT_EQ(MaxUnavailable(d), 2);  // 2.5 down
  d["spec"]["replicas"] = 1;
  EXPECT_EQ(MaxSurge(d), 1);
  EXPECT_EQ(MaxUnavailable(d), 0);
  d["spec"]["strategy"]["rollingUpdate"] = {{"maxSurge", 0}, {"maxUnavailable", "10%"}};
  EXPECT_EQ(MaxUnavailable(d), 1) << "both resolving to 0 allows one unavailable";
  d["spec"]["strategy"] = {{"type", "Recreate"}};
  EXPECT_EQ(MaxSurge(d), 0);
  EXPECT_EQ(MaxUnavailable(d), 0);
}

Json RankedPod(const std::string& name, const std::string& node, const std::string& phase,
               bool ready, int restarts, const std::string& created,
               const std::string& ready_since = "2026-01-01T00:00:00Z") {
  Json pod = {{"metadata", {{"name", name}, {"creationTimestamp", created}}},
              {"spec", Json::object()},
              {"status", {{"phase", phase}}}};
  if (!node.empty()) pod["spec"]["nodeName"] = node;
  pod["status"]["conditions"] = Json::array({{{"type", "Ready"},
                                              {"status", ready ? "True" : "False"},
                                              {"lastTransitionTime", ready_since}}});
  pod["status"]["containerStatuses"] = Json::array({{{"restartCount", restarts}}});
  return pod;
}

TEST(WorkloadsUnit, DeletionOrderFollowsKubernetes) {
  const std::string t0 = "2026-01-01T00:00:00Z", t1 = "2026-01-01T00:01:00Z";
  std::vector<Json> pods = {
      RankedPod("running-ready-old", "n", "Running", true, 0, t0),
      RankedPod("unassigned", "", "Pending", false, 0, t0),
      RankedPod("pending", "n", "Pending", false, 0, t0),
      RankedPod("running-notready", "n", "Running", false, 0, t0),
      RankedPod("running-ready-restarts", "n", "Running", true, 5, t0),
      RankedPod("running-ready-new", "n", "Running", true, 0, t1),
      RankedPod("running-ready-recently", "n", "Running", true, 0, t0, t1),
      RankedPod("unknown", "n", "Unknown", false, 0, t0),
  };
  std::sort(pods.begin(), pods.end(),
            [](const Json& a, const Json& b) { return DeletesBefore(a, b); });
  std::vector<std::string> order;
  for (const Json& p : pods) order.push_back(NameOf(p));
  EXPECT_EQ(order, (std::vector<std::string>{"unassigned", "pending", "unknown", "running-notready",
                                             "running-ready-recently", "running-ready-restarts",
                                             "running-ready-new", "running-ready-old"}));
}

TEST_F(WorkloadsTest, ValidationRejectsZeroSurgeAndZeroUnavailable) {
  auto zero = client_.Create(
      Deployments(),
      DeploymentObject("zero", 2, "i",
                       {{"type", "RollingUpdate"},
                        {"rollingUpdate", {{"maxSurge", 0}, {"maxUnavailable", "0%"}}}}));
  ASSERT_TRUE(absl::IsInvalidArgument(zero.status())) << zero.status();
  EXPECT_TRUE(absl::StrContains(zero.status().message(), "may not be 0 when `maxSurge` is 0"))
      << zero.status();
  auto bad = client_.Create(
      Deployments(),
      DeploymentObject("bad", 2, "i",
                       {{"type", "RollingUpdate"}, {"rollingUpdate", {{"maxSurge", "x"}}}}));
  EXPECT_TRUE(absl::IsInvalidArgument(bad.status())) << bad.status();
  auto over = client_.Create(Deployments(),
                             DeploymentObject("over", 2, "i",
                                              {{"type", "RollingUpdate"},
                                               {"rollingUpdate", {{"maxUnavailable", "150%"}}}}));
  EXPECT_TRUE(absl::IsInvalidArgument(over.status())) << over.status();
}

// --- ReplicaSet ---

TEST_F(WorkloadsTest, ReplicaSetScalesThreeToTenToTwo) {
  PodCensus census(store_);
  census.Arm("web");
  StartKubelet();
  StartHost();
  ASSERT_TRUE(client_.Create(ReplicaSets(), ReplicaSetObject("web", 3)).ok());
  auto ready_is = [&](int n) {
    Json rs = Read(ReplicaSets(), "web");
    return census.Of("web").size() == static_cast<size_t>(n) && StatusInt(rs, "replicas") == n &&
           StatusInt(rs, "readyReplicas") == n && StatusInt(rs, "availableReplicas") == n &&
           StatusInt(rs, "fullyLabeledReplicas") == n &&
           StatusInt(rs, "observedGeneration") == GenerationOf(rs);
  };
  ASSERT_TRUE(Eventually([&] { return ready_is(3); })) << Read(ReplicaSets(), "web").dump();
  EXPECT_EQ(census.most(), 3);
  const Json rs = Read(ReplicaSets(), "web");
  for (const Json& pod : census.Of("web")) {
    EXPECT_TRUE(absl::StartsWith(NameOf(pod), "web-")) << NameOf(pod);
    const Json* ref = ControllerRef(pod);
    ASSERT_NE(ref, nullptr);
    EXPECT_EQ((*ref)["apiVersion"], "apps/v1");
    EXPECT_EQ((*ref)["kind"], "ReplicaSet");
    EXPECT_EQ((*ref)["name"], "web");
    EXPECT_EQ((*ref)["uid"], UidOf(rs));
    EXPECT_EQ((*ref)["blockOwnerDeletion"], true);
  }

  ScaleTo(ReplicaSets(), "web", 10);
  ASSERT_TRUE(Eventually([&] { return ready_is(10); })) << Read(ReplicaSets(), "web").dump();
  EXPECT_EQ(census.most(), 10);
  ScaleTo(ReplicaSets(), "web", 2);
  ASSERT_TRUE(Eventually([&] { return ready_is(2); })) << Read(ReplicaSets(), "web").dump();
  EXPECT_EQ(census.most(), 10) << "never more pods than asked for";
  // Converged: nothing is written any more.
  const int64_t revision = store_.watched_revision();
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(store_.watched_revision(), revision);
}

TEST_F(WorkloadsTest, ReplicaSetAdoptsOrphansAndReleasesPodsItNoLongerSelects) {
  Json orphan = {
      {"apiVersion", "v1"},
      {"kind", "Pod"},
      {"metadata", {{"name", "orphan"}, {"namespace", kNamespace}, {"labels", {{"app", "adopt"}}}}},
      {"spec", PodTemplate("adopt", "nginx")["spec"]}};
  ASSERT_TRUE(client_.Create(Pods(), orphan).ok());
  StartHost();
  ASSERT_TRUE(client_.Create(ReplicaSets(), ReplicaSetObject("adopt", 2)).ok());
  const std::string uid = UidOf(Read(ReplicaSets(), "adopt"));
  ASSERT_TRUE(Eventually([&] { return ControllerUid(Read(Pods(), "orphan")) == uid; }));
  ASSERT_TRUE(Eventually([&] { return StatusInt(Read(ReplicaSets(), "adopt"), "replicas") == 2; }));
  EXPECT_EQ(ListOf(Pods()).size(), 2u) << "the adopted pod counts: one created, not two";

  // Relabelled out of the selector: released, and replaced.
  Mutate(Pods(), "orphan", [](Json& p) { p["metadata"]["labels"]["app"] = "elsewhere"; });
  ASSERT_TRUE(Eventually([&] { return ControllerRef(Read(Pods(), "orphan")) == nullptr; }))
      << Read(Pods(), "orphan").dump();
  ASSERT_TRUE(Eventually([&] {
    int owned = 0;
    for (const Json& p : ListOf(Pods())) owned += ControllerUid(p) == uid;
    return owned == 2;
  }));
  EXPECT_EQ(ListOf(Pods()).size(), 3u);
}

TEST_F(WorkloadsTest, ReplicaSetNeverCreatesExtraPodsWithADelayedCache) {
  PodCensus census(store_);
  census.Arm("slow");
  ObjectStore* delayed = Delayed(absl::Milliseconds(400));
  StartKubelet();
  StartHost(delayed);
  ASSERT_TRUE(client_.Create(ReplicaSets(), ReplicaSetObject("slow", 5)).ok());
  // Keep bringing the key back while the cache lags: each reconcile sees
  // fewer pods than were created and must not create them again.
  for (int i = 0; i < 20; ++i) {
    Mutate(ReplicaSets(), "slow",
           [i](Json& rs) { rs["metadata"]["annotations"]["poke"] = absl::StrCat(i); });
    absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_TRUE(
      Eventually([&] { return StatusInt(Read(ReplicaSets(), "slow"), "availableReplicas") == 5; }));
  EXPECT_EQ(census.most(), 5);
  ScaleTo(ReplicaSets(), "slow", 1);
  for (int i = 0; i < 10; ++i) {
    Mutate(ReplicaSets(), "slow",
           [i](Json& rs) { rs["metadata"]["annotations"]["poke"] = absl::StrCat("down", i); });
    absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_TRUE(Eventually([&] { return StatusInt(Read(ReplicaSets(), "slow"), "replicas") == 1; }));
  absl::SleepFor(absl::Milliseconds(800));  // past the delay: every decision is visible
  EXPECT_EQ(census.Of("slow").size(), 1u) << "deleted no more than the surplus";
  EXPECT_EQ(census.most(), 5);
}

TEST_F(WorkloadsTest, ReplicaSetCountsAvailableOnlyAfterMinReadySeconds) {
  StartKubelet();
  StartHost();
  Json rs = ReplicaSetObject("patient", 2);
  rs["spec"]["minReadySeconds"] = 4;
  ASSERT_TRUE(client_.Create(ReplicaSets(), rs).ok());
  ASSERT_TRUE(
      Eventually([&] { return StatusInt(Read(ReplicaSets(), "patient"), "readyReplicas") == 2; }));
  // Ready, but not yet for minReadySeconds (the kubelet made them ready just now).
  EXPECT_EQ(StatusInt(Read(ReplicaSets(), "patient"), "availableReplicas"), 0);
  // Nothing else changes: only the reconciler's own requeue can make them available.
  ASSERT_TRUE(Eventually(
      [&] { return StatusInt(Read(ReplicaSets(), "patient"), "availableReplicas") == 2; }));
}

// --- Deployment ---

TEST_F(WorkloadsTest, NameCollisionBumpsCollisionCountAndHashesAgain) {
  // A foreign replica set already holds the name the template hashes to.
  Json probe = DeploymentObject("coll", 1, "app:v1");
  Deployments().set_defaults(probe);
  const std::string taken = PodTemplateHash(probe["spec"]["template"], std::nullopt);
  Json foreign = ReplicaSetObject("coll-" + taken, 0);
  foreign["spec"]["selector"]["matchLabels"]["app"] = "someone-else";
  foreign["spec"]["template"]["metadata"]["labels"]["app"] = "someone-else";
  ASSERT_TRUE(client_.Create(ReplicaSets(), foreign).ok());
  StartKubelet();
  StartHost();
  ASSERT_TRUE(client_.Create(Deployments(), probe).ok());
  ASSERT_TRUE(Eventually([&] { return RolledOut("coll"); }))
      << Read(Deployments(), "coll")["status"].dump();
  Json d = Read(Deployments(), "coll");
  EXPECT_EQ(d["status"]["collisionCount"], 1);
  const std::string rehashed = PodTemplateHash(d["spec"]["template"], 1);
  EXPECT_NE(rehashed, taken);
  Json mine = Read(ReplicaSets(), "coll-" + rehashed);
  EXPECT_EQ(ControllerUid(mine), UidOf(d));
  EXPECT_EQ(ControllerRef(Read(ReplicaSets(), "coll-" + taken)), nullptr) << "left alone";
}

class RollingUpdateTest : public WorkloadsTest,
                          public ::testing::WithParamInterface<std::tuple<int, Json, Json>> {};

TEST_P(RollingUpdateTest, NeverPassesSurgeNorUnavailability) {
  const auto& [replicas, surge, unavailable] = GetParam();
  Json strategy = {{"type", "RollingUpdate"},
                   {"rollingUpdate", {{"maxSurge", surge}, {"maxUnavailable", unavailable}}}};
  const Json d0 = DeploymentObject("roll", replicas, "app:v1", strategy);
  const int64_t max_surge = MaxSurge(d0), max_unavailable = MaxUnavailable(d0);
  PodCensus census(store_);
  StartKubelet();
  StartHost();
  ASSERT_TRUE(client_.Create(Deployments(), d0).ok());
  ASSERT_TRUE(Eventually([&] { return RolledOut("roll"); }))
      << Read(Deployments(), "roll")["status"].dump();
  Json d = Read(Deployments(), "roll");
  EXPECT_EQ(AnnotationOf(d, kRevisionAnnotation), "1");
  EXPECT_EQ(Condition("roll", "Available")["reason"], "MinimumReplicasAvailable");
  EXPECT_EQ(Condition("roll", "Progressing")["reason"], "NewReplicaSetAvailable");
  const std::vector<Json> first = ReplicaSetsOf("roll");
  ASSERT_EQ(first.size(), 1u);
  const std::string hash1 = PodTemplateHash(d["spec"]["template"], std::nullopt);
  EXPECT_EQ(NameOf(first[0]), "roll-" + hash1);
  EXPECT_EQ(first[0]["spec"]["selector"]["matchLabels"][kPodTemplateHashLabel], hash1);
  EXPECT_EQ(first[0]["spec"]["template"]["metadata"]["labels"][kPodTemplateHashLabel], hash1);
  EXPECT_EQ(AnnotationOf(first[0], kDesiredReplicasAnnotation), absl::StrCat(replicas));
  EXPECT_EQ(AnnotationOf(first[0], kMaxReplicasAnnotation), absl::StrCat(replicas + max_surge));

  census.Arm("roll");
  SetImage("roll", "app:v2");
  ASSERT_TRUE(Eventually([&] {
    return RolledOut("roll") && census.Of("roll").size() == static_cast<size_t>(replicas);
  })) << Read(Deployments(), "roll")["status"].dump();
  EXPECT_LE(census.most(), replicas + max_surge);
  EXPECT_GE(census.fewest_available(), replicas - max_unavailable);
  for (const Json& pod : census.Of("roll")) {
    EXPECT_EQ(pod["spec"]["containers"][0]["image"], "app:v2") << NameOf(pod);
  }
  d = Read(Deployments(), "roll");
  EXPECT_EQ(AnnotationOf(d, kRevisionAnnotation), "2");
  Json old_rs = ReplicaSetWithRevision("roll", 1);
  Json new_rs = ReplicaSetWithRevision("roll", 2);
  EXPECT_EQ(SpecReplicas(old_rs), 0);
  EXPECT_EQ(SpecReplicas(new_rs), replicas);
  EXPECT_EQ(ImageOf(new_rs), "app:v2");
  // Converged: the reconcilers write nothing more (no status or condition churn).
  ASSERT_TRUE(Eventually([&] {
    const int64_t revision = store_.watched_revision();
    absl::SleepFor(absl::Milliseconds(300));
    return store_.watched_revision() == revision;
  }));
  const int64_t settled = store_.watched_revision();
  absl::SleepFor(absl::Milliseconds(1500));  // across a second boundary of the timestamps
  EXPECT_EQ(store_.watched_revision(), settled);
}

INSTANTIATE_TEST_SUITE_P(Bounds, RollingUpdateTest,
                         ::testing::Values(std::make_tuple(4, Json(1), Json(1)),
                                           std::make_tuple(10, Json("25%"), Json("25%")),
                                           std::make_tuple(3, Json(0), Json(1)),
                                           std::make_tuple(3, Json(2), Json(0))));

TEST_F(WorkloadsTest, RecreateRemovesEveryOldPodBeforeTheFirstNewOne) {
  PodCensus census(store_);
  StartKubelet();
  StartHost();
  ASSERT_TRUE(
      client_.Create(Deployments(), DeploymentObject("re", 3, "app:v1", {{"type", "Recreate"}}))
          .ok());
  ASSERT_TRUE(Eventually([&] { return RolledOut("re"); }));
  census.Arm("re");
  SetImage("re", "app:v2");
  ASSERT_TRUE(Eventually([&] { return RolledOut("re") && census.Of("re").size() == 3; }))
      << Read(Deployments(), "re")["status"].dump();
  EXPECT_FALSE(census.mixed()) << "old and new pods existed at once";
  EXPECT_EQ(census.most(), 3);
  EXPECT_EQ(AnnotationOf(Read(Deployments(), "re"), kRevisionAnnotation), "2");
}

TEST_F(WorkloadsTest, UndoRestoresThePreviousTemplateAsTheNewestRevision) {
  StartKubelet();
  StartHost();
  ASSERT_TRUE(client_.Create(Deployments(), DeploymentObject("undo", 2, "app:v1")).ok());
  ASSERT_TRUE(Eventually([&] { return RolledOut("undo"); }));
  SetImage("undo", "app:v2");
  ASSERT_TRUE(Eventually([&] {
    return RolledOut("undo") &&
           AnnotationOf(Read(Deployments(), "undo"), kRevisionAnnotation) == "2";
  }));
  const std::string v1_name = NameOf(ReplicaSetWithRevision("undo", 1));

  Undo("undo", 1);  // `kubectl rollout undo`: back to the previous revision
  ASSERT_TRUE(Eventually([&] {
    return RolledOut("undo") &&
           AnnotationOf(Read(Deployments(), "undo"), kRevisionAnnotation) == "3";
  })) << Read(Deployments(), "undo").dump();
  EXPECT_EQ(ImageOf(Read(Deployments(), "undo")), "app:v1");
  Json back = ReplicaSetWithRevision("undo", 3);
  EXPECT_EQ(NameOf(back), v1_name) << "the old replica set is reused, renumbered";
  EXPECT_EQ(AnnotationOf(back, kRevisionHistoryAnnotation), "1");
  EXPECT_TRUE(ReplicaSetWithRevision("undo", 1).is_null()) << "revision 1 became 3";
  EXPECT_EQ(SpecReplicas(back), 2);
  EXPECT_EQ(ReplicaSetsOf("undo").size(), 2u);

  Undo("undo", 2);  // `--to-revision=2`
  ASSERT_TRUE(Eventually([&] {
    return RolledOut("undo") &&
           AnnotationOf(Read(Deployments(), "undo"), kRevisionAnnotation) == "4";
  }));
  EXPECT_EQ(ImageOf(Read(Deployments(), "undo")), "app:v2");
  EXPECT_EQ(ImageOf(ReplicaSetWithRevision("undo", 4)), "app:v2");
  EXPECT_EQ(ImageOf(ReplicaSetWithRevision("undo", 3)), "app:v1");
}

TEST_F(WorkloadsTest, RevisionHistoryLimitKeepsOnlyTheNewestOldReplicaSets) {
  StartKubelet();
  StartHost();
  Json d = DeploymentObject("hist", 1, "app:v1");
  d["spec"]["revisionHistoryLimit"] = 1;
  ASSERT_TRUE(client_.Create(Deployments(), d).ok());
  for (int v = 1; v <= 4; ++v) {
    if (v > 1) SetImage("hist", absl::StrCat("app:v", v));
    ASSERT_TRUE(Eventually([&] {
      return RolledOut("hist") &&
             AnnotationOf(Read(Deployments(), "hist"), kRevisionAnnotation) == absl::StrCat(v);
    })) << v;
  }
  ASSERT_TRUE(Eventually([&] { return ReplicaSetsOf("hist").size() == 2; }))
      << ReplicaSetsOf("hist").size();
  std::set<int64_t> revisions;
  for (const Json& rs : ReplicaSetsOf("hist")) revisions.insert(RevisionOf(rs));
  EXPECT_EQ(revisions, (std::set<int64_t>{3, 4}));
}

TEST_F(WorkloadsTest, PausedDeploymentScalesButDoesNotRollOut) {
  StartKubelet();
  StartHost();
  ASSERT_TRUE(client_.Create(Deployments(), DeploymentObject("pause", 2, "app:v1")).ok());
  ASSERT_TRUE(Eventually([&] { return RolledOut("pause"); }));
  Mutate(Deployments(), "pause", [](Json& d) {
    d["spec"]["paused"] = true;
    d["spec"]["template"]["spec"]["containers"][0]["image"] = "app:v2";
  });
  // Once the paused spec is observed, it has had its chance to roll out.
  ASSERT_TRUE(Eventually([&] {
    Json d = Read(Deployments(), "pause");
    return StatusInt(d, "observedGeneration") == GenerationOf(d);
  }));
  EXPECT_EQ(Condition("pause", "Progressing")["reason"], "DeploymentPaused");
  ASSERT_EQ(ReplicaSetsOf("pause").size(), 1u);
  EXPECT_EQ(ImageOf(ReplicaSetsOf("pause")[0]), "app:v1");

  ScaleTo(Deployments(), "pause", 5);
  ASSERT_TRUE(Eventually([&] {
    std::vector<Json> sets = ReplicaSetsOf("pause");
    return sets.size() == 1 && SpecReplicas(sets[0]) == 5 &&
           StatusInt(sets[0], "availableReplicas") == 5;
  }));
  EXPECT_EQ(ImageOf(ReplicaSetsOf("pause")[0]), "app:v1");

  Mutate(Deployments(), "pause", [](Json& d) { d["spec"]["paused"] = false; });
  ASSERT_TRUE(Eventually([&] {
    return RolledOut("pause") && ImageOf(ReplicaSetWithRevision("pause", 2)) == "app:v2";
  })) << Read(Deployments(), "pause")["status"].dump();
  EXPECT_EQ(SpecReplicas(ReplicaSetWithRevision("pause", 2)), 5);
}

TEST_F(WorkloadsTest, ScalingDuringARolloutIsProportional) {
  StartHost();
  // No kubelet: nothing becomes ready, so the rollout stays half-way.
  ASSERT_TRUE(
      client_
          .Create(Deployments(),
                  DeploymentObject("prop", 10, "app:v1",
                                   {{"type", "RollingUpdate"},
                                    {"rollingUpdate", {{"maxSurge", 3}, {"maxUnavailable", 2}}}}))
          .ok());
  // All 10 of v1 exist (none ready), then v2 begins: it may surge 3.
  ASSERT_TRUE(Eventually([&] { return ListOf(Pods()).size() == 10; }));
  SetImage("prop", "app:v2");
  ASSERT_TRUE(Eventually([&] {
    Json old_rs = ReplicaSetWithRevision("prop", 1), new_rs = ReplicaSetWithRevision("prop", 2);
    return old_rs.is_object() && new_rs.is_object() &&
           SpecReplicas(old_rs) + SpecReplicas(new_rs) == 13;
  }));
  const int64_t old_before = SpecReplicas(ReplicaSetWithRevision("prop", 1));
  const int64_t new_before = SpecReplicas(ReplicaSetWithRevision("prop", 2));
  ScaleTo(Deployments(), "prop", 20);  // 23 allowed: 10 more, shared by size
  ASSERT_TRUE(Eventually([&] {
    return SpecReplicas(ReplicaSetWithRevision("prop", 1)) +
               SpecReplicas(ReplicaSetWithRevision("prop", 2)) ==
           23;
  })) << ReplicaSetWithRevision("prop", 1).dump();
  const int64_t old_after = SpecReplicas(ReplicaSetWithRevision("prop", 1));
  const int64_t new_after = SpecReplicas(ReplicaSetWithRevision("prop", 2));
  EXPECT_GT(old_after, old_before);
  EXPECT_GT(new_after, new_before);
  // Each grows by about its share of the 10 (13 -> 23).
  EXPECT_NEAR(static_cast<double>(old_after), old_before * 23.0 / 13.0, 1.0);
  EXPECT_EQ(AnnotationOf(ReplicaSetWithRevision("prop", 1), kDesiredReplicasAnnotation), "20");
  EXPECT_EQ(AnnotationOf(ReplicaSetWithRevision("prop", 2), kMaxReplicasAnnotation), "23");
}

TEST_F(WorkloadsTest, ProgressDeadlineExceededWhenPodsNeverGetReady) {
  StartKubelet();
  kubelet_->NeverReady("app:broken");
  StartHost();
  Json d = DeploymentObject("stuck", 2, "app:v1");
  d["spec"]["progressDeadlineSeconds"] = 2;
  ASSERT_TRUE(client_.Create(Deployments(), d).ok());
  ASSERT_TRUE(Eventually([&] { return RolledOut("stuck"); }));
  SetImage("stuck", "app:broken");
  ASSERT_TRUE(Eventually([&] {
    return Condition("stuck", "Progressing")["reason"] == "ProgressDeadlineExceeded";
  })) << Read(Deployments(), "stuck")["status"].dump();
  Json progressing = Condition("stuck", "Progressing");
  EXPECT_EQ(progressing["status"], "False");
  EXPECT_TRUE(
      absl::StrContains(progressing["message"].get<std::string>(), "has timed out progressing"));
  // The old pods still serve: availability was never given up.
  EXPECT_EQ(Condition("stuck", "Available")["status"], "True");
  EXPECT_FALSE(RolledOut("stuck"));
}

TEST_F(WorkloadsTest, StaleStateWritesAreRejectedNotApplied) {
  // The reconcilers' caches lag by 300ms: every decision is taken on old state.
  ObjectStore* delayed = Delayed(absl::Milliseconds(300));
  StartKubelet();
  StartHost(delayed);
  ASSERT_TRUE(client_.Create(Deployments(), DeploymentObject("cas", 2, "app:v1")).ok());
  ASSERT_TRUE(Eventually([&] { return RolledOut("cas"); }));
  // The user changes the template (the reconciler will stamp a revision on
  // the deployment from what it read) and at once the replicas and a label:
  // a write taken on the stale read must not undo them.
  SetImage("cas", "app:v2");
  ScaleTo(Deployments(), "cas", 4);
  Mutate(Deployments(), "cas", [](Json& d) { d["metadata"]["labels"]["owner"] = "user"; });
  ASSERT_TRUE(Eventually([&] {
    Json d = Read(Deployments(), "cas");
    return RolledOut("cas") && SpecReplicas(d) == 4 && AnnotationOf(d, kRevisionAnnotation) == "2";
  })) << Read(Deployments(), "cas").dump();
  Json d = Read(Deployments(), "cas");
  EXPECT_EQ(ImageOf(d), "app:v2");
  EXPECT_EQ(d["metadata"]["labels"]["owner"], "user");
  EXPECT_EQ(SpecReplicas(ReplicaSetWithRevision("cas", 2)), 4);
  const int64_t errors = static_cast<int64_t>(host_->stats().reconcile_errors_total);
  EXPECT_GT(errors, 0) << "no stale write was attempted: the test proved nothing";
}

TEST_F(WorkloadsTest, StepDownStopsTheRolloutAndTheNextTermFinishesIt) {
  PodCensus census(store_);
  StartKubelet();
  StartHost();
  Json strategy = {{"type", "RollingUpdate"},
                   {"rollingUpdate", {{"maxSurge", 1}, {"maxUnavailable", 0}}}};
  ASSERT_TRUE(client_.Create(Deployments(), DeploymentObject("lead", 4, "app:v1", strategy)).ok());
  ASSERT_TRUE(Eventually([&] { return RolledOut("lead"); }));
  census.Arm("lead");
  SetImage("lead", "app:v2");
  ASSERT_TRUE(Eventually([&] { return ReplicaSetWithRevision("lead", 2).is_object(); }));
  host_->SetLeading(false, 1);
  ASSERT_TRUE(Eventually([&] { return !host_->stats().leading; }));
  host_->SetLeading(true, 2);
  ASSERT_TRUE(Eventually([&] { return RolledOut("lead") && census.Of("lead").size() == 4; }));
  EXPECT_LE(census.most(), 5);
  EXPECT_GE(census.fewest_available(), 4);
}

}  // namespace
}  // namespace ganglion::orchestrator::workloads
