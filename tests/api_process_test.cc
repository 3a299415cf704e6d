// The orchestrator's API driven by the real kubectl against a 3-member
// ganglion cluster whose members each serve the API (--listen-api-urls):
// discovery, create/apply from YAML, get in every output format with label
// and field selectors, watch, describe, label/annotate, the three patch
// types, a stale replace, scale, delete with each propagation policy, an
// invalid manifest, paging, a compacted watch, and a write through one member
// read through the others. Every test works in its own namespace.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/kube_cluster.h"

namespace ganglion::tests {
namespace {

using Json = nlohmann::json;
using std::chrono::milliseconds;

class ApiProcessTest : public KubeTest {
 protected:
  // The API alone: no reconciler writes conditions or events behind its back.
  static void SetUpTestSuite() { StartGanglion({"--reconcilers=none"}); }

  static std::string Deployment(const std::string& name, int replicas, const std::string& image) {
    return absl::StrCat(R"(apiVersion: apps/v1
kind: Deployment
metadata:
  name: )",
                        name, R"(
  labels: {app: )",
                        name, R"(}
spec:
  replicas: )",
                        replicas, R"(
  selector:
    matchLabels: {app: )",
                        name, R"(}
  template:
    metadata:
      labels: {app: )",
                        name, R"(}
    spec:
      containers:
      - name: main
        image: )",
                        image, R"(
        ports:
        - containerPort: 80
        env:
        - {name: MODE, value: one}
)");
  }

  static std::string Pod(const std::string& name, const std::string& labels) {
    return absl::StrCat("apiVersion: v1\nkind: Pod\nmetadata:\n  name: ", name,
                        "\n  labels: ", labels,
                        "\nspec:\n  containers:\n  - name: c\n    image: busybox:1.36\n");
  }
};

