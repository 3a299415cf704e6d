// The scheduler run by a real ReconcilerHost over a MemoryObjectStore and the
// ApiHandler: pods created through the API get bound (through the binding
// subresource) to the one node every filter lets through; a pod no node fits
// gets the Unschedulable condition and one FailedScheduling event, and is
// placed once a node with room appears or room is freed; assumed pods keep a
// burst of pods from overbooking nodes; one owner's pods spread over nodes.
#include <map>
#include <set>
#include <thread>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "orchestrator/api/handler.h"
#include "orchestrator/reconcile/host.h"
#include "orchestrator/scheduler/scheduler.h"
#include "orchestrator/storage/memory_object_store.h"
#include "orchestrator/types/validation.h"

namespace ganglion::orchestrator::scheduler {
namespace {

template <typename Pred>
bool Eventually(Pred pred, absl::Duration timeout = absl::Seconds(20)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (pred()) return true;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return pred();
}

struct NodeSpec {
  std::string cpu = "4";
  std::string memory = "8Gi";
  std::string pods = "110";
  bool ready = true;
  bool unschedulable = false;
  Json labels = Json::object();
  Json taints = Json::array();
};

class SchedulerHostTest : public ::testing::Test {
 protected:
  SchedulerHostTest() : api_(store_, "test"), client_(api_) {
    EXPECT_TRUE(api_.EnsureDefaultNamespaces().ok());
  }
  ~SchedulerHostTest() override {
    if (host_) host_->Stop();
  }

  void StartScheduler(SchedulerOptions options = {}) {
    host_ = std::make_unique<ReconcilerHost>(store_, api_);
    ReconcilerSpec spec = SchedulerSpec(options);
    spec.make = [this, options](ReconcileContext& ctx) {
      auto s = std::make_unique<Scheduler>(ctx, options);
      scheduler_ = s.get();
      return s;
    };
    host_->Register(std::move(spec));
    host_->SetLeading(true, 1);
    ASSERT_TRUE(Eventually([&] { return host_->stats().reconcilers_running == 1; }));
  }

  void CreateNode(const std::string& name, const NodeSpec& s = {}) {
    Json conditions = {{{"type", "Ready"}, {"status", s.ready ? "True" : "False"}}};
    Json node = {{"apiVersion", "v1"},
                 {"kind", "Node"},
                 {"metadata", {{"name", name}, {"labels", s.labels}}},
                 {"spec", {{"unschedulable", s.unschedulable}, {"taints", s.taints}}},
                 {"status",
                  {{"allocatable", {{"cpu", s.cpu}, {"memory", s.memory}, {"pods", s.pods}}},
                   {"capacity", {{"cpu", s.cpu}, {"memory", s.memory}, {"pods", s.pods}}},
                   {"conditions", conditions}}}};
    auto made = client_.Create(nodes_, node);
    ASSERT_TRUE(made.ok()) << made.status();
  }

  static Json PodWith(const std::string& name, Json spec_extra = Json::object(),
                      Json requests = Json::object()) {
    Json container = {{"name", "c"}, {"image", "busybox:1.36"}};
    if (!requests.empty()) container["resources"]["requests"] = requests;
    Json spec = {{"containers", {container}}};
    for (auto& [k, v] : spec_extra.items()) spec[k] = v;
    return {{"apiVersion", "v1"},
            {"kind", "Pod"},
            {"metadata", {{"name", name}, {"namespace", "default"}}},
            {"spec", spec}};
  }

  Json CreatePod(const Json& pod) {
    auto made = client_.Create(pods_, pod);
    EXPECT_TRUE(made.ok()) << made.status();
    return made.ok() ? *made : Json();
  }

  Json GetPod(const std::string& name) {
    auto got = client_.Get(pods_, "default", name);
    return got.ok() ? *got : Json();
  }

  std::string NodeOf(const std::string& name) {
    Json pod = GetPod(name);
    const Json* n = Find(pod, {"spec", "nodeName"});
    return n && n->is_string() ? n->get<std::string>() : "";
  }

