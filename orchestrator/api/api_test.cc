// The API's pure logic and its REST semantics over an in-memory store:
// selectors, the three patch types, validation messages, optimistic
// concurrency, generation, subresources, paging and watch event shaping.
#include <gtest/gtest.h>

#include "orchestrator/api/discovery.h"
#include "orchestrator/api/handler.h"
#include "orchestrator/api/patch.h"
#include "orchestrator/api/selectors.h"
#include "orchestrator/storage/memory_object_store.h"
#include "orchestrator/types/registry.h"

namespace ganglion::orchestrator {
namespace {

Json Labels(const std::string& text) {
  return Json::parse(text);
}

TEST(LabelSelectorTest, EqualityAndSetBasedRequirements) {
  const Json labels = Labels(R"({"app":"web","tier":"front"})");
  auto match = [&](const std::string& s) {
    auto sel = LabelSelector::Parse(s);
    EXPECT_TRUE(sel.ok()) << s << ": " << sel.status();
    return sel.ok() && sel->Matches(&labels);
  };
  EXPECT_TRUE(match(""));
  EXPECT_TRUE(match("app=web"));
  EXPECT_TRUE(match("app==web,tier=front"));
  EXPECT_FALSE(match("app!=web"));
  EXPECT_TRUE(match("tier in (back, front)"));
  EXPECT_FALSE(match("tier notin (front)"));
  EXPECT_TRUE(match("app"));
  EXPECT_FALSE(match("!app"));
  EXPECT_TRUE(match("!missing,app in (web)"));
  EXPECT_FALSE(LabelSelector::Parse("app=web,,").ok());
  EXPECT_FALSE(LabelSelector::Parse("bad key=x").ok());
  EXPECT_FALSE(LabelSelector::Parse("tier in (a").ok());
}

TEST(FieldSelectorTest, OnlyDeclaredFields) {
  const ResourceType* pods = FindResourceType("", "v1", "pods");
  Json pod = Json::parse(R"({"metadata":{"name":"p","namespace":"n"},
                             "spec":{"nodeName":"n1"},"status":{"phase":"Running"}})");
  auto sel = FieldSelector::Parse("spec.nodeName=n1,status.phase!=Pending", *pods);
  ASSERT_TRUE(sel.ok()) << sel.status();
  EXPECT_TRUE(sel->Matches(*pods, pod));
  EXPECT_EQ(sel->Pinned("spec.nodeName"), "n1");
  auto other = FieldSelector::Parse("metadata.name=q", *pods);
  EXPECT_FALSE(other->Matches(*pods, pod));
  auto bad = FieldSelector::Parse("spec.image=x", *pods);
  EXPECT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "field label not supported: spec.image");
  const ResourceType* events = FindResourceType("", "v1", "events");
  EXPECT_TRUE(FieldSelector::Parse("involvedObject.name=p,involvedObject.kind=Pod", *events).ok());
}

TEST(StrategicMergePatchTest, ListsMergeByTheirKeys) {
  Json doc = Json::parse(R"({"spec":{"containers":[
      {"name":"a","image":"a:1","env":[{"name":"X","value":"1"}],"ports":[{"containerPort":80}]},
      {"name":"b","image":"b:1"}],"tolerations":[{"key":"k"}]},
      "metadata":{"finalizers":["one"]}})");
  Json patch = Json::parse(R"({"spec":{"containers":[
      {"name":"a","env":[{"name":"Y","value":"2"}],"ports":[{"containerPort":80,"name":"http"}]},
      {"name":"c","image":"c:1"}],"tolerations":[{"key":"other"}]},
      "metadata":{"finalizers":["two"]}})");
  auto out = ApplyStrategicMergePatch(doc, patch, "Pod");
  ASSERT_TRUE(out.ok()) << out.status();
  const Json& c = (*out)["spec"]["containers"];
  ASSERT_EQ(c.size(), 3u);
  EXPECT_EQ(c[0]["image"], "a:1");
  EXPECT_EQ(c[0]["env"], Json::parse(R"([{"name":"X","value":"1"},{"name":"Y","value":"2"}])"));
  EXPECT_EQ(c[0]["ports"], Json::parse(R"([{"containerPort":80,"name":"http"}])"));
  EXPECT_EQ(c[2]["name"], "c");
  // No merge key: replaced whole.
  EXPECT_EQ((*out)["spec"]["tolerations"], Json::parse(R"([{"key":"other"}])"));
  // finalizers merge as a set.
  EXPECT_EQ((*out)["metadata"]["finalizers"], Json::parse(R"(["one","two"])"));
}