TEST_F(ApiProcessTest, ApiResourcesListsEveryResourceWithShortNames) {
  auto r = Kubectl({"api-resources"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* row :
       {"pods", "deployments", "replicasets", "statefulsets", "daemonsets", "services", "endpoints",
        "nodes", "namespaces", "configmaps", "events", "controllerrevisions", "persistentvolumes",
        "persistentvolumeclaims", "leases"}) {
    EXPECT_TRUE(absl::StrContains(r.out, row)) << row << "\n" << r.out;
  }
  std::vector<std::string> lines = absl::StrSplit(r.out, '\n');
  auto line_of = [&](const std::string& name) {
    for (const std::string& l : lines) {
      if (absl::StartsWith(l, name + " ")) return l;
    }
    return std::string();
  };
  EXPECT_TRUE(absl::StrContains(line_of("deployments"), "deploy"));
  EXPECT_TRUE(absl::StrContains(line_of("deployments"), "apps/v1"));
  EXPECT_TRUE(absl::StrContains(line_of("persistentvolumeclaims"), "pvc"));
  EXPECT_TRUE(absl::StrContains(line_of("nodes"), "false"));  // cluster-scoped
  EXPECT_TRUE(absl::StrContains(line_of("leases"), "coordination.k8s.io/v1"));
  auto all = Kubectl({"api-resources", "--categories=all", "-o", "name"});
  EXPECT_TRUE(absl::StrContains(all.out, "pods")) << all.out;
  EXPECT_FALSE(absl::StrContains(all.out, "configmaps")) << all.out;
}

TEST_F(ApiProcessTest, CreateThenApplyFromYamlUpdatesTheObject) {
  const std::string file = WriteFile("web.yaml", Deployment("web", 2, "nginx:1.25"));
  auto created = K({"create", "-f", file});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  EXPECT_EQ(created.out, "deployment.apps/web created\n");
  auto again = K({"create", "-f", file});
  EXPECT_NE(again.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(again.err, "AlreadyExists")) << again.err;
  EXPECT_TRUE(absl::StrContains(again.err, "\"web\" already exists")) << again.err;

  const std::string applied = WriteFile("web.yaml", Deployment("web", 3, "nginx:1.26"));
  auto apply = K({"apply", "-f", applied});
  ASSERT_EQ(apply.exit_code, 0) << apply.err;
  EXPECT_EQ(apply.out, "deployment.apps/web configured\n");
  Json d = GetJson("deployment", "web");
  EXPECT_EQ(d["spec"]["replicas"], 3);
  EXPECT_EQ(d["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:1.26");
  EXPECT_EQ(d["metadata"]["generation"], 2);
  // Defaults as Kubernetes sets them.
  EXPECT_EQ(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
  EXPECT_EQ(d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"], "25%");
  EXPECT_EQ(d["spec"]["revisionHistoryLimit"], 10);
  EXPECT_EQ(d["spec"]["progressDeadlineSeconds"], 600);
  EXPECT_EQ(d["spec"]["template"]["spec"]["restartPolicy"], "Always");
  EXPECT_EQ(d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"], 30);
  EXPECT_EQ(d["metadata"]["uid"].get<std::string>().size(), 36u);
  EXPECT_TRUE(
      d["metadata"]["annotations"].contains("kubectl.kubernetes.io/last-applied-configuration"));
  auto unchanged = K({"apply", "-f", applied});
  EXPECT_EQ(unchanged.out, "deployment.apps/web unchanged\n") << unchanged.err;
  EXPECT_EQ(GetJson("deployment", "web")["metadata"]["resourceVersion"],
            d["metadata"]["resourceVersion"]);

  // Apply of a new object creates it.
  auto fresh = K({"apply", "-f", WriteFile("p.yaml", Pod("solo", "{app: solo}"))});
  EXPECT_EQ(fresh.out, "pod/solo created\n") << fresh.err;
}

TEST_F(ApiProcessTest, GetInEveryFormatWithSelectors) {
  ASSERT_EQ(
      K({"create", "-f", WriteFile("a.yaml", Pod("a", "{app: db, tier: backend}"))}).exit_code, 0);
  ASSERT_EQ(
      K({"create", "-f", WriteFile("b.yaml", Pod("b", "{app: web, tier: frontend}"))}).exit_code,
      0);
  ASSERT_EQ(K({"create", "-f", WriteFile("c.yaml", Pod("c", "{app: web}"))}).exit_code, 0);

  auto table = K({"get", "pods"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_TRUE(absl::StartsWith(table.out, "NAME")) << table.out;
  for (const char* col : {"READY", "STATUS", "RESTARTS", "AGE"}) {
    EXPECT_TRUE(absl::StrContains(table.out, col)) << table.out;
  }
  EXPECT_TRUE(absl::StrContains(table.out, "0/1     Pending")) << table.out;
  auto wide = K({"get", "pods", "-o", "wide"});
  EXPECT_TRUE(absl::StrContains(wide.out, "IP")) << wide.out;
  EXPECT_TRUE(absl::StrContains(wide.out, "NODE")) << wide.out;
  auto yaml = K({"get", "pod", "a", "-o", "yaml"});
  EXPECT_TRUE(absl::StrContains(yaml.out, "kind: Pod")) << yaml.out;
  EXPECT_TRUE(absl::StrContains(yaml.out, "resourceVersion: \"")) << yaml.out;
  Json list = Json::parse(K({"get", "pods", "-o", "json"}).out, nullptr, false);
  ASSERT_TRUE(list.is_object());
  EXPECT_EQ(list["items"].size(), 3u);

  auto names = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"get", "pods", "-o", "name"});
    auto r = K(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out;
  };
  EXPECT_EQ(names({"-l", "app=web"}), "pod/b\npod/c\n");
  EXPECT_EQ(names({"-l", "app!=web"}), "pod/a\n");
  EXPECT_EQ(names({"-l", "tier in (backend,frontend)"}), "pod/a\npod/b\n");
  EXPECT_EQ(names({"-l", "app=web,!tier"}), "pod/c\n");
  EXPECT_EQ(names({"-l", "tier notin (frontend)"}), "pod/a\npod/c\n");
  EXPECT_EQ(names({"--field-selector", "metadata.name=b"}), "pod/b\n");
  EXPECT_EQ(names({"--field-selector", "status.phase=Pending,metadata.name!=a"}), "pod/b\npod/c\n");
  auto bad = K({"get", "pods", "--field-selector", "spec.nope=1"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(bad.err, "field label not supported: spec.nope")) << bad.err;

  auto all = Kubectl({"get", "pods", "-A", "--show-labels"});
  EXPECT_TRUE(absl::StartsWith(all.out, "NAMESPACE")) << all.out;
  EXPECT_TRUE(absl::StrContains(all.out, ns_)) << all.out;
  EXPECT_TRUE(absl::StrContains(all.out, "app=db,tier=backend")) << all.out;

  // Paging: kubectl's --chunk-size walks limit/continue.
  auto paged = K({"get", "pods", "--chunk-size=1", "-o", "name"});
  EXPECT_EQ(paged.out, "pod/a\npod/b\npod/c\n") << paged.err;
  Json page = Json::parse(
      Kubectl({"get", "--raw", absl::StrCat("/api/v1/namespaces/", ns_, "/pods?limit=2")}).out,
      nullptr, false);
  ASSERT_TRUE(page.is_object());
  EXPECT_EQ(page["items"].size(), 2u);
  EXPECT_EQ(page["metadata"]["remainingItemCount"], 1);
  ASSERT_TRUE(page["metadata"].contains("continue"));
}

TEST_F(ApiProcessTest, WatchSeesAnUpdateMadeThroughAnotherMember) {
  ASSERT_EQ(K({"create", "-f", WriteFile("w.yaml", Pod("w", "{app: w}"))}).exit_code, 0);
  CommandResult watched;
  // kubectl -w never exits by itself: it runs until RunCommand's deadline.
  std::thread watcher([&] {
    watched =
        K({"get", "pods", "-w", "--output-watch-events", "-o", "json"}, 0, milliseconds(9000));
  });
  // Several updates spread over a few seconds, so a kubectl slow to start
  // (a loaded machine) still has its watch open for some of them.
  std::this_thread::sleep_for(milliseconds(1500));
  for (int i = 1; i <= 6; ++i) {
    auto labeled = K({"label", "pod", "w", absl::StrCat("seen=", i), "--overwrite"}, 1);
    EXPECT_EQ(labeled.exit_code, 0) << labeled.err;
    std::this_thread::sleep_for(milliseconds(500));
  }
  auto deleted = K({"delete", "pod", "w"}, 2);
  EXPECT_EQ(deleted.exit_code, 0) << deleted.err;
  watcher.join();
  std::istringstream in(watched.out);
  std::vector<std::string> seen;
  std::vector<int> values;  // of the label, in the order the MODIFIED events came
  Json event;
  while (in >> std::ws && in.peek() != EOF) {
    try {
      in >> event;
    } catch (const Json::exception&) {
      break;
    }
    std::string what = event.value("type", "?");
    const Json& labels = event["object"]["metadata"]["labels"];
    if (labels.contains("seen")) what += "+seen";
    if (what == "MODIFIED+seen") values.push_back(std::stoi(labels["seen"].get<std::string>()));
    seen.push_back(what);
  }
  ASSERT_GE(seen.size(), 3u) << watched.out << watched.err;
  EXPECT_EQ(seen.front().substr(0, 5), "ADDED") << watched.out;
  EXPECT_NE(std::find(seen.begin(), seen.end(), "MODIFIED+seen"), seen.end()) << watched.out;
  EXPECT_EQ(seen.back(), "DELETED+seen") << watched.out;
  // Each update arrives once, in order: the label values strictly grow.
  EXPECT_TRUE(std::is_sorted(values.begin(), values.end()) &&
              std::adjacent_find(values.begin(), values.end()) == values.end())
      << watched.out;

  // The table form (plain `get -w`) prints a row per change.
  std::thread table_watcher([&] { watched = K({"get", "pods", "-w"}, 1, milliseconds(4000)); });
  std::this_thread::sleep_for(milliseconds(2000));
  ASSERT_EQ(K({"create", "-f", WriteFile("w2.yaml", Pod("w2", "{app: w}"))}, 2).exit_code, 0);
  table_watcher.join();
  EXPECT_TRUE(absl::StrContains(watched.out, "w2 ")) << watched.out << watched.err;
}

TEST_F(ApiProcessTest, WatchFromACompactedRevisionGetsExpired) {
  ASSERT_EQ(K({"create", "-f", WriteFile("x.yaml", Pod("x", "{app: x}"))}).exit_code, 0);
  const std::string created = GetJson("pod", "x")["metadata"]["resourceVersion"];
  ASSERT_EQ(K({"label", "pod", "x", "v=2"}).exit_code, 0);
  const std::string second = GetJson("pod", "x")["metadata"]["resourceVersion"];
  ASSERT_EQ(K({"label", "pod", "x", "v=3", "--overwrite"}).exit_code, 0);
  auto compacted = cluster().Etcdctl({"compact", second});
  ASSERT_EQ(compacted.exit_code, 0) << compacted.err;
  auto watch_from = [&](const std::string& rv, int member) {
    return Kubectl({"get", "--raw",
                    absl::StrCat("/api/v1/namespaces/", ns_,
                                 "/pods?watch=true&timeoutSeconds=1&resourceVersion=", rv)},
                   member);
  };
  for (int member = 0; member < cluster().size(); ++member) {
    // From the compaction revision itself: what followed it is replayed.
    auto replay = watch_from(second, member);
    EXPECT_TRUE(absl::StrContains(replay.out, "\"MODIFIED\"")) << replay.out << replay.err;
    EXPECT_TRUE(absl::StrContains(replay.out, "\"v\":\"3\"")) << replay.out;
    // From before it: 410 Expired, on every member alike.
    auto expired = watch_from(created, member);
    EXPECT_TRUE(absl::StrContains(expired.out, "\"type\":\"ERROR\"")) << expired.out;
    EXPECT_TRUE(absl::StrContains(expired.out, "\"code\":410")) << expired.out;
    EXPECT_TRUE(absl::StrContains(expired.out, "\"reason\":\"Expired\"")) << expired.out;
  }
}

TEST_F(ApiProcessTest, DescribeLabelAndAnnotate) {
  ASSERT_EQ(K({"create", "-f", WriteFile("d.yaml", Pod("d", "{app: d}"))}).exit_code, 0);
  auto labeled = K({"label", "pod", "d", "env=prod"});
  EXPECT_EQ(labeled.out, "pod/d labeled\n") << labeled.err;
  auto clash = K({"label", "pod", "d", "env=dev"});
  EXPECT_NE(clash.exit_code, 0);  // needs --overwrite
  EXPECT_EQ(K({"label", "pod", "d", "env=dev", "--overwrite"}).exit_code, 0);
  EXPECT_EQ(K({"label", "pod", "d", "app-"}).exit_code, 0);
  auto annotated = K({"annotate", "pod", "d", "note=hello world"});
  EXPECT_EQ(annotated.out, "pod/d annotated\n") << annotated.err;
  Json pod = GetJson("pod", "d");
  EXPECT_EQ(pod["metadata"]["labels"], (Json{{"env", "dev"}}));
  EXPECT_EQ(pod["metadata"]["annotations"]["note"], "hello world");
  auto described = K({"describe", "pod", "d"});
  ASSERT_EQ(described.exit_code, 0) << described.err;
  EXPECT_TRUE(absl::StrContains(described.out, "Name:")) << described.out;
  EXPECT_TRUE(absl::StrContains(described.out, "env=dev")) << described.out;
  EXPECT_TRUE(absl::StrContains(described.out, "note: hello world")) << described.out;
  EXPECT_TRUE(absl::StrContains(described.out, "busybox:1.36")) << described.out;
  EXPECT_TRUE(absl::StrContains(described.out, "Status:       Pending")) << described.out;
}

TEST_F(ApiProcessTest, PatchWithEachOfTheThreeTypes) {
  ASSERT_EQ(K({"create", "-f", WriteFile("p.yaml", Deployment("p", 1, "nginx:1.25"))}).exit_code,
            0);
  auto json_patch = K({"patch", "deployment", "p", "--type=json", "-p",
                       R"([{"op":"replace","path":"/spec/replicas","value":4}])"});
  EXPECT_EQ(json_patch.out, "deployment.apps/p patched\n") << json_patch.err;
  auto merge = K({"patch", "deployment", "p", "--type=merge", "-p",
                  R"({"metadata":{"labels":{"patched":"merge"}}})"});
  EXPECT_EQ(merge.exit_code, 0) << merge.err;
  // Strategic: the container is matched by name and its env by name.
  auto strategic = K(
      {"patch", "deployment", "p", "-p",
       R"({"spec":{"template":{"spec":{"containers":[{"name":"main","env":[{"name":"EXTRA","value":"two"}]}]}}}})"});
  EXPECT_EQ(strategic.exit_code, 0) << strategic.err;
  Json d = GetJson("deployment", "p");
  EXPECT_EQ(d["spec"]["replicas"], 4);
  EXPECT_EQ(d["metadata"]["labels"]["patched"], "merge");
  const Json& c = d["spec"]["template"]["spec"]["containers"];
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0]["image"], "nginx:1.25");
  EXPECT_EQ(c[0]["env"],
            (Json::parse(R"([{"name":"MODE","value":"one"},{"name":"EXTRA","value":"two"}])")));
  // $patch: delete removes one element by its key.
  auto remove = K(
      {"patch", "deployment", "p", "-p",
       R"({"spec":{"template":{"spec":{"containers":[{"name":"main","env":[{"name":"MODE","$patch":"delete"}]}]}}}})"});
  EXPECT_EQ(remove.exit_code, 0) << remove.err;
  EXPECT_EQ(GetJson("deployment", "p")["spec"]["template"]["spec"]["containers"][0]["env"],
            (Json::parse(R"([{"name":"EXTRA","value":"two"}])")));
  auto invalid =
      K({"patch", "deployment", "p", "--type=merge", "-p", R"({"spec":{"replicas":-3}})"});
  EXPECT_NE(invalid.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(invalid.err, "spec.replicas")) << invalid.err;
}

TEST_F(ApiProcessTest, ReplaceWithAStaleResourceVersionConflicts) {
  ASSERT_EQ(K({"create", "-f", WriteFile("r.yaml", Pod("r", "{app: r}"))}).exit_code, 0);
  auto old = K({"get", "pod", "r", "-o", "yaml"});
  const std::string stale = WriteFile("stale.yaml", old.out);
  ASSERT_EQ(K({"label", "pod", "r", "moved=on"}, 1).exit_code, 0);
  auto replaced = K({"replace", "-f", stale});
  EXPECT_NE(replaced.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(replaced.err, "Conflict")) << replaced.err;
  EXPECT_TRUE(absl::StrContains(replaced.err, "the object has been modified")) << replaced.err;
  // With the current version it goes through.
  const std::string fresh = WriteFile("fresh.yaml", K({"get", "pod", "r", "-o", "yaml"}).out);
  auto ok = K({"replace", "-f", fresh});
  EXPECT_EQ(ok.out, "pod/r replaced\n") << ok.err;
}

TEST_F(ApiProcessTest, ScaleSetsReplicas) {
  ASSERT_EQ(K({"create", "-f", WriteFile("s.yaml", Deployment("s", 1, "nginx:1.25"))}).exit_code,
            0);
  auto scaled = K({"scale", "deployment", "s", "--replicas=5"});
  EXPECT_EQ(scaled.out, "deployment.apps/s scaled\n") << scaled.err;
  EXPECT_EQ(GetJson("deployment", "s")["spec"]["replicas"], 5);
  auto precondition = K({"scale", "deployment", "s", "--current-replicas=2", "--replicas=3"});
  EXPECT_NE(precondition.exit_code, 0);
  EXPECT_EQ(GetJson("deployment", "s")["spec"]["replicas"], 5);
  Json scale =
      Json::parse(Kubectl({"get", "--raw",
                           absl::StrCat("/apis/apps/v1/namespaces/", ns_, "/deployments/s/scale")})
                      .out,
                  nullptr, false);
  EXPECT_EQ(scale["kind"], "Scale");
  EXPECT_EQ(scale["spec"]["replicas"], 5);
  EXPECT_EQ(scale["status"]["selector"], "app=s");
}

TEST_F(ApiProcessTest, DeleteWithEachPropagationPolicy) {
  auto owned_replica_set = [&](const std::string& owner) {
    Json d = GetJson("deployment", owner);
    const std::string yaml = absl::StrCat(
        "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: ", owner,
        "-rs\n  ownerReferences:\n  - {apiVersion: apps/v1, kind: Deployment, name: ", owner,
        ", uid: ", d["metadata"]["uid"].get<std::string>(),
        ", controller: true}\nspec:\n  selector: {matchLabels: {app: ", owner,
        "}}\n  template:\n    metadata: {labels: {app: ", owner,
        "}}\n    spec: {containers: [{name: c, image: nginx}]}\n");
    auto r = K({"create", "-f", WriteFile(owner + "-rs.yaml", yaml)});
    EXPECT_EQ(r.exit_code, 0) << r.err;
  };
  for (const char* name : {"bg", "fg", "orphan"}) {
    ASSERT_EQ(
        K({"create", "-f", WriteFile(std::string(name) + ".yaml", Deployment(name, 1, "nginx"))})
            .exit_code,
        0);
    owned_replica_set(name);
  }
  auto bg = K({"delete", "deployment", "bg"});
  EXPECT_EQ(bg.out, "deployment.apps \"bg\" deleted\n") << bg.err;
  auto fg = K({"delete", "deployment", "fg", "--cascade=foreground"});
  EXPECT_EQ(fg.exit_code, 0) << fg.err;
  auto orphan = K({"delete", "deployment", "orphan", "--cascade=orphan"});
  EXPECT_EQ(orphan.exit_code, 0) << orphan.err;
  EXPECT_EQ(K({"get", "deployments", "-o", "name"}).out, "");
  EXPECT_EQ(K({"get", "replicasets", "-o", "name"}).out, "replicaset.apps/orphan-rs\n");
  EXPECT_FALSE(GetJson("replicaset", "orphan-rs")["metadata"].contains("ownerReferences"));

  // A finalizer holds the object, marked for deletion, until it is removed.
  ASSERT_EQ(K({"create", "-f",
               WriteFile("f.yaml",
                         "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n  finalizers: "
                         "[example.com/hold]\ndata: {a: b}\n")})
                .exit_code,
            0);
  auto held = K({"delete", "configmap", "held", "--wait=false"});
  EXPECT_EQ(held.exit_code, 0) << held.err;
  Json marked = GetJson("configmap", "held");
  EXPECT_TRUE(marked["metadata"].contains("deletionTimestamp")) << marked.dump();
  auto released = K(
      {"patch", "configmap", "held", "--type=merge", "-p", R"({"metadata":{"finalizers":null}})"});
  EXPECT_EQ(released.exit_code, 0) << released.err;
  auto gone = K({"get", "configmap", "held"});
  EXPECT_TRUE(absl::StrContains(gone.err, "NotFound")) << gone.out << gone.err;

  // deletecollection by label.
  ASSERT_EQ(K({"create", "-f", WriteFile("c1.yaml", Pod("c1", "{batch: one}"))}).exit_code, 0);
  ASSERT_EQ(K({"create", "-f", WriteFile("c2.yaml", Pod("c2", "{batch: one}"))}).exit_code, 0);
  ASSERT_EQ(K({"create", "-f", WriteFile("c3.yaml", Pod("c3", "{batch: two}"))}).exit_code, 0);
  auto collection =
      Kubectl({"delete", "--raw",
               absl::StrCat("/api/v1/namespaces/", ns_, "/pods?labelSelector=batch%3Done")});
  EXPECT_EQ(collection.exit_code, 0) << collection.err;
  EXPECT_EQ(K({"get", "pods", "-o", "name"}).out, "pod/c3\n");
}

TEST_F(ApiProcessTest, InvalidManifestIsRejectedReadably) {
  const std::string bad = R"(apiVersion: apps/v1
kind: Deployment
metadata:
  name: Bad_Name
spec:
  replicas: -1
  selector:
    matchLabels: {app: one}
  template:
    metadata:
      labels: {app: two}
    spec:
      containers:
      - name: main
)";
  auto r = K({"apply", "-f", WriteFile("bad.yaml", bad)});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(r.err, "The Deployment \"Bad_Name\" is invalid")) << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, "metadata.name: Invalid value: \"Bad_Name\"")) << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, "spec.replicas: Invalid value: -1")) << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, "`selector` does not match template `labels`")) << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, "spec.template.spec.containers[0].image: Required value"))
      << r.err;
  // Strict field validation (kubectl's default) catches a misspelt field.
  auto typo = K({"apply", "-f",
                 WriteFile("typo.yaml",
                           "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: t\n"
                           "  lables: {a: b}\ndata: {k: v}\n")});
  EXPECT_NE(typo.exit_code, 0);
  EXPECT_TRUE(
      absl::StrContains(typo.err, "strict decoding error: unknown field \"metadata.lables\""))
      << typo.err;
  auto lax = K({"apply", "--validate=false", "-f",
                WriteFile("typo.yaml",
                          "apiVersion: v1\n"
                          "kind: ConfigMap\nmetadata:\n  name: t\n  lables: {a: b}\n")});
  EXPECT_EQ(lax.exit_code, 0) << lax.err;
  EXPECT_FALSE(GetJson("configmap", "t")["metadata"].contains("lables"));  // dropped
  auto missing = K({"get", "deployment", "nope"});
  EXPECT_EQ(missing.err, "Error from server (NotFound): deployments.apps \"nope\" not found\n");
  auto no_ns = Kubectl(
      {"create", "-f", WriteFile("ok.yaml", Pod("ok", "{a: b}")), "-n", "no-such-namespace"});
  EXPECT_TRUE(absl::StrContains(no_ns.err, "namespaces \"no-such-namespace\" not found"))
      << no_ns.err;
}