  // Waits until the pod is bound; returns its node ("" if never).
  std::string WaitBound(const std::string& name) {
    std::string node;
    Eventually([&] { return !(node = NodeOf(name)).empty(); });
    return node;
  }

  // The pod's PodScheduled condition, once it is `status`.
  Json WaitCondition(const std::string& name, const std::string& status) {
    Json found;
    Eventually([&] {
      Json pod = GetPod(name);
      const Json* cs = Find(pod, {"status", "conditions"});
      if (!cs || !cs->is_array()) return false;
      for (const Json& c : *cs) {
        if (StringAt(c, "type") == "PodScheduled" && StringAt(c, "status") == status) {
          found = c;
          return true;
        }
      }
      return false;
    });
    return found;
  }

  std::vector<Json> EventsAbout(const std::string& pod, const std::string& reason) {
    std::vector<Json> out;
    auto page = store_.List("/registry/events/default/", "", 0, 0);
    EXPECT_TRUE(page.ok());
    if (!page.ok()) return out;
    for (const StoredObject& o : page->items) {
      Json e = Json::parse(o.value);
      if (e["involvedObject"].value("name", "") == pod && e.value("reason", "") == reason) {
        out.push_back(e);
      }
    }
    return out;
  }

  MemoryObjectStore store_;
  ApiHandler api_;
  ObjectClient client_;
  const ResourceType& pods_ = TypeOf("", "pods");
  const ResourceType& nodes_ = TypeOf("", "nodes");
  std::unique_ptr<ReconcilerHost> host_;
  Scheduler* scheduler_ = nullptr;  // the running term's; valid while host_ leads
};

TEST_F(SchedulerHostTest, OnlyTheReadyNodeTakesThePod) {
  CreateNode("down", {.ready = false});
  CreateNode("up");
  Json no_status = {{"apiVersion", "v1"}, {"kind", "Node"}, {"metadata", {{"name", "silent"}}}};
  ASSERT_TRUE(client_.Create(nodes_, no_status).ok());
  StartScheduler();
  CreatePod(PodWith("p"));
  EXPECT_EQ(WaitBound("p"), "up");
  // Bound means scheduled.
  EXPECT_EQ(StringAt(WaitCondition("p", "True"), "type"), "PodScheduled");
}

TEST_F(SchedulerHostTest, CordonedNodesAreSkipped) {
  CreateNode("a", {.unschedulable = true});
  CreateNode("b", {.unschedulable = true});
  CreateNode("c");
  StartScheduler();
  CreatePod(PodWith("p"));
  EXPECT_EQ(WaitBound("p"), "c");
}

TEST_F(SchedulerHostTest, ResourcesCountAgainstAllocatableMinusBoundPods) {
  CreateNode("few-cpu", {.cpu = "500m"});
  CreateNode("little-memory", {.memory = "256Mi"});
  CreateNode("full", {.cpu = "2", .memory = "4Gi"});
  CreateNode("no-pods", {.pods = "0"});
  CreateNode("room", {.cpu = "2", .memory = "4Gi"});
  // "full" already runs a pod that takes its CPU (bound without the scheduler).
  Json hog = PodWith("hog", {{"nodeName", "full"}}, {{"cpu", "1500m"}});
  CreatePod(hog);
  StartScheduler();
  CreatePod(PodWith("p", {}, {{"cpu", "1"}, {"memory", "1Gi"}}));
  EXPECT_EQ(WaitBound("p"), "room");
}

TEST_F(SchedulerHostTest, NodeSelectorAndRequiredAffinity) {
  CreateNode("hdd", {.labels = {{"disk", "hdd"}, {"zone", "z1"}}});
  CreateNode("ssd-z1", {.labels = {{"disk", "ssd"}, {"zone", "z1"}, {"cores", "8"}}});
  CreateNode("ssd-z2", {.labels = {{"disk", "ssd"}, {"zone", "z2"}, {"cores", "32"}}});
  StartScheduler();
  CreatePod(PodWith("by-selector", {{"nodeSelector", {{"disk", "ssd"}, {"zone", "z1"}}}}));
  Json affinity = {{"nodeAffinity",
                    {{"requiredDuringSchedulingIgnoredDuringExecution",
                      {{"nodeSelectorTerms",
                        {{{"matchExpressions",
                           {{{"key", "disk"}, {"operator", "In"}, {"values", {"ssd"}}},
                            {{"key", "cores"}, {"operator", "Gt"}, {"values", {"16"}}}}}}}}}}}}};
  CreatePod(PodWith("by-affinity", {{"affinity", affinity}}));
  Json by_name = {
      {"nodeAffinity",
       {{"requiredDuringSchedulingIgnoredDuringExecution",
         {{"nodeSelectorTerms",
           {{{"matchFields",
              {{{"key", "metadata.name"}, {"operator", "In"}, {"values", {"hdd"}}}}}}}}}}}}};
  CreatePod(PodWith("by-name", {{"affinity", by_name}}));
  EXPECT_EQ(WaitBound("by-selector"), "ssd-z1");
  EXPECT_EQ(WaitBound("by-affinity"), "ssd-z2");
  EXPECT_EQ(WaitBound("by-name"), "hdd");
}

TEST_F(SchedulerHostTest, PreferredAffinityLeansWithoutRequiring) {
  CreateNode("z1", {.labels = {{"zone", "z1"}}});
  CreateNode("z2", {.labels = {{"zone", "z2"}}});
  StartScheduler();
  Json prefer_z2 = {{"nodeAffinity",
                     {{"preferredDuringSchedulingIgnoredDuringExecution",
                       {{{"weight", 80},
                         {"preference",
                          {{"matchExpressions",
                            {{{"key", "zone"}, {"operator", "In"}, {"values", {"z2"}}}}}}}}}}}}};
  for (int i = 0; i < 4; ++i) {
    CreatePod(PodWith("p" + std::to_string(i), {{"affinity", prefer_z2}}, {{"cpu", "100m"}}));
  }
  for (int i = 0; i < 4; ++i) EXPECT_EQ(WaitBound("p" + std::to_string(i)), "z2");
  // When z2 is full, z1 is still used.
  CreatePod(PodWith("big", {{"affinity", prefer_z2}}, {{"cpu", "3800m"}}));
  EXPECT_EQ(WaitBound("big"), "z1");
}

TEST_F(SchedulerHostTest, TaintsNeedTolerations) {
  CreateNode("gpu", {.taints = {{{"key", "gpu"}, {"value", "true"}, {"effect", "NoSchedule"}}}});
  CreateNode("evicting", {.taints = {{{"key", "maintenance"}, {"effect", "NoExecute"}}}});
  CreateNode("dedicated",
             {.taints = {{{"key", "team"}, {"value", "a"}, {"effect", "NoSchedule"}}}});
  StartScheduler();
  CreatePod(PodWith(
      "team-a",
      {{"tolerations",
        {{{"key", "team"}, {"operator", "Equal"}, {"value", "a"}, {"effect", "NoSchedule"}}}}}));
  EXPECT_EQ(WaitBound("team-a"), "dedicated");
  // Nothing tolerated: every node refused, each taint named.
  CreatePod(PodWith("plain"));
  Json c = WaitCondition("plain", "False");
  EXPECT_EQ(StringAt(c, "message"),
            "0/3 nodes are available: 1 node(s) had untolerated taint {gpu: true}, 1 node(s) had "
            "untolerated taint {maintenance: }, 1 node(s) had untolerated taint {team: a}.");
}

TEST_F(SchedulerHostTest, PreferNoScheduleOnlySteersAway) {
  CreateNode("meh", {.taints = {{{"key", "meh"}, {"effect", "PreferNoSchedule"}}}});
  CreateNode("fine");
  StartScheduler();
  for (int i = 0; i < 4; ++i) CreatePod(PodWith("p" + std::to_string(i), {}, {{"cpu", "100m"}}));
  for (int i = 0; i < 4; ++i) EXPECT_EQ(WaitBound("p" + std::to_string(i)), "fine");
  // When it is the only node left that fits, it is used.
  CreatePod(PodWith("big", {}, {{"cpu", "3900m"}}));
  EXPECT_EQ(WaitBound("big"), "meh");
}

TEST_F(SchedulerHostTest, HostPortsDoNotCollide) {
  CreateNode("a");
  CreateNode("b");
  CreateNode("c");
  Json ports = {{{"containerPort", 80}, {"hostPort", 8080}}};
  for (const char* node : {"a", "b"}) {
    Json taken = PodWith(std::string("taken-") + node, {{"nodeName", node}});
    taken["spec"]["containers"][0]["ports"] = ports;
    CreatePod(taken);
  }
  StartScheduler();
  Json web = PodWith("web");
  web["spec"]["containers"][0]["ports"] = ports;
  CreatePod(web);
  EXPECT_EQ(WaitBound("web"), "c");
  Json web2 = PodWith("web2");
  web2["spec"]["containers"][0]["ports"] = ports;
  CreatePod(web2);
  EXPECT_EQ(StringAt(WaitCondition("web2", "False"), "message"),
            "0/3 nodes are available: 3 node(s) didn't have free ports for the requested pod "
            "ports.");
}

TEST_F(SchedulerHostTest, OtherSchedulersPodsAreLeftAlone) {
  CreateNode("a");
  StartScheduler();
  CreatePod(PodWith("theirs", {{"schedulerName", "my-scheduler"}}));
  CreatePod(PodWith("ours"));
  EXPECT_EQ(WaitBound("ours"), "a");
  // One worker takes pods in order: "theirs" was looked at before "ours" was bound.
  EXPECT_EQ(NodeOf("theirs"), "");
  EXPECT_FALSE(Find(GetPod("theirs"), {"status", "conditions"}));
}

TEST_F(SchedulerHostTest, UnschedulableIsReportedOnceThenPlacedWhenANodeAppears) {
  CreateNode("a", {.cpu = "1"});
  CreateNode("b", {.cpu = "1", .labels = {{"disk", "ssd"}}});
  CreateNode("c", {.labels = {{"disk", "hdd"}}});
  SchedulerOptions fast;
  fast.backoff_base = absl::Milliseconds(5);
  fast.backoff_max = absl::Milliseconds(20);
  StartScheduler(fast);
  CreatePod(PodWith("big", {{"nodeSelector", {{"disk", "ssd"}}}}, {{"cpu", "2"}}));
  Json c = WaitCondition("big", "False");
  EXPECT_EQ(StringAt(c, "reason"), "Unschedulable");
  EXPECT_EQ(StringAt(c, "message"),
            "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't match Pod's node "
            "affinity/selector.");
  ASSERT_TRUE(Eventually([&] { return EventsAbout("big", "FailedScheduling").size() == 1; }));
  Json event = EventsAbout("big", "FailedScheduling")[0];
  EXPECT_EQ(event["type"], "Warning");
  EXPECT_EQ(event["message"], StringAt(c, "message"));
  EXPECT_EQ(event["involvedObject"]["uid"], GetPod("big")["metadata"]["uid"]);

  // Retried with back-off, nothing written again while nothing changes.
  const std::string version = GetPod("big")["metadata"]["resourceVersion"];
  const uint64_t attempts = scheduler_->stats().unschedulable_total;
  ASSERT_TRUE(Eventually([&] { return scheduler_->stats().unschedulable_total >= attempts + 5; }));
  EXPECT_EQ(GetPod("big")["metadata"]["resourceVersion"], version);
  EXPECT_EQ(EventsAbout("big", "FailedScheduling").size(), 1u);
  EXPECT_EQ(scheduler_->stats().conditions_written_total, 1u);

  CreateNode("d", {.cpu = "8", .labels = {{"disk", "ssd"}}});
  EXPECT_EQ(WaitBound("big"), "d");
  EXPECT_EQ(StringAt(WaitCondition("big", "True"), "status"), "True");
}

TEST_F(SchedulerHostTest, FreedRoomRetriesAtOnce) {
  CreateNode("one", {.pods = "1"});
  SchedulerOptions slow;
  slow.backoff_base = absl::Hours(1);  // only a change can bring the pods back
  slow.backoff_max = absl::Hours(1);
  StartScheduler(slow);
  CreatePod(PodWith("first"));
  ASSERT_EQ(WaitBound("first"), "one");
  CreatePod(PodWith("second"));
  EXPECT_EQ(StringAt(WaitCondition("second", "False"), "message"),
            "0/1 nodes are available: 1 Too many pods.");
  // "first" finishes: its slot is free.
  Json done = GetPod("first");
  done["status"]["phase"] = "Succeeded";
  ASSERT_TRUE(client_.Update(pods_, done, "status").ok());
  EXPECT_EQ(WaitBound("second"), "one");
  CreatePod(PodWith("third"));
  WaitCondition("third", "False");
  // "second" is deleted: room again.
  DeleteOptions now;
  now.grace_period_seconds = 0;
  ASSERT_TRUE(client_.Delete(pods_, "default", "second", now).ok());
  EXPECT_EQ(WaitBound("third"), "one");
}

TEST_F(SchedulerHostTest, HundredPodsAtOnceNeverOverbook) {
  // Room for exactly 25 pods of 100m on each of 4 nodes.
  for (int n = 0; n < 4; ++n) CreateNode("n" + std::to_string(n), {.cpu = "2500m"});
  StartScheduler();
  std::vector<std::thread> creators;
  for (int t = 0; t < 4; ++t) {
    creators.emplace_back([&, t] {
      for (int i = t; i < 101; i += 4) {
        auto made = client_.Create(pods_, PodWith("p" + std::to_string(i), {}, {{"cpu", "100m"}}));
        EXPECT_TRUE(made.ok()) << made.status();
      }
    });
  }
  for (auto& t : creators) t.join();
  // 100 fit, one does not.
  std::map<std::string, int> per_node;
  std::string left_out;
  ASSERT_TRUE(Eventually(
      [&] {
        per_node.clear();
        left_out.clear();
        int unschedulable = 0;
        for (int i = 0; i < 101; ++i) {
          Json pod = GetPod("p" + std::to_string(i));
          const std::string node = pod["spec"].value("nodeName", "");
          if (!node.empty()) {
            per_node[node]++;
            continue;
          }
          const Json* cs = Find(pod, {"status", "conditions"});
          if (cs && cs->is_array() && !cs->empty() &&
              StringAt((*cs)[0], "reason") == "Unschedulable") {
            ++unschedulable;
            left_out = pod["metadata"]["name"];
          }
        }
        int bound = 0;
        for (auto& [n, count] : per_node) bound += count;
        return bound == 100 && unschedulable == 1;
      },
      absl::Seconds(60)))
      << [&] {
           std::string counts;
           for (auto& [n, count] : per_node) counts += n + "=" + std::to_string(count) + " ";
           return "bound per node: " + counts;
         }();
  for (int n = 0; n < 4; ++n) EXPECT_EQ(per_node["n" + std::to_string(n)], 25);
  Json pod = GetPod(left_out);
  EXPECT_EQ(StringAt(pod["status"]["conditions"][0], "message"),
            "0/4 nodes are available: 4 Insufficient cpu.");
}

TEST_F(SchedulerHostTest, OneOwnersPodsSpreadOverNodes) {
  // Unequal nodes: room alone would send every pod to "big".
  CreateNode("big", {.cpu = "64", .memory = "64Gi"});
  CreateNode("small-1");
  CreateNode("small-2");
  StartScheduler();
  for (int i = 0; i < 30; ++i) {
    Json pod = PodWith("r" + std::to_string(i), {}, {{"cpu", "100m"}});
    pod["metadata"]["ownerReferences"] = {{{"apiVersion", "apps/v1"},
                                           {"kind", "ReplicaSet"},
                                           {"name", "rs"},
                                           {"uid", "rs-uid-1"},
                                           {"controller", true}}};
    CreatePod(pod);
  }
  std::map<std::string, int> per_node;
  for (int i = 0; i < 30; ++i) per_node[WaitBound("r" + std::to_string(i))]++;
  EXPECT_EQ(per_node.size(), 3u);
  for (auto& [node, count] : per_node) {
    EXPECT_GE(count, 9) << node;
    EXPECT_LE(count, 11) << node;
  }
  // Pods with no owner go by room: the big node.
  CreatePod(PodWith("loner", {}, {{"cpu", "100m"}}));
  EXPECT_EQ(WaitBound("loner"), "big");
}

TEST_F(SchedulerHostTest, ANewTermFinishesTheBurstWithoutOverbooking) {
  for (int n = 0; n < 4; ++n) CreateNode("n" + std::to_string(n), {.cpu = "2500m"});
  for (int i = 0; i < 100; ++i) CreatePod(PodWith("p" + std::to_string(i), {}, {{"cpu", "100m"}}));
  StartScheduler();
  auto bound = [&] {
    int count = 0;
    for (int i = 0; i < 100; ++i) count += NodeOf("p" + std::to_string(i)).empty() ? 0 : 1;
    return count;
  };
  ASSERT_TRUE(Eventually([&] { return bound() >= 1; }));
  // Step down in the middle of the burst; the next term lists again.
  host_->SetLeading(false, 1);
  ASSERT_TRUE(Eventually([&] { return !host_->stats().leading; }));
  const int by_first_term = bound();
  host_->SetLeading(true, 2);
  // The new term starts on the host's thread. (The first term may have bound
  // every pod before it stepped down; then only this wait sees the new term.)
  ASSERT_TRUE(Eventually([&] {
    const HostStats st = host_->stats();
    return st.leading && st.term == 2u;
  }));
  ASSERT_TRUE(Eventually([&] { return bound() == 100; }, absl::Seconds(60)))
      << "bound: " << bound() << " (first term: " << by_first_term << ")";
  std::map<std::string, int> per_node;
  for (int i = 0; i < 100; ++i) per_node[NodeOf("p" + std::to_string(i))]++;
  for (int n = 0; n < 4; ++n) EXPECT_EQ(per_node["n" + std::to_string(n)], 25);
}

TEST_F(SchedulerHostTest, ADeletedNodeGetsNoMorePods) {
  CreateNode("going", {.cpu = "64"});
  CreateNode("staying");
  StartScheduler();
  CreatePod(PodWith("first", {}, {{"cpu", "100m"}}));
  EXPECT_EQ(WaitBound("first"), "going");  // the emptier node
  ASSERT_TRUE(client_.Delete(nodes_, "", "going").ok());
  for (int i = 0; i < 3; ++i) CreatePod(PodWith("later" + std::to_string(i)));
  for (int i = 0; i < 3; ++i) EXPECT_EQ(WaitBound("later" + std::to_string(i)), "staying");
}

TEST_F(SchedulerHostTest, BindingChecksTheUidAndDeletion) {
  Json pod = CreatePod(PodWith("p"));
  absl::Status stale = client_.Bind("default", "p", "not-its-uid", "n1");
  EXPECT_TRUE(absl::IsAborted(stale)) << stale;
  EXPECT_EQ(NodeOf("p"), "");
  EXPECT_TRUE(client_.Bind("default", "p", pod["metadata"]["uid"], "n1").ok());
  EXPECT_EQ(NodeOf("p"), "n1");
  EXPECT_EQ(StringAt(WaitCondition("p", "True"), "type"), "PodScheduled");
  absl::Status again = client_.Bind("default", "p", pod["metadata"]["uid"], "n2");
  EXPECT_TRUE(absl::IsAborted(again)) << again;
  EXPECT_EQ(NodeOf("p"), "n1");
  // A pod held by a finalizer while being deleted is not bound.
  Json held = PodWith("held");
  held["metadata"]["finalizers"] = {"example.com/hold"};
  held = CreatePod(held);
  ASSERT_TRUE(client_.Delete(pods_, "default", "held").ok());
  ASSERT_TRUE(Find(GetPod("held"), {"metadata", "deletionTimestamp"}));
  absl::Status deleting = client_.Bind("default", "held", held["metadata"]["uid"], "n1");
  EXPECT_TRUE(absl::IsAborted(deleting)) << deleting;
  EXPECT_EQ(NodeOf("held"), "");
}

}  // namespace
}  // namespace ganglion::orchestrator::scheduler