TEST(StrategicMergePatchTest, Directives) {
  Json doc = Json::parse(R"({"spec":{"containers":[{"name":"a"},{"name":"b"},{"name":"c"}],
      "strategy":{"type":"RollingUpdate","rollingUpdate":{"maxSurge":1}},
      "args":["x","y","z"],"keep":1,"drop":2}})");
  Json patch = Json::parse(R"({"spec":{
      "containers":[{"name":"b","$patch":"delete"},{"name":"d"}],
      "$setElementOrder/containers":[{"name":"d"},{"name":"a"},{"name":"c"}],
      "strategy":{"type":"Recreate","$retainKeys":["type"]},
      "$deleteFromPrimitiveList/args":["y"],
      "drop":null}})");
  auto out = ApplyStrategicMergePatch(doc, patch, "Pod");
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)["spec"]["containers"],
            Json::parse(R"([{"name":"d"},{"name":"a"},{"name":"c"}])"));
  EXPECT_EQ((*out)["spec"]["strategy"], Json::parse(R"({"type":"Recreate"})"));
  EXPECT_EQ((*out)["spec"]["args"], Json::parse(R"(["x","z"])"));
  EXPECT_FALSE((*out)["spec"].contains("drop"));
  EXPECT_EQ((*out)["spec"]["keep"], 1);

  auto replaced = ApplyStrategicMergePatch(
      doc, Json::parse(R"({"spec":{"containers":[{"$patch":"replace"},{"name":"only"}]}})"),
      "Pod");
  EXPECT_EQ((*replaced)["spec"]["containers"], Json::parse(R"([{"name":"only"}])"));
  auto map_replace = ApplyStrategicMergePatch(
      doc, Json::parse(R"({"spec":{"strategy":{"$patch":"replace","type":"Recreate"}}})"),
      "Pod");
  EXPECT_EQ((*map_replace)["spec"]["strategy"], Json::parse(R"({"type":"Recreate"})"));
  // A keyed list element without its key cannot be merged.
  EXPECT_FALSE(ApplyStrategicMergePatch(
                   doc, Json::parse(R"({"spec":{"containers":[{"image":"x"}]}})"), "Pod")
                   .ok());
}

TEST(StrategicMergePatchTest, ServicePortsMergeByPort) {
  Json svc = Json::parse(R"({"spec":{"ports":[{"port":80,"name":"http"},{"port":443}]}})");
  auto out = ApplyStrategicMergePatch(
      svc, Json::parse(R"({"spec":{"ports":[{"port":443,"name":"https"}]}})"), "Service");
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)["spec"]["ports"],
            Json::parse(R"([{"port":80,"name":"http"},{"port":443,"name":"https"}])"));
}

TEST(JsonPatchTest, BadPatchIsAnErrorNotAnException) {
  auto out =
      ApplyJsonPatch(Json::object(), Json::parse(R"([{"op":"replace","path":"/x","value":1}])"));
  EXPECT_FALSE(out.ok());
}

TEST(HumanDurationTest, AsKubectlShowsIt) {
  EXPECT_EQ(HumanDuration(absl::Seconds(42)), "42s");
  EXPECT_EQ(HumanDuration(absl::Seconds(119)), "119s");
  EXPECT_EQ(HumanDuration(absl::Seconds(303)), "5m3s");
  EXPECT_EQ(HumanDuration(absl::Minutes(42)), "42m");
  EXPECT_EQ(HumanDuration(absl::Hours(5) + absl::Minutes(3)), "5h3m");
  EXPECT_EQ(HumanDuration(absl::Hours(30)), "30h");
  EXPECT_EQ(HumanDuration(absl::Hours(24 * 12)), "12d");
}

class HandlerTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(handler_.EnsureDefaultNamespaces().ok()); }

  HttpResponse Do(const std::string& method, const std::string& path, const std::string& body = "",
                  const std::string& content_type = "application/json",
                  std::map<std::string, std::string> query = {}) {
    HttpRequest r;
    r.method = method;
    r.path = path;
    r.body = body;
    r.content_type = content_type;
    r.accept = "application/json";
    r.query = std::move(query);
    return handler_.Handle(r);
  }
  Json J(const HttpResponse& r) { return Json::parse(r.body); }

  static std::string Deployment(const std::string& name, int replicas) {
    return Json{{"apiVersion", "apps/v1"},
                {"kind", "Deployment"},
                {"metadata", {{"name", name}}},
                {"spec",
                 {{"replicas", replicas},
                  {"selector", {{"matchLabels", {{"app", name}}}}},
                  {"template",
                   {{"metadata", {{"labels", {{"app", name}}}}},
                    {"spec", {{"containers", {{{"name", "c"}, {"image", "nginx"}}}}}}}}}}}
        .dump();
  }

  MemoryObjectStore store_;
  ApiHandler handler_{store_, "127.0.0.1:6443"};
};

constexpr char kDeployments[] = "/apis/apps/v1/namespaces/default/deployments";