TEST_F(ApiProcessTest, EveryResourceTypeAppliesAndPrintsItsTable) {
  const std::string manifest = R"(apiVersion: v1
kind: Service
metadata: {name: svc}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: svc}
subsets: [{addresses: [{ip: 10.1.0.5}], ports: [{port: 8080}]}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 2
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: db, image: postgres:16}]}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec: {containers: [{name: agent, image: agent:1}]}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: lock}
spec: {holderIdentity: me, leaseDurationSeconds: 15}
---
apiVersion: v1
kind: Event
metadata: {name: ev1}
involvedObject: {kind: Pod, name: p, namespace: NS}
reason: Tested
message: it works
type: Normal
---
apiVersion: apps/v1
kind: ControllerRevision
metadata: {name: db-1}
revision: 1
data: {spec: {}}
)";
  std::string text = manifest;
  text.replace(text.find("NS"), 2, ns_);
  auto applied = K({"apply", "-f", WriteFile("all.yaml", text)});
  ASSERT_EQ(applied.exit_code, 0) << applied.err;
  const std::string cluster_scoped =
      absl::StrCat(R"(apiVersion: v1
kind: Node
metadata: {name: node-)",
                   ns_, R"(, labels: {node-role.kubernetes.io/worker: ""}}
status:
  conditions: [{type: Ready, status: "True"}]
  nodeInfo: {kubeletVersion: v1.32.0-ganglion}
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: pv-)",
                   ns_, R"(}
