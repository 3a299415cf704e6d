// The scheduler's pure parts: quantity parsing, what a pod requests and a
// node offers, each filter, the scores, the failure message, and the
// cluster state's counting of bound and assumed pods.
#include <set>

#include "gtest/gtest.h"
#include "orchestrator/scheduler/cluster_state.h"
#include "orchestrator/scheduler/filters.h"
#include "orchestrator/scheduler/objects.h"
#include "orchestrator/scheduler/quantity.h"

namespace ganglion::orchestrator::scheduler {
namespace {

int64_t Milli(const std::string& s) {
  auto v = ParseQuantityMilli(s);
  EXPECT_TRUE(v.ok()) << s << ": " << v.status();
  return v.ok() ? *v : -1;
}
int64_t Units(const std::string& s) {
  auto v = ParseQuantity(s);
  EXPECT_TRUE(v.ok()) << s << ": " << v.status();
  return v.ok() ? *v : -1;
}

TEST(Quantity, DecimalSuffixesAndMilli) {
  EXPECT_EQ(Milli("100m"), 100);
  EXPECT_EQ(Milli("1"), 1000);
  EXPECT_EQ(Milli("0.5"), 500);
  EXPECT_EQ(Milli(".25"), 250);
  EXPECT_EQ(Milli("2."), 2000);
  EXPECT_EQ(Milli("1500u"), 2);  // 1.5m rounds up
  EXPECT_EQ(Milli("1n"), 1);
  EXPECT_EQ(Milli("0"), 0);
  EXPECT_EQ(Milli("+3"), 3000);
  EXPECT_EQ(Units("1k"), 1000);
  EXPECT_EQ(Units("1G"), 1000000000);
  EXPECT_EQ(Units("2T"), 2000000000000);
  EXPECT_EQ(Units("1E"), 1000000000000000000);  // exa, not an exponent
  EXPECT_EQ(Units("100m"), 1);                  // whole units round up
  EXPECT_EQ(Units("1500m"), 2);
  EXPECT_EQ(Units("-1500m"), -1);  // up is towards +infinity
}

TEST(Quantity, BinarySuffixes) {
  EXPECT_EQ(Units("1Ki"), 1024);
  EXPECT_EQ(Units("512Mi"), 512 * 1024 * 1024);
  EXPECT_EQ(Units("1.5Gi"), 1536LL * 1024 * 1024);
  EXPECT_EQ(Units("1Ti"), 1LL << 40);
  EXPECT_EQ(Units("1Ei"), 1LL << 60);
  EXPECT_EQ(Milli("1Ki"), 1024000);
}

TEST(Quantity, Exponents) {
  EXPECT_EQ(Units("1e3"), 1000);
  EXPECT_EQ(Units("1E3"), 1000);
  EXPECT_EQ(Units("12e+2"), 1200);
  EXPECT_EQ(Milli("5e-1"), 500);
  EXPECT_EQ(Milli("1e-9"), 1);  // a sliver of a milli is still requested
  EXPECT_EQ(Units("1e400"), INT64_MAX);
  EXPECT_EQ(Units("1000000000000000000000000"), INT64_MAX);  // saturates
  EXPECT_EQ(Milli("10000000000000000Ei"), INT64_MAX);
}

TEST(Quantity, MalformedIsAnErrorNamingTheText) {
  for (const char* bad : {"", "m", "abc", "1.2.3", "1x", "1Kb", "1e", "1e+", "1ee3", "--1", "1 "}) {
    auto v = ParseQuantity(bad);
    ASSERT_FALSE(v.ok()) << "\"" << bad << "\" parsed as " << *v;
    EXPECT_NE(v.status().message().find("quantity"), std::string::npos);
  }
  EXPECT_FALSE(ParseQuantity("1234567890123456789").ok());  // 19 significant digits
}

Json Container(const Json& requests, const Json& limits = nullptr) {
  Json c = {{"name", "c"}, {"image", "x"}};
  if (!requests.is_null()) c["resources"]["requests"] = requests;
  if (!limits.is_null()) c["resources"]["limits"] = limits;
  return c;
}

Json PodJson(Json spec, const std::string& name = "p") {
  return {{"metadata", {{"name", name}, {"namespace", "default"}, {"uid", "uid-" + name}}},
          {"spec", std::move(spec)}};
}

PodInfo MustParsePod(const Json& pod) {
  auto p = ParsePod(pod);
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? *p : PodInfo{};
}

TEST(PodRequests, ContainersAddInitContainersTakeTheMax) {
  PodInfo p = MustParsePod(
      PodJson({{"containers",
                {Container({{"cpu", "100m"}, {"memory", "64Mi"}}),
                 Container({{"cpu", "200m"}, {"memory", "64Mi"}})}},
               {"initContainers", {Container({{"cpu", "1"}}), Container({{"memory", "100Mi"}})}}}));
  EXPECT_EQ(p.usage.requests.cpu_milli, 1000);                    // init 1 > 300m
  EXPECT_EQ(p.usage.requests.memory_bytes, 128LL * 1024 * 1024);  // 128Mi > 100Mi
  EXPECT_EQ(p.usage.requests.pods, 1);
}

TEST(PodRequests, SidecarsRunBesideEverythingAfterThem) {
  Json sidecar = Container({{"cpu", "50m"}});
  sidecar["restartPolicy"] = "Always";
  PodInfo p = MustParsePod(PodJson({{"containers", {Container({{"cpu", "100m"}})}},
                                    {"initContainers", {sidecar, Container({{"cpu", "500m"}})}}}));
  // Running: 100m + 50m sidecar; the init container after it: 500m + 50m.
  EXPECT_EQ(p.usage.requests.cpu_milli, 550);
}

TEST(PodRequests, LimitsStandInForMissingRequestsAndOverheadAdds) {
  PodInfo p = MustParsePod(PodJson({{"containers",
                                     {Container(nullptr, {{"cpu", "2"}, {"memory", "1Gi"}}),
                                      Container({{"cpu", "100m"}}, {{"cpu", "4"}})}},
                                    {"overhead", {{"cpu", "10m"}}}}));
  EXPECT_EQ(p.usage.requests.cpu_milli, 2000 + 100 + 10);
  EXPECT_EQ(p.usage.requests.memory_bytes, 1LL << 30);
}

TEST(PodRequests, ScoringFloorsForContainersAskingNothing) {
  PodInfo p =
      MustParsePod(PodJson({{"containers", {Container(nullptr), Container({{"cpu", "1"}})}}}));
  EXPECT_EQ(p.usage.requests.cpu_milli, 1000);
  EXPECT_EQ(p.usage.requests.memory_bytes, 0);
  EXPECT_EQ(p.usage.nonzero_cpu_milli, 1100);
  EXPECT_EQ(p.usage.nonzero_memory_bytes, 400LL * 1024 * 1024);
}

TEST(PodRequests, MalformedQuantityNamesTheField) {
  auto p = ParsePod(PodJson({{"containers", {Container({{"cpu", "lots"}})}}}));
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("spec.containers[0].resources"), std::string::npos)
      << p.status();
}

TEST(PodRequests, ExtendedResourcesAndNumbers) {
  PodInfo p =
      MustParsePod(PodJson({{"containers", {Container({{"cpu", 2}, {"example.com/gpu", "1"}})}}}));
  EXPECT_EQ(p.usage.requests.cpu_milli, 2000);
  EXPECT_EQ(p.usage.requests.scalar.at("example.com/gpu"), 1);
}

TEST(PodInfoParse, PortsOwnerSelectorTolerations) {
  Json c = Container(nullptr);
  c["ports"] = {
      {{"containerPort", 80}, {"hostPort", 8080}},
      {{"containerPort", 53}, {"hostPort", 53}, {"protocol", "UDP"}, {"hostIP", "10.0.0.1"}},
      {{"containerPort", 9090}}};
  Json pod = PodJson({{"containers", {c}},
                      {"nodeSelector", {{"disk", "ssd"}}},
                      {"tolerations", {{{"key", "k"}, {"operator", "Exists"}}}}});
  pod["metadata"]["ownerReferences"] = {{{"uid", "rs-1"}, {"controller", true}},
                                        {{"uid", "other"}}};
  PodInfo p = MustParsePod(pod);
  ASSERT_EQ(p.usage.host_ports.size(), 2u);
  EXPECT_EQ(p.usage.host_ports[0], (HostPort{"0.0.0.0", "TCP", 8080}));
  EXPECT_EQ(p.usage.host_ports[1], (HostPort{"10.0.0.1", "UDP", 53}));
  EXPECT_EQ(p.usage.owner_uid, "rs-1");
  EXPECT_EQ(p.node_selector.at("disk"), "ssd");
  ASSERT_EQ(p.tolerations.size(), 1u);
  EXPECT_TRUE(p.tolerations[0].exists);
}

TEST(PodInfoParse, HostNetworkPortsAreHostPorts) {
  Json c = Container(nullptr);
  c["ports"] = {{{"containerPort", 80}}};
  PodInfo p = MustParsePod(PodJson({{"containers", {c}}, {"hostNetwork", true}}));
  ASSERT_EQ(p.usage.host_ports.size(), 1u);
  EXPECT_EQ(p.usage.host_ports[0].port, 80);
}

TEST(Wants, OnlyPendingPodsOfTheDefaultScheduler) {
  Json pod = PodJson({{"containers", {Container(nullptr)}}});
  EXPECT_TRUE(WantsScheduling(pod));
  pod["spec"]["schedulerName"] = "default-scheduler";
  EXPECT_TRUE(WantsScheduling(pod));
  Json other = pod;
  other["spec"]["schedulerName"] = "my-scheduler";
  EXPECT_FALSE(WantsScheduling(other));
  Json bound = pod;
  bound["spec"]["nodeName"] = "n1";
  EXPECT_FALSE(WantsScheduling(bound));
  Json deleting = pod;
  deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z";
  EXPECT_FALSE(WantsScheduling(deleting));
  Json done = pod;
  done["status"]["phase"] = "Succeeded";
  EXPECT_FALSE(WantsScheduling(done));
  EXPECT_TRUE(IsTerminated(done));
}

Json NodeJson(const std::string& name, const std::string& cpu = "4",
              const std::string& memory = "8Gi", const std::string& pods = "110",
              bool ready = true) {
  return {{"metadata", {{"name", name}}},
          {"spec", Json::object()},
          {"status",
           {{"allocatable", {{"cpu", cpu}, {"memory", memory}, {"pods", pods}}},
            {"conditions", {{{"type", "Ready"}, {"status", ready ? "True" : "False"}}}}}}};
}

NodeState State(const Json& node) {
  auto info = ParseNode(node);
  EXPECT_TRUE(info.ok()) << info.status();
  NodeState s;
  s.has_node = true;
  if (info.ok()) s.info = *info;
  return s;
}

std::vector<std::string> Why(const PodInfo& pod, const NodeState& node) {
  std::vector<std::string> reasons;
  Filter(pod, node, reasons);
  return reasons;
}

TEST(NodeParse, AllocatableFallsBackToCapacity) {
  Json n = NodeJson("n");
  n["status"].erase("allocatable");
  n["status"]["capacity"] = {{"cpu", "2"}, {"pods", "3"}};
  NodeState s = State(n);
  EXPECT_EQ(s.info.allocatable.cpu_milli, 2000);
  EXPECT_EQ(s.info.allocatable.pods, 3);
  Json bad = NodeJson("n", "two");
  EXPECT_FALSE(ParseNode(bad).ok());
}

TEST(Filters, ReadyAndUnschedulable) {
  PodInfo pod = MustParsePod(PodJson({{"containers", {Container(nullptr)}}}));
  EXPECT_TRUE(Why(pod, State(NodeJson("n"))).empty());
  EXPECT_EQ(Why(pod, State(NodeJson("n", "4", "8Gi", "110", false))),
            std::vector<std::string>{kReasonNotReady});
  Json no_conditions = NodeJson("n");
  no_conditions["status"].erase("conditions");
  EXPECT_EQ(Why(pod, State(no_conditions)), std::vector<std::string>{kReasonNotReady});
  PodInfo daemon = pod;
  daemon.tolerations.push_back({"node.kubernetes.io/not-ready", "", "", true});
  EXPECT_TRUE(Why(daemon, State(no_conditions)).empty());
  Json cordoned = NodeJson("n");
  cordoned["spec"]["unschedulable"] = true;
  EXPECT_EQ(Why(pod, State(cordoned)), std::vector<std::string>{kReasonUnschedulable});
  pod.tolerations.push_back({"node.kubernetes.io/unschedulable", "", "NoSchedule", true});
  EXPECT_TRUE(Why(pod, State(cordoned)).empty());
}

TEST(Filters, ResourcesAgainstAllocatableMinusRequested) {
  PodInfo pod =
      MustParsePod(PodJson({{"containers", {Container({{"cpu", "1500m"}, {"memory", "1Gi"}})}}}));
  NodeState n = State(NodeJson("n", "2", "2Gi", "2"));
  EXPECT_TRUE(Why(pod, n).empty());
  n.Count(pod.usage);
  EXPECT_EQ(Why(pod, n), (std::vector<std::string>{"Insufficient cpu"}));
  PodInfo small = MustParsePod(PodJson({{"containers", {Container({{"memory", "1Gi"}})}}}));
  EXPECT_TRUE(Why(small, n).empty());  // exactly the memory left
  n.Count(small.usage);
  EXPECT_EQ(Why(small, n), (std::vector<std::string>{kReasonTooManyPods, "Insufficient memory"}));
  n.Uncount(small.usage);
  n.Uncount(pod.usage);
  EXPECT_TRUE(Why(pod, n).empty());
  PodInfo gpu = MustParsePod(PodJson({{"containers", {Container({{"example.com/gpu", "1"}})}}}));
  EXPECT_EQ(Why(gpu, n), (std::vector<std::string>{"Insufficient example.com/gpu"}));
  PodInfo none = MustParsePod(PodJson({{"containers", {Container(nullptr)}}}));
  EXPECT_TRUE(Why(none, State(NodeJson("n", "0", "0", "1"))).empty());
}

TEST(Filters, NodeSelector) {
  PodInfo pod = MustParsePod(
      PodJson({{"containers", {Container(nullptr)}}, {"nodeSelector", {{"disk", "ssd"}}}}));
  Json n = NodeJson("n");
  EXPECT_EQ(Why(pod, State(n)), std::vector<std::string>{kReasonAffinity});
  n["metadata"]["labels"] = {{"disk", "hdd"}};
  EXPECT_FALSE(MatchesNodeSelector(pod, State(n).info));
  n["metadata"]["labels"] = {{"disk", "ssd"}, {"zone", "a"}};
  EXPECT_TRUE(MatchesNodeSelector(pod, State(n).info));
  EXPECT_TRUE(Why(pod, State(n)).empty());
}

PodInfo AffinityPod(Json terms) {
  return MustParsePod(PodJson({{"containers", {Container(nullptr)}},
                               {"affinity",
                                {{"nodeAffinity",
                                  {{"requiredDuringSchedulingIgnoredDuringExecution",
                                    {{"nodeSelectorTerms", terms}}}}}}}}));
}

Json Expr(const std::string& key, const std::string& op, std::vector<std::string> values = {}) {
  Json e = {{"key", key}, {"operator", op}};
  if (!values.empty()) e["values"] = values;
  return e;
}

NodeInfo Labeled(const std::string& name, std::map<std::string, std::string> labels) {
  NodeInfo n;
  n.name = name;
  n.labels = std::move(labels);
  return n;
}

TEST(Filters, RequiredNodeAffinityOperators) {
  const NodeInfo a = Labeled("a", {{"zone", "z1"}, {"cores", "8"}});
  const NodeInfo b = Labeled("b", {{"zone", "z2"}, {"cores", "x"}});
  const NodeInfo c = Labeled("c", {});
  auto matches = [&](const Json& expr) {
    PodInfo p = AffinityPod({{{"matchExpressions", {expr}}}});
    std::string out;
    for (const NodeInfo* n : {&a, &b, &c}) {
      if (MatchesRequiredAffinity(p, *n)) out += n->name;
    }
    return out;
  };
  EXPECT_EQ(matches(Expr("zone", "In", {"z1", "z3"})), "a");
  EXPECT_EQ(matches(Expr("zone", "NotIn", {"z1"})), "bc");  // absent label: not in
  EXPECT_EQ(matches(Expr("zone", "Exists")), "ab");
  EXPECT_EQ(matches(Expr("zone", "DoesNotExist")), "c");
  EXPECT_EQ(matches(Expr("cores", "Gt", {"4"})), "a");
  EXPECT_EQ(matches(Expr("cores", "Lt", {"9"})), "a");  // "x" is no integer
  EXPECT_EQ(matches(Expr("cores", "Gt", {"8"})), "");
}

TEST(Filters, AffinityTermsAreOredRequirementsAnded) {
  PodInfo p = AffinityPod(
      {{{"matchExpressions", {Expr("zone", "In", {"z1"}), Expr("cores", "Gt", {"10"})}}},
       {{"matchFields", {Expr("metadata.name", "In", {"c"})}}}});
  EXPECT_FALSE(MatchesRequiredAffinity(p, Labeled("a", {{"zone", "z1"}, {"cores", "8"}})));
  EXPECT_TRUE(MatchesRequiredAffinity(p, Labeled("a", {{"zone", "z1"}, {"cores", "16"}})));
  EXPECT_TRUE(MatchesRequiredAffinity(p, Labeled("c", {})));
  PodInfo not_name = AffinityPod({{{"matchFields", {Expr("metadata.name", "NotIn", {"c"})}}}});
  EXPECT_FALSE(MatchesRequiredAffinity(not_name, Labeled("c", {})));
  EXPECT_TRUE(MatchesRequiredAffinity(not_name, Labeled("d", {})));
  // An empty term matches nothing; so does an empty list of terms.
  EXPECT_FALSE(MatchesRequiredAffinity(AffinityPod({Json::object()}), Labeled("a", {})));
  EXPECT_FALSE(MatchesRequiredAffinity(AffinityPod(Json::array()), Labeled("a", {})));
  auto bad = ParsePod(
      PodJson({{"containers", {Container(nullptr)}},
               {"affinity",
                {{"nodeAffinity",
                  {{"requiredDuringSchedulingIgnoredDuringExecution",
                    {{"nodeSelectorTerms", {{{"matchExpressions", {Expr("a", "Near")}}}}}}}}}}}}));
  EXPECT_FALSE(bad.ok());
}

TEST(Filters, TaintsAndTolerations) {
  const Taint gpu{"gpu", "true", "NoSchedule"};
  EXPECT_TRUE(Tolerates({"gpu", "true", "NoSchedule", false}, gpu));
  EXPECT_FALSE(Tolerates({"gpu", "false", "NoSchedule", false}, gpu));
  EXPECT_TRUE(Tolerates({"gpu", "", "", true}, gpu));  // Exists, any effect
  EXPECT_FALSE(Tolerates({"gpu", "", "NoExecute", true}, gpu));
  EXPECT_TRUE(Tolerates({"", "", "", true}, gpu));  // empty key + Exists: everything
  EXPECT_FALSE(Tolerates({"other", "", "", true}, gpu));

  PodInfo pod = MustParsePod(PodJson({{"containers", {Container(nullptr)}}}));
  Json n = NodeJson("n");
  n["spec"]["taints"] = {{{"key", "gpu"}, {"value", "true"}, {"effect", "NoSchedule"}}};
  EXPECT_EQ(Why(pod, State(n)),
            std::vector<std::string>{"node(s) had untolerated taint {gpu: true}"});
  n["spec"]["taints"] = {{{"key", "dedicated"}, {"effect", "NoExecute"}}};
  EXPECT_EQ(Why(pod, State(n)),
            std::vector<std::string>{"node(s) had untolerated taint {dedicated: }"});
  n["spec"]["taints"] = {{{"key", "meh"}, {"effect", "PreferNoSchedule"}}};
  EXPECT_TRUE(Why(pod, State(n)).empty());  // only lowers the score
  EXPECT_EQ(CountPreferNoScheduleUntolerated(pod, State(n).info), 1);
  pod.tolerations.push_back({"dedicated", "", "NoExecute", true});
  n["spec"]["taints"] = {{{"key", "dedicated"}, {"effect", "NoExecute"}}};
  EXPECT_TRUE(Why(pod, State(n)).empty());
}

TEST(Filters, HostPortConflicts) {
  EXPECT_TRUE(PortsConflict({"0.0.0.0", "TCP", 80}, {"10.0.0.1", "TCP", 80}));
  EXPECT_TRUE(PortsConflict({"10.0.0.1", "TCP", 80}, {"10.0.0.1", "TCP", 80}));
  EXPECT_FALSE(PortsConflict({"10.0.0.1", "TCP", 80}, {"10.0.0.2", "TCP", 80}));
  EXPECT_FALSE(PortsConflict({"0.0.0.0", "TCP", 80}, {"0.0.0.0", "UDP", 80}));
  EXPECT_FALSE(PortsConflict({"0.0.0.0", "TCP", 80}, {"0.0.0.0", "TCP", 81}));

  Json c = Container(nullptr);
  c["ports"] = {{{"containerPort", 80}, {"hostPort", 8080}}};
  PodInfo web = MustParsePod(PodJson({{"containers", {c}}}));
  NodeState n = State(NodeJson("n"));
  EXPECT_TRUE(Why(web, n).empty());
  n.Count(web.usage);
  EXPECT_EQ(Why(web, n), std::vector<std::string>{kReasonPorts});
  n.Uncount(web.usage);
  EXPECT_TRUE(PortsFree(web, n));
}

TEST(Message, CountsPerReasonSorted) {
  EXPECT_EQ(UnschedulableMessage(3, {{"Insufficient cpu", 1}, {kReasonAffinity, 2}}),
            "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't match Pod's node "
            "affinity/selector.");
  EXPECT_EQ(UnschedulableMessage(0, {}), "0/0 nodes are available.");
}

TEST(Scores, LeastAllocatedPrefersTheEmptierNode) {
  PodInfo pod =
      MustParsePod(PodJson({{"containers", {Container({{"cpu", "1"}, {"memory", "1Gi"}})}}}));
  NodeState empty = State(NodeJson("a", "4", "4Gi"));
  NodeState busy = State(NodeJson("b", "4", "4Gi"));
  busy.Count(pod.usage);
  EXPECT_EQ(LeastAllocatedScore(pod, empty), 75);
  EXPECT_EQ(LeastAllocatedScore(pod, busy), 50);
  std::vector<int64_t> s = Score(pod, {&empty, &busy});
  EXPECT_GT(s[0], s[1]);
}

TEST(Scores, SpreadOfOneOwnerOutweighsFreeRoom) {
  Json pj = PodJson({{"containers", {Container({{"cpu", "100m"}})}}});
  pj["metadata"]["ownerReferences"] = {{{"uid", "rs"}, {"controller", true}}};
  PodInfo pod = MustParsePod(pj);
  NodeState big = State(NodeJson("big", "64", "64Gi"));
  NodeState small = State(NodeJson("small", "4", "4Gi"));
  big.Count(pod.usage);  // one of the owner's pods already there
  std::vector<int64_t> s = Score(pod, {&big, &small});
  EXPECT_LT(s[0], s[1]);
  EXPECT_EQ(OwnerPodsOn(pod, big), 1);
}

TEST(Scores, PreferNoScheduleLowersTheScore) {
  PodInfo pod = MustParsePod(PodJson({{"containers", {Container(nullptr)}}}));
  Json t = NodeJson("t");
  t["spec"]["taints"] = {{{"key", "meh"}, {"effect", "PreferNoSchedule"}}};
  NodeState tainted = State(t), clean = State(NodeJson("c"));
  std::vector<int64_t> s = Score(pod, {&tainted, &clean});
  EXPECT_LT(s[0], s[1]);
  pod.tolerations.push_back({"meh", "", "PreferNoSchedule", true});
  s = Score(pod, {&tainted, &clean});
  EXPECT_EQ(s[0], s[1]);
}

TEST(Scores, PreferredNodeAffinityWeighsMatchingTerms) {
  Json pj = PodJson({{"containers", {Container(nullptr)}}});
  pj["spec"]["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"] = {
      {{"weight", 10}, {"preference", {{"matchExpressions", {Expr("zone", "In", {"z1"})}}}}},
      {{"weight", 50}, {"preference", {{"matchExpressions", {Expr("disk", "Exists")}}}}}};
  PodInfo pod = MustParsePod(pj);
  ASSERT_EQ(pod.preferred_terms.size(), 2u);
  Json z1 = NodeJson("z1"), ssd = NodeJson("ssd"), both = NodeJson("both"), none = NodeJson("none");
  z1["metadata"]["labels"] = {{"zone", "z1"}};
  ssd["metadata"]["labels"] = {{"disk", "ssd"}};
  both["metadata"]["labels"] = {{"zone", "z1"}, {"disk", "ssd"}};
  NodeState a = State(z1), b = State(ssd), c = State(both), d = State(none);
  EXPECT_EQ(PreferredAffinityWeight(pod, c.info), 60);
  std::vector<int64_t> s = Score(pod, {&a, &b, &c, &d});
  EXPECT_GT(s[2], s[1]);
  EXPECT_GT(s[1], s[0]);
  EXPECT_GT(s[0], s[3]);
  // Preferred terms do not filter.
  EXPECT_TRUE(Why(pod, d).empty());
}

ClusterState ThreeNodes() {
  ClusterState state;
  for (const char* n : {"a", "b", "c"}) state.UpsertNode(*ParseNode(NodeJson(n, "1", "1Gi", "10")));
  return state;
}

TEST(State, TiesRotateAcrossEqualNodes) {
  ClusterState state = ThreeNodes();
  PodInfo pod = MustParsePod(PodJson({{"containers", {Container(nullptr)}}}));
  std::set<std::string> chosen;
  for (int i = 0; i < 3; ++i) chosen.insert(state.Schedule(pod).node);  // nothing counted
  EXPECT_EQ(chosen, (std::set<std::string>{"a", "b", "c"}));
}

TEST(State, AssumedPodsCountUntilForgottenOrConfirmed) {
  ClusterState state = ThreeNodes();
  PodInfo pod = MustParsePod(PodJson({{"containers", {Container({{"cpu", "600m"}})}}}));
  std::map<std::string, std::string> node_of;
  std::set<std::string> used;
  for (int i = 0; i < 3; ++i) {
    ClusterState::Decision d = state.Schedule(pod);
    ASSERT_FALSE(d.node.empty());
    EXPECT_TRUE(used.insert(d.node).second) << "node booked twice: " << d.node;
    node_of["default/p" + std::to_string(i)] = d.node;
    state.Assume("default/p" + std::to_string(i), d.node, pod.usage);
  }
  EXPECT_EQ(state.assumed(), 3u);
  ClusterState::Decision none = state.Schedule(pod);
  EXPECT_TRUE(none.node.empty());
  EXPECT_EQ(none.reasons.at("Insufficient cpu"), 3);
  // A failed bind frees the room; one of a pod of the same name and another uid does not.
  state.ForgetAssumed("default/p0", "other-uid");
  EXPECT_EQ(state.assumed(), 3u);
  state.ForgetAssumed("default/p0", pod.usage.uid);
  EXPECT_EQ(state.assumed(), 2u);
  EXPECT_EQ(state.Schedule(pod).node, node_of["default/p0"]);
  // The cache shows p1 bound where it was assumed: counted once, no longer assumed.
  state.CountBound("default/p1", node_of["default/p1"], pod.usage);
  EXPECT_FALSE(state.IsAssumed("default/p1"));
  EXPECT_TRUE(state.IsCountedBound("default/p1", node_of["default/p1"], pod.usage.uid));
  EXPECT_EQ(state.assumed(), 1u);
  EXPECT_EQ(state.node(node_of["default/p1"])->requested.cpu_milli, 600);
  // A bound pod is not dropped by a late bind failure.
  state.ForgetAssumed("default/p1", pod.usage.uid);
  EXPECT_EQ(state.node(node_of["default/p1"])->requested.cpu_milli, 600);
  // Shown bound elsewhere than assumed: it moves.
  const std::string elsewhere = node_of["default/p0"];
  state.CountBound("default/p2", elsewhere, pod.usage);
  EXPECT_EQ(state.node(node_of["default/p2"])->requested.cpu_milli, 0);
  EXPECT_EQ(state.node(elsewhere)->requested.cpu_milli, 600);
  EXPECT_EQ(state.assumed(), 0u);
}

TEST(State, PodsOfAnUnknownNodeCountWhenItAppears) {
  ClusterState state;
  PodInfo pod = MustParsePod(PodJson({{"containers", {Container({{"cpu", "1"}})}}}));
  state.CountBound("default/early", "late", pod.usage);
  EXPECT_EQ(state.nodes(), 0u);
  EXPECT_TRUE(state.Schedule(pod).node.empty());
  EXPECT_TRUE(state.UpsertNode(*ParseNode(NodeJson("late", "1"))));
  EXPECT_FALSE(state.UpsertNode(*ParseNode(NodeJson("late", "1"))));  // no change
  ClusterState::Decision d = state.Schedule(pod);
  EXPECT_TRUE(d.node.empty());
  EXPECT_EQ(d.reasons.at("Insufficient cpu"), 1);
  EXPECT_TRUE(state.Uncount("default/early"));
  EXPECT_EQ(state.Schedule(pod).node, "late");
  state.RemoveNode("late");
  EXPECT_EQ(state.nodes(), 0u);
  EXPECT_EQ(state.node("late"), nullptr);
}

}  // namespace
}  // namespace ganglion::orchestrator::scheduler