TEST_F(HandlerTest, CreateDefaultsAndRejectsDuplicates) {
  auto created = Do("POST", kDeployments, Deployment("web", 2));
  ASSERT_EQ(created.status, 201) << created.body;
  Json d = J(created);
  EXPECT_EQ(d["metadata"]["generation"], 1);
  EXPECT_EQ(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
  EXPECT_EQ(d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"], "Always");
  auto again = Do("POST", kDeployments, Deployment("web", 2));
  EXPECT_EQ(again.status, 409);
  EXPECT_EQ(J(again)["reason"], "AlreadyExists");
  EXPECT_EQ(J(again)["message"], "deployments.apps \"web\" already exists");
  auto missing = Do("GET", std::string(kDeployments) + "/nope");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(J(missing)["message"], "deployments.apps \"nope\" not found");
  auto no_ns = Do("POST", "/apis/apps/v1/namespaces/ghost/deployments", Deployment("x", 1));
  EXPECT_EQ(no_ns.status, 404);
  EXPECT_EQ(J(no_ns)["message"], "namespaces \"ghost\" not found");
}

TEST_F(HandlerTest, InvalidObjectsGet422WithCauses) {
  Json bad = Json::parse(Deployment("Bad", -1));
  auto r = Do("POST", kDeployments, bad.dump());
  ASSERT_EQ(r.status, 422) << r.body;
  Json s = J(r);
  EXPECT_EQ(s["reason"], "Invalid");
  std::set<std::string> fields;
  for (const Json& c : s["details"]["causes"]) fields.insert(c["field"]);
  EXPECT_EQ(fields, (std::set<std::string>{"metadata.name", "spec.replicas"}));
  Json typo = Json::parse(Deployment("ok", 1));
  typo["spce"] = typo["spec"];
  auto strict =
      Do("POST", kDeployments, typo.dump(), "application/json", {{"fieldValidation", "Strict"}});
  EXPECT_EQ(strict.status, 400);
  EXPECT_EQ(J(strict)["message"],
            "Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding "
            "error: unknown field \"spce\"");
  auto garbage = Do("POST", kDeployments, "{not json");
  EXPECT_EQ(garbage.status, 400);
  auto wrong_kind = Do("POST", kDeployments, R"({"kind":"Pod","apiVersion":"v1"})");
  EXPECT_EQ(wrong_kind.status, 400);
}

TEST_F(HandlerTest, UpdateIsCompareAndSwapOnResourceVersion) {
  Json d = J(Do("POST", kDeployments, Deployment("web", 1)));
  const std::string path = std::string(kDeployments) + "/web";
  Json stale = d;
  d["spec"]["replicas"] = 3;
  auto updated = Do("PUT", path, d.dump());
  ASSERT_EQ(updated.status, 200) << updated.body;
  EXPECT_EQ(J(updated)["metadata"]["generation"], 2);
  EXPECT_NE(J(updated)["metadata"]["resourceVersion"], stale["metadata"]["resourceVersion"]);
  stale["spec"]["replicas"] = 9;
  auto conflict = Do("PUT", path, stale.dump());
  EXPECT_EQ(conflict.status, 409);
  EXPECT_EQ(J(conflict)["reason"], "Conflict");
  // A write that changes nothing keeps the revision.
  Json same = J(Do("GET", path));
  auto noop = Do("PUT", path, same.dump());
  EXPECT_EQ(J(noop)["metadata"]["resourceVersion"], same["metadata"]["resourceVersion"]);
  // Metadata-only changes do not bump generation.
  auto labeled =
      Do("PATCH", path, R"({"metadata":{"labels":{"x":"y"}}})", "application/merge-patch+json");
  EXPECT_EQ(J(labeled)["metadata"]["generation"], 2);
}

TEST_F(HandlerTest, StatusAndScaleSubresources) {
  Do("POST", kDeployments, Deployment("web", 1));
  const std::string path = std::string(kDeployments) + "/web";
  auto status =
      Do("PATCH", path + "/status", R"({"status":{"readyReplicas":1},"spec":{"replicas":50}})",
         "application/merge-patch+json");
  ASSERT_EQ(status.status, 200) << status.body;
  EXPECT_EQ(J(status)["spec"]["replicas"], 1);  // a status write changes only status
  EXPECT_EQ(J(status)["status"]["readyReplicas"], 1);
  auto main =
      Do("PATCH", path, R"({"status":{"readyReplicas":7}})", "application/merge-patch+json");
  EXPECT_EQ(J(main)["status"]["readyReplicas"], 1);  // and a main write leaves status alone
  auto scale =
      Do("PATCH", path + "/scale", R"({"spec":{"replicas":4}})", "application/merge-patch+json");
  ASSERT_EQ(scale.status, 200) << scale.body;
  EXPECT_EQ(J(scale)["kind"], "Scale");
  EXPECT_EQ(J(scale)["spec"]["replicas"], 4);
  EXPECT_EQ(J(Do("GET", path))["spec"]["replicas"], 4);
}

TEST_F(HandlerTest, ListPagesWithLimitAndContinueAndFilters) {
  for (int i = 0; i < 5; ++i) {
    Json cm = {
        {"apiVersion", "v1"},
        {"kind", "ConfigMap"},
        {"metadata",
         {{"name", "cm" + std::to_string(i)}, {"labels", {{"parity", i % 2 ? "odd" : "even"}}}}}};
    ASSERT_EQ(Do("POST", "/api/v1/namespaces/default/configmaps", cm.dump()).status, 201);
  }
  std::vector<std::string> names;
  std::string token;
  do {
    std::map<std::string, std::string> q = {{"limit", "2"}, {"labelSelector", "parity=even"}};
    if (!token.empty()) q["continue"] = token;
    Json page = J(Do("GET", "/api/v1/namespaces/default/configmaps", "", "", q));
    EXPECT_LE(page["items"].size(), 2u);
    for (const Json& o : page["items"]) names.push_back(o["metadata"]["name"]);
    token = page["metadata"].value("continue", "");
  } while (!token.empty());
  EXPECT_EQ(names, (std::vector<std::string>{"cm0", "cm2", "cm4"}));
  auto bad = Do("GET", "/api/v1/namespaces/default/configmaps", "", "", {{"continue", "%%%"}});
  EXPECT_EQ(bad.status, 400);
}

TEST_F(HandlerTest, WatchEventsFollowTheSelector) {
  HttpRequest r;
  r.method = "GET";
  r.path = "/api/v1/namespaces/default/configmaps";
  r.query = {{"watch", "true"}, {"labelSelector", "app=a"}, {"resourceVersion", "1"}};
  auto planned = handler_.PlanWatch(r);
  ASSERT_TRUE(planned.has_value());
  WatchPlan plan = std::get<WatchPlan>(*planned);
  std::vector<std::string> types;
  auto sub = store_.Watch(
      plan.prefix, plan.after_revision,
      [&](const std::vector<ObjectEvent>& events) {
        for (const auto& e : events) {
          std::string line = handler_.EncodeEvent(plan, e);
          if (!line.empty()) types.push_back(Json::parse(line)["type"]);
        }
      },
      nullptr);
  ASSERT_TRUE(sub.ok());
  const std::string path = "/api/v1/namespaces/default/configmaps";
  Do("POST", path, R"({"metadata":{"name":"c","labels":{"app":"a"}}})");
  Do("PATCH", path + "/c", R"({"data":{"k":"v"}})", "application/merge-patch+json");
  Do("PATCH", path + "/c", R"({"metadata":{"labels":{"app":"b"}}})",
     "application/merge-patch+json");
  Do("PATCH", path + "/c", R"({"metadata":{"labels":{"app":"a"}}})",
     "application/merge-patch+json");
  Do("DELETE", path + "/c");
  Do("POST", path, R"({"metadata":{"name":"other","labels":{"app":"z"}}})");
  EXPECT_EQ(types, (std::vector<std::string>{"ADDED", "MODIFIED", "DELETED", "ADDED", "DELETED"}));
  store_.Compact(store_.watched_revision());
  EXPECT_TRUE(absl::IsOutOfRange(store_
                                     .Watch(
                                         plan.prefix, 1, [](auto&) {}, nullptr)
                                     .status()));
}

TEST_F(HandlerTest, FinalizersHoldDeletionUntilRemoved) {
  const std::string path = "/api/v1/namespaces/default/configmaps";
  Do("POST", path, R"({"metadata":{"name":"f","finalizers":["x/y"]}})");
  auto deleted = Do("DELETE", path + "/f");
  ASSERT_EQ(deleted.status, 200);
  EXPECT_TRUE(J(deleted)["metadata"].contains("deletionTimestamp"));
  EXPECT_EQ(Do("GET", path + "/f").status, 200);
  Do("PATCH", path + "/f", R"({"metadata":{"finalizers":null}})", "application/merge-patch+json");
  EXPECT_EQ(Do("GET", path + "/f").status, 404);
  auto protected_ns = Do("DELETE", "/api/v1/namespaces/default");
  EXPECT_EQ(protected_ns.status, 403);
}

TEST_F(HandlerTest, BoundPodWaitsForItsAgentsZeroGraceConfirmation) {
  const std::string path = "/api/v1/namespaces/default/pods";
  Json pod = Json::parse(R"({"metadata":{"name":"p"},"spec":{"nodeName":"n1",
      "terminationGracePeriodSeconds":20,
      "containers":[{"name":"c","image":"none","command":["sleep","100"]}]}})");
  Json created = J(Do("POST", path, pod.dump()));
  const std::string uid = created["metadata"]["uid"];
  // A user's delete only marks it: the agent still has to stop the processes.
  auto marked = Do("DELETE", path + "/p");
  ASSERT_EQ(marked.status, 200);
  EXPECT_EQ(J(marked)["metadata"]["deletionGracePeriodSeconds"], 20);
  EXPECT_EQ(Do("GET", path + "/p").status, 200);
  // The agent's status writes while it stops the processes keep it too.
  Json current = J(Do("GET", path + "/p"));
  current["status"]["phase"] = "Running";
  EXPECT_EQ(Do("PUT", path + "/p/status", current.dump()).status, 200);
  EXPECT_EQ(Do("GET", path + "/p").status, 200);
  // A second plain delete changes nothing.
  EXPECT_EQ(Do("DELETE", path + "/p").status, 200);
  EXPECT_EQ(Do("GET", path + "/p").status, 200);
  // The agent's confirmation for another pod of that name is refused...
  Json wrong_uid = {{"gracePeriodSeconds", 0}, {"preconditions", {{"uid", "other"}}}};
  EXPECT_EQ(Do("DELETE", path + "/p", wrong_uid.dump()).status, 409);
  EXPECT_EQ(Do("GET", path + "/p").status, 200);
  // ...its own removes the object.
  Json confirm = {{"gracePeriodSeconds", 0}, {"preconditions", {{"uid", uid}}}};
  EXPECT_EQ(Do("DELETE", path + "/p", confirm.dump()).status, 200);
  EXPECT_EQ(Do("GET", path + "/p").status, 404);
  // With a finalizer, the confirmation is recorded and the last finalizer removes it.
  pod["metadata"]["finalizers"] = Json::array({"example.com/hold"});
  Json held = J(Do("POST", path, pod.dump()));
  ASSERT_EQ(Do("DELETE", path + "/p").status, 200);
  Json confirm_held = {{"gracePeriodSeconds", 0},
                       {"preconditions", {{"uid", held["metadata"]["uid"]}}}};
  auto recorded = Do("DELETE", path + "/p", confirm_held.dump());
  ASSERT_EQ(recorded.status, 200);
  EXPECT_EQ(J(recorded)["metadata"]["deletionGracePeriodSeconds"], 0);
  EXPECT_EQ(Do("GET", path + "/p").status, 200);
  Do("PATCH", path + "/p", R"({"metadata":{"finalizers":null}})", "application/merge-patch+json");
  EXPECT_EQ(Do("GET", path + "/p").status, 404);
}