spec:
  capacity: {storage: 5Gi}
  accessModes: [ReadWriteOnce]
  hostPath: {path: /tmp/pv}
)");
  auto nodes = Kubectl({"apply", "-f", WriteFile("cluster.yaml", cluster_scoped)});
  ASSERT_EQ(nodes.exit_code, 0) << nodes.err;

  auto header = [&](std::vector<std::string> args) {
    auto r = args[0] == "-" ? Kubectl({"get", args[1]}) : K({"get", args[0]});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out.substr(0, r.out.find('\n')) + "|" + r.out;
  };
  auto expect = [&](const std::string& got, std::vector<std::string> want) {
    for (const std::string& w : want) EXPECT_TRUE(absl::StrContains(got, w)) << w << "\n" << got;
  };
  expect(header({"services"}), {"TYPE", "CLUSTER-IP", "PORT(S)", "ClusterIP", "80/TCP"});
  expect(header({"endpoints"}), {"ENDPOINTS", "10.1.0.5:8080"});
  expect(header({"statefulsets"}), {"READY", "0/2"});
  expect(header({"daemonsets"}), {"DESIRED", "NODE SELECTOR", "<none>"});
  expect(header({"pvc"}), {"STATUS", "ACCESS MODES", "Pending"});
  expect(header({"leases"}), {"HOLDER", "me"});
  expect(header({"events"}), {"LAST SEEN", "REASON", "Tested", "pod/p", "it works"});
  expect(header({"controllerrevisions"}), {"REVISION"});
  expect(header({"-", "nodes"}),
         {"STATUS", "ROLES", "VERSION", "Ready", "worker", "v1.32.0-ganglion"});
  expect(header({"-", "pv"}), {"CAPACITY", "RECLAIM POLICY", "5Gi", "Retain"});
  expect(header({"-", "namespaces"}), {"STATUS", ns_, "Active"});

  Json sts = GetJson("statefulset", "db");
  EXPECT_EQ(sts["spec"]["podManagementPolicy"], "OrderedReady");
  EXPECT_EQ(sts["spec"]["updateStrategy"]["rollingUpdate"]["partition"], 0);
  Json svc = GetJson("service", "svc");
  EXPECT_EQ(svc["spec"]["clusterIP"].get<std::string>().rfind("10.", 0), 0u) << svc.dump();
  EXPECT_EQ(svc["spec"]["ports"][0]["protocol"], "TCP");
  EXPECT_EQ(svc["spec"]["sessionAffinity"], "None");
  // describe of an object that has events lists them.
  auto pods_events =
      K({"get", "events", "--field-selector", "involvedObject.name=p", "-o", "name"});
  EXPECT_EQ(pods_events.out, "event/ev1\n") << pods_events.err;
  EXPECT_EQ(Kubectl({"delete", "node", "node-" + ns_}).exit_code, 0);
  EXPECT_EQ(Kubectl({"delete", "pv", "pv-" + ns_}).exit_code, 0);
}

TEST_F(ApiProcessTest, ImperativeCommandsSendProtobufBodiesOfEveryKind) {
  // kubectl's typed clients send these as protobuf (checked in the -v=8 trace).
  auto deployment =
      K({"create", "deployment", "web", "--image=busybox:1.36", "-v=8", "--", "sleep", "1000"});
  ASSERT_EQ(deployment.exit_code, 0) << deployment.err;
  EXPECT_TRUE(
      absl::StrContains(deployment.err, "Content-Type: application/vnd.kubernetes.protobuf"))
      << deployment.err;
  EXPECT_TRUE(absl::StrContains(deployment.err, "201 Created")) << deployment.err;
  // kubectl offers protobuf first but accepts JSON, which is what it gets.
  EXPECT_TRUE(absl::StrContains(deployment.err,
                                "Accept: application/vnd.kubernetes.protobuf,application/json"))
      << deployment.err;
  const size_t status_at = deployment.err.find("Response Status: 201");
  ASSERT_NE(status_at, std::string::npos) << deployment.err;
  const size_t type_at = deployment.err.find("Content-Type: ", status_at);
  ASSERT_NE(type_at, std::string::npos) << deployment.err;
  const size_t type_end = deployment.err.find('\n', type_at);
  EXPECT_EQ(deployment.err.substr(type_at, type_end - type_at), "Content-Type: application/json");
  Json d = GetJson("deployment", "web");
  EXPECT_EQ(d["spec"]["replicas"], 1);
  EXPECT_EQ(d["spec"]["selector"]["matchLabels"]["app"], "web");
  EXPECT_EQ(d["spec"]["strategy"]["type"], "RollingUpdate");
  EXPECT_EQ(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
  const Json& container = d["spec"]["template"]["spec"]["containers"][0];
  EXPECT_EQ(container["name"], "busybox");
  EXPECT_EQ(container["image"], "busybox:1.36");
  EXPECT_EQ(container["command"], Json::array({"sleep", "1000"}));
  EXPECT_FALSE(d["metadata"].contains("creationTimestamp") &&
               d["metadata"]["creationTimestamp"].get<std::string>().rfind("1970", 0) == 0);

  auto service = K({"create", "service", "clusterip", "s", "--tcp=80:8080"});
  ASSERT_EQ(service.exit_code, 0) << service.err;
  Json svc = GetJson("service", "s");
  EXPECT_EQ(svc["spec"]["ports"][0]["port"], 80);
  EXPECT_EQ(svc["spec"]["ports"][0]["targetPort"], 8080);
  EXPECT_EQ(svc["spec"]["ports"][0]["name"], "80-8080");
  EXPECT_EQ(svc["spec"]["selector"]["app"], "s");
  EXPECT_EQ(svc["spec"]["type"], "ClusterIP");

  auto run = K(
      {"run", "p", "--image=busybox:1.36", "--labels=role=one", "--command", "--", "sleep", "100"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  Json pod = GetJson("pod", "p");
  EXPECT_EQ(pod["spec"]["containers"][0]["command"], Json::array({"sleep", "100"}));
  EXPECT_EQ(pod["metadata"]["labels"]["role"], "one");

  ASSERT_EQ(K({"create", "configmap", "c", "--from-literal=k=v"}).exit_code, 0);
  EXPECT_EQ(GetJson("configmap", "c")["data"]["k"], "v");

  // The writes that follow are patches (merge, strategic) and scale subresource requests.
  auto scale = K({"scale", "deployment", "web", "--replicas=3"});
  ASSERT_EQ(scale.exit_code, 0) << scale.err;
  auto set_image = K({"set", "image", "deployment/web", "busybox=busybox:1.37"});
  ASSERT_EQ(set_image.exit_code, 0) << set_image.err;
  ASSERT_EQ(K({"rollout", "pause", "deployment/web"}).exit_code, 0);
  EXPECT_EQ(GetJson("deployment", "web")["spec"]["paused"], true);
  ASSERT_EQ(K({"rollout", "resume", "deployment/web"}).exit_code, 0);
  auto restart = K({"rollout", "restart", "deployment/web"});
  ASSERT_EQ(restart.exit_code, 0) << restart.err;
  d = GetJson("deployment", "web");
  EXPECT_EQ(d["spec"]["replicas"], 3);
  EXPECT_FALSE(d["spec"].value("paused", false));
  EXPECT_EQ(d["spec"]["template"]["spec"]["containers"][0]["image"], "busybox:1.37");
  EXPECT_TRUE(d["spec"]["template"]["metadata"]["annotations"].contains(
      "kubectl.kubernetes.io/restartedAt"))
      << d.dump();
}

TEST_F(ApiProcessTest, ExplainPrintsFieldsAndTypes) {
  auto strategy = Kubectl({"explain", "deployment.spec.strategy"});
  ASSERT_EQ(strategy.exit_code, 0) << strategy.err;
  EXPECT_TRUE(absl::StrContains(strategy.out, "KIND:       Deployment")) << strategy.out;
  EXPECT_TRUE(absl::StrContains(strategy.out, "rollingUpdate\t<RollingUpdateDeployment>"))
      << strategy.out;
  EXPECT_TRUE(absl::StrContains(strategy.out, "type\t<string>")) << strategy.out;
  auto containers = Kubectl({"explain", "pod.spec.containers"});
  ASSERT_EQ(containers.exit_code, 0) << containers.err;
  EXPECT_TRUE(absl::StrContains(containers.out, "FIELD: containers <[]Container>"))
      << containers.out;
  EXPECT_TRUE(absl::StrContains(containers.out, "name\t<string> -required-")) << containers.out;
  EXPECT_TRUE(absl::StrContains(containers.out, "resources\t<ResourceRequirements>"))
      << containers.out;
  EXPECT_TRUE(absl::StrContains(containers.out, "imagePullPolicy\t<string>")) << containers.out;
  EXPECT_TRUE(absl::StrContains(containers.out, "The container image to run.")) << containers.out;
  auto limits = Kubectl({"explain", "pod.spec.containers.resources.limits"});
  EXPECT_TRUE(absl::StrContains(limits.out, "<map[string]Quantity>")) << limits.out << limits.err;
  auto nope = Kubectl({"explain", "deployment.spec.nope"});
  EXPECT_NE(nope.exit_code, 0);
}

TEST_F(ApiProcessTest, ApplyRejectsATypoDeepInsideAndReappliesByMergeKeys) {
  std::string manifest = Deployment("deep", 1, "busybox:1.36");
  const std::string typo = absl::StrReplaceAll(
      manifest, {{"        ports:\n", "        imagePullPolcy: Always\n        ports:\n"}});
  ASSERT_NE(typo, manifest);
  auto strict = K({"apply", "-f", WriteFile("deep.yaml", typo)});
  EXPECT_NE(strict.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(
      strict.err,
      "Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding error: "
      "unknown field \"spec.template.spec.containers[0].imagePullPolcy\""))
      << strict.err;
  EXPECT_NE(K({"get", "deployment", "deep"}).exit_code, 0);  // nothing was created
  // A value of the wrong type is rejected whatever the validation mode.
  const std::string wrong_type =
      absl::StrReplaceAll(manifest, {{"replicas: 1\n", "replicas: \"one\"\n"}});
  ASSERT_NE(wrong_type, manifest);
  auto typed = K({"apply", "--validate=false", "-f", WriteFile("deep-type.yaml", wrong_type)});
  EXPECT_NE(typed.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(typed.err,
                                "json: cannot unmarshal string into Go struct field "
                                "DeploymentSpec.spec.replicas of type int32"))
      << typed.err;
  auto warned = K({"apply", "--validate=warn", "-f", WriteFile("deep.yaml", typo)});
  ASSERT_EQ(warned.exit_code, 0) << warned.err;
  EXPECT_TRUE(absl::StrContains(
      warned.err, "Warning: unknown field \"spec.template.spec.containers[0].imagePullPolcy\""))
      << warned.err;
  EXPECT_FALSE(GetJson("deployment", "deep")["spec"]["template"]["spec"]["containers"][0].contains(
      "imagePullPolcy"));
  // A second apply merges by the schema's keys: the env entry is replaced by
  // name, the container kept by name, the port list by containerPort.
  const std::string changed =
      absl::StrReplaceAll(manifest, {{"{name: MODE, value: one}", "{name: MODE, value: two}"},
                                     {"containerPort: 80", "containerPort: 8080"}});
  auto reapplied = K({"apply", "-f", WriteFile("deep2.yaml", changed)});
  ASSERT_EQ(reapplied.exit_code, 0) << reapplied.err;
  const Json c = GetJson("deployment", "deep")["spec"]["template"]["spec"]["containers"][0];
  EXPECT_EQ(c["env"], Json::parse(R"([{"name":"MODE","value":"two"}])"));
  ASSERT_EQ(c["ports"].size(), 1u) << c.dump();
  EXPECT_EQ(c["ports"][0]["containerPort"], 8080);
}

TEST_F(ApiProcessTest, AWriteThroughOneMemberIsVisibleThroughTheOthers) {
  ASSERT_EQ(K({"create", "-f", WriteFile("v.yaml", Pod("v", "{app: v}"))}, 0).exit_code, 0);
  for (int i = 1; i < cluster().size(); ++i) {
    Json pod = GetJson("pod", "v", i);
    EXPECT_EQ(pod["metadata"]["name"], "v") << "member " << i;
  }
  ASSERT_EQ(K({"label", "pod", "v", "by=m3"}, 2).exit_code, 0);
  EXPECT_EQ(GetJson("pod", "v", 0)["metadata"]["labels"]["by"], "m3");
  // The object is JSON under /registry/<resource>/<namespace>/<name>, readable with etcdctl.
  auto raw =
      cluster().Etcdctl({"get", absl::StrCat("/registry/pods/", ns_, "/v"), "--print-value-only"});
  ASSERT_EQ(raw.exit_code, 0) << raw.err;
  Json stored = Json::parse(raw.out, nullptr, false);
  EXPECT_EQ(stored["kind"], "Pod");
  EXPECT_EQ(stored["metadata"]["labels"]["by"], "m3");
}

}  // namespace
}  // namespace ganglion::tests