TEST_F(HandlerTest, PodLogsNeedABoundPodAndAValidContainer) {
  const std::string path = "/api/v1/namespaces/default/pods";
  Do("POST", path, R"({"metadata":{"name":"two"},"spec":{"containers":[
      {"name":"a","image":"x","command":["true"]},{"name":"b","image":"x","command":["true"]}]}})");
  auto unnamed = Do("GET", path + "/two/log");
  EXPECT_EQ(unnamed.status, 400);
  EXPECT_NE(unnamed.body.find("choose one of: [a b]"), std::string::npos) << unnamed.body;
  auto wrong = Do("GET", path + "/two/log", "", "", {{"container", "zz"}});
  EXPECT_EQ(wrong.status, 400);
  auto unbound = Do("GET", path + "/two/log", "", "", {{"container", "a"}});
  EXPECT_EQ(unbound.status, 400);
  EXPECT_NE(unbound.body.find("does not have a host assigned"), std::string::npos);
  EXPECT_EQ(Do("GET", path + "/ghost/log").status, 404);
}

TEST_F(HandlerTest, ServicesGetUniqueClusterIps) {
  const std::string path = "/api/v1/namespaces/default/services";
  auto svc = [](const std::string& name, const std::string& ip) {
    Json s = {{"metadata", {{"name", name}}}, {"spec", {{"ports", {{{"port", 80}}}}}}};
    if (!ip.empty()) s["spec"]["clusterIP"] = ip;
    return s.dump();
  };
  Json a = J(Do("POST", path, svc("a", "")));
  Json b = J(Do("POST", path, svc("b", "")));
  const std::string ip_a = a["spec"]["clusterIP"];
  ASSERT_TRUE(ip_a.rfind("10.", 0) == 0) << a.dump();
  EXPECT_NE(ip_a, b["spec"]["clusterIP"]);
  EXPECT_EQ(a["spec"]["clusterIPs"], Json::array({ip_a}));
  auto taken = Do("POST", path, svc("c", ip_a));
  EXPECT_EQ(taken.status, 422) << taken.body;
  EXPECT_TRUE(J(taken)["message"].get<std::string>().find("already allocated") !=
              std::string::npos);
  // An update that omits the address keeps it; a delete frees it.
  Json replaced = a;
  replaced["spec"].erase("clusterIP");
  replaced["spec"].erase("clusterIPs");
  EXPECT_EQ(J(Do("PUT", path + "/a", replaced.dump()))["spec"]["clusterIP"], ip_a);
  ASSERT_EQ(Do("DELETE", path + "/a").status, 200);
  EXPECT_EQ(Do("POST", path, svc("c", ip_a)).status, 201);
  Json headless = J(Do("POST", path, svc("h", "None")));
  EXPECT_EQ(headless["spec"]["clusterIP"], "None");
}

TEST(DiscoveryTest, OpenApiDeclaresFieldValidationOnPatch) {
  auto doc = OpenApiV3Document("apis/apps/v1");
  ASSERT_TRUE(doc.has_value());
  const Json& patch =
      (*doc)["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
  EXPECT_EQ(patch["x-kubernetes-group-version-kind"]["kind"], "Deployment");
  bool field_validation = false;
  for (const Json& p : patch["parameters"]) field_validation |= p["name"] == "fieldValidation";
  EXPECT_TRUE(field_validation);
  EXPECT_FALSE(OpenApiV3Document("apis/nope/v1").has_value());
  auto core = ApiResourceList("", "v1");
  ASSERT_TRUE(core.has_value());
  bool pods_status = false;
  for (const Json& r : (*core)["resources"]) pods_status |= r["name"] == "pods/status";
  EXPECT_TRUE(pods_status);
}

}  // namespace
}  // namespace ganglion::orchestrator
